"""Golden files: the generated package for each case in tests/golden, byte for byte.

Refresh them deliberately with ``SONIQ_UPDATE_GOLDEN=1 pytest tests/codegen``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from codegen_helpers import GOLDEN, cli, snapshot

CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "contracts").is_dir())


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, tmp_path: Path) -> None:
    out = tmp_path / f"{case}_tasks"
    result = cli("build", GOLDEN / case / "contracts", "-o", out)
    assert result.exit_code == 0, result.output
    expected_dir = GOLDEN / case / "expected"
    if os.environ.get("SONIQ_UPDATE_GOLDEN") == "1":
        shutil.rmtree(expected_dir, ignore_errors=True)
        shutil.copytree(out, expected_dir)
    expected = snapshot(expected_dir)
    actual = snapshot(out)
    assert sorted(actual) == sorted(expected)
    for path, data in expected.items():
        assert actual[path] == data, f"{case}: {path} differs from the golden file"


def test_cases_exist() -> None:
    assert {"billing", "features"} <= set(CASES)
