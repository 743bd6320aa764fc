"""Timeouts: a job's ``timeout`` cancels its handler and fails the attempt with reason
``timeout``; retries follow the usual policy, then the job is dead-lettered. A blocking
handler cannot be interrupted, but its overrun neither blocks the next jobs nor keeps a
stopping worker alive."""

from __future__ import annotations

import asyncio
import signal
import time

import asyncpg
import pytest

from soniq import Soniq
from tests.fault_support import Workers
from tests.helpers import wait_until


@pytest.mark.faults
async def test_overrunning_job_is_cancelled_retried_and_dead_lettered_with_reason_timeout(
    app: Soniq,
    db: asyncpg.Connection,
    schema: str,
    side_effects: str,
    workers: Workers,
) -> None:
    job_id = await app.enqueue("fault.timeout")  # timeout=0.3, retries=1
    worker = workers.start("--concurrency", "2")
    await wait_until(
        lambda: db.fetchval(f"SELECT state = 'dead' FROM {schema}.jobs WHERE id = $1", job_id),
        timeout=30,
    )
    row = await db.fetchrow(f"SELECT * FROM {schema}.jobs WHERE id = $1", job_id)
    assert row["error_reason"] == "timeout"
    assert row["attempts"] == row["max_attempts"] == 2
    assert "attempt 2 of 2, no retries left" in row["error_message"]
    assert "0.3s" in row["error_message"]
    assert row["claim_token"] is None and row["finished_at"] is not None
    phases = await db.fetch(f"SELECT phase FROM {side_effects} WHERE job_id = $1", job_id)
    assert [p["phase"] for p in phases] == ["start", "start"], "cancelled twice, never ended"
    worker.signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 30) == 0, worker.output()


@pytest.mark.faults
async def test_blocking_handler_past_its_timeout_does_not_hold_up_the_next_job_or_shutdown(
    app: Soniq,
    db: asyncpg.Connection,
    schema: str,
    side_effects: str,
    workers: Workers,
) -> None:
    stuck = await app.enqueue("fault.sleep_sync_limited", {"seconds": 30})
    worker = workers.start("--concurrency", "1", "--shutdown-timeout-seconds", "1")
    await wait_until(
        lambda: db.fetchval(f"SELECT state = 'dead' FROM {schema}.jobs WHERE id = $1", stuck)
    )
    row = await db.fetchrow(f"SELECT * FROM {schema}.jobs WHERE id = $1", stuck)
    assert row["error_reason"] == "timeout"

    # The only slot is free again although the overrunning thread still sleeps: the next
    # blocking job runs at once, within its own timeout.
    quick = await app.enqueue("fault.sleep_sync_limited", {"seconds": 0})
    await wait_until(
        lambda: db.fetchval(
            f"SELECT state IN ('done', 'dead') FROM {schema}.jobs WHERE id = $1", quick
        )
    )
    row = await db.fetchrow(f"SELECT * FROM {schema}.jobs WHERE id = $1", quick)
    assert row["state"] == "done", dict(row)

    # The abandoned thread does not keep the stopping process alive.
    signalled = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 30) == 0, worker.output()
    assert time.monotonic() - signalled < 5
    ended = await db.fetchval(
        f"SELECT count(*) FROM {side_effects} WHERE job_id = $1 AND phase = 'end'", stuck
    )
    assert ended == 0
