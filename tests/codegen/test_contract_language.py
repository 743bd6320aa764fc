"""The contract language beyond plain types: extra keys, unions, rules checked as data, email,
recursive references, and what a package declares for them."""

from __future__ import annotations

import importlib
import json
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from codegen_helpers import cli, write_contracts
from pydantic import ValidationError

from soniq_codegen import check_contracts
from soniq_codegen.fingerprint import inline
from soniq_codegen.source import UnsafeSourceError, verify_module

STR = {"type": "string"}
VARIANTS = [
    {
        "title": "ByEmail",
        "type": "object",
        "properties": {"method": {"const": "email"}, "to": {"type": "string", "format": "email"}},
        "required": ["method", "to"],
        "additionalProperties": False,
    },
    {
        "title": "ByPost",
        "type": "object",
        "properties": {"method": {"const": "post"}, "lines": {"type": "array", "items": STR}},
        "required": ["method", "lines"],
    },
]
CONTRACTS: dict[str, Any] = {
    "open.yaml": {
        "task": "lang.open",
        "args": {"type": "object", "properties": {"a": STR, "note": {"type": ["string", "null"]}}},
    },
    "typed_extras.yaml": {
        "task": "lang.typed_extras",
        "args": {
            "type": "object",
            "properties": {"a": STR},
            "additionalProperties": {"type": "integer"},
        },
    },
    "deliver.yaml": {
        "task": "lang.deliver",
        "args": {
            "type": "object",
            "properties": {
                "delivery": {"oneOf": VARIANTS},
                "key": {"anyOf": [STR, {"type": "integer", "minimum": 0}]},
                "amount": {"type": "number", "multipleOf": 0.01},
                "hostile": {"not": {"const": "__import__('os').system('touch /tmp/x')"}},
            },
            "required": ["delivery"],
            "additionalProperties": False,
        },
    },
    "compose.yaml": {
        "task": "lang.compose",
        "args": {
            "type": "object",
            "properties": {
                "item": {
                    "allOf": [
                        {"$ref": "node.yaml"},
                        {"properties": {"label": STR}, "required": ["label"]},
                    ]
                }
            },
            "required": ["item"],
        },
    },
    "tree.yaml": {
        "task": "lang.tree",
        "args": {"type": "object", "properties": {"root": {"$ref": "node.yaml"}}},
    },
    "node.yaml": {
        "title": "Node",
        "type": "object",
        "properties": {
            "value": {"type": "integer"},
            "children": {"type": "array", "items": {"$ref": "node.yaml"}},
        },
        "required": ["value"],
    },
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ModuleType]]:
    root = tmp_path_factory.mktemp("language")
    write_contracts(root / "contracts", CONTRACTS)
    result = cli("build", root / "contracts", "-o", root / "lang_tasks")
    assert result.exit_code == 0, result.output
    sys.path.insert(0, str(root / "lang_tasks"))
    try:
        yield root / "lang_tasks", importlib.import_module("lang_tasks")
    finally:
        sys.path.remove(str(root / "lang_tasks"))


def test_extra_keys_the_schema_allows_survive_the_round_trip(built: tuple[Path, Any]) -> None:
    model = built[1].OpenArgs
    args = {"a": "x", "quux": [], "nested": {"k": [1, 2.5, None]}}
    assert model.model_validate(args).model_dump(mode="json") == args
    assert json.loads(model.model_validate_json(json.dumps(args)).model_dump_json()) == args


def test_extra_keys_are_checked_against_additional_properties(built: tuple[Path, Any]) -> None:
    model = built[1].TypedExtrasArgs
    assert model.model_validate({"a": "x", "n": 1}).model_dump() == {"a": "x", "n": 1}
    with pytest.raises(ValidationError, match="n: 'one' is not of type 'integer'"):
        model.model_validate({"a": "x", "n": "one"})


def test_unset_nullable_field_is_left_out_and_explicit_null_kept(built: tuple[Path, Any]) -> None:
    model = built[1].OpenArgs
    assert model.model_validate({"a": "x"}).model_dump() == {"a": "x"}
    assert model.model_validate({"a": "x", "note": None}).model_dump() == {"a": "x", "note": None}


