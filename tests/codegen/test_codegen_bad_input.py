"""Bad contracts: every problem reported at once, with location and hint; nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from codegen_helpers import SCHEMAS, cli, snapshot, write_contracts

OBJ = {"type": "object", "properties": {"a": {"type": "string"}}}

BAD = {
    "broken.yaml": "task: a.b\nargs: [unclosed\n",
    "unknown_key.yaml": {"task": "shop.one", "args": OBJ, "priority": 3},
    "bad_name.yaml": {"task": "Shop.Two", "args": OBJ},
    "keyword.yaml": {"task": "shop.three", "constant": "class", "args": OBJ},
    "dup_a.yaml": {"task": "shop.dup", "args": {**OBJ, "title": "DupA"}},
    "dup_b.yaml": {"task": "shop.dup", "args": {**OBJ, "title": "DupB"}},
    "ok.yaml": {"task": "shop.ok", "args": OBJ},
    "dup_const.yaml": {"task": "other.one", "constant": "OK", "args": {**OBJ, "title": "X1"}},
    "dup_class.yaml": {"task": "shop.four", "args": {**OBJ, "title": "OkArgs"}},
    "invalid_schema.yaml": {"task": "shop.five", "args": {"type": "object", "minProperties": -1}},
    "unsupported.yaml": {
        "task": "shop.six",
        "args": {"type": "object", "properties": {"a": {"type": "string", "minimun": 1}}},
    },
    "dangling.yaml": {
        "task": "shop.seven",
        "args": {
            "type": "object",
            "properties": {
                "m": {"$ref": "common/nothere.yaml"},
                "n": {"$ref": "common/money.yaml#/nope"},
            },
        },
    },
    "escape.yaml": {
        "task": "shop.eight",
        "args": {
            "type": "object",
            "properties": {
                "a": {"$ref": "../outside.yaml"},
                "b": {"$ref": "https://example.com/s.json"},
                "c": {"$ref": "/etc/passwd"},
            },
        },
    },
    "bad_default.yaml": {
        "task": "shop.nine",
        "args": {
            "type": "object",
            "properties": {"n": {"type": "integer", "minimum": 5, "default": 1}},
        },
    },
    "bad_queue.yaml": {"task": "shop.ten", "default_queue": "Bad Queue", "args": OBJ},
    "common/money.yaml": {"type": "object", "properties": {"c": {"type": "integer"}}},
}

EXPECTED = [
    ("broken.yaml:", "/: invalid YAML"),
    ("unknown_key.yaml:", "/priority: unknown key 'priority'"),
    ("bad_name.yaml:1", "/task: invalid task name 'Shop.Two'"),
    ("keyword.yaml:", "/constant: constant 'class' is not an UPPER_SNAKE identifier"),
    ("dup_b.yaml:", "duplicate task name 'shop.dup'"),
    ("ok.yaml:", "/args: duplicate name 'OkArgs' (also used at dup_class.yaml:/args"),
    ("ok.yaml:", "/constant: duplicate name 'OK' (also used at dup_const.yaml:/constant"),
    ("invalid_schema.yaml:", "/args/minProperties: invalid JSON Schema"),
    ("unsupported.yaml:", "/args/properties/a/minimun: unknown keyword 'minimun'"),
    (
        "dangling.yaml:",
        "/m/$ref: $ref 'common/nothere.yaml' names 'common/nothere.yaml', which does not exist",
    ),
    ("dangling.yaml:", "/args/properties/n/$ref: $ref 'common/money.yaml#/nope' does not resolve"),
    ("escape.yaml:", "/args/properties/a/$ref: $ref '../outside.yaml' leaves the contract"),
    ("escape.yaml:", "/args/properties/b/$ref: remote $ref"),
    ("escape.yaml:", "/args/properties/c/$ref: absolute or non-portable $ref path"),
    ("bad_default.yaml:", "/args/properties/n/default: default does not validate"),
    ("bad_queue.yaml:", "/default_queue: invalid queue name"),
]


@pytest.fixture
def bad_dir(tmp_path: Path) -> Path:
    contracts = write_contracts(tmp_path / "contracts", BAD)
    (tmp_path / "outside.yaml").write_text("type: string\n")
    return contracts


def test_every_problem_reported_together(bad_dir: Path, tmp_path: Path) -> None:
    result = cli("validate", bad_dir)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    for where, what in EXPECTED:
        matching = [line for line in lines if line.startswith(where) and what in line]
        assert matching, f"missing problem {where} {what}:\n{result.output}"
        assert all(line.endswith(")") for line in matching), "every problem carries a hint"
    assert "Traceback" not in result.output
    assert lines[-1] == f"{len(lines) - 1} problem(s) found; nothing written."


def test_failed_build_leaves_existing_output_untouched(bad_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "billing_tasks"
    assert cli("build", SCHEMAS, "-o", out).exit_code == 0
    before = snapshot(out)
    result = cli("build", bad_dir, "-o", out)
    assert result.exit_code == 1 and "nothing written" in result.output
    assert snapshot(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".billing_tasks")]


def test_build_into_fresh_dir_writes_nothing_on_error(bad_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "new_pkg"
    assert cli("build", bad_dir, "-o", out).exit_code == 1
    assert not out.exists()


def test_refuses_to_replace_a_foreign_directory(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = cli("build", SCHEMAS, "-o", out)
    assert result.exit_code == 1 and "not written by soniq-codegen" in result.output
    assert snapshot(out) == {"notes.txt": b"keep me"}


def test_symlink_out_of_the_directory_is_refused(tmp_path: Path) -> None:
    contracts = write_contracts(tmp_path / "c", {"t.yaml": {"task": "a.b", "args": OBJ}})
    secret = tmp_path / "secret.yaml"
    secret.write_text("type: string\n")
    os.symlink(secret, contracts / "link.yaml")
    result = cli("validate", contracts)
    assert result.exit_code == 1
    assert "link.yaml: /: symlink points outside the contract directory" in result.output


def test_dangling_symlink_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    contracts = write_contracts(tmp_path / "c", {"t.yaml": {"task": "a.b", "args": OBJ}})
    os.symlink("gone.yaml", contracts / "dangling.yaml")
    result = cli("validate", contracts)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "dangling.yaml: /: cannot read: No such file or directory" in result.output


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "string", "format": "ipv4"}, "unsupported format 'ipv4'"),
        ({"type": "integer", "minimun": 2}, "unknown keyword 'minimun' (did you mean 'minimum'?)"),
        ({"type": "string", "maxLenght": 2}, "(did you mean 'maxLength'?)"),
        ({"type": "string", "minimum": 1}, "keyword 'minimum' does not apply to type 'string'"),
        ({"$dynamicRef": "#node"}, "keyword '$dynamicRef' is not supported: dynamic references"),
        ({"type": "string", "$anchor": "s"}, "keyword '$anchor' is not supported"),
        ({"type": "string", "$id": "s.json"}, "keyword '$id' is not supported"),
        ({"type": "object", "unevaluatedProperties": False}, "'unevaluatedProperties' is not"),
        ({"anyOf": [{"unevaluatedItems": False}]}, "'unevaluatedItems' is not supported"),
        ({"not": {"type": "string", "pattern": "(?<=a)b"}}, "pattern cannot be compiled"),
        ({"type": "string", "pattern": "(?<=a)b"}, "pattern cannot be compiled"),
        ({"oneOf": [{"type": "string", "format": "ipv4"}]}, "unsupported format 'ipv4'"),
    ],
)
def test_unsupported_keywords_are_build_errors(
    tmp_path: Path, schema: dict[str, object], message: str
) -> None:
    contracts = write_contracts(
        tmp_path,
        {"t.yaml": {"task": "a.b", "args": {"type": "object", "properties": {"p": schema}}}},
    )
    result = cli("validate", contracts)
    assert result.exit_code == 1
    assert "t.yaml:" in result.output and "/args/properties/p" in result.output
    assert message in result.output, result.output


def test_a_document_level_definition_is_checked_where_it_is_referenced(tmp_path: Path) -> None:
    # $defs beside 'task:' are not part of the args schema, so only the lowering sees them.
    contracts = write_contracts(
        tmp_path,
        {
            "t.yaml": {
                "task": "a.b",
                "$defs": {"X": {"anyOf": 5}},
                "args": {"type": "object", "properties": {"x": {"$ref": "#/$defs/X"}}},
            }
        },
    )
    result = cli("validate", contracts)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (
        "t.yaml:4: /$defs/X/anyOf: invalid JSON Schema: 5 is not of type 'array'" in result.output
    )
