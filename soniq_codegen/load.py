"""Finding and parsing contract files with source lines, and confining each ``$ref`` to the set.

Contracts are untrusted: every path is kept relative to the contract directory, and a
reference that leaves it (remote URL, absolute path, ``..``, a symlink pointing out) is refused.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

from soniq_codegen.problem import Problem

SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 1_000_000
MAX_NODES = 200_000
_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass
class SourceFile:
    """One parsed contract file: its path relative to the contract directory, bytes and data."""

    path: str
    raw: bytes
    data: Any = None
    lines: dict[str, int] = field(default_factory=dict)

    def line(self, pointer: str) -> int | None:
        """The source line of ``pointer``, or of its nearest ancestor that has one."""
        while True:
            if pointer in self.lines:
                return self.lines[pointer]
            if not pointer:
                return None
            pointer = pointer.rsplit("/", 1)[0]


def escape_token(token: str | int) -> str:
    """Escape one JSON pointer token (RFC 6901)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def join_pointer(pointer: str, *tokens: str | int) -> str:
    """Append tokens to a JSON pointer."""
    return pointer + "".join("/" + escape_token(t) for t in tokens)


def split_pointer(pointer: str) -> list[str]:
    """Split a JSON pointer into unescaped tokens."""
    if not pointer:
        return []
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def get_pointer(data: Any, pointer: str) -> Any:
    """Return the value at ``pointer``, raising ``KeyError`` when it does not exist."""
    for token in split_pointer(pointer):
        if isinstance(data, dict) and token in data:
            data = data[token]
        elif isinstance(data, list) and token.isdigit() and int(token) < len(data):
            data = data[int(token)]
        else:
            raise KeyError(pointer)
    return data


def find_files(root: Path) -> tuple[list[str], list[Problem]]:
    """Contract files under ``root``, recursively, as sorted relative POSIX paths.

    Hidden files and directories are skipped; symlinks that leave ``root`` and file names that
    are not plain portable names are reported as problems.
    """
    real_root = root.resolve()
    found: list[str] = []
    problems: list[Problem] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for directory in list(dirnames):
            full = Path(dirpath, directory)
            if full.is_symlink():
                dirnames.remove(directory)
                rel = full.relative_to(root).as_posix()
                problems.append(
                    Problem(
                        rel,
                        None,
                        "",
                        "symlinked directory is not followed",
                        "copy the files into the contract directory",
                    )
                )
        for name in sorted(filenames):
            if name.startswith(".") or not name.endswith(SUFFIXES):
                continue
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            if full.is_symlink() and not full.resolve().is_relative_to(real_root):
                problems.append(
                    Problem(
                        rel,
                        None,
                        "",
                        "symlink points outside the contract directory",
                        "contracts may only reference files inside the directory",
                    )
                )
                continue
            if not all(_SAFE_SEGMENT.match(seg) for seg in rel.split("/")):
                problems.append(
                    Problem(
                        rel,
                        None,
                        "",
                        "file or directory name has unsupported characters",
                        "use letters, digits, '_', '-' and '.' only",
                    )
                )
                continue
            found.append(rel)
    return sorted(found), problems


def load_tree(root: Path) -> tuple[list[SourceFile], list[Problem]]:
    """Find and parse every contract file under ``root``, collecting all problems."""
    paths, problems = find_files(root)
    files: list[SourceFile] = []
    for rel in paths:
        try:
            raw = (root / rel).read_bytes()
        except OSError as exc:  # a dangling symlink, a file removed meanwhile, no permission
            problems.append(
                Problem(rel, None, "", f"cannot read: {exc.strerror}", "fix or remove it")
            )
            continue
        source = SourceFile(rel, raw)
        problems.extend(_parse(source))
        files.append(source)
    return files, problems


