"""Task contracts: each contract's envelope (task, version, queue, ...), read from its file."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from soniq_codegen.load import SourceFile, join_pointer
from soniq_codegen.meta_schema import check_file, contract_items, field_message, is_plain
from soniq_codegen.problem import Problem

CLASS_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")
#: The longest constant or class name; the meta-schema limits the ones written out, and
#: :func:`read_tasks` the ones derived from a task name.
MAX_IDENTIFIER = 100


@dataclass
class TaskContract:
    """One task as declared in a contract file, with its args schema still as written."""

    file: str
    pointer: str
    args_pointer: str
    task: str
    version: int
    default_queue: str | None
    description: str | None
    constant: str
    class_name: str
    args: dict[str, Any]
    fingerprint: str = field(default="")


def is_task_file(data: Any) -> bool:
    """Whether a parsed file declares tasks (rather than holding shared definitions)."""
    return isinstance(data, dict) and any(k in data for k in ("task", "x-soniq", "tasks"))


def pascal_case(text: str) -> str:
    """``send_invoice`` -> ``SendInvoice``; drops every character that is not a letter/digit."""
    words = re.split(r"[^A-Za-z0-9]+", text)
    name = "".join(w[:1].upper() + w[1:] for w in words if w)
    return name if name[:1].isalpha() else f"X{name}"


def read_tasks(source: SourceFile) -> tuple[list[TaskContract], list[Problem]]:
    """The contracts of a file that is not shared definitions, and the problems of their
    envelopes (a file that is not a mapping is one of them)."""
    problems, verdicts = check_file(source)
    tasks: list[TaskContract] = []
    for pointer, item in contract_items(source.data).items():
        verdict, parts = verdicts[pointer], _parts(pointer, item)
        found = verdict.problems
        if parts is not None:
            found = found + _derived_constant(source, parts, found)
            if not found:
                found = [verdict.title] if verdict.title else _derived_class_name(source, parts)
            if not found:
                tasks.append(_contract(source, pointer, parts))
        problems.extend(found)
    return tasks, problems


@dataclass(frozen=True)
class _Parts:
    """A contract's envelope and args schema, and where each is."""

    envelope: dict[str, Any]
    envelope_pointer: str
    args: Any
    args_pointer: str

    @property
    def last_segment(self) -> str:
        """The last segment of the task name (which must be valid)."""
        return str(self.envelope["task"]).rsplit(".", 1)[-1]


def _parts(pointer: str, item: Any) -> _Parts | None:
    """The parts of a contract; None when it, or its ``x-soniq``, is not a mapping."""
    if not isinstance(item, dict):
        return None
    if not is_plain(item):
        return _Parts(item, pointer, item.get("args"), join_pointer(pointer, "args"))
    if not isinstance(item["x-soniq"], dict):
        return None
    args = {k: v for k, v in item.items() if k != "x-soniq"}
    return _Parts(item["x-soniq"], join_pointer(pointer, "x-soniq"), args, pointer)


# The meta-schema checks the names written out; these two check the ones derived from the
# task name when 'constant' or the args 'title' is left out, which a schema cannot express.


def _derived_constant(source: SourceFile, parts: _Parts, found: list[Problem]) -> list[Problem]:
    """The constant derived from a valid task name, when it is too long."""
    task_pointer = join_pointer(parts.envelope_pointer, "task")
    if "constant" in parts.envelope or any(p.pointer == task_pointer for p in found):
        return []
    constant = parts.last_segment.upper()
    if len(constant) <= MAX_IDENTIFIER:
        return []
    return [_problem(source, parts.envelope_pointer, "constant", constant)]


def _derived_class_name(source: SourceFile, parts: _Parts) -> list[Problem]:
    """The args class name derived from the task name, when it is too long."""
    class_name = _class_name(parts)
    if len(class_name) <= MAX_IDENTIFIER:
        return []
    return [_problem(source, parts.args_pointer, "title", class_name)]


def _problem(source: SourceFile, pointer: str, key: str, value: str) -> Problem:
    where = join_pointer(pointer, key)
    return Problem(source.path, source.line(where), where, *field_message(key, value))


def _class_name(parts: _Parts) -> str:
    title = parts.args.get("title")
    return title if isinstance(title, str) else pascal_case(parts.last_segment) + "Args"


def _contract(source: SourceFile, pointer: str, parts: _Parts) -> TaskContract:
    """The contract of an envelope the meta-schema accepted."""
    envelope = parts.envelope
    return TaskContract(
        file=source.path,
        pointer=pointer,
        args_pointer=parts.args_pointer,
        task=envelope["task"],
        version=envelope.get("version", 1),
        default_queue=envelope.get("default_queue"),
        description=envelope.get("description"),
        constant=envelope.get("constant", parts.last_segment.upper()),
        class_name=_class_name(parts),
        args=parts.args,
    )
