"""soniq-codegen: task contracts in JSON Schema / YAML become a typed, publishable stub package.

The stages, each usable on its own::

    contract_set = check_contracts(Path("schemas"))           # load + check, all problems
    files = render_package(contract_set, "billing_tasks", "0.1.0")   # path -> bytes
    write_tree(files, Path("billing_tasks"))                  # atomic swap

``check_contracts`` loads the files (``load``), reads each envelope once ``contract.schema.json``
has validated it (``meta_schema``, ``contract``), resolves every ``$ref`` once into a
``SchemaTree`` (``tree``) and lowers the args schemas into one ``$defs`` map (``lower``);
fingerprints (``fingerprint``) and compatibility shapes (``shape``) read the same tree.

and the breaking-change check (docs/breaking-changes.md)::

    report = compare(load_baseline("git:main", Path("schemas")), contract_set, "full")
"""

from __future__ import annotations

from typing import NoReturn

# What the codegen extra installs, by import name.
CODEGEN_MODULES = frozenset({"datamodel_code_generator", "jsonschema", "yaml"})
#: Without the codegen extra: one line saying what to install (the command prints it).
MISSING_EXTRA: str | None = None

try:
    from soniq_codegen.baseline import Baseline, load_baseline
    from soniq_codegen.compatibility import RULES, Finding, Report, compare
    from soniq_codegen.contract import TaskContract
    from soniq_codegen.contract_set import ContractSet, check_contracts
    from soniq_codegen.fingerprint import fingerprint
    from soniq_codegen.meta_schema import meta_schema
    from soniq_codegen.problem import ContractError, Problem
    from soniq_codegen.render import render_package
    from soniq_codegen.write import OutputError, diff_tree, write_tree
except ModuleNotFoundError as exc:
    _missing = (exc.name or "").partition(".")[0]
    if _missing not in CODEGEN_MODULES:
        raise
    MISSING_EXTRA = (
        f"soniq-codegen needs the codegen extra ({_missing} is not installed): "
        "pip install 'soniq-jobs[codegen]'"
    )


def __getattr__(name: str) -> NoReturn:
    if MISSING_EXTRA is not None and name in __all__:
        raise ImportError(MISSING_EXTRA)
    raise AttributeError(f"module 'soniq_codegen' has no attribute {name!r}")


__all__ = [
    "RULES",
    "Baseline",
    "ContractError",
    "ContractSet",
    "Finding",
    "OutputError",
    "Problem",
    "Report",
    "TaskContract",
    "check_contracts",
    "compare",
    "diff_tree",
    "fingerprint",
    "load_baseline",
    "meta_schema",
    "render_package",
    "write_tree",
]
