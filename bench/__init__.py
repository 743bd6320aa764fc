"""Soniq's benchmark: Soniq and, when installed, pgqueuer and procrastinate through the same
scenarios on one machine in one run. Run it with ``python -m bench`` (``--help`` for options).
"""