def _parse(source: SourceFile) -> list[Problem]:
    if len(source.raw) > MAX_FILE_BYTES:
        return [Problem(source.path, None, "", "file is larger than 1 MB", "split it")]
    try:
        text = source.raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [Problem(source.path, None, "", f"not UTF-8 ({exc.reason})", "save it as UTF-8")]
    if source.path.endswith(".json"):
        return _parse_json(source, text)
    return _parse_yaml(source, text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_json(source: SourceFile, text: str) -> list[Problem]:
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result:
                duplicates.append(key)
            result[key] = value
        return result

    try:
        source.data = json.loads(text, object_pairs_hook=pairs, parse_constant=_no_constant)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        return [Problem(source.path, line, "", f"invalid JSON: {exc}", "fix the syntax")]
    problems = [
        Problem(source.path, None, "", f"duplicate key {key!r}", "keep one of them")
        for key in duplicates
    ]
    # JSON is YAML's flow style, so YAML's marks give the lines of JSON values too.
    with contextlib.suppress(yaml.YAMLError, RecursionError):
        node = yaml.compose(text, Loader=_COMPOSER)
        if node is not None:
            _ComposedTree(source.path).build(node, "", source)
    return problems


#: libyaml's safe loader when PyYAML was built with it (5x faster than the pure-Python one,
#: which took most of a large set's loading); the same nodes and line marks either way.
_COMPOSER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse_yaml(source: SourceFile, text: str) -> list[Problem]:
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        return [Problem(source.path, line, "", f"invalid YAML: {exc.problem}", "fix the syntax")]
    except yaml.YAMLError as exc:
        return [Problem(source.path, None, "", f"invalid YAML: {exc}", "fix the syntax")]
    if node is None:
        return [Problem(source.path, None, "", "file is empty", "remove it or add a contract")]
    tree = _ComposedTree(source.path)
    try:
        data = tree.build(node, "", source)
    except RecursionError:
        return [Problem(source.path, None, "", "document nests too deeply", "flatten it")]
    if tree.problems:
        return tree.problems
    source.data = data
    return []


class _ComposedTree:
    """Turns a composed YAML node tree into JSON data, recording the line of every pointer."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []
        self.nodes = 0
        self.loader = yaml.SafeLoader("")

    def build(self, node: yaml.Node, pointer: str, source: SourceFile) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise RecursionError("too many nodes")
        source.lines.setdefault(pointer, node.start_mark.line + 1)
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.build(key_node, pointer + "/~key", source)
                if not isinstance(key, str):
                    self._problem(
                        key_node.start_mark.line + 1,
                        pointer,
                        f"key {key!r} is not a string",
                        "quote it",
                    )
                    continue
                if key in result:
                    self._problem(
                        key_node.start_mark.line + 1,
                        pointer,
                        f"duplicate key {key!r}",
                        "keep one of them",
                    )
                child = join_pointer(pointer, key)
                source.lines[child] = key_node.start_mark.line + 1
                result[key] = self.build(value_node, child, source)
            source.lines.pop(pointer + "/~key", None)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [
                self.build(item, join_pointer(pointer, i), source)
                for i, item in enumerate(node.value)
            ]
        value = self.loader.construct_object(node)
        if value is None or isinstance(value, (str, bool, int)):
            return value
        if isinstance(value, float) and math.isfinite(value):
            return value
        self._problem(
            line, pointer, f"value {node.value!r} is not JSON data", "quote it to make it a string"
        )
        return None

    def _problem(self, line: int, pointer: str, message: str, hint: str) -> None:
        self.problems.append(Problem(self.path, line, pointer, message, hint))


def resolve_ref(ref: object, current: str, known: set[str]) -> tuple[str, str]:
    """Resolve ``ref`` written in file ``current`` to ``(file, pointer)`` inside the set.

    Raises ``ValueError`` with a message when the reference is remote, absolute, escapes the
    contract directory or names a file that is not a contract file.
    """
    if not isinstance(ref, str):
        raise ValueError("$ref must be a string")
    if _SCHEME.match(ref) or ref.startswith("//"):
        raise ValueError(f"remote $ref {ref!r} is refused")
    path_part, _, fragment = ref.partition("#")
    pointer = unquote(fragment)
    if pointer and not pointer.startswith("/"):
        raise ValueError(f"$ref fragment {fragment!r} is not a JSON pointer")
    if not path_part:
        return current, pointer
    path_part = unquote(path_part)
    if path_part.startswith("/") or "\\" in path_part or "\x00" in path_part:
        raise ValueError(f"absolute or non-portable $ref path {path_part!r} is refused")
    target = posixpath.normpath(posixpath.join(posixpath.dirname(current), path_part))
    if target == ".." or target.startswith("../"):
        raise ValueError(f"$ref {ref!r} leaves the contract directory")
    if target not in known:
        if target.endswith((".yaml", ".yml", ".json")):
            raise ValueError(f"$ref {ref!r} names {target!r}, which does not exist")
        raise ValueError(
            f"$ref {ref!r} names {target!r}, which is not a contract file (*.yaml, *.yml, *.json)"
        )
    return target, pointer
