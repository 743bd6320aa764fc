"""A contract directory loaded, read, resolved and lowered into one checked ContractSet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soniq_codegen.contract import TaskContract, is_task_file, read_tasks
from soniq_codegen.fingerprint import fingerprint
from soniq_codegen.keywords import META_HINT, schema_errors
from soniq_codegen.load import SourceFile, join_pointer, load_tree
from soniq_codegen.lower import Lowering
from soniq_codegen.problem import ContractError, Problem
from soniq_codegen.rules import document
from soniq_codegen.tree import SchemaTree


@dataclass
class ContractSet:
    """A checked contract set: its files, tasks (sorted by name), their schema tree and
    intermediate classes."""

    files: dict[str, SourceFile]
    tasks: list[TaskContract]
    tree: SchemaTree
    defs: dict[str, dict[str, Any]]
    formats: set[str]
    #: Class name -> the JSON Schema document the class checks as data (see rules.py).
    rules: dict[str, Any]


def check_contracts(root: Path) -> ContractSet:
    """Load and check every contract under ``root``; raise :class:`ContractError` listing all
    problems if there is any."""
    if not root.is_dir():
        raise ContractError(
            [
                Problem(
                    str(root),
                    None,
                    "",
                    "not a directory",
                    "pass the directory that holds the contracts",
                )
            ]
        )
    sources, problems = load_tree(root)
    files = {source.path: source for source in sources}
    tasks = _read(sources, problems)
    tree = SchemaTree(files)
    lowering = _lower(tree, tasks, problems)
    if not tasks and not problems:
        problems.append(
            Problem(
                str(root),
                None,
                "",
                "no task contracts found",
                "add *.yaml files with a 'task:' key",
            )
        )
    if problems:
        raise ContractError(problems)
    for task in tasks:
        task.fingerprint = fingerprint(tree, task)
    ordered = sorted(tasks, key=lambda t: t.task)
    rules = {name: document(node, exact) for name, (node, exact) in sorted(lowering.rules.items())}
    return ContractSet(files, ordered, tree, lowering.defs, lowering.formats, rules)


def _read(sources: list[SourceFile], problems: list[Problem]) -> list[TaskContract]:
    """The contracts the files declare; shared definitions are checked as JSON Schemas."""
    tasks: list[TaskContract] = []
    for source in sources:
        if source.data is None:
            continue
        if isinstance(source.data, dict) and not is_task_file(source.data):
            problems.extend(_meta_problems(source, source.data, ""))
        else:
            found, envelope_problems = read_tasks(source)
            problems.extend(envelope_problems)
            tasks.extend(found)
    return tasks


def _lower(tree: SchemaTree, tasks: list[TaskContract], problems: list[Problem]) -> Lowering:
    """Each task's args schema lowered, once per task name and once it is valid JSON Schema."""
    lowering = Lowering(tree)
    seen: dict[str, TaskContract] = {}
    for task in tasks:
        if task.task in seen:
            problems.append(
                Problem(
                    task.file,
                    tree.files[task.file].line(task.pointer),
                    join_pointer(task.pointer, "task"),
                    f"duplicate task name {task.task!r}",
                    f"also declared in {seen[task.task].file}; each task is declared once",
                )
            )
            continue
        seen[task.task] = task
        lowering.reserve(task.constant, task.file, join_pointer(task.pointer, "constant"))
        meta = _meta_problems(tree.files[task.file], task.args, task.args_pointer)
        problems.extend(meta)
        if not meta:
            lowering.lower_task(task)
    problems.extend(lowering.problems)
    return lowering


def _meta_problems(source: SourceFile, schema: Any, pointer: str) -> list[Problem]:
    """Problems of ``schema`` against the JSON Schema 2020-12 meta-schema."""
    problems = []
    for path, message in schema_errors(schema):
        where = join_pointer(pointer, *path)
        problems.append(
            Problem(
                source.path,
                source.line(where),
                where,
                f"invalid JSON Schema: {message}",
                META_HINT,
            )
        )
    return problems
