"""contract.schema.json and soniq-codegen agree on every envelope rule.

Each case goes through two paths: a JSON Schema validator reading the published file, as an
editor would, and ``check_contracts``. Both must accept or both reject, with the problem the
case names; and every rule of the file must be broken by some case, so a rule added to the
file without a case here fails too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from codegen_helpers import SpecValidator, write_contracts

from soniq.errors import InvalidNameError
from soniq.names import check_queue_name, check_task_name
from soniq_codegen import ContractError, check_contracts, meta_schema

OBJ = {"type": "object", "properties": {"a": {"type": "string"}}}
DOC = {"task": "shop.t", "args": OBJ}
PLAIN = {"x-soniq": {"task": "shop.p"}, **OBJ}
LONG = "a." + "b" * 198  # the longest task name: 200 characters
#: (case, file, the problems: (JSON pointer, start of the message)); no problems: valid.
CASES: list[tuple[str, Any, list[tuple[str, str]]]] = [
    ("document", DOC, []),
    (
        "document with every key",
        {
            **DOC,
            "version": 2,
            "default_queue": "billing.eu-1",
            "description": "d",
            "constant": "T_1",
            "$defs": {},
            "$schema": "x",
            "$comment": "c",
        },
        [],
    ),
    ("null queue and description", {**DOC, "default_queue": None, "description": None}, []),
    ("plain schema", PLAIN, []),
    ("plain schema, full envelope", {**OBJ, "x-soniq": {"task": "shop.p", "version": 3}}, []),
    ("task list", {"tasks": [DOC, PLAIN], "$defs": {}, "$comment": "c"}, []),
    ("title", {**DOC, "args": {**OBJ, "title": "T" * 100}}, []),
    (
        "longest names",
        {**DOC, "task": LONG, "constant": "C" * 100, "args": {**OBJ, "title": "T"}},
        [],
    ),
    ("task pattern", {**DOC, "task": "Shop.t"}, [("/task", "invalid task name 'Shop.t'")]),
    ("task newline", {**DOC, "task": "shop.t\n"}, [("/task", "invalid task name 'shop.t\\n'")]),
    ("task too long", {**DOC, "task": LONG + "b"}, [("/task", "invalid task name 'a.bbb")]),
    ("task number", {**DOC, "task": 5}, [("/task", "invalid task name 5")]),
    ("task missing", {**OBJ, "x-soniq": {}}, [("/x-soniq/task", "invalid task name None")]),
    ("version 0", {**DOC, "version": 0}, [("/version", "version 0 is not an integer >= 1")]),
    ("version 1.0", {**DOC, "version": 1.0}, [("/version", "version 1.0 is not an integer")]),
    ("version true", {**DOC, "version": True}, [("/version", "version True is not an integer")]),
    ("version string", {**DOC, "version": "1"}, [("/version", "version '1' is not an integer")]),
    (
        "queue pattern",
        {**DOC, "default_queue": "Q"},
        [("/default_queue", "invalid queue name 'Q'")],
    ),
    (
        "queue newline",
        {**DOC, "default_queue": "q\n"},
        [("/default_queue", "invalid queue name 'q\\n'")],
    ),
    (
        "queue too long",
        {**DOC, "default_queue": "q" * 201},
        [("/default_queue", "invalid queue name 'qqq")],
    ),
    ("queue number", {**DOC, "default_queue": 3}, [("/default_queue", "invalid queue name 3")]),
    (
        "description too long",
        {**DOC, "description": "d" * 4001},
        [("/description", "description must be a string of at most 4000 characters")],
    ),
    (
        "plain schema, bad queue",
        {**OBJ, "x-soniq": {"task": "shop.p", "default_queue": "-q"}},
        [("/x-soniq/default_queue", "invalid queue name '-q'")],
    ),
    (
        "plain schema, bad description",
        {**OBJ, "x-soniq": {"task": "shop.p", "description": ["d"]}},
        [("/x-soniq/description", "description must be a string of at most 4000 characters")],
    ),
    (
        "description number",
        {**DOC, "description": 1},
        [("/description", "description must be a string of at most 4000 characters")],
    ),
    ("constant pattern", {**DOC, "constant": "Ab"}, [("/constant", "constant 'Ab' is not an")]),
    ("constant newline", {**DOC, "constant": "AB\n"}, [("/constant", "constant 'AB\\n' is not")]),
    ("constant too long", {**DOC, "constant": "C" * 101}, [("/constant", "constant 'CCC")]),
    ("constant null", {**DOC, "constant": None}, [("/constant", "constant None is not an")]),
    ("args missing", {"task": "shop.t"}, [("/args", "'args' must be a JSON Schema mapping")]),
    ("args a list", {**DOC, "args": [OBJ]}, [("/args", "'args' must be a JSON Schema mapping")]),
    (
        "args without type",
        {**DOC, "args": {"properties": {}}},
        [("/args/type", "the args schema must have 'type: object'")],
    ),
    (
        "args of another type",
        {**DOC, "args": {"type": "string"}},
        [("/args/type", "the args schema must have 'type: object'")],
    ),
    (
        "plain schema without type",
        {"x-soniq": {"task": "shop.p"}, "properties": {}},
        [("/type", "the args schema must have 'type: object'")],
    ),
    (
        "title pattern",
        {**DOC, "args": {**OBJ, "title": "bad"}},
        [("/args/title", "title 'bad' is not a class name")],
    ),
    (
        "title newline",
        {**PLAIN, "title": "Foo\n"},
        [("/title", "title 'Foo\\n' is not a class name")],
    ),
    (
        "title too long",
        {**DOC, "args": {**OBJ, "title": "T" * 101}},
        [("/args/title", "title 'TTT")],
    ),
    (
        "title not a string",
        {**DOC, "args": {**OBJ, "title": 5}},
        [("/args/title", "invalid JSON Schema: 5 is not of type 'string'")],
    ),
    ("unknown key", {**DOC, "priority": 1}, [("/priority", "unknown key 'priority'")]),
    (
        "unknown envelope key",
        {**OBJ, "x-soniq": {"task": "shop.p", "args": {}}},
        [("/x-soniq/args", "unknown key 'args'")],
    ),
    ("x-soniq beside task", {**DOC, "x-soniq": {}}, [("/x-soniq", "unknown key 'x-soniq'")]),
    (
        "x-soniq not a mapping",
        {**OBJ, "x-soniq": "t"},
        [("/x-soniq", "'x-soniq' must be a mapping")],
    ),
    ("tasks empty", {"tasks": []}, [("/tasks", "'tasks' must be a non-empty list")]),
    ("tasks a mapping", {"tasks": {"a": DOC}}, [("/tasks", "'tasks' must be a non-empty list")]),
    (
        "task list with another key",
        {"tasks": [DOC], "task": "x.y"},
        [("/task", "unknown key 'task'")],
    ),
    (
        "task list item not a mapping",
        {"tasks": [3]},
        [("/tasks/0", "a contract must be a mapping")],
    ),
    (
        "task list item without task",
        {"tasks": [{"args": OBJ}]},
        [("/tasks/0/task", "invalid task name None")],
    ),
    ("file not a mapping", ["task"], [("", "a contract file must hold a mapping")]),
]
#: Valid for the file, refused by the code: names derived from the task name, which a schema
#: cannot express (docs/contracts.md, naming rules).
DERIVED: list[tuple[str, Any, list[tuple[str, str]]]] = [
    (
        "constant derived from a long last segment",
        {**DOC, "task": "a." + "b" * 101},
        [("/constant", "constant 'BBB")],
    ),
    (
        "class name derived from a long last segment",
        {**DOC, "task": "a." + "b" * 97, "constant": "B"},
        [("/args/title", "title 'Bbbb")],
    ),
]
#: Keywords that reject values; ``if`` conditions only choose between rules.
CONSTRAINTS = frozenset(
    {"type", "const", "pattern", "maxLength", "minimum", "minItems", "required"}
    | {"additionalProperties", "anyOf"}
)


def editor_errors(data: Any) -> list[jsonschema.ValidationError]:
    """What a validator reading only the published file says, sub-errors included."""
    schema = meta_schema()
    errors = list(SpecValidator(schema).iter_errors(data))
    found: list[jsonschema.ValidationError] = []
    while errors:
        error = errors.pop()
        found.append(error)
        errors.extend(error.context or [])
    return found


def soniq_problems(tmp_path: Path, data: Any) -> list[tuple[str, str]]:
    """What ``check_contracts`` says about ``data`` as the only contract file."""
    try:
        check_contracts(write_contracts(tmp_path, {"t.json": data}))
    except ContractError as exc:
        return [(p.pointer, p.message) for p in exc.problems]
    return []


@pytest.mark.parametrize(("case", "data", "expected"), CASES, ids=[c[0] for c in CASES])
def test_the_file_and_the_code_agree(
    tmp_path: Path, case: str, data: Any, expected: list[tuple[str, str]]
) -> None:
    valid_for_the_file = SpecValidator(meta_schema()).is_valid(data)
    problems = soniq_problems(tmp_path, data)
    assert valid_for_the_file == (not problems) == (not expected), (case, problems)
    for pointer, message in expected:
        assert any(p == pointer and m.startswith(message) for p, m in problems), problems
    assert len(problems) == len(expected), problems


@pytest.mark.parametrize(("case", "data", "expected"), DERIVED, ids=[c[0] for c in DERIVED])
def test_derived_names_are_the_one_documented_exception(
    tmp_path: Path, case: str, data: Any, expected: list[tuple[str, str]]
) -> None:
    assert SpecValidator(meta_schema()).is_valid(data)
    problems = soniq_problems(tmp_path, data)
    assert len(problems) == len(expected) == 1
    assert problems[0][0] == expected[0][0] and problems[0][1].startswith(expected[0][1])


def test_every_rule_of_the_file_is_broken_by_a_case() -> None:
    schema = meta_schema()
    where = {id(node): at for node, at in subschemas(schema, "")}
    rules = {(at, key) for node, at in subschemas(schema, "") for key in node if key in CONSTRAINTS}
    broken = set()
    validator = SpecValidator(schema)
    for _, data, _ in CASES:
        pending = list(validator.iter_errors(data))
        while pending:
            error = pending.pop()
            broken.add((where[id(error.schema)], str(error.validator)))
            pending.extend(error.context or [])
    assert rules - broken == set()


def subschemas(node: dict[str, Any], at: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Every schema in ``node`` with its location, except ``if`` conditions."""
    yield node, at
    for key, value in node.items():
        if key in ("properties", "$defs"):
            for name, sub in value.items():
                yield from subschemas(sub, f"{at}/{key}/{name}")
        elif key in ("allOf", "anyOf"):
            for index, sub in enumerate(value):
                yield from subschemas(sub, f"{at}/{key}/{index}")
        elif key in ("then", "else", "items"):
            yield from subschemas(value, f"{at}/{key}")


NAMES = ["a", "a.b", "a_b.c1", "", "A", "a.", ".a", "a..b", "1a", "a.1b", "a-b", "a.b\n", "é"]


@pytest.mark.parametrize("name", [*NAMES, "a" * 200, "a" * 201])
def test_name_rules_are_the_runtimes(name: str) -> None:
    schema = meta_schema()
    for definition, check in (("taskName", check_task_name), ("queueName", check_queue_name)):
        rule = SpecValidator({"$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"})
        try:
            check(name)
        except InvalidNameError:
            runtime_accepts = False
        else:
            runtime_accepts = True
        assert rule.is_valid(name) == runtime_accepts, (definition, name)
