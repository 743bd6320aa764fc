"""``python -m bench pressure --smoke`` as CI runs it: every scenario runs its four phases on
a cluster made for the run, and every job the producer enqueued ended done exactly once.

Not a timed test: the goals (latency, throughput, sizes) are judged by the benchmark's own
runs, never here. Skips where no cluster can be made (not root, no pg_createcluster).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench.pressure.cluster import cluster_unavailable
from bench.pressure.stress import STRESSORS
from tests.helpers import REPO

PHASES = ["warmup", "clean", "stress", "recovery"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.timeout(180)
def test_smoke_run_every_scenario_every_job_done_once(tmp_path: Path) -> None:
    reason = cluster_unavailable()
    if reason is not None:
        pytest.skip(reason)
    out = tmp_path / "bench-pressure.json"
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    done = subprocess.run(
        [sys.executable, "-m", "bench", "pressure", "--smoke", "--json", str(out),
         "--port", str(_free_port())],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"

    report = json.loads(out.read_text())
    assert report["smoke"] is True
    assert set(report["scenarios"]) == set(STRESSORS)
    rate = report["rate"]
    for name, scenario in report["scenarios"].items():
        assert [p["phase"] for p in scenario["phases"]] == PHASES, name
        for phase in scenario["phases"]:
            assert phase["end"] > phase["start"], (name, phase["phase"])
            assert phase["completed_per_s"] > 0, (name, phase["phase"])
        accounts = scenario["accounting"]
        assert accounts["enqueued"] > 0, name
        assert accounts["done_once"] == accounts["enqueued"], (name, accounts)
        assert accounts["missing"] == accounts["duplicated"] == accounts["unexpected"] == 0
        assert accounts["enqueue_failed"] == 0, (name, accounts)
        assert accounts["left_live"] == accounts["left_scheduled"] == 0, (name, accounts)
        assert len(scenario["goals"]) == 5, name
        assert all(isinstance(goal["pass"], bool) for goal in scenario["goals"]), name
        assert Path(scenario["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert len(scenario["series"]["s"]) >= 3, name
        assert scenario["series"]["exact_dead_t"], f"{name}: pgstattuple was never sampled"

    facts = {name: s["stress_facts"] for name, s in report["scenarios"].items()}
    assert isinstance(facts["idle_in_tx"]["xid"], int)
    assert facts["rr_readers"]["transactions"] > 0
    assert facts["overload"]["offered_rate"] == pytest.approx(1.5 * rate)
    stress = report["scenarios"]["overload"]["phases"][2]
    assert stress["enqueued_per_s"] > 1.2 * rate  # the producer did offer more
    assert facts["terminate"]["terminated"] > 0
    assert facts["idle_conns"]["opened"] == 20
