"""Hostile contracts: no string in a contract can inject code into the generated package."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from codegen_helpers import cli, run_python, write_contracts

from soniq_codegen.source import UnsafeSourceError, docstring, verify_module


def _payload(canary: Path) -> str:
    """Code that creates ``canary`` if it ever runs (the path comes from the environment)."""
    return "__import__('os').system('touch \"$SONIQ_CANARY\"')"


def hostile_contracts(canary: Path) -> dict[str, object]:
    code = _payload(canary)
    breakouts = [
        f'"""; {code}; """',
        f"'''; {code}; '''",
        f'"); {code}; ("',
        f"'); {code}; ('",
        f"\\\n{code}\n",
        f"\n\n{code}\n",
        f"\u2028{code}",
        f"\x00\x1b[2J{code}",
    ]
    props: dict[str, object] = {
        code: {"type": "string", "description": breakouts[0]},
        'a"b': {"type": "string", "default": breakouts[2]},
        "c'd": {"type": "string", "default": breakouts[3]},
        "class": {"type": "string", "enum": breakouts[:4]},
        "model_config": {"type": "integer"},
        "model_dump": {"type": "string", "const": breakouts[1]},
        "_private": {"type": "integer"},
        "1abc": {"type": "boolean", "description": breakouts[4]},
        "x y": {"type": "string", "pattern": "\"'\\\\\\)", "description": breakouts[5]},
        "self": {"type": "string", "description": breakouts[6]},
        "__init__": {"type": "string", "description": breakouts[7]},
        "nested": {
            "type": "object",
            "properties": {
                "None": {"type": "string"},
                "def": {"type": "string"},
                code + "2": {"type": "string"},
            },
        },
    }
    return {
        "evil.json": {
            "x-soniq": {"task": "evil.task", "description": breakouts[0] + breakouts[1]},
            "type": "object",
            "description": breakouts[5] + breakouts[4],
            "properties": props,
        },
        "more.yaml": {
            "task": "evil.more",
            "description": breakouts[3] + breakouts[7],
            "args": {"type": "object", "properties": {"z": {"type": "integer"}}},
        },
    }


def test_hostile_contract_output_is_inert(tmp_path: Path) -> None:
    canary = tmp_path / "CANARY"
    contracts = write_contracts(tmp_path / "contracts", hostile_contracts(canary))
    out = tmp_path / "evil_pkg"
    result = cli("build", contracts, "-o", out)
    assert result.exit_code == 0, result.output
    for path in (out / "evil_pkg").glob("*.py"):
        ast.parse(path.read_text("utf-8"))
    code = """
import evil_pkg
m = evil_pkg.TaskArgs.model_validate({"class": "'''; " + __import__("json").loads(
    __import__("pathlib").Path(evil_pkg.__file__).with_name("contracts").joinpath(
        "evil.json").read_text())["properties"]["class"]["enum"][1][5:]})
print(sorted(evil_pkg.__all__))
"""
    run = run_python(code, path=out, env={"SONIQ_CANARY": str(canary)})
    assert run.returncode == 0, run.stderr
    assert "EVIL_TASK" not in run.stdout and "TASK" in run.stdout
    assert not canary.exists(), "a contract string was executed"


def test_generated_names_are_sanitised(tmp_path: Path) -> None:
    canary = tmp_path / "CANARY"
    contracts = write_contracts(tmp_path / "contracts", hostile_contracts(canary))
    out = tmp_path / "evil_pkg"
    assert cli("build", contracts, "-o", out).exit_code == 0
    tree = ast.parse((out / "evil_pkg/models.py").read_text("utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            assert node.target.id.isidentifier() and not node.target.id.startswith("_")
    enum_value = "'); " + _payload(canary) + "; ('"
    code = f"""
import json
from evil_pkg import TaskArgs
m = TaskArgs.model_validate({{{_payload(canary)!r}: "x", "class": {enum_value!r}}})
dumped = json.loads(m.model_dump_json())
assert dumped[{_payload(canary)!r}] == "x", dumped
print("ok")
"""
    run = run_python(code, path=out, env={"SONIQ_CANARY": str(canary)})
    assert run.returncode == 0, run.stderr
    assert not canary.exists()


@pytest.mark.parametrize("name", ["../escape", "/abs", "a/../../b", "x\ny"])
def test_output_names_cannot_escape(tmp_path: Path, name: str) -> None:
    contracts = write_contracts(
        tmp_path / "c", {"t.yaml": {"task": "a.b", "args": {"type": "object", "properties": {}}}}
    )
    result = cli("build", contracts, "-o", tmp_path / "out", "--name", name)
    assert result.exit_code == 2
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


def test_hostile_file_names_are_refused(tmp_path: Path) -> None:
    contracts = write_contracts(
        tmp_path / "c",
        {
            "ok.yaml": {"task": "a.b", "args": {"type": "object"}},
            "bad name;rm -rf.yaml": {"task": "a.c", "args": {"type": "object"}},
        },
    )
    result = cli("validate", contracts)
    assert result.exit_code == 1 and "unsupported characters" in result.output


@pytest.mark.parametrize(
    "source",
    [
        "import os\n",
        "from os import system\n",
        "x = __import__('os')\n",
        "class A(Base):\n    x: int = print('hi')\n",
        "class A(Base):\n    x: int = (lambda: 1)()\n",
        "@decorator\nclass A:\n    pass\n",
        "x = [i for i in range(3)]\n",
        "x = y.attribute\n",
    ],
)
def test_verifier_refuses_anything_but_declarations(source: str) -> None:
    with pytest.raises(UnsafeSourceError):
        verify_module(source, frozenset({"typing"}), frozenset({"Field"}))


@pytest.mark.parametrize("text", ['"""', "\\", 'a"', "x\n'''\ny", "\x00\u2028z", '"""\\"""'])
def test_docstring_round_trips(text: str) -> None:
    tree = ast.parse("class A:\n" + docstring(text, "    "))
    body = tree.body[0]
    assert isinstance(body, ast.ClassDef)
    assert ast.get_docstring(body, clean=False) is not None
    expr = body.body[0]
    assert isinstance(expr, ast.Expr) and isinstance(expr.value, ast.Constant)
    assert inspect.cleandoc(expr.value.value) == inspect.cleandoc(text)


def test_control_characters_in_contracts_reach_the_terminal_escaped(tmp_path: Path) -> None:
    names = ["a\nb", "x\u2028y", "\x1b]0;owned\x07", "\x1b[31mred", "rtl\u202eevil"]
    properties = {name: {"type": "string", "foo": 1} for name in names}
    write_contracts(
        tmp_path,
        {"bad.json": {"task": "t.x", "args": {"type": "object", "properties": properties}}},
    )
    result = cli("validate", tmp_path)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == len(names) + 1, result.output  # one line per problem, and a summary
    assert all(line.isprintable() for line in lines), result.output
    for escaped in ["a\\nb", "x\\u2028y", "\\x1b]0;owned\\x07", "rtl\\u202eevil"]:
        assert escaped in result.output
