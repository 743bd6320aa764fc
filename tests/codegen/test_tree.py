"""The schema tree: every ``$ref`` resolved once, each node knowing where it is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codegen_helpers import write_contracts

from soniq_codegen.load import load_tree
from soniq_codegen.tree import SchemaTree

MONEY = {"type": "object", "properties": {"cents": {"$ref": "#/$defs/Cents"}}}


def tree_of(tmp_path: Path, files: dict[str, Any]) -> SchemaTree:
    sources, problems = load_tree(write_contracts(tmp_path, files))
    assert not [p for p in problems if "invalid YAML" not in p.message]
    return SchemaTree({source.path: source for source in sources})


def test_a_shared_definition_is_one_node_with_its_own_position(tmp_path: Path) -> None:
    tree = tree_of(
        tmp_path,
        {
            "common/money.yaml": {**MONEY, "$defs": {"Cents": {"type": "integer"}}},
            "a.yaml": {"type": "object", "properties": {"m": {"$ref": "common/money.yaml"}}},
            "b.yaml": {"type": "object", "properties": {"m": {"$ref": "./common/money.yaml#"}}},
        },
    )
    a = tree.root("a.yaml", "/args", tree.files["a.yaml"].data)
    b = tree.root("b.yaml", "", tree.files["b.yaml"].data)
    money = a.properties["m"].ref_target()
    assert money is b.properties["m"].ref_target()
    assert (money.file, money.pointer) == ("common/money.yaml", "")
    cents = money.properties["cents"]
    assert (cents.file, cents.pointer) == ("common/money.yaml", "/properties/cents")
    # '#/...' is resolved in the file that writes it, not in the file that referenced it.
    assert cents.ref_target().pointer == "/$defs/Cents"
    assert cents.ref_target().data == {"type": "integer"}
    assert (a.file, a.pointer) == ("a.yaml", "/args")


def test_items_and_any_of_are_nodes_too(tmp_path: Path) -> None:
    schema = {
        "type": "array",
        "items": {"anyOf": [{"$ref": "#/$defs/S"}, {"type": "null"}]},
        "$defs": {"S": {"type": "string"}},
    }
    tree = tree_of(tmp_path, {"t.yaml": schema})
    root = tree.root("t.yaml", "", schema)
    assert root.items is not None
    option = root.items.any_of[0]
    assert option.pointer == "/items/anyOf/0"
    assert option.ref_target().data == {"type": "string"}
    assert root.items.any_of[1].target is None


def test_unresolved_references_say_why(tmp_path: Path) -> None:
    props = {
        "remote": {"$ref": "https://example.com/x.json"},
        "escape": {"$ref": "../x.yaml"},
        "missing": {"$ref": "nothere.yaml"},
        "dangling": {"$ref": "t.yaml#/nope"},
        "number": {"$ref": 5},
        "unparsed": {"$ref": "broken.yaml"},
    }
    tree = tree_of(
        tmp_path, {"t.yaml": {"type": "object", "properties": props}, "broken.yaml": "a: [\n"}
    )
    root = tree.root("t.yaml", "", tree.files["t.yaml"].data)
    why = {
        name: node.unresolved.message if node.unresolved else None
        for name, node in root.properties.items()
    }
    assert why == {
        "remote": "remote $ref 'https://example.com/x.json' is refused",
        "escape": "$ref '../x.yaml' leaves the contract directory",
        "missing": "$ref 'nothere.yaml' names 'nothere.yaml', which does not exist",
        "dangling": "$ref 't.yaml#/nope' does not resolve: t.yaml has nothing at /nope",
        "number": "$ref must be a string",
        # The file's own parse problem is the one to report.
        "unparsed": None,
    }
    assert all(node.target is None for node in root.properties.values())


def test_a_recursive_reference_closes_a_cycle_instead_of_recursing(tmp_path: Path) -> None:
    node = {"type": "object", "properties": {"next": {"$ref": "node.yaml"}}}
    tree = tree_of(tmp_path, {"node.yaml": node, "t.yaml": {"$ref": "node.yaml"}})
    start = tree.root("t.yaml", "", tree.files["t.yaml"].data).ref_target()
    assert start.properties["next"].ref_target() is start
