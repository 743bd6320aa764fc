"""The ``soniq`` command line: a thin layer that parses options and calls the app."""

from soniq.cli import reports
from soniq.cli.commands import main

__all__ = ["main", "reports"]
