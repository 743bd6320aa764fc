"""Every failed attempt of a job is kept in job_attempts, written with its outcome."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg
import pytest

from soniq import JobNotFoundError, JobState, Soniq
from soniq.db.jobs import JobStore
from soniq.db.jobs.claims import EVERYTHING
from soniq.job import Claim, ClaimedJob, JobError, Outcome
from tests.helpers import job_row, start_worker, stop_worker, wait_state, wait_until


async def _attempt_rows(db: asyncpg.Connection, schema: str, job_id: int) -> list[asyncpg.Record]:
    return await db.fetch(
        f"""SELECT attempt, worker_id, started_at, finished_at, outcome, error_reason,
                   error_message, error_detail::text AS detail
            FROM {schema}.job_attempts WHERE job_id = $1 ORDER BY attempt""",
        job_id,
    )


async def test_every_failed_attempt_is_kept_with_its_worker_and_traceback(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="always.fails", retries=2)
    async def always_fails(n: int) -> None:
        raise RuntimeError(f"failure number {n}")

    job_id = await app.enqueue("always.fails", {"n": 7})

    async def dead() -> bool:
        await app.drain()  # each retry waits out its backoff in job_scheduled first
        return bool((await job_row(db, schema, job_id))["state"] == "dead")

    await wait_until(dead)
    rows = await _attempt_rows(db, schema, job_id)
    assert [(r["attempt"], r["outcome"], r["error_reason"]) for r in rows] == [
        (1, "queued", "exception"),
        (2, "queued", "exception"),
        (3, "dead", "exception"),
    ]
    for row in rows:
        assert "RuntimeError: failure number 7" in row["error_message"]
        assert "Traceback" in row["detail"] and "always_fails" in row["detail"]
        assert row["worker_id"].startswith("drain:")
        assert row["started_at"] <= row["finished_at"]

    attempts = await app.get_attempts(job_id)
    assert [(a.attempt, a.outcome) for a in attempts] == [
        (1, JobState.QUEUED),
        (2, JobState.QUEUED),
        (3, JobState.DEAD),
    ]
    assert attempts[0].error.reason == "exception"
    assert "Traceback" in attempts[0].error.detail


async def test_a_success_writes_no_attempt_row_and_a_retried_job_keeps_its_failures(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    tries: list[int] = []

    @app.job(name="flaky.task", retries=3)
    async def flaky() -> None:
        tries.append(1)
        if len(tries) < 2:
            raise ValueError("transient")

    job_id = await app.enqueue("flaky.task")
    worker = start_worker(app, poll=0.01)
    await wait_state(db, schema, job_id, "done")
    await stop_worker(worker)
    rows = await _attempt_rows(db, schema, job_id)
    assert [(r["attempt"], r["outcome"]) for r in rows] == [(1, "queued")]
    assert rows[0]["worker_id"] == (await job_row(db, schema, job_id))["worker_id"]
    assert len(await app.get_attempts(job_id)) == 1


async def test_a_snooze_writes_no_attempt_row(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    store = JobStore(schema)
    job_id = await app.enqueue("snoozy.task")
    [job] = await _claim(store, db)
    await store.outcomes.record(db, [Outcome(job.claim, "snoozed", 60.0)])
    assert (await job_row(db, schema, job_id))["state"] == "queued"
    assert await _attempt_rows(db, schema, job_id) == []
    assert await app.get_attempts(job_id) == []


async def test_an_outcome_fenced_out_writes_no_attempt(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    store = JobStore(schema)
    job_id = await app.enqueue("fenced.task")
    [job] = await _claim(store, db)
    stale = Claim(job.id, job.slot, uuid.uuid4())
    error = JobError("exception", "late writer")
    assert await store.outcomes.record(db, [Outcome(stale, "dead", error=error)]) == set()
    assert await _attempt_rows(db, schema, job_id) == []
    assert await store.outcomes.record(db, [Outcome(job.claim, "dead", error=error)]) == {job_id}
    assert [r["outcome"] for r in await _attempt_rows(db, schema, job_id)] == ["dead"]


async def test_the_rescuer_records_a_lost_attempt_with_the_worker_that_lost_it(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    store = JobStore(schema)
    requeued = await app.enqueue("lost.task", {"n": 1})
    killed = await app.enqueue("lost.task", {"n": 2})
    claimed = await _claim(store, db, limit=2)
    await db.execute(
        f"""UPDATE {schema}.job_live SET lease_expires_at = now() - interval '1s',
                max_attempts = CASE WHEN id = $1 THEN 1 ELSE 5 END""",
        killed,
    )
    assert sorted(await store.maintenance.rescue_expired(db, limit=10)) == [
        (requeued, "queued"),
        (killed, "dead"),
    ]
    for job_id, outcome in ((requeued, "queued"), (killed, "dead")):
        [row] = await _attempt_rows(db, schema, job_id)
        assert (row["attempt"], row["outcome"], row["error_reason"]) == (1, outcome, "worker lost")
        assert row["worker_id"] == "host:1:lost"
        assert "worker host:1:lost stopped renewing its lease" in row["error_message"]
    assert {job.id for job in claimed} == {requeued, killed}


async def test_retention_drops_the_days_of_attempts_with_the_days_of_history(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    store = JobStore(schema)
    await db.execute(f"SELECT {schema}.add_history_days(current_date - 20, 1)")
    await db.execute(
        f"""INSERT INTO {schema}.job_attempts (job_id, attempt, finished_at, outcome,
                error_reason, error_message)
            VALUES (1, 1, current_date - 20, 'dead', 'exception', 'old'),
                   (2, 1, now(), 'dead', 'exception', 'new')"""
    )
    # that day's tables of history, attempts, done counts and per-minute sums
    assert await store.maintenance.prune_finished(db, older_than=timedelta(days=7)) == 4
    left = await db.fetch(f"SELECT job_id FROM {schema}.job_attempts")
    assert [r["job_id"] for r in left] == [2]
    parts = await db.fetchval(
        """SELECT count(*) FROM pg_inherits
           WHERE inhparent = $1::regclass AND inhrelid::regclass::text LIKE $2""",
        f"{schema}.job_attempts",
        f"%{(await db.fetchval('SELECT current_date - 20')):%Y%m%d}",
    )
    assert parts == 0


async def test_get_attempts_of_a_job_that_never_existed_raises(app: Soniq) -> None:
    with pytest.raises(JobNotFoundError):
        await app.get_attempts(10**12)


async def _claim(store: JobStore, db: asyncpg.Connection, *, limit: int = 1) -> list[ClaimedJob]:
    return await store.claims.claim(
        db,
        limit=limit,
        queues=None,
        max_attempts_by_task={},
        version_by_task={},
        lease=timedelta(seconds=30),
        worker_id="host:1:lost",
        window=EVERYTHING,
    )