def test_a_oneof_told_apart_by_a_const_is_a_discriminated_union(built: tuple[Path, Any]) -> None:
    pkg = built[1]
    hints = typing.get_type_hints(pkg.DeliverArgs, include_extras=True)
    union, field = typing.get_args(hints["delivery"])
    assert typing.get_args(union) == (pkg.ByEmail, pkg.ByPost)
    assert field.discriminator == "method"
    args = pkg.DeliverArgs.model_validate(
        {"delivery": {"method": "post", "lines": ["1 Main St"], "floor": 2}}
    )
    match args.delivery:
        case pkg.ByPost(lines=lines):
            assert lines == ["1 Main St"]
        case _:
            pytest.fail("a post delivery is a ByPost")
    assert args.model_dump()["delivery"] == {"method": "post", "lines": ["1 Main St"], "floor": 2}
    with pytest.raises(ValidationError):
        pkg.DeliverArgs.model_validate({"delivery": {"method": "fax", "to": "a@example.com"}})


def test_an_anyof_of_scalars_is_a_union_of_strict_types(built: tuple[Path, Any]) -> None:
    model = built[1].DeliverArgs
    base = {"delivery": {"method": "email", "to": "a@example.com"}}
    assert model.model_validate({**base, "key": 3}).key == 3
    assert model.model_validate({**base, "key": "k"}).key == "k"
    for bad in (-1, 1.5, True, None):
        with pytest.raises(ValidationError):
            model.model_validate({**base, "key": bad})


def test_rules_beyond_types_are_checked_as_data(built: tuple[Path, Any]) -> None:
    out, pkg = built
    base = {"delivery": {"method": "email", "to": "a@example.com"}}
    assert pkg.DeliverArgs.model_validate({**base, "amount": 12.34}).amount == 12.34
    with pytest.raises(ValidationError, match=r"amount: 12\.345 is not a multiple of 0\.01"):
        pkg.DeliverArgs.model_validate({**base, "amount": 12.345})
    hostile = "__import__('os').system('touch /tmp/x')"
    with pytest.raises(ValidationError, match=r"hostile: .* should not be valid"):
        pkg.DeliverArgs.model_validate({**base, "hostile": hostile})
    # The hostile text is inside a JSON string literal, nowhere else.
    source = (out / "lang_tasks" / "models.py").read_text("utf-8")
    lines = [line for line in source.splitlines() if "__import__" in line]
    assert len(lines) == 1 and lines[0].lstrip().startswith("__contract__: ClassVar[str] = ")


def test_the_whitelist_refuses_rules_that_are_not_a_literal() -> None:
    source = (
        "from typing import ClassVar\n"
        "class A:\n"
        "    __contract__: ClassVar[str] = open('x').read()\n"
    )
    with pytest.raises(UnsafeSourceError):
        verify_module(source, frozenset({"typing"}), frozenset())


