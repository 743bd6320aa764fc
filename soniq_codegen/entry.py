"""The ``soniq-codegen`` command: without the ``codegen`` extra it says, in one line, what to
install instead of failing with a traceback."""

from __future__ import annotations

import atexit
import gc
import sys

import soniq_codegen


def main() -> None:
    """Run the ``soniq-codegen`` command line."""
    if soniq_codegen.MISSING_EXTRA is not None:
        sys.exit(soniq_codegen.MISSING_EXTRA)
    # One short run that builds a few hundred thousand long-lived objects (parsed schemas,
    # models, syntax trees) and then exits: the cyclic collector's passes rescanned them for
    # nothing (a fifth of a 200-contract build), and so did the collection at interpreter exit,
    # which a frozen heap skips. Reference counting still frees what has no cycles.
    gc.disable()
    atexit.register(gc.freeze)
    from soniq_codegen.cli import main as cli

    cli()
