"""The benchmark as CI runs it: ``python -m bench --smoke`` completes and every job ran.

Not a timed test: it asserts nothing about speed, only that each scenario ran to the end
and that the counts the harness read back from the database match what it enqueued.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

SONIQ_SCENARIOS = {
    "enqueue_single",
    "enqueue_bulk",
    "drain_c10",
    "drain_c100",
    "latency",
    "worker_rss",
    "validation_cost",
    "limit_drain",
    "limit_copy",
}
GRAPHILE_SCENARIOS = {"enqueue_single", "enqueue_bulk", "drain_1x24", "drain_2x24"}


@pytest.mark.timeout(240)
def test_smoke_run_completes_and_every_job_ran(database_url: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(out),
         "--database-url", database_url],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=200,
    )  # fmt: skip
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "soniq" in done.stdout  # the table was printed

    report = json.loads(out.read_text())
    assert report["smoke"] is True
    assert report["systems"]["soniq"]["status"] == "ran"
    assert set(report["results"]["soniq"]) >= SONIQ_SCENARIOS
    validation = report["results"]["soniq"]["validation_cost"]
    assert validation["with_model_per_s"] > 0 and validation["without_model_per_s"] > 0
    assert validation["union_model_us_per_job"] > validation["plain_model_us_per_job"] > 0
    limits = report["results"]["soniq"]
    assert limits["limit_drain"]["jobs_per_s"] > 0 and limits["limit_copy"]["jobs_per_s"] > 0
    for ratio in (
        "drain >= 0.70 of the database's limit",
        "bulk enqueue >= 0.85 of a bare COPY",
        "validation cost < 10% of drain",
    ):
        assert report["ratios"][ratio]["value"] is not None, ratio
    if shutil.which("node") and shutil.which("npm"):
        assert report["systems"]["graphile"]["status"] == "ran"
        assert set(report["results"]["graphile"]) >= GRAPHILE_SCENARIOS
        for ratio in (
            "drain >= 1.5x graphile-worker's best",
            "bulk enqueue >= 1.5x graphile-worker's add_jobs",
        ):
            assert report["ratios"][ratio]["value"] > 0, ratio
    else:  # no Node here: skipped with the reason, and everything else still ran
        assert "node" in report["systems"]["graphile"]["reason"]
    assert report["machine"]["postgresql"]["server_version"]
    assert report["targets"], "the target checks are part of the report"

    measured = report["measurements"]
    soniq = [m for m in measured if m["system"] == "soniq"]
    assert {m["scenario"] for m in soniq} >= SONIQ_SCENARIOS
    for m in measured:  # every system that ran: nothing failed, every job accounted for
        where = f"{m['variant']} {m['scenario']}"
        assert m["error"] is None, f"{where}: {m['error']}"
        assert m["verified"], f"{where}: counts in the database did not match"
        assert m["jobs_enqueued"] > 0, where
        if m["jobs_ran"] is not None:
            assert m["jobs_ran"] == m["jobs_enqueued"], where
    assert report["all_jobs_verified"] is True


@pytest.mark.timeout(120)
def test_console_page_timings_smoke_run_requests_every_page(
    database_url: str, tmp_path: Path
) -> None:
    pytest.importorskip("starlette", reason="the console extra is not installed")
    out = tmp_path / "console.json"
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    done = subprocess.run(
        [sys.executable, "-m", "bench", "console", "--smoke", "--json", str(out),
         "--database-url", database_url],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=100,
    )  # fmt: skip
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    report = json.loads(out.read_text())
    assert report["done"] == 10_000 and report["dead"] == 1_000
    assert {"overview", "jobs", "jobs args 1/1000", "job done", "dead letters", "contracts"} <= (
        set(report["pages"])
    )
    for name, timing in report["pages"].items():
        assert timing["bytes"] > 500, name  # a whole page came back, every time with 200