def test_recursive_references_check_every_level(built: tuple[Path, Any]) -> None:
    model = built[1].TreeArgs
    tree = {"root": {"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}]}}
    assert model.model_validate(tree).model_dump(mode="json") == tree
    deep = {"root": {"value": 1, "children": [{"value": 2, "children": [{"value": "3"}]}]}}
    with pytest.raises(ValidationError, match="children/0/children/0/value: '3' is not of type"):
        model.model_validate(deep)


def test_allof_of_objects_is_one_class_with_every_branch_s_fields(
    built: tuple[Path, Any],
) -> None:
    pkg = built[1]
    item_class = typing.get_type_hints(pkg.ComposeArgs)["item"]
    assert {"value", "children", "label"} <= set(item_class.model_fields)
    args = pkg.ComposeArgs.model_validate({"item": {"value": 1, "label": "a"}})
    assert args.item.value == 1 and args.item.label == "a"
    for missing in ({"value": 1}, {"label": "a"}):
        with pytest.raises(ValidationError):
            pkg.ComposeArgs.model_validate({"item": missing})


@pytest.mark.parametrize(
    "defs",
    [
        {"L": {"allOf": [{"$ref": "#/$defs/L"}]}},
        {"L": {"$ref": "#/$defs/M"}, "M": {"not": {"$ref": "#/$defs/L"}}},
    ],
)
def test_a_loop_that_never_reaches_a_property_or_item_is_refused(
    tmp_path: Path, defs: dict[str, Any]
) -> None:
    task = {"task": "a.b", "$defs": defs, "args": {"type": "object", "properties": {}}}
    task["args"]["properties"] = {"x": {"$ref": "#/$defs/L"}}
    result = cli("validate", write_contracts(tmp_path, {"t.yaml": task}))
    assert result.exit_code == 1, result.output
    assert "comes back to a schema it is part of without going into a property" in result.output


def test_a_ref_meant_for_id_based_resolution_says_so(tmp_path: Path) -> None:
    shared = {"$id": "https://example.com/base.json", "$ref": "int.json"}
    task = {"task": "a.b", "args": {"type": "object", "properties": {"x": {"$ref": "s.json"}}}}
    result = cli("validate", write_contracts(tmp_path, {"t.yaml": task, "s.json": shared}))
    assert result.exit_code == 1
    assert "s.json:" in result.output and "which does not exist" in result.output
    assert "$ref resolves against the file, not against $id (not supported)" in result.output


def test_a_package_declares_what_its_models_need(built: tuple[Path, Any], tmp_path: Path) -> None:
    out = built[0]
    pyproject = (out / "pyproject.toml").read_text("utf-8")
    assert '"jsonschema>=4.18,<5"' in pyproject and '"email-validator>=2.0"' in pyproject
    assert (out / "lang_tasks" / "_rules.py").is_file()
    plain = write_contracts(tmp_path / "plain", {"open.yaml": CONTRACTS["open.yaml"]})
    assert cli("build", plain, "-o", tmp_path / "plain_tasks").exit_code == 0
    pyproject = (tmp_path / "plain_tasks" / "pyproject.toml").read_text("utf-8")
    assert "jsonschema" not in pyproject and "email-validator" not in pyproject
    assert not (tmp_path / "plain_tasks" / "plain_tasks" / "_rules.py").exists()


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("someone@example.com", True),
        ("First.Last+tag@Sub.Example.ORG", True),
        ("a@b", False),  # "contains @" used to pass
        ("two@@example.com", False),
        ("Someone <someone@example.com>", False),
        ("someone@example.com ", False),
    ],
)
def test_email_is_checked_by_email_validator(
    built: tuple[Path, Any], address: str, valid: bool
) -> None:
    model = built[1].ByEmail
    if not valid:
        with pytest.raises(ValidationError):
            model.model_validate({"method": "email", "to": address})
        return
    # Accepted as written: the normalised form would be another string.
    assert model.model_validate({"method": "email", "to": address}).to == address


def test_fingerprints_see_a_change_behind_a_ref_inside_anyof(tmp_path: Path) -> None:
    def fingerprint(currency: list[str]) -> str:
        files = {
            "t.yaml": {
                "task": "a.b",
                "args": {
                    "type": "object",
                    "properties": {"m": {"anyOf": [{"$ref": "money.yaml"}, {"type": "null"}]}},
                },
            },
            "money.yaml": {"type": "object", "properties": {"c": {"enum": currency}}},
        }
        root = write_contracts(tmp_path / "-".join(currency), files)
        return check_contracts(root).tasks[0].fingerprint

    assert fingerprint(["EUR"]) != fingerprint(["EUR", "USD"])


def test_a_recursive_schema_inlines_to_a_pointer_back(tmp_path: Path) -> None:
    contracts = check_contracts(write_contracts(tmp_path, CONTRACTS))
    tree = next(t for t in contracts.tasks if t.task == "lang.tree")
    root = inline(contracts.tree.args(tree))["properties"]["root"]
    assert root["properties"]["children"]["items"] == {"$ref": "#/properties/root"}
