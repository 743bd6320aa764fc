"""The ``soniq-codegen`` command: without the ``codegen`` extra it says, in one line, what to
install instead of failing with a traceback."""

from __future__ import annotations

import sys

import soniq_codegen


def main() -> None:
    """Run the ``soniq-codegen`` command line."""
    if soniq_codegen.MISSING_EXTRA is not None:
        sys.exit(soniq_codegen.MISSING_EXTRA)
    from soniq_codegen.cli import main as cli

    cli()
