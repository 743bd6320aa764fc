"""Graceful shutdown of a real worker process: the first SIGTERM/SIGINT stops claiming and
lets running jobs finish up to the shutdown timeout; jobs still running then are cancelled
and released back to the queue without spending an attempt; a second signal does that at
once. Either way no job is lost or left ``running``, and the process exits 0."""

from __future__ import annotations

import asyncio
import signal
import time

import asyncpg
import pytest

from soniq import Soniq
from tests.fault_support import Workers
from tests.helpers import wait_until

HANDLERS = ["fault.sleep", "fault.sleep_sync"]  # async, and blocking in a thread


async def _started(db: asyncpg.Connection, side_effects: str, n: int) -> bool:
    return bool(
        await db.fetchval(f"SELECT count(*) >= $1 FROM {side_effects} WHERE phase = 'start'", n)
    )


async def _assert_released_unspent(db: asyncpg.Connection, schema: str, ids: list[int]) -> None:
    rows = await db.fetch(f"SELECT * FROM {schema}.jobs WHERE id = ANY($1::bigint[])", ids)
    assert len(rows) == len(ids)
    for row in rows:
        assert row["state"] == "queued", dict(row)
        assert row["attempts"] == 0, dict(row)
        assert row["claim_token"] is None and row["lease_expires_at"] is None, dict(row)
        assert row["worker_id"] is None and row["started_at"] is None, dict(row)
        assert row["error_reason"] is None, dict(row)


@pytest.mark.faults
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_first_signal_lets_running_jobs_finish_and_claims_nothing_new(
    sig: signal.Signals,
    app: Soniq,
    db: asyncpg.Connection,
    schema: str,
    side_effects: str,
    workers: Workers,
) -> None:
    running = await app.enqueue_many("fault.sleep", [{"seconds": 1.5}] * 4)
    worker = workers.start("--concurrency", "4", "--shutdown-timeout-seconds", "20")
    await wait_until(lambda: _started(db, side_effects, 4))
    waiting = await app.enqueue_many("fault.sleep", [{"seconds": 0}] * 4)

    signalled = time.monotonic()
    worker.signal(sig)
    assert await asyncio.to_thread(worker.wait, 30) == 0, worker.output()
    assert time.monotonic() - signalled < 10, "should exit once its jobs are done"

    done = await db.fetchval(
        f"SELECT count(*) FROM {schema}.jobs WHERE id = ANY($1::bigint[]) AND state = 'done' "
        "AND attempts = 1",
        running,
    )
    assert done == len(running)
    # Freed slots were not refilled after the signal: the later jobs were never claimed.
    await _assert_released_unspent(db, schema, waiting)
    ends = await db.fetchval(f"SELECT count(*) FROM {side_effects} WHERE phase = 'end'")
    assert ends == len(running)


@pytest.mark.faults
@pytest.mark.parametrize("task", HANDLERS)
async def test_jobs_running_past_the_shutdown_timeout_are_released_without_spending_an_attempt(
    task: str,
    app: Soniq,
    db: asyncpg.Connection,
    schema: str,
    side_effects: str,
    workers: Workers,
) -> None:
    ids = await app.enqueue_many(task, [{"seconds": 60}] * 3)
    worker = workers.start("--concurrency", "3", "--shutdown-timeout-seconds", "0.5")
    await wait_until(lambda: _started(db, side_effects, 3))

    signalled = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 30) == 0, worker.output()
    assert time.monotonic() - signalled < 5, worker.output()

    await _assert_released_unspent(db, schema, ids)
    assert await db.fetchval(f"SELECT count(*) FROM {side_effects} WHERE phase = 'end'") == 0


@pytest.mark.faults
@pytest.mark.parametrize("task", HANDLERS)
async def test_second_signal_releases_running_jobs_and_exits_at_once(
    task: str,
    app: Soniq,
    db: asyncpg.Connection,
    schema: str,
    side_effects: str,
    workers: Workers,
) -> None:
    ids = await app.enqueue_many(task, [{"seconds": 60}] * 3)
    worker = workers.start("--concurrency", "3", "--shutdown-timeout-seconds", "60")
    await wait_until(lambda: _started(db, side_effects, 3))

    worker.signal(signal.SIGTERM)

    async def draining() -> bool:
        return "waiting up to 60s for 3 running job(s)" in worker.output()

    await wait_until(draining)
    signalled = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 30) == 0, worker.output()
    assert time.monotonic() - signalled < 5, worker.output()

    await _assert_released_unspent(db, schema, ids)
    assert await db.fetchval(f"SELECT count(*) FROM {side_effects} WHERE phase = 'end'") == 0


@pytest.mark.faults
async def test_released_jobs_run_again_on_the_next_worker(
    app: Soniq,
    db: asyncpg.Connection,
    schema: str,
    side_effects: str,
    workers: Workers,
) -> None:
    """None lost: jobs released at shutdown are claimed by the next worker and complete,
    each on its first counted attempt."""
    ids = await app.enqueue_many("fault.sleep", [{"seconds": 2}] * 5)
    first = workers.start("--concurrency", "5", "--shutdown-timeout-seconds", "0")
    await wait_until(lambda: _started(db, side_effects, 5))
    first.signal(signal.SIGTERM)
    assert await asyncio.to_thread(first.wait, 30) == 0, first.output()
    await _assert_released_unspent(db, schema, ids)

    second = workers.start("--concurrency", "5")
    await wait_until(
        lambda: db.fetchval(f"SELECT count(*) = 5 FROM {schema}.jobs WHERE state = 'done'"),
        timeout=30,
    )
    rows = await db.fetch(f"SELECT attempts FROM {schema}.jobs")
    assert [r["attempts"] for r in rows] == [1] * 5
    per_pid = await db.fetch(
        f"SELECT pid, phase, count(*) AS n FROM {side_effects} GROUP BY pid, phase"
    )
    assert {(r["pid"], r["phase"]): r["n"] for r in per_pid} == {
        (first.pid, "start"): 5,
        (second.pid, "start"): 5,
        (second.pid, "end"): 5,
    }
    second.signal(signal.SIGTERM)
    assert await asyncio.to_thread(second.wait, 30) == 0, second.output()
