"""Handlers choosing their job's outcome (Retry, Discard, Snooze) and per-task backoff,
as recorded in the job tables by the worker's own path (``app.drain()``)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from soniq import Backoff, Discard, RegistrationError, Retry, Snooze, Soniq
from tests.helpers import job_row


async def _due_in(db: asyncpg.Connection, schema: str, job_id: int) -> float:
    """Seconds until the job is due (it waits in job_scheduled)."""
    return float(
        await db.fetchval(
            f"SELECT extract(epoch FROM scheduled_at - now()) FROM {schema}.job_scheduled "
            "WHERE id = $1",
            job_id,
        )
    )


async def _make_due(db: asyncpg.Connection, schema: str, job_id: int) -> None:
    await db.execute(
        f"UPDATE {schema}.job_scheduled SET scheduled_at = now() WHERE id = $1", job_id
    )


async def test_retry_with_a_delay_spends_the_attempt_and_waits_that_long(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="ctl.retry", retries=1, timeout=30)  # the timeout path raises it too
    async def retry_later() -> None:
        raise Retry(delay=timedelta(minutes=5), reason="rate limited by the mail API")

    job_id = await app.enqueue("ctl.retry")
    assert await app.drain() == 1
    row = await job_row(db, schema, job_id)
    assert (row["state"], row["attempts"], row["error_reason"]) == ("queued", 1, "retry")
    assert row["error_message"] == "attempt 1 of 2: rate limited by the mail API"
    assert 295 < await _due_in(db, schema, job_id) <= 300

    await _make_due(db, schema, job_id)
    assert await app.drain() == 1
    row = await job_row(db, schema, job_id)
    assert (row["state"], row["attempts"], row["error_reason"]) == ("dead", 2, "retry")
    assert "no retries left" in row["error_message"]


async def test_retry_without_a_delay_follows_the_tasks_backoff(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    seen: list[int] = []

    def two_minutes_then_more(attempt: int) -> timedelta:
        seen.append(attempt)
        return timedelta(minutes=2 * attempt)

    @app.job(name="ctl.backoff_fn", retries=3, backoff=two_minutes_then_more)
    def sync_retry() -> None:  # a def handler: raised in a worker thread
        raise Retry()

    job_id = await app.enqueue("ctl.backoff_fn")
    await app.drain()
    assert 115 < await _due_in(db, schema, job_id) <= 120
    assert (await job_row(db, schema, job_id))["error_message"] == (
        "attempt 1 of 4: retry requested"
    )
    await _make_due(db, schema, job_id)
    await app.drain()
    assert 235 < await _due_in(db, schema, job_id) <= 240
    assert seen == [1, 2]


async def test_a_backoff_object_sets_a_tasks_failure_delays(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="ctl.backoff", retries=5, backoff=Backoff(base=30, cap=50, jitter=False))
    async def fails() -> None:
        raise ValueError("flaky")

    job_id = await app.enqueue("ctl.backoff")
    delays = []
    for _ in range(3):
        await app.drain()
        delays.append(await _due_in(db, schema, job_id))
        await _make_due(db, schema, job_id)
    assert [round(d) for d in delays] == [30, 50, 50]  # 30, min(50, 60), min(50, 120)


async def test_a_broken_backoff_function_falls_back_to_the_apps_backoff(
    app: Soniq, db: asyncpg.Connection, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    @app.job(name="ctl.broken", retries=2, backoff=lambda attempt: -5)
    async def fails() -> None:
        raise ValueError("flaky")

    job_id = await app.enqueue("ctl.broken")
    with caplog.at_level(logging.WARNING, logger="soniq.worker"):
        await app.drain()
    assert await _due_in(db, schema, job_id) < 1  # the app fixture's 50 ms backoff
    assert "returned -5, not a timedelta or seconds >= 0" in caplog.text


async def test_discard_dead_letters_at_once_whatever_retries_remain(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="ctl.discard", retries=5)
    def discard(customer: str) -> None:
        raise Discard(f"customer {customer} was deleted")

    job_id = await app.enqueue("ctl.discard", {"customer": "c-9"})
    assert await app.drain() == 1
    row = await job_row(db, schema, job_id)
    assert (row["state"], row["attempts"], row["error_reason"]) == ("dead", 1, "discarded")
    assert row["error_message"] == "attempt 1 of 6: customer c-9 was deleted"
    [dead] = await app.dead_letter.list()
    assert dead.id == job_id


async def test_snooze_waits_without_spending_an_attempt_and_keeps_the_last_error(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    calls = 0

    @app.job(name="ctl.snooze", retries=1, backoff=lambda attempt: 0)
    async def not_yet() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("first try fails")
        if calls <= 4:  # more snoozes than the task has attempts
            raise Snooze(timedelta(seconds=90))
        return "ready"

    job_id = await app.enqueue("ctl.snooze", dedup_key="report-7")
    await app.drain()  # fails (attempt 1 of 2), retried at once, then snoozed
    for _ in range(3):
        row = await job_row(db, schema, job_id)
        assert (row["state"], row["attempts"]) == ("queued", 1)
        assert (row["error_reason"], row["error_message"]) == (
            "exception",
            "attempt 1 of 2: ValueError: first try fails",
        )
        assert 85 < await _due_in(db, schema, job_id) <= 90
        # A snoozed job is still live: it holds its dedup key.
        assert await app.enqueue("ctl.snooze", dedup_key="report-7") == job_id
        await _make_due(db, schema, job_id)
        await app.drain()
    assert calls == 5
    row = await job_row(db, schema, job_id)
    assert (row["state"], row["attempts"]) == ("done", 2)
    assert await app.get_result(job_id, timeout=5) == "ready"


async def test_a_snoozed_job_whose_cancellation_was_requested_ends_cancelled(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="ctl.snooze_cancel")
    async def not_yet() -> None:
        await db.execute(
            f"UPDATE {schema}.job_live SET cancel_requested_at = now() WHERE task_name = $1",
            "ctl.snooze_cancel",
        )
        raise Snooze(60)

    job_id = await app.enqueue("ctl.snooze_cancel")
    await app.drain()
    row = await job_row(db, schema, job_id)
    assert (row["state"], row["error_reason"]) == ("cancelled", "cancelled")


def test_backoff_is_exponential_with_jitter_by_default() -> None:
    backoff = Backoff()
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (5, 16.0), (10, 512.0), (11, 600.0), (99, 600.0)]:
        delays = {backoff.delay(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays), attempt
        assert len(delays) > 1  # jittered
    assert Backoff(base=timedelta(seconds=3), jitter=False).delay(3) == 12.0
    assert Backoff(base=1, cap=1e9, jitter=False).delay(100_000) == 1e9


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Retry(delay=-1), "Retry\\(delay=...\\) must be a timedelta or seconds >= 0"),
        (lambda: Retry(delay=float("nan")), "must be a timedelta or seconds >= 0"),
        (lambda: Snooze(0), "must be more than zero"),
        (lambda: Snooze("soon"), "must be a timedelta or seconds >= 0"),
    ],
)
def test_bad_delays_are_refused_where_they_are_raised(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_a_bad_backoff_is_a_registration_error(app_without_db: Soniq) -> None:
    with pytest.raises(RegistrationError, match=r"backoff= must be a soniq\.Backoff"):
        app_without_db.job(name="bad.backoff", backoff=5)(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(RegistrationError, match="Backoff base must be a positive"):
        Backoff(base=0)


@pytest.fixture
def app_without_db() -> Soniq:
    return Soniq("postgresql://nobody@127.0.0.1:1/none")


def test_retry_now_is_allowed() -> None:
    assert Retry(delay=0).delay == 0.0
    assert Retry().delay is None


@pytest.mark.parametrize("raised", [Snooze(60), Retry(delay=60), Discard("gone")])
async def test_an_outcome_from_a_worker_that_lost_the_job_moves_nothing(
    app: Soniq, db: asyncpg.Connection, schema: str, raised: Exception
) -> None:
    @app.job(name="ctl.fenced")
    async def lost() -> None:
        # As if the lease had run out and another worker had claimed the job meanwhile.
        await db.execute(
            f"UPDATE {schema}.job_live SET claim_token = gen_random_uuid() WHERE id = $1", job_id
        )
        raise raised

    job_id = await app.enqueue("ctl.fenced")
    assert await app.drain() == 1
    row = await db.fetchrow(f"SELECT state, attempts FROM {schema}.job_live WHERE id = $1", job_id)
    assert (row["state"], row["attempts"]) == ("running", 1)
    for table in ("job_scheduled", "job_dead", "job_history"):
        assert await db.fetchval(f"SELECT count(*) FROM {schema}.{table}") == 0, table
