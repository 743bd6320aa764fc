"""The ``soniq-codegen`` command: without the ``codegen`` extra it says, in one line, what to
install instead of failing with a traceback."""

from __future__ import annotations

import sys

# What the codegen extra installs, by import name.
CODEGEN_MODULES = frozenset({"datamodel_code_generator", "jsonschema", "yaml"})


def main() -> None:
    """Run the ``soniq-codegen`` command line."""
    try:
        from soniq_codegen.cli import main as cli
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in CODEGEN_MODULES:
            raise
        sys.exit(
            f"soniq-codegen needs the codegen extra ({missing} is not installed): "
            "pip install 'soniq-jobs[codegen]'"
        )
    cli()
