"""Helpers shared by the soniq-codegen tests (not a test module)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from click.testing import CliRunner, Result

from soniq_codegen.cli import main

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
GOLDEN = REPO / "tests" / "golden"


def _is_json_integer(checker: object, value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    # ECMA-262, which JSON Schema specifies: `$` is the very end, not "before a final \n"
    # as in Python's re (jsonschema's default engine).
    if isinstance(instance, str) and not re.search(pattern.replace("$", r"\Z"), instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


#: A JSON Schema validator with the semantics docs/contracts.md states: ECMA-262 patterns and
#: integers that are integer literals (jsonschema alone takes 1.0 for an integer).
SpecValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    validators={"pattern": _ecma_pattern},
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_json_integer),
)


def cli(*args: str | Path) -> Result:
    """Run ``soniq-codegen`` in-process."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def write_contracts(root: Path, files: dict[str, Any]) -> Path:
    """Write ``{relative path: data or text}``; dicts go out as YAML or JSON by suffix."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, "utf-8")
        elif relative.endswith(".json"):
            path.write_text(json.dumps(content, indent=2), "utf-8")
        else:
            path.write_text(yaml.safe_dump(content, sort_keys=False), "utf-8")
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def run_python(
    code: str, *, path: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with ``path`` first on ``sys.path``."""
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": f"{path}{os.pathsep}{REPO}"}
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def edit(root: Path, relative: str, old: str, new: str) -> None:
    """Replace ``old`` (which must be there) by ``new`` in the file ``root/relative``."""
    path = root / relative
    text = path.read_text("utf-8")
    assert old in text, (relative, old)
    path.write_text(text.replace(old, new), "utf-8")
