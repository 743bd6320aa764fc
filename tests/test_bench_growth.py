"""``python -m bench growth --smoke`` completes, and what it read back is what it wrote.

Not a timed test: it asserts that the fill is there, that every drain ran every job, that
every read (Python call and CLI) returned what the fill wrote, and that the retention roll
dropped one day for each day it added, nothing about speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

ROWS = 20_000  # --smoke's sizes
JOBS = 500
READS_WITH_CLI = {
    "status",
    "jobs list",
    "jobs list --state done",
    "jobs list --state cancelled",
    "jobs list --state dead",
    "jobs list --state queued",
    "jobs list --queue reports",
    "jobs list --task audit.export",
    "jobs list --state cancelled --queue mail --task email.send",
    "jobs show (a week old)",
    "dead-letter list",
}


@pytest.mark.timeout(240)
def test_growth_smoke_reads_back_what_it_wrote(database_url: str, tmp_path: Path) -> None:
    out = tmp_path / "growth.json"
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    done = subprocess.run(
        [sys.executable, "-m", "bench", "growth", "--smoke", "--json", str(out),
         "--database-url", database_url],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=200,
    )  # fmt: skip
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "filled/empty" in done.stdout  # the report was printed
    report = json.loads(out.read_text())
    assert report["facts"]["rows"] == ROWS

    drain = report["drain"]
    assert {run["schema"] for run in drain["runs"]} == {"growth_empty", "growth_filled"}
    assert all(run["done"] == JOBS for run in drain["runs"]), drain["runs"]
    assert drain["filled_over_empty"] > 0

    reads = {entry["read"]: entry for entry in report["reads"]["reads"]}
    assert set(reads) >= READS_WITH_CLI | {"queue stats", "get_result (a week old)"}
    for name, entry in reads.items():
        assert entry["problems"] == [], name
        assert ("cli" in entry) == (name in READS_WITH_CLI), name
        # --smoke explains every read: the plans of its statements were read back.
        plans = entry["plans"]
        assert plans and all(any("Execution Time" in line for line in p) for p in plans.values())

    retention = report["retention"]
    # The fill's week, plus the filled schema's drained jobs, counted partition by partition.
    assert sum(p["rows"] for p in retention["partitions_before"]) == ROWS + JOBS
    assert retention["drop_during_drain"]["drop_during_drain"]["dropped"] == 1
    roll = retention["roll"]
    assert len(roll) == 2 and all(step["dropped"] == 1 for step in roll)
    # Each day added is as big as the day dropped: rows and partitions stay level.
    assert len({step["history_rows"] for step in roll}) == 1, roll
    assert len({step["partitions"] for step in roll}) == 1, roll
    assert all(step["filled_rows"] == step["rows"] for step in roll), roll
