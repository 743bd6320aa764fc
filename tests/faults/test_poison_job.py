"""Attempts are counted at claim: a job that kills its worker process on every attempt
(``os._exit(1)``) cannot loop forever. Each death spends one attempt; once they are all
spent the rescuer dead-letters it ("worker lost", no retries left), and the other jobs in
the same queue still complete."""

from __future__ import annotations

import asyncio
import signal
import time

import asyncpg
import pytest

from soniq import Soniq
from tests.fault_support import Workers, worker_pid_of
from tests.helpers import wait_until

OTHERS = 60
CONCURRENCY = 4
RETRIES = 2  # fault.exit is registered with retries=2


@pytest.mark.faults
async def test_job_that_kills_its_worker_is_dead_lettered_after_its_retries(
    app: Soniq,
    db: asyncpg.Connection,
    schema: str,
    side_effects: str,
    workers: Workers,
) -> None:
    poison = await app.enqueue("fault.exit")
    others = await app.enqueue_many("fault.count", [{"n": i} for i in range(OTHERS)])
    options = ("--concurrency", str(CONCURRENCY), "--lease-seconds", "1")

    # The supervisor: whenever the worker process dies, start a new one.
    worker = workers.start(*options)
    deaths = 0
    deadline = time.monotonic() + 60
    while await db.fetchval(f"SELECT state FROM {schema}.jobs WHERE id = $1", poison) != "dead":
        assert time.monotonic() < deadline, workers.outputs()
        code = worker.process.poll()
        if code is not None:
            assert code == 1, worker.output()
            deaths += 1
            assert deaths <= RETRIES + 1, "the poison job ran more often than its attempts"
            worker = workers.start(*options)
        await asyncio.sleep(0.05)

    assert deaths == RETRIES + 1
    row = await db.fetchrow(f"SELECT * FROM {schema}.jobs WHERE id = $1", poison)
    assert row["state"] == "dead"
    assert row["attempts"] == row["max_attempts"] == RETRIES + 1
    assert row["error_reason"] == "worker lost"
    assert f"attempt {RETRIES + 1} of {RETRIES + 1}" in row["error_message"]
    assert "no retries left" in row["error_message"]
    assert row["claim_token"] is None and row["finished_at"] is not None
    dead = await app.dead_letter.list()
    assert [job.id for job in dead] == [poison]

    # One start per attempt, each in a different (then dead) process.
    runs = await db.fetch(
        f"SELECT pid FROM {side_effects} WHERE job_id = $1 AND phase = 'start'", poison
    )
    assert len(runs) == RETRIES + 1
    assert len({r["pid"] for r in runs}) == RETRIES + 1

    # The rest of the queue is unaffected: every other job completes. Some may have been
    # claimed in the same batch as the poison job and died with the process; they were
    # rescued like any job of a lost worker and ran again.
    await wait_until(
        lambda: db.fetchval(
            f"SELECT count(*) = $1 FROM {schema}.jobs WHERE id = ANY($2::bigint[]) "
            "AND state = 'done'",
            OTHERS,
            others,
        ),
        timeout=30,
    )
    ran = await db.fetch(
        f"SELECT job_id, count(*) AS n FROM {side_effects} WHERE job_id <> $1 GROUP BY job_id",
        poison,
    )
    assert {r["job_id"] for r in ran} == set(others)
    retried = await db.fetchval(
        f"SELECT count(*) FROM {schema}.jobs WHERE id = ANY($1::bigint[]) AND attempts > 1",
        others,
    )
    assert retried <= deaths * (CONCURRENCY - 1)

    # The worker that is left is healthy: it keeps serving the queue and stops cleanly.
    job_id = await app.enqueue("fault.count", {"n": -1})
    await wait_until(
        lambda: db.fetchval(f"SELECT state = 'done' FROM {schema}.jobs WHERE id = $1", job_id)
    )
    final = await db.fetchrow(f"SELECT worker_id FROM {schema}.jobs WHERE id = $1", job_id)
    assert worker_pid_of(final["worker_id"]) == worker.pid
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.output()
