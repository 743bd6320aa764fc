"""Exactly-once in the absence of failures: four worker processes competing for 20,000 jobs
each claim disjoint jobs (FOR UPDATE SKIP LOCKED), so every handler body runs exactly
once, every job is done on its first attempt, and all workers stop cleanly. The same holds
when workers serve different, overlapping sets of queues."""

from __future__ import annotations

import asyncio
import signal

import asyncpg
import pytest

from soniq import Soniq
from tests.fault_support import Workers
from tests.helpers import wait_until

JOBS = 20_000
WORKERS = 4


@pytest.mark.faults
async def test_four_worker_processes_run_each_of_20000_jobs_exactly_once(
    app: Soniq,
    db: asyncpg.Connection,
    schema: str,
    side_effects: str,
    workers: Workers,
) -> None:
    await app.enqueue_many("fault.count", [{"n": i} for i in range(JOBS)])
    procs = [workers.start("--concurrency", "25") for _ in range(WORKERS)]

    await wait_until(
        lambda: db.fetchval(f"SELECT count(*) = $1 FROM {schema}.jobs WHERE state = 'done'", JOBS),
        timeout=100,
        interval=0.2,
    )
    for worker in procs:
        worker.signal(signal.SIGTERM)
    codes = [await asyncio.to_thread(worker.wait, 30) for worker in procs]
    assert codes == [0] * WORKERS, workers.outputs()

    runs = await db.fetchrow(
        f"""SELECT count(*) AS runs, count(DISTINCT job_id) AS jobs,
                   count(DISTINCT pid) AS pids
            FROM {side_effects}"""
    )
    assert runs["runs"] == JOBS, "each handler body ran exactly once"
    assert runs["jobs"] == JOBS
    assert runs["pids"] == WORKERS, "every process took a share"
    jobs = await db.fetchrow(
        f"""SELECT count(*) FILTER (WHERE state = 'done') AS done,
                   count(*) FILTER (WHERE attempts <> 1) AS reclaimed,
                   count(*) FILTER (WHERE error_reason IS NOT NULL) AS errored,
                   count(DISTINCT worker_id) AS workers
            FROM {schema}.jobs"""
    )
    assert dict(jobs) == {"done": JOBS, "reclaimed": 0, "errored": 0, "workers": WORKERS}
    # Each completed job's recorded worker is the process whose handler ran it.
    mismatched = await db.fetchval(
        f"""SELECT count(*) FROM {schema}.jobs j JOIN {side_effects} s ON s.job_id = j.id
            WHERE split_part(j.worker_id, ':', 2)::int <> s.pid"""
    )
    assert mismatched == 0


@pytest.mark.faults
async def test_workers_serving_overlapping_queues_run_each_job_exactly_once(
    app: Soniq,
    db: asyncpg.Connection,
    schema: str,
    side_effects: str,
    workers: Workers,
) -> None:
    per_queue = 3000
    for priority, queue in enumerate(("a", "b", "c")):
        await app.enqueue_many(
            "fault.count", [{"n": i} for i in range(per_queue)], queue=queue, priority=priority
        )
    procs = [
        workers.start("--concurrency", "25"),
        workers.start("--concurrency", "25"),
        workers.start("--concurrency", "25", "--queues", "a,b"),
        workers.start("--concurrency", "25", "--queues", "c"),
    ]
    total = 3 * per_queue
    await wait_until(
        lambda: db.fetchval(f"SELECT count(*) = $1 FROM {schema}.jobs WHERE state = 'done'", total),
        timeout=100,
        interval=0.2,
    )
    for worker in procs:
        worker.signal(signal.SIGTERM)
    codes = [await asyncio.to_thread(worker.wait, 30) for worker in procs]
    assert codes == [0] * len(procs), workers.outputs()

    runs = await db.fetchrow(
        f"SELECT count(*) AS runs, count(DISTINCT job_id) AS jobs FROM {side_effects}"
    )
    assert (runs["runs"], runs["jobs"]) == (total, total), "each handler body ran exactly once"
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.jobs WHERE attempts <> 1") == 0
    # Each process ran only jobs of the queues it serves.
    index_of = {worker.pid: i for i, worker in enumerate(procs)}
    rows = await db.fetch(
        f"""SELECT DISTINCT j.queue, s.pid FROM {schema}.jobs j
            JOIN {side_effects} s ON s.job_id = j.id"""
    )
    ran_by: dict[str, set[int]] = {}
    for row in rows:
        ran_by.setdefault(row["queue"], set()).add(index_of[row["pid"]])
    assert 3 not in ran_by["a"] | ran_by["b"] and 2 not in ran_by["c"], ran_by
