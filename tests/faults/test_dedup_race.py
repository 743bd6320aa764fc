"""Dedup under contention: ``dedup_key`` is unique among queued and running jobs. Many
concurrent producers enqueueing the same few keys, while a worker completes those jobs
(freeing their keys), never create two live jobs for a key, never fail, and always get back
the id of the job that holds the key."""

from __future__ import annotations

import asyncio
import signal

import asyncpg
import pytest

from soniq import Soniq
from tests.fault_support import Workers
from tests.helpers import wait_until

KEYS = 4
ENQUEUES = 600


@pytest.mark.faults
async def test_concurrent_enqueues_of_the_same_keys_share_one_live_job_per_key(
    database_url: str,
    app: Soniq,
    db: asyncpg.Connection,
    schema: str,
    side_effects: str,
    workers: Workers,
) -> None:
    worker = workers.start("--concurrency", "8")
    producers = [Soniq(database_url, schema=schema, pool_size=5) for _ in range(3)]
    # A job's state at the moment its key was handed out is checked below from the
    # jobs table: each key maps to a sequence of jobs that never overlap in time.
    results: list[tuple[str, int]] = []

    async def produce(i: int) -> None:
        key = f"key-{i % KEYS}"
        job_id = await producers[i % len(producers)].enqueue(
            "fault.sleep", {"seconds": 0.02}, dedup_key=key
        )
        results.append((key, job_id))

    try:
        await asyncio.gather(*(produce(i) for i in range(ENQUEUES)))
    finally:
        for producer in producers:
            await producer.close()

    rows = await db.fetch(f"SELECT id, dedup_key, state FROM {schema}.jobs ORDER BY id")
    by_id = {r["id"]: r for r in rows}
    assert all(by_id[job_id]["dedup_key"] == key for key, job_id in results)
    assert {job_id for _, job_id in results} == set(by_id), "every stored job was handed out"
    assert len(rows) < ENQUEUES, "most enqueues joined a live job"

    await wait_until(
        lambda: db.fetchval(f"SELECT bool_and(state = 'done') FROM {schema}.jobs"), timeout=30
    )
    # Jobs sharing a key never ran at the same time: each started after the previous one
    # with that key had ended.
    overlaps = await db.fetchval(
        f"""WITH runs AS (
                SELECT j.dedup_key, s.job_id,
                       min(s.at) FILTER (WHERE s.phase = 'start') AS started,
                       max(s.at) FILTER (WHERE s.phase = 'end') AS ended
                FROM {side_effects} s JOIN {schema}.jobs j ON j.id = s.job_id
                GROUP BY j.dedup_key, s.job_id)
            SELECT count(*) FROM runs a JOIN runs b
              ON a.dedup_key = b.dedup_key AND a.job_id < b.job_id
             AND b.started < a.ended"""
    )
    assert overlaps == 0
    worker.signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 30) == 0, worker.output()
