"""The contract envelope (task, version, queue, ...) and its published meta-schema."""

from __future__ import annotations

import json
import keyword
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from soniq.errors import InvalidNameError
from soniq.names import check_queue_name, check_task_name
from soniq_codegen.load import SourceFile, join_pointer
from soniq_codegen.problem import Problem

ENVELOPE_KEYS = ("task", "version", "default_queue", "description", "constant")
CONSTANT_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
CLASS_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")
MAX_DESCRIPTION = 4000


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


def meta_schema() -> dict[str, Any]:
    """The published JSON Schema of a contract file (``soniq_codegen/contract.schema.json``)."""
    text = resources.files("soniq_codegen").joinpath("contract.schema.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def is_task_file(data: Any) -> bool:
    """Whether a parsed file declares tasks (rather than holding shared definitions)."""
    return isinstance(data, dict) and any(k in data for k in ("task", "x-soniq", "tasks"))


def pascal_case(text: str) -> str:
    """``send_invoice`` -> ``SendInvoice``; drops every character that is not a letter/digit."""
    words = re.split(r"[^A-Za-z0-9]+", text)
    name = "".join(w[:1].upper() + w[1:] for w in words if w)
    return name if name[:1].isalpha() else f"X{name}"


def read_tasks(source: SourceFile) -> tuple[list[TaskContract], list[Problem]]:
    """The task contracts a task file declares, and the problems with their envelopes."""
    data = source.data
    problems: list[Problem] = []
    tasks: list[TaskContract] = []
    if "tasks" in data:
        extra = sorted(set(data) - {"tasks", "$defs", "$schema", "$comment"})
        for key in extra:
            problems.append(
                _problem(
                    source,
                    join_pointer("", key),
                    f"unknown key {key!r}",
                    "a file with 'tasks:' holds only the list of tasks",
                )
            )
        items = data["tasks"]
        if not isinstance(items, list) or not items:
            problems.append(
                _problem(
                    source,
                    "/tasks",
                    "'tasks' must be a non-empty list",
                    "list contract documents under 'tasks:'",
                )
            )
            return [], problems
        for index, item in enumerate(items):
            _read_one(source, item, join_pointer("/tasks", index), tasks, problems)
        return tasks, problems
    _read_one(source, data, "", tasks, problems)
    return tasks, problems


def _read_one(
    source: SourceFile,
    item: Any,
    pointer: str,
    tasks: list[TaskContract],
    problems: list[Problem],
) -> None:
    if not isinstance(item, dict):
        problems.append(
            _problem(
                source, pointer, "a contract must be a mapping", "write 'task:' and 'args:' keys"
            )
        )
        return
    if "x-soniq" in item and "task" not in item:
        envelope = item["x-soniq"]
        env_pointer = join_pointer(pointer, "x-soniq")
        if not isinstance(envelope, dict):
            problems.append(
                _problem(
                    source,
                    env_pointer,
                    "'x-soniq' must be a mapping",
                    "put task, version, ... under it",
                )
            )
            return
        args: Any = {k: v for k, v in item.items() if k != "x-soniq"}
        args_pointer = pointer
        allowed: tuple[str, ...] = ENVELOPE_KEYS
    else:
        envelope, env_pointer = item, pointer
        args = item.get("args")
        args_pointer = join_pointer(pointer, "args")
        allowed = (*ENVELOPE_KEYS, "args", "$defs", "$schema", "$comment")
    before = len(problems)
    for key in sorted(set(envelope) - set(allowed)):
        problems.append(
            _problem(
                source,
                join_pointer(env_pointer, key),
                f"unknown key {key!r}",
                f"allowed keys: {', '.join(allowed)}",
            )
        )
    task = envelope.get("task")
    try:
        check_task_name(task)
    except InvalidNameError as exc:
        hint = "add 'task: area.name'" if task is None else "use dotted lowercase identifiers"
        problems.append(_problem(source, join_pointer(env_pointer, "task"), str(exc), hint))
        task = None
    version = envelope.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        problems.append(
            _problem(
                source,
                join_pointer(env_pointer, "version"),
                f"version {version!r} is not an integer >= 1",
                "bump it by one for each incompatible change",
            )
        )
    queue = envelope.get("default_queue")
    if queue is not None:
        try:
            check_queue_name(queue)
        except InvalidNameError as exc:
            problems.append(
                _problem(
                    source,
                    join_pointer(env_pointer, "default_queue"),
                    str(exc),
                    "or leave default_queue out",
                )
            )
    description = envelope.get("description")
    if description is not None and (
        not isinstance(description, str) or len(description) > MAX_DESCRIPTION
    ):
        problems.append(
            _problem(
                source,
                join_pointer(env_pointer, "description"),
                "description must be a string of at most 4000 characters",
                "shorten it",
            )
        )
    last = task.rsplit(".", 1)[-1] if isinstance(task, str) else "task"
    constant = envelope.get("constant", last.upper())
    if (
        not isinstance(constant, str)
        or not CONSTANT_NAME.match(constant)
        or keyword.iskeyword(constant)
        or len(constant) > 100
    ):
        problems.append(
            _problem(
                source,
                join_pointer(env_pointer, "constant"),
                f"constant {constant!r} is not an UPPER_SNAKE identifier",
                "use e.g. SEND_INVOICE",
            )
        )
    if not isinstance(args, dict):
        problems.append(
            _problem(
                source,
                args_pointer,
                "'args' must be a JSON Schema mapping",
                "describe the args object with 'type: object'",
            )
        )
    if len(problems) > before or not isinstance(args, dict):
        return
    title = args.get("title")
    class_name = title if isinstance(title, str) else pascal_case(last) + "Args"
    if not CLASS_NAME.match(class_name) or len(class_name) > 100:
        problems.append(
            _problem(
                source,
                join_pointer(args_pointer, "title"),
                f"title {class_name!r} is not a class name",
                "use a PascalCase identifier such as SendInvoiceArgs",
            )
        )
        return
    tasks.append(
        TaskContract(
            file=source.path,
            pointer=pointer,
            args_pointer=args_pointer,
            task=str(task),
            version=version,
            default_queue=queue,
            description=description,
            constant=constant,
            class_name=class_name,
            args=args,
        )
    )


def _problem(source: SourceFile, pointer: str, message: str, hint: str) -> Problem:
    return Problem(source.path, source.line(pointer), pointer, message, hint)
