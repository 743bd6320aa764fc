"""The old side of a breaking-change check: what the contracts were before this change.

``--against`` names a contract directory, a generated package (its shipped ``contracts/``
copy), that package's ``soniq.lock.json`` alone (versions and fingerprints only), or
``git:REV``: the same contract directory at a git revision.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, replace
from io import BytesIO
from pathlib import Path
from typing import Any

from soniq_codegen.contract_set import ContractSet, check_contracts
from soniq_codegen.problem import ContractError, Problem

LOCK_FILE = "soniq.lock.json"
_SOURCES_HINT = "pass a contract directory, a generated package, its soniq.lock.json or git:REV"


@dataclass(frozen=True)
class LockEntry:
    """A task as the lock file records it."""

    version: int
    fingerprint: str


@dataclass
class Baseline:
    """The old contracts: every task's version and fingerprint, and the schemas when known."""

    label: str
    tasks: dict[str, LockEntry]
    #: None when only a lock file was available: then schemas cannot be compared.
    contracts: ContractSet | None = None


def load_baseline(against: str, contracts_dir: Path) -> Baseline:
    """The baseline ``against`` names; ``git:REV`` reads ``contracts_dir`` at ``REV``.

    Raises :class:`ContractError` when it cannot be read or its contracts have problems.
    """
    if against.startswith("git:"):
        return _from_git(against, against[4:], contracts_dir)
    path = Path(against)
    if path.is_file():
        return read_lock(path, against)
    if not path.is_dir():
        raise _error(against, "no such file or directory", _SOURCES_HINT)
    package = find_package(path)
    if package is not None:
        return package_baseline(package, against)
    return _from_contracts(path, against)


def find_package(path: Path) -> Path | None:
    """The import package holding a lock file: ``path`` itself, or its one subdirectory."""
    if (path / LOCK_FILE).is_file():
        return path
    locks = sorted(path.glob(f"*/{LOCK_FILE}"))
    if len(locks) > 1:
        raise _error(
            str(path),
            f"{len(locks)} packages with a {LOCK_FILE} inside",
            "point at one of them",
        )
    return locks[0].parent if locks else None


def package_baseline(package: Path, label: str) -> Baseline:
    """A generated package: its shipped contracts, or its lock file when they are missing."""
    contracts = package / "contracts"
    if not contracts.is_dir():
        return read_lock(package / LOCK_FILE, label)
    return _from_contracts(contracts, f"{label.rstrip('/')}/contracts" if label else "contracts")


def read_lock(path: Path, label: str) -> Baseline:
    """A ``soniq.lock.json`` alone: versions and fingerprints, no schemas."""
    hint = f"pass a {LOCK_FILE} written by soniq-codegen build"
    try:
        data: Any = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise _error(label, f"cannot read the lock file: {exc}", hint) from None
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("lock_version") != 1 or not isinstance(tasks, dict):
        raise _error(label, "not a lock file of lock_version 1", hint)
    entries: dict[str, LockEntry] = {}
    for name, entry in tasks.items():
        version = entry.get("version") if isinstance(entry, dict) else None
        fingerprint = entry.get("fingerprint") if isinstance(entry, dict) else None
        if (
            not isinstance(version, int)
            or isinstance(version, bool)
            or version < 1
            or not isinstance(fingerprint, str)
        ):
            raise _error(label, f"lock entry {name!r} needs a version and a fingerprint", hint)
        entries[name] = LockEntry(version, fingerprint)
    return Baseline(label, entries)


def contracts_baseline(contracts: ContractSet, label: str) -> Baseline:
    """A checked contract set as the baseline."""
    tasks = {t.task: LockEntry(t.version, t.fingerprint) for t in contracts.tasks}
    return Baseline(label, tasks, contracts)


def _from_contracts(root: Path, label: str) -> Baseline:
    try:
        contracts = check_contracts(root)
    except ContractError as exc:
        raise ContractError([_relabel(p, root, label) for p in exc.problems]) from None
    return contracts_baseline(contracts, label)


def _relabel(problem: Problem, root: Path, label: str) -> Problem:
    """A problem of the old set, named so it cannot be mistaken for one of the new set."""
    if problem.file == str(root):
        return replace(problem, file=label)
    return replace(problem, file=f"{label.rstrip('/')}/{problem.file}")


def _from_git(label: str, rev: str, contracts_dir: Path) -> Baseline:
    if not rev or rev.startswith("-") or any(c.isspace() for c in rev):
        raise _error(label, f"{rev!r} is not a git revision", "use e.g. git:main or git:HEAD~1")
    top, said = _git(contracts_dir, label, "rev-parse", "--show-toplevel")
    if top is None:
        raise _error(label, f"{contracts_dir} is not inside a git repository", said)
    prefix = (_git(contracts_dir, label, "rev-parse", "--show-prefix")[0] or b"").decode()
    root = Path(top.decode().strip())
    commit, _ = _git(root, label, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if commit is None:
        raise _error(label, f"unknown git revision {rev!r}", "fetch it, or check the spelling")
    where = prefix.strip().rstrip("/") or "."
    missing = f"the contract directory {where!r} does not exist at {rev}"
    archive, _ = _git(root, label, "archive", "--format=tar", commit.decode().strip(), "--", where)
    if archive is None:
        raise _error(label, missing, "")
    with tempfile.TemporaryDirectory(prefix="soniq-codegen-") as scratch:
        try:
            with tarfile.open(fileobj=BytesIO(archive)) as tar:
                # The "data" filter refuses absolute paths, links out and special files.
                tar.extractall(scratch, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise _error(label, f"cannot unpack {where!r} at {rev}: {exc}", "") from None
        tree = Path(scratch, prefix.strip())
        if not tree.is_dir():
            raise _error(label, missing, "")
        return _from_contracts(tree, f"{label}:{where}")


def _git(cwd: Path, label: str, *args: str) -> tuple[bytes | None, str]:
    """``git args`` in ``cwd``: its output (None when git says no) and the first line of its
    complaint."""
    try:
        done = subprocess.run(
            ["git", "--literal-pathspecs", *args],
            cwd=cwd,
            capture_output=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _error(label, f"cannot run git: {exc}", "install git, or pass a directory") from None
    said = done.stderr.decode("utf-8", "replace").strip().split("\n")[0]
    return (done.stdout if done.returncode == 0 else None), said


def _error(where: str, message: str, hint: str) -> ContractError:
    return ContractError([Problem(where, None, "", message, hint)])
