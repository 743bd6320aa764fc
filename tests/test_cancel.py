"""Cancellation: queued jobs end at once, running jobs are stopped by their worker."""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import timedelta

import asyncpg
import pytest

from soniq import JobFailedError, Soniq
from tests.helpers import job_row, start_worker, stop_worker, wait_state
from tests.test_cli import soniq_cli


async def test_cancelling_a_queued_job_finishes_it_at_once(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    ran: list[int] = []

    @app.job(name="later.task")
    async def later() -> None:
        ran.append(1)

    job_id = await app.enqueue("later.task", delay=timedelta(milliseconds=300))
    assert await app.cancel(job_id) is True
    row = await job_row(db, schema, job_id)
    assert (row["state"], row["attempts"], row["error_reason"]) == ("cancelled", 0, "cancelled")
    assert row["finished_at"] is not None and row["cancel_requested_at"] is not None
    with pytest.raises(JobFailedError) as raised:
        await app.get_result(job_id, timeout=5)
    assert raised.value.state == "cancelled"

    marker = await app.enqueue("later.task", delay=timedelta(milliseconds=300))
    worker = start_worker(app)
    await wait_state(db, schema, marker, "done")
    await stop_worker(worker)
    assert ran == [1]  # only the marker ran
    assert (await job_row(db, schema, job_id))["state"] == "cancelled"


async def test_cancel_returns_false_for_finished_and_missing_jobs(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="quick.task")
    async def quick() -> int:
        return 1

    job_id = await app.enqueue("quick.task")
    worker = start_worker(app)
    await wait_state(db, schema, job_id, "done")
    await stop_worker(worker)
    assert await app.cancel(job_id) is False
    assert await app.cancel(job_id + 1000) is False
    row = await job_row(db, schema, job_id)
    assert (row["state"], row["cancel_requested_at"]) == ("done", None)


async def test_a_running_job_is_cancelled_within_a_second_and_not_retried(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    stopped = asyncio.Event()

    @app.job(name="forever.task", retries=3)
    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopped.set()
            raise

    job_id = await app.enqueue("forever.task")
    # a long lease: the heartbeat fallback cannot be what stops it
    worker = start_worker(app, lease=timedelta(seconds=60))
    try:
        await wait_state(db, schema, job_id, "running")
        started = time.monotonic()
        assert await app.cancel(job_id) is True
        with pytest.raises(JobFailedError) as raised:
            await app.get_result(job_id, timeout=5)
        assert time.monotonic() - started < 1.0
    finally:
        await stop_worker(worker)
    assert stopped.is_set()
    assert raised.value.state == "cancelled"
    row = await job_row(db, schema, job_id)
    assert (row["state"], row["attempts"], row["claim_token"]) == ("cancelled", 1, None)
    assert row["error_reason"] == "cancelled" and row["finished_at"] is not None


async def test_the_heartbeat_cancels_a_job_whose_notification_was_missed(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="forever.task")
    async def forever() -> None:
        await asyncio.Event().wait()

    job_id = await app.enqueue("forever.task")
    worker = start_worker(app, lease=timedelta(milliseconds=600))
    try:
        await wait_state(db, schema, job_id, "running")
        # what app.cancel() writes, without its NOTIFY
        await db.execute(
            f"UPDATE {schema}.job_live SET cancel_requested_at = now() WHERE id = $1", job_id
        )
        row = await wait_state(db, schema, job_id, "cancelled", timeout=5)
    finally:
        await stop_worker(worker)
    assert row["attempts"] == 1


async def test_shutdown_does_not_requeue_a_cancel_requested_job(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="forever.task")
    async def forever() -> None:
        await asyncio.Event().wait()

    job_id = await app.enqueue("forever.task")
    worker = start_worker(app, lease=timedelta(seconds=60))
    await wait_state(db, schema, job_id, "running")
    await db.execute(
        f"UPDATE {schema}.job_live SET cancel_requested_at = now() WHERE id = $1", job_id
    )
    await stop_worker(worker)  # releases what still runs
    row = await job_row(db, schema, job_id)
    assert (row["state"], row["claim_token"], row["error_reason"]) == (
        "cancelled",
        None,
        "cancelled",
    )


async def test_a_failure_after_the_cancel_request_is_not_retried(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    proceed = asyncio.Event()

    @app.job(name="fails.task", retries=3)
    async def fails() -> None:
        await proceed.wait()
        raise RuntimeError("failed anyway")

    job_id = await app.enqueue("fails.task")
    worker = start_worker(app, lease=timedelta(seconds=60))
    try:
        await wait_state(db, schema, job_id, "running")
        await db.execute(
            f"UPDATE {schema}.job_live SET cancel_requested_at = now() WHERE id = $1", job_id
        )
        proceed.set()
        row = await wait_state(db, schema, job_id, "cancelled")
    finally:
        await stop_worker(worker)
    assert (row["attempts"], row["error_reason"]) == (1, "exception")


async def test_an_expired_cancel_requested_job_is_rescued_as_cancelled(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    job_id = await app.enqueue("lost.task")
    await db.execute(
        f"""UPDATE {schema}.job_live SET state = 'running', attempts = 1,
                claim_token = gen_random_uuid(), lease_expires_at = now() - interval '1 s',
                worker_id = 'gone', cancel_requested_at = now()
            WHERE id = $1""",
        job_id,
    )
    worker = start_worker(app, lease=timedelta(milliseconds=300))
    try:
        row = await wait_state(db, schema, job_id, "cancelled")
    finally:
        await stop_worker(worker)
    assert (row["claim_token"], row["finished_at"] is not None) == (None, True)


async def test_cli_cancel(
    app: Soniq,
    db: asyncpg.Connection,
    schema: str,
    python: str,
    subprocess_env: dict[str, str],
) -> None:
    job_id = await app.enqueue("some.task")
    result = await asyncio.to_thread(soniq_cli, python, subprocess_env, "cancel", str(job_id))
    assert result.returncode == 0, result.stderr
    assert "cancelled 1 job(s)" in result.stdout
    assert (await job_row(db, schema, job_id))["state"] == "cancelled"

    again = await asyncio.to_thread(
        soniq_cli, python, subprocess_env, "cancel", str(job_id), str(job_id + 1000)
    )
    assert again.returncode == 1
    assert "cancelled 0 job(s)" in again.stdout
    assert f"already finished (or not found): {job_id}, {job_id + 1000}" in again.stderr


async def test_a_forged_cancel_notification_from_a_role_without_privileges_cancels_nothing(
    app: Soniq, db: asyncpg.Connection, schema: str, database_url: str
) -> None:
    release = asyncio.Event()

    @app.job(name="guarded.task")
    async def guarded() -> str:
        await release.wait()
        return "finished"

    target = await app.enqueue("guarded.task")
    witness = await app.enqueue("guarded.task")
    role = f"soniq_nobody_{secrets.token_hex(4)}"
    await db.execute(f"CREATE ROLE {role} LOGIN")  # no grants at all
    # A long lease: only a notification could stop the jobs during the test.
    worker = start_worker(app, lease=timedelta(seconds=60))
    try:
        await wait_state(db, schema, target, "running")
        await wait_state(db, schema, witness, "running")
        stranger = await asyncpg.connect(database_url, user=role)
        try:
            await stranger.execute("SELECT pg_notify($1, $2)", f"{schema}.cancel", str(target))
            await stranger.execute("SELECT pg_notify($1, 'not-a-number')", f"{schema}.cancel")
        finally:
            await stranger.close()
        # A real request for the other job, sent after the forged one, goes through...
        assert await app.cancel(witness) is True
        await wait_state(db, schema, witness, "cancelled")
        # ...while the forged one was only a hint, and the row said no.
        assert (await job_row(db, schema, target))["state"] == "running"
        release.set()
        assert await app.get_result(target, timeout=20) == "finished"
    finally:
        release.set()
        await stop_worker(worker)
        await db.execute(f"DROP ROLE {role}")
    row = await job_row(db, schema, target)
    assert (row["state"], row["cancel_requested_at"], row["error_reason"]) == ("done", None, None)
