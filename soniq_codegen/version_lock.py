"""The generated distribution's version: kept in the output directory's lock file
(``soniq-codegen.lock.json``, written by every build, read by the next build and by
``check``), and chosen by ``build --bump auto`` from what changed since the package there:

* **major**: a breaking change (any finding of an ``error`` rule of ``compatibility.RULES``,
  allowed by a contract version bump or not), a task removed or renamed, or a task's contract
  ``version`` raised;
* **minor**: a task added, or a task's args changed compatibly (beyond descriptions);
* **patch**: descriptions, titles and examples only, or anything else in the generated files;
* none: the generated files are the same.

Versions are ``MAJOR.MINOR.PATCH``; a bump resets the parts after the one it raises.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from soniq_codegen.baseline import Baseline
from soniq_codegen.compatibility import Report, compare
from soniq_codegen.contract_set import ContractSet
from soniq_codegen.fingerprint import inline

VERSION_LOCK = "soniq-codegen.lock.json"
FIRST_VERSION = "0.1.0"
Level = Literal["major", "minor", "patch"]
_SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
# Schema keywords that only describe: changing them changes no accepted value.
_ANNOTATIONS = frozenset({"description", "title", "examples", "$comment"})
# Keywords whose value is data, not a schema to look into.
_DATA = frozenset({"enum", "const", "default"})
# Keywords whose value maps names (not keywords) to schemas.
_NAMED = frozenset({"properties", "patternProperties", "$defs", "definitions"})


class VersionError(Exception):
    """The lock file cannot be read, or its version cannot be bumped."""


def lock_text(version: str) -> bytes:
    """The lock file holding ``version``."""
    return (json.dumps({"lock_version": 1, "version": version}, indent=2) + "\n").encode()


def locked_version(output: Path) -> str | None:
    """The version the last build wrote to ``output``; None when there is no lock file."""
    path = output / VERSION_LOCK
    if not path.is_file():
        return None
    try:
        data: Any = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise VersionError(f"cannot read {path}: {exc}; delete it and pass --version") from None
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, str) or data.get("lock_version") != 1:
        raise VersionError(f"{path} is not a lock of lock_version 1; delete it and pass --version")
    return version


@dataclass(frozen=True)
class Change:
    """How much the package changed, and the first reason for it."""

    level: Level | None
    why: str


def _described_only(value: Any) -> Any:
    """A schema without its annotations, to tell a description change from a real one."""
    if isinstance(value, list):
        return [_described_only(item) for item in value]
    if not isinstance(value, dict):
        return value
    kept: dict[str, Any] = {}
    for key, sub in value.items():
        if key in _ANNOTATIONS:
            continue
        if key in _DATA:
            kept[key] = sub
        elif key in _NAMED and isinstance(sub, dict):
            kept[key] = {name: _described_only(schema) for name, schema in sub.items()}
        else:
            kept[key] = _described_only(sub)
    return kept


def _args_without_annotations(contracts: ContractSet, name: str) -> Any:
    task = next(t for t in contracts.tasks if t.task == name)
    return _described_only(inline(contracts.tree.args(task)))


def _breaking(report: Report, old: Baseline, new: ContractSet) -> str | None:
    for finding in report.findings:
        if finding.spec.severity == "error":
            return f"{finding.task} {finding.rule}"
    for task in new.tasks:
        was = old.tasks.get(task.task)
        if was is not None and task.version > was.version:
            return f"{task.task} version {was.version} -> {task.version}"
    return None


def classify(old: Baseline, new: ContractSet, files_differ: bool) -> Change:
    """What kind of release the change from ``old`` to ``new`` is (see the module doc)."""
    report = compare(old, new)
    breaking = _breaking(report, old, new)
    if breaking is not None:
        return Change("major", f"breaking: {breaking}")
    if report.added:
        return Change("minor", f"task {report.added[0]} added")
    for name in report.changed:
        if old.contracts is None or _args_without_annotations(
            old.contracts, name
        ) != _args_without_annotations(new, name):
            return Change("minor", f"{name} args changed compatibly")
    if report.findings:  # warnings only, such as a default queue changed
        return Change("minor", f"{report.findings[0].task} {report.findings[0].rule}")
    if files_differ:
        what = "descriptions only" if report.changed else "generated files changed"
        return Change("patch", what)
    return Change(None, "no change")


def bumped(version: str, level: Level) -> str:
    """``version`` raised by ``level``."""
    match = _SEMVER.match(version)
    if match is None:
        raise VersionError(
            f"--bump auto needs a MAJOR.MINOR.PATCH version, and the lock holds {version!r}: "
            "pass --version once"
        )
    major, minor, patch = (int(part) for part in match.groups())
    if level == "major":
        return f"{major + 1}.0.0"
    if level == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"
