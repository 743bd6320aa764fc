"""Faults inside the worker itself: an outcome the database refuses, or an error while
preparing an attempt, must not wedge the worker or leave a job ``running`` forever. The job
is let go (its lease is no longer renewed), the rescuer takes it back like the job of a lost
worker, and every other job completes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from soniq import Soniq
from soniq.job import Outcome
from tests.helpers import start_worker, stop_worker, wait_until

LEASE = timedelta(seconds=1)


@pytest.mark.faults
async def test_outcome_the_database_refuses_is_given_up_and_the_others_are_written(
    app: Soniq, db: asyncpg.Connection, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    @app.job(name="quick.task", retries=1)
    async def quick(n: int) -> None:
        return None

    ids = await app.enqueue_many("quick.task", [{"n": i} for i in range(30)])
    refused = ids[7]
    record = app._store.outcomes.record

    async def refusing(conn: Any, outcomes: Sequence[Outcome]) -> set[int]:
        if any(o.job_id == refused for o in outcomes):
            raise asyncpg.DataError("simulated: value refused by the database")
        return await record(conn, outcomes)

    monkeypatch.setattr(app._store.outcomes, "record", refusing)
    worker = start_worker(app, concurrency=10, lease=LEASE)
    try:
        # Every other outcome is written although one in their batch is refused...
        await wait_until(
            lambda: db.fetchval(
                f"SELECT count(*) = 29 FROM {schema}.jobs WHERE state = 'done' AND id <> $1",
                refused,
            )
        )
        # ...and the refused job is not stuck: its lease lapses, it is rescued and retried,
        # and with its attempts spent it is dead-lettered as the job of a lost worker.
        await wait_until(
            lambda: db.fetchval(f"SELECT state = 'dead' FROM {schema}.jobs WHERE id = $1", refused),
            timeout=20,
        )
        assert not worker.done(), "the worker keeps running"
    finally:
        await stop_worker(worker)
    row = await db.fetchrow(f"SELECT * FROM {schema}.jobs WHERE id = $1", refused)
    assert row["attempts"] == row["max_attempts"] == 2
    assert row["error_reason"] == "worker lost"


@pytest.mark.faults
async def test_error_while_preparing_an_attempt_leaves_the_job_to_the_rescuer(
    app: Soniq, db: asyncpg.Connection, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import soniq.worker.worker as worker_module

    @app.job(name="quick.task", retries=0)
    async def quick(n: int) -> None:
        return None

    broken = await app.enqueue("quick.task", {"n": -1})
    run_claimed = worker_module.run_claimed

    async def failing(job: Any, *args: Any, **kwargs: Any) -> Outcome:
        if job.id == broken:
            raise RuntimeError("simulated bug in Soniq")
        return await run_claimed(job, *args, **kwargs)

    monkeypatch.setattr(worker_module, "run_claimed", failing)
    worker = start_worker(app, concurrency=4, lease=LEASE)
    try:
        others = await app.enqueue_many("quick.task", [{"n": i} for i in range(10)])
        await wait_until(
            lambda: db.fetchval(f"SELECT state = 'dead' FROM {schema}.jobs WHERE id = $1", broken),
            timeout=20,
        )
        await wait_until(
            lambda: db.fetchval(
                f"SELECT count(*) = 10 FROM {schema}.jobs WHERE id = ANY($1::bigint[]) "
                "AND state = 'done'",
                others,
            )
        )
    finally:
        await stop_worker(worker)
    row = await db.fetchrow(f"SELECT * FROM {schema}.jobs WHERE id = $1", broken)
    assert row["error_reason"] == "worker lost"
    assert "no retries left" in row["error_message"]
