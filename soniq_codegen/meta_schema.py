"""Validating contract files against the published meta-schema, ``contract.schema.json``.

The meta-schema alone decides what is wrong with an envelope; jsonschema's errors are turned
into problems that say, in soniq-codegen's words, what is wrong where and how to fix it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

from soniq.errors import InvalidNameError
from soniq.names import check_queue_name, check_task_name
from soniq_codegen.load import SourceFile, join_pointer
from soniq_codegen.problem import Problem

Path = tuple[str | int, ...]


def meta_schema() -> dict[str, Any]:
    """The published JSON Schema of a contract file (``soniq_codegen/contract.schema.json``)."""
    text = resources.files("soniq_codegen").joinpath("contract.schema.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def contract_items(data: Any) -> dict[str, Any]:
    """The contracts of a task file by JSON pointer: the file itself, or each of ``tasks``."""
    if not isinstance(data, dict):
        return {}
    if "tasks" not in data:
        return {"": data}
    items = data["tasks"]
    return (
        {join_pointer("/tasks", i): item for i, item in enumerate(items)}
        if isinstance(items, list)
        else {}
    )


def is_plain(item: dict[str, Any]) -> bool:
    """A plain args schema with its envelope under ``x-soniq``, rather than a contract
    document (the meta-schema's ``contract`` draws the same line)."""
    return "x-soniq" in item and "task" not in item


@dataclass
class Verdict:
    """What the meta-schema says about one contract."""

    problems: list[Problem]
    #: The args ``title`` problem, reported only when nothing else is wrong with the contract.
    title: Problem | None = None


def check_file(source: SourceFile) -> tuple[list[Problem], dict[str, Verdict]]:
    """The problems of a task file as a whole, and the verdict on each of its contracts."""
    items = contract_items(source.data)
    found: dict[str | None, set[_Spot]] = {pointer: set() for pointer in items}
    found[None] = set()  # the file's own
    for error in _validator().iter_errors(source.data):
        path = tuple(error.absolute_path)
        if "" in items:
            found[""].update(_spots(error, 0))
        elif len(path) >= 2 and path[0] == "tasks":
            found[join_pointer("/tasks", path[1])].update(_spots(error, 2))
        else:
            found[None].update(_spots(error, 0))
    file_problems = [_file_problem(source, spot) for spot in sorted(found[None], key=repr)]
    verdicts = {
        pointer: _verdict(source, pointer, item, found[pointer]) for pointer, item in items.items()
    }
    return file_problems, verdicts


@functools.cache
def _validator() -> Validator:
    """The meta-schema's validator, with the semantics docs/contracts.md gives JSON Schema:
    ECMA-262 patterns, and integers that are integer literals (``1.0`` is not one)."""
    base = jsonschema.Draft202012Validator
    cls = jsonschema.validators.extend(  # type: ignore[no-untyped-call]  # untyped in the stubs
        base,
        validators={"pattern": _ecma_pattern},
        type_checker=base.TYPE_CHECKER.redefine("integer", _is_integer),
    )
    validator: Validator = cls(meta_schema())
    return validator


def _is_integer(checker: object, value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _ecma_pattern(
    validator: Validator, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if isinstance(instance, str) and not _ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.cache
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` with ECMA-262's ``$``, which matches at the very end only; Python's also
    matches before a final newline, which would let ``"billing\\n"`` pass as a queue name."""
    out: list[str] = []
    escaped = in_class = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "[]":
            in_class = char == "["
        elif char == "$" and not in_class:
            char = r"\Z"
        out.append(char)
    return re.compile("".join(out))


@dataclass(frozen=True)
class _Spot:
    """One place the meta-schema rejects, relative to the contract (or file) it is in."""

    path: Path
    #: ``invalid`` (the value there), ``missing`` (a required key) or ``unknown`` (a key
    #: that is not allowed).
    what: str
    #: For ``unknown``: the keys allowed beside it; for ``invalid``: jsonschema's message.
    detail: tuple[str, ...] = ()


def _spots(error: ValidationError, skip: int) -> Iterator[_Spot]:
    path = tuple(error.absolute_path)[skip:]
    instance: Any = error.instance
    if error.validator == "required":
        required: Any = error.validator_value
        for key in required:
            if key not in instance:
                yield _Spot((*path, key), "missing")
    elif error.validator == "additionalProperties":
        schema: Any = error.schema
        allowed = tuple(schema.get("properties", {}))
        for key in sorted(set(instance) - set(allowed)):
            yield _Spot((*path, key), "unknown", allowed)
    else:
        yield _Spot(path, "invalid", (error.message,))


def _problem(source: SourceFile, pointer: str, message: str, hint: str) -> Problem:
    return Problem(source.path, source.line(pointer), pointer, message, hint)


def _unexpected(source: SourceFile, pointer: str, spot: _Spot) -> Problem:
    """A rejection no translation below knows: jsonschema's own words (a test keeps every
    rule of the meta-schema translated, so this only shows after an untested change)."""
    where = join_pointer(pointer, *spot.path)
    message = spot.detail[0] if spot.what == "invalid" else f"{spot.path[-1]!r} is {spot.what}"
    return _problem(source, where, message, "see soniq_codegen/contract.schema.json")


def _file_problem(source: SourceFile, spot: _Spot) -> Problem:
    if spot.what == "unknown":
        pointer = join_pointer("", *spot.path)
        hint = "a file with 'tasks:' holds only the list of tasks"
        return _problem(source, pointer, f"unknown key {spot.path[-1]!r}", hint)
    if spot.path == ():
        hint = "write a contract document or a JSON Schema"
        return _problem(source, "", "a contract file must hold a mapping", hint)
    if spot.path == ("tasks",):
        hint = "list contract documents under 'tasks:'"
        return _problem(source, "/tasks", "'tasks' must be a non-empty list", hint)
    return _unexpected(source, "", spot)


def _name_message(check: Callable[[object], str], value: Any) -> str:
    """The runtime's own words for a bad task or queue name (soniq.names)."""
    try:
        check(value)
    except InvalidNameError as exc:
        return str(exc)
    return f"{value!r} is not allowed by contract.schema.json"  # only if the two ever disagree


def field_message(key: str, value: Any) -> tuple[str, str]:
    """The message and hint for the envelope field (or args ``title``) ``key`` holding
    ``value``, which the meta-schema (or a name derived from the task name) does not allow."""
    return _FIELDS[key](value)


_FIELDS: dict[str, Callable[[Any], tuple[str, str]]] = {
    "task": lambda value: (
        _name_message(check_task_name, value),
        "add 'task: area.name'" if value is None else "use dotted lowercase identifiers",
    ),
    "version": lambda value: (
        f"version {value!r} is not an integer >= 1",
        "bump it by one for each incompatible change",
    ),
    "default_queue": lambda value: (
        _name_message(check_queue_name, value),
        "or leave default_queue out",
    ),
    "description": lambda value: (
        "description must be a string of at most 4000 characters",
        "shorten it",
    ),
    "constant": lambda value: (
        f"constant {value!r} is not an UPPER_SNAKE identifier",
        "use e.g. SEND_INVOICE",
    ),
    "title": lambda value: (
        f"title {value!r} is not a class name",
        "use a PascalCase identifier such as SendInvoiceArgs",
    ),
}
_ENVELOPE = ("task", "version", "default_queue", "description", "constant")


def _verdict(source: SourceFile, pointer: str, item: Any, spots: set[_Spot]) -> Verdict:
    """The problems of one contract, from the places the meta-schema rejects."""
    if any(spot.path == () and spot.what == "invalid" for spot in spots):
        hint = "write 'task:' and 'args:' keys"
        return Verdict([_problem(source, pointer, "a contract must be a mapping", hint)])
    plain = is_plain(item)
    envelope: Path = ("x-soniq",) if plain else ()
    args: Path = () if plain else ("args",)
    if plain and any(spot.path == envelope and spot.what == "invalid" for spot in spots):
        where, hint = join_pointer(pointer, "x-soniq"), "put task, version, ... under it"
        return Verdict([_problem(source, where, "'x-soniq' must be a mapping", hint)])
    verdict = Verdict([])
    for spot in sorted(spots, key=repr):
        where = join_pointer(pointer, *spot.path)
        key = spot.path[-1] if spot.path else None
        if spot.what == "unknown":
            message, hint = f"unknown key {key!r}", f"allowed keys: {', '.join(spot.detail)}"
        elif spot.path[:-1] == envelope and key in _ENVELOPE:
            message, hint = field_message(str(key), _value(item, spot.path))
        elif not plain and spot.path == args:
            message = "'args' must be a JSON Schema mapping"
            hint = "describe the args object with 'type: object'"
        elif spot.path == (*args, "title"):
            title = _value(item, spot.path)
            # A title that is not a string is the JSON Schema meta-schema's to report.
            if isinstance(title, str):
                verdict.title = _problem(source, where, *field_message("title", title))
            continue
        elif spot.path == (*args, "type"):
            continue  # 'type: object' is the lowering's to report, with its own hint
        else:
            verdict.problems.append(_unexpected(source, pointer, spot))
            continue
        verdict.problems.append(_problem(source, where, message, hint))
    return verdict


def _value(data: Any, path: Path) -> Any:
    """The value at ``path`` in ``data``, None where there is none."""
    for token in path:
        if not isinstance(data, dict) or token not in data:
            return None
        data = data[token]
    return data
