"""Several worker processes draining one queue run every job exactly once."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from soniq import Soniq
from tests.helpers import wait_until
from tests.processes import WorkerProcess, stop_all

JOBS = 3000
WORKERS = 3


async def test_three_worker_processes_run_each_of_3000_jobs_exactly_once(
    app: Soniq,
    db: asyncpg.Connection,
    schema: str,
    subprocess_env: dict[str, str],
    python: str,
    tmp_path: Path,
) -> None:
    await db.execute(f"CREATE TABLE {schema}.side_effects (job_id bigint, worker_pid int)")
    await app.enqueue_many("test.count", [{"n": i} for i in range(JOBS)])

    workers = [
        WorkerProcess(
            python,
            "tests.apps.counting_app:app",
            subprocess_env,
            tmp_path / f"worker{i}.log",
            ["--concurrency", "20"],
        )
        for i in range(WORKERS)
    ]
    try:
        await wait_until(
            lambda: db.fetchval(
                f"SELECT count(*) = $1 FROM {schema}.jobs WHERE state = 'done'", JOBS
            ),
            timeout=90,
            interval=0.2,
        )
    finally:
        exit_codes = stop_all(workers)

    assert exit_codes == [0] * WORKERS, [w.output() for w in workers]
    runs = await db.fetchrow(
        f"SELECT count(*) AS runs, count(DISTINCT job_id) AS jobs, "
        f"count(DISTINCT worker_pid) AS pids FROM {schema}.side_effects"
    )
    assert runs["runs"] == JOBS
    assert runs["jobs"] == JOBS
    assert runs["pids"] >= 2, "the work should have been shared between processes"
    left = await db.fetchval(f"SELECT count(*) FROM {schema}.jobs WHERE state <> 'done'")
    assert left == 0
