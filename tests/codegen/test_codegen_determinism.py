"""Same contracts, same bytes: whatever the file order, hash seed or clock."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from codegen_helpers import GOLDEN, REPO, snapshot


def _build(contracts: Path, out: Path, seed: str) -> None:
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO), "TZ": f"UTC{seed}"}
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from soniq_codegen.cli import main; main()",
            "build",
            str(contracts),
            "-o",
            str(out),
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


def _copy_in_order(source: Path, target: Path, reverse: bool) -> None:
    files = sorted((p for p in source.rglob("*") if p.is_file()), reverse=reverse)
    for path in files:
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
        time.sleep(0.01)  # different mtimes and creation order on each side


def test_output_is_byte_identical_across_seeds_and_file_orders(tmp_path: Path) -> None:
    for case in ("billing", "features"):
        first, second = tmp_path / case / "a", tmp_path / case / "b"
        _copy_in_order(GOLDEN / case / "contracts", first / "contracts", reverse=False)
        _copy_in_order(GOLDEN / case / "contracts", second / "contracts", reverse=True)
        _build(first / "contracts", first / "pkg", "1")
        _build(second / "contracts", second / "pkg", "4242")
        one, two = snapshot(first / "pkg"), snapshot(second / "pkg")
        assert one == two
        joined = b"".join(one.values())
        assert str(tmp_path).encode() not in joined, "no absolute paths in the output"
