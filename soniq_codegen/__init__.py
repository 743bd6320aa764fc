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

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from soniq_codegen.baseline import Baseline, load_baseline
    from soniq_codegen.compatibility import RULES, Finding, Report, compare
    from soniq_codegen.contract import TaskContract
    from soniq_codegen.contract_set import ContractSet, check_contracts
    from soniq_codegen.fingerprint import fingerprint
    from soniq_codegen.meta_schema import meta_schema
    from soniq_codegen.problem import ContractError, Problem
    from soniq_codegen.render import render_package
    from soniq_codegen.write import OutputError, diff_tree, write_tree

# Imported on first use, so that `import soniq_codegen` (and the command's entry point)
# works without the codegen extra and can say what to install.
_HOMES = {
    "Baseline": "baseline",
    "load_baseline": "baseline",
    "RULES": "compatibility",
    "Finding": "compatibility",
    "Report": "compatibility",
    "compare": "compatibility",
    "TaskContract": "contract",
    "ContractSet": "contract_set",
    "check_contracts": "contract_set",
    "fingerprint": "fingerprint",
    "meta_schema": "meta_schema",
    "ContractError": "problem",
    "Problem": "problem",
    "render_package": "render",
    "OutputError": "write",
    "diff_tree": "write",
    "write_tree": "write",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'soniq_codegen' has no attribute {name!r}")
    return getattr(importlib.import_module(f"soniq_codegen.{home}"), name)


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
