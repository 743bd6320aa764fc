"""The fixed modules every generated package ships: real files, copied unchanged."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from codegen_helpers import REPO, SCHEMAS, cli

from soniq_codegen.source import HEADER, finish_module

PACKAGE_FILES = REPO / "soniq_codegen" / "package_files"
NAMES = sorted(p.name for p in PACKAGE_FILES.glob("*.py"))


def test_the_fixed_modules_are_the_ones_a_package_ships(tmp_path: Path) -> None:
    # _rules.py ships with a package only when one of its models checks rules as data,
    # which a model of the demo's schemas does (the oneOf of the shipping task).
    assert NAMES == ["_base.py", "_rules.py", "_runtime.py", "_types.py"]
    out = tmp_path / "billing_tasks"
    assert cli("build", SCHEMAS, "-o", out).exit_code == 0
    for name in NAMES:
        assert (out / "billing_tasks" / name).read_bytes() == (PACKAGE_FILES / name).read_bytes()


@pytest.mark.parametrize("name", NAMES)
def test_a_fixed_module_carries_the_generated_header(name: str) -> None:
    text = (PACKAGE_FILES / name).read_text("utf-8")
    assert text.startswith(HEADER)
    assert finish_module(text.split("\n", 2)[2]) == text


@pytest.mark.parametrize("name", NAMES)
def test_a_fixed_module_needs_only_the_standard_library_and_pydantic_or_declares_it(
    name: str,
) -> None:
    # _runtime.py alone imports soniq: checking which soniq is installed is its job; _rules.py
    # alone imports jsonschema, which a package declares only when it ships that module.
    extra = {"_runtime.py": {"soniq"}, "_rules.py": {"jsonschema", "pydantic_core"}}
    allowed = {"pydantic", *extra.get(name, ())}
    tree = ast.parse((PACKAGE_FILES / name).read_text("utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            assert f"{node.module}.py" in NAMES  # another fixed module of the package
            continue
        elif isinstance(node, ast.ImportFrom):
            assert node.module is not None
            modules = [node.module]
        else:
            continue
        for module in modules:
            top = module.split(".")[0]
            assert top in sys.stdlib_module_names or top in allowed, module
