"""Writing the generated project atomically, and comparing it with what is on disk."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from soniq_codegen.source import HEADER

#: Files a build or an install may leave in the output that are not part of the package.
_IGNORED_PARTS = frozenset({"__pycache__", "build", "dist", ".mypy_cache", ".ruff_cache"})


class OutputError(Exception):
    """The output directory cannot be written (or is not one soniq-codegen wrote)."""


def _checked_path(root: Path, relative: str) -> Path:
    """``root / relative``, refusing any path that could land outside ``root``."""
    pure = PurePosixPath(relative)
    if pure.is_absolute() or not pure.parts or any(p in ("", ".", "..") for p in pure.parts):
        raise OutputError(f"refusing to write {relative!r} outside the output directory")
    return root.joinpath(*pure.parts)


def is_generated(out: Path) -> bool:
    """Whether ``out`` is a directory a previous build wrote (its pyproject has our header)."""
    try:
        return (out / "pyproject.toml").read_text("utf-8").startswith(HEADER)
    except (OSError, UnicodeDecodeError):
        return False


def _ignored(relative: Path) -> bool:
    return any(p in _IGNORED_PARTS or p.endswith(".egg-info") for p in relative.parts)


def read_tree(out: Path) -> dict[str, bytes]:
    """The files under ``out`` (except build and cache leftovers), by POSIX relative path."""
    found: dict[str, bytes] = {}
    if not out.is_dir():
        return found
    for path in sorted(out.rglob("*")):
        relative = path.relative_to(out)
        if path.is_file() and not _ignored(relative):
            found[relative.as_posix()] = path.read_bytes()
    return found


def diff_tree(files: dict[str, bytes], out: Path) -> list[str]:
    """Lines saying which files of ``out`` differ from ``files``: changed, missing or extra."""
    current = read_tree(out)
    lines = [f"changed: {p}" for p in files if p in current and current[p] != files[p]]
    lines += [f"missing: {p}" for p in files if p not in current]
    lines += [f"extra: {p}" for p in current if p not in files]
    return sorted(lines, key=lambda line: line.split(": ", 1)[1])


def write_tree(files: dict[str, bytes], out: Path) -> bool:
    """Make ``out`` hold exactly ``files``; return False if it already did.

    The new tree is written beside ``out`` and swapped in with renames, so a failure leaves
    the previous output as it was; build outputs at its top (dist/, build/, *.egg-info) are
    kept. A non-empty directory that soniq-codegen did not write is never replaced.
    """
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not is_generated(out):
        raise OutputError(
            f"{out} is not empty and was not written by soniq-codegen; "
            "choose a new or previously generated directory"
        )
    if out.is_dir() and not diff_tree(files, out):
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    staging = scratch / "tree"  # made with mkdir, so it gets the umask's permissions
    try:
        staging.mkdir()
        for relative, data in files.items():
            target = _checked_path(staging, relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if out.is_dir():
            backup = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            # What `python -m build` and friends left there (dist/, build/, *.egg-info) moves
            # into the new tree, and back if the swap fails.
            kept = [path.name for path in out.iterdir() if _ignored(Path(path.name))]
            for name in kept:
                os.replace(out / name, staging / name)
            try:
                os.replace(out, backup / "tree")
                try:
                    os.replace(staging, out)
                except OSError:
                    os.replace(backup / "tree", out)
                    raise
            except OSError:
                for name in kept:
                    os.replace(staging / name, out / name)
                raise
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(staging, out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return True
