"""What a worker does with each kind of attempt, as recorded in the jobs table."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from soniq import JobContext, JobState, Soniq
from tests.helpers import count_jobs, job_row, start_worker, stop_worker, wait_state, wait_until

BACKOFF = 0.05  # the app fixture's retry_backoff, in seconds


async def test_success_marks_done_with_finished_at_and_no_error(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="ok.task")
    async def ok(n: int) -> None:
        return None

    job_id = await app.enqueue("ok.task", {"n": 1})
    worker = start_worker(app)
    row = await wait_state(db, schema, job_id, "done")
    await stop_worker(worker)
    assert row["attempts"] == 1
    assert row["started_at"] is not None
    assert row["finished_at"] is not None and row["finished_at"] >= row["started_at"]
    assert (row["error_reason"], row["error_message"], row["error_detail"]) == (None, None, None)
    assert (row["claim_token"], row["lease_expires_at"]) == (None, None)


async def test_exception_is_retried_with_backoff_then_done(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    times: list[float] = []

    @app.job(name="flaky.task", retries=3)
    async def flaky() -> None:
        times.append(time.monotonic())
        if len(times) < 3:
            raise RuntimeError(f"transient failure {len(times)}")

    job_id = await app.enqueue("flaky.task")
    worker = start_worker(app, poll=0.01)
    row = await wait_state(db, schema, job_id, "done")
    await stop_worker(worker)
    assert row["attempts"] == 3
    assert row["error_reason"] is None  # success clears the last attempt's error
    assert len(times) == 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    for n, gap in enumerate(gaps, start=1):
        # attempt n waits between half and all of base * 2**(n-1)
        assert gap >= BACKOFF * 2 ** (n - 1) / 2, (n, gap)


async def test_retried_job_records_the_failed_attempt_while_queued(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    release = asyncio.Event()
    attempts: list[int] = []

    @app.job(name="flaky.task", retries=1)
    async def flaky(ctx: JobContext) -> None:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise ValueError("first try fails")
        await release.wait()

    job_id = await app.enqueue("flaky.task")
    worker = start_worker(app, poll=0.01)
    row = await wait_until(
        lambda: db.fetchrow(
            f"SELECT * FROM {schema}.jobs WHERE id = $1 AND state = 'running' AND attempts = 2",
            job_id,
        )
    )
    # the second attempt runs with the first attempt's error still on record
    assert row["error_reason"] == "exception"
    assert "attempt 1 of 2" in row["error_message"]
    assert "ValueError: first try fails" in row["error_message"]
    release.set()
    await wait_state(db, schema, job_id, "done")
    await stop_worker(worker)
    assert attempts == [1, 2]


async def test_retries_exhausted_dead_letters_with_exception_and_traceback(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="broken.task", retries=2)
    async def always_broken(n: int) -> None:
        raise RuntimeError(f"boom-{n}")

    job_id = await app.enqueue("broken.task", {"n": 42})
    worker = start_worker(app, poll=0.01)
    row = await wait_state(db, schema, job_id, "dead")
    await stop_worker(worker)
    assert (row["attempts"], row["max_attempts"]) == (3, 3)
    assert row["finished_at"] is not None
    assert row["error_reason"] == "exception"
    assert "RuntimeError: boom-42" in row["error_message"]
    assert "no retries left" in row["error_message"]
    detail = json.loads(row["detail_text"])
    assert "Traceback (most recent call last)" in detail
    assert "always_broken" in detail and "RuntimeError: boom-42" in detail
    job = await app.get_job(job_id)
    assert job.state is JobState.DEAD and job.error is not None
    assert job.error.detail == detail


async def test_zero_retries_dead_after_one_attempt(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    calls: list[int] = []

    @app.job(name="once.task", retries=0)
    async def once() -> None:
        calls.append(1)
        raise KeyError("missing")

    job_id = await app.enqueue("once.task")
    worker = start_worker(app, poll=0.01)
    row = await wait_state(db, schema, job_id, "dead")
    await asyncio.sleep(0.1)  # no further attempt follows
    await stop_worker(worker)
    assert (row["attempts"], row["max_attempts"], len(calls)) == (1, 1, 1)
    assert "attempt 1 of 1, no retries left" in row["error_message"]


async def test_bad_args_inserted_by_raw_sql_dead_at_once_with_field_errors(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    calls: list[int] = []

    @app.job(name="typed.task", retries=5)
    async def typed(order_id: int, note: str = "") -> None:
        calls.append(order_id)

    job_id = await db.fetchval(
        f"INSERT INTO {schema}.jobs (task_name, queue, args, max_attempts) "
        "VALUES ('typed.task', 'default', $1, 6) RETURNING id",
        '{"order_id": "not a number"}',
    )
    worker = start_worker(app)
    row = await wait_state(db, schema, job_id, "dead")
    await stop_worker(worker)
    assert calls == []
    assert row["attempts"] == 1
    assert row["error_reason"] == "invalid arguments"
    assert "order_id" in row["error_message"]
    detail = json.loads(row["detail_text"])
    assert isinstance(detail, list) and detail
    assert [e["loc"] for e in detail] == [["order_id"]]
    assert all({"loc", "msg", "type"} <= set(e) for e in detail)


async def test_timeout_fails_the_attempt_with_reason_timeout(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    cancelled = asyncio.Event()

    @app.job(name="slow.task", timeout=0.1, retries=0)
    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    job_id = await app.enqueue("slow.task")
    worker = start_worker(app)
    row = await wait_state(db, schema, job_id, "dead", timeout=10)
    await stop_worker(worker)
    assert row["error_reason"] == "timeout"
    assert "0.1s" in row["error_message"]
    assert cancelled.is_set()  # the handler was cancelled, not left running


async def test_sync_handler_runs_in_worker_thread_and_its_exception_retries(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    threads: list[str] = []
    loop_thread = threading.current_thread().name

    @app.job(name="blocking.task", retries=2)
    def blocking(path: str, ctx: JobContext) -> None:
        threads.append(threading.current_thread().name)
        if ctx.attempt == 1:
            raise OSError(f"cannot open {path}")

    job_id = await app.enqueue("blocking.task", {"path": "/x"})
    worker = start_worker(app, poll=0.01)
    row = await wait_state(db, schema, job_id, "done")
    await stop_worker(worker)
    assert row["attempts"] == 2
    assert len(threads) == 2
    assert all(name.startswith("soniq-job") for name in threads), threads
    assert loop_thread not in threads


async def test_job_context_is_injected_by_annotation_under_future_annotations(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    seen: list[JobContext] = []

    @app.job(name="ctx.task", queue="ctxq", retries=4)
    async def with_context(order_id: int, whatever_name: JobContext) -> None:
        seen.append(whatever_name)
        if whatever_name.attempt == 1:
            raise RuntimeError("again")

    # The context parameter is not an argument: enqueue must not ask for it.
    job_id = await app.enqueue(with_context, {"order_id": "5"})
    worker = start_worker(app, poll=0.01)
    row = await wait_state(db, schema, job_id, "done")
    await stop_worker(worker)
    assert [c.attempt for c in seen] == [1, 2]
    for ctx in seen:
        assert isinstance(ctx, JobContext)
        assert (ctx.job_id, ctx.task_name, ctx.queue, ctx.max_attempts) == (
            job_id,
            "ctx.task",
            "ctxq",
            5,
        )
        assert ctx.enqueued_at == row["enqueued_at"]


async def test_unknown_task_dead_letters_as_not_registered(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="known.task")
    async def known() -> None:
        return None

    job_id = await app.enqueue("nobody.handles_this", {"x": 1})
    worker = start_worker(app)
    row = await wait_state(db, schema, job_id, "dead")
    await stop_worker(worker)
    assert row["attempts"] == 1
    assert row["error_reason"] == "Job not registered"
    assert "nobody.handles_this" in row["error_message"]
    assert "known.task" in row["error_message"]


async def test_consumer_registered_retries_decide_max_attempts_for_bare_name_jobs(
    database_url: str, app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    producer = Soniq(database_url, schema=schema, default_retries=7)
    try:
        job_id = await producer.enqueue("report.render", {"page": 1})
    finally:
        await producer.close()
    assert (await job_row(db, schema, job_id))["max_attempts"] == 8  # the producer's guess

    first_attempt = asyncio.Event()
    proceed = asyncio.Event()

    @app.job(name="report.render", retries=1)
    async def render(page: int, ctx: JobContext) -> None:
        if ctx.attempt == 1:
            first_attempt.set()
            await proceed.wait()
        raise RuntimeError("cannot render")

    worker = start_worker(app, poll=0.01)
    await asyncio.wait_for(first_attempt.wait(), 20)
    row = await job_row(db, schema, job_id)
    assert (row["state"], row["attempts"], row["max_attempts"]) == ("running", 1, 2)
    proceed.set()
    row = await wait_state(db, schema, job_id, "dead")
    await stop_worker(worker)
    assert (row["attempts"], row["max_attempts"]) == (2, 2)
    assert "attempt 2 of 2, no retries left" in row["error_message"]


async def test_higher_priority_runs_first_then_oldest(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    order: list[str] = []

    @app.job(name="prio.task")
    async def prio(label: str) -> None:
        order.append(label)

    for label, priority in [("low", 0), ("high-1", 10), ("mid", 5), ("high-2", 10), ("neg", -1)]:
        await app.enqueue("prio.task", {"label": label}, priority=priority)
    worker = start_worker(app, concurrency=1)
    await wait_until(lambda: db.fetchval(f"SELECT bool_and(state = 'done') FROM {schema}.jobs"))
    await stop_worker(worker)
    assert order == ["high-1", "high-2", "mid", "low", "neg"]


@pytest.mark.parametrize("queues", [None, ["mail", "billing"]], ids=["all-queues", "listed"])
async def test_priority_order_holds_across_the_queues_a_worker_serves(
    app: Soniq, db: asyncpg.Connection, schema: str, queues: list[str] | None
) -> None:
    order: list[str] = []

    @app.job(name="prio.task")
    async def prio(label: str) -> None:
        order.append(label)

    for label, queue, priority in [
        ("mail-low", "mail", 0),
        ("billing-high", "billing", 10),
        ("mail-mid", "mail", 5),
        ("billing-low", "billing", 0),
        ("mail-high", "mail", 10),
    ]:
        await app.enqueue("prio.task", {"label": label}, queue=queue, priority=priority)
    worker = start_worker(app, concurrency=1, queues=queues)
    await wait_until(lambda: db.fetchval(f"SELECT bool_and(state = 'done') FROM {schema}.jobs"))
    await stop_worker(worker)
    assert order == ["billing-high", "mail-high", "mail-mid", "mail-low", "billing-low"]


async def test_cancelling_the_worker_releases_running_job_with_attempt_unspent(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    started = asyncio.Event()
    handler_cancelled = asyncio.Event()
    attempts_seen: list[int] = []

    @app.job(name="long.task", retries=0)
    async def long_task(ctx: JobContext) -> None:
        attempts_seen.append(ctx.attempt)
        if len(attempts_seen) == 1:
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                handler_cancelled.set()
                raise

    job_id = await app.enqueue("long.task")
    worker = start_worker(app)
    await asyncio.wait_for(started.wait(), 20)
    assert (await job_row(db, schema, job_id))["attempts"] == 1
    await stop_worker(worker)
    assert handler_cancelled.is_set()
    row = await job_row(db, schema, job_id)
    assert row["state"] == "queued"
    assert row["attempts"] == 0
    assert (row["claim_token"], row["lease_expires_at"], row["worker_id"]) == (None, None, None)
    assert row["error_reason"] is None

    # retries=0, yet the job still gets its one attempt: the interrupted one was not spent
    worker = start_worker(app)
    row = await wait_state(db, schema, job_id, "done")
    await stop_worker(worker)
    assert attempts_seen == [1, 1]
    assert row["attempts"] == 1


async def test_graceful_stop_lets_running_job_finish_and_claims_nothing_new(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    ran: list[int] = []

    @app.job(name="work.task")
    async def work(n: int) -> None:
        ran.append(n)
        if n == 1:
            started.set()
            await release.wait()

    first = await app.enqueue("work.task", {"n": 1})
    worker = start_worker(app, shutdown_timeout=timedelta(seconds=20))
    await asyncio.wait_for(started.wait(), 20)
    await app.stop()
    second = await app.enqueue("work.task", {"n": 2})
    await asyncio.sleep(0.3)
    assert not worker.done()  # still waiting for the running job
    release.set()
    await asyncio.wait_for(worker, 20)  # returns normally, not cancelled
    # everything is written by the time run_worker returns
    assert (await job_row(db, schema, first))["state"] == "done"
    assert (await job_row(db, schema, second))["state"] == "queued"
    assert ran == [1]
    assert await count_jobs(db, schema, "state = 'running'") == 0


async def test_stop_returns_only_once_a_claim_in_flight_has_finished(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    ran: list[int] = []

    @app.job(name="work.task")
    async def work(n: int) -> None:
        ran.append(n)

    worker = start_worker(app, poll=0.02)
    await wait_until(lambda: db.fetchval(f"SELECT count(*) FROM {schema}.workers"))
    # Hold the claim statement at the table lock, so a claim is in flight when stop() comes
    # (found by its opening words: pg_stat_activity keeps only a statement's first 1 kB).
    # On a pool connection new to the claim, the lock may instead hold asyncpg's type
    # lookup that follows the claim's prepare, which is as much in flight.
    lock = db.transaction()
    await lock.start()
    await db.execute(f"LOCK TABLE {schema}.job_live IN ACCESS EXCLUSIVE MODE")
    await wait_until(
        lambda: db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND pid <> pg_backend_pid() "
            "AND (query LIKE '%FROM ' || $1 || '.job_lanes AS l%' "
            "     OR query LIKE 'WITH RECURSIVE typeinfo_tree%')",
            schema,
        )
    )
    stopping = asyncio.ensure_future(app.stop())
    await asyncio.sleep(0.3)
    assert not stopping.done()  # the claim has not come back yet
    await lock.rollback()
    await asyncio.wait_for(stopping, 10)
    job_id = await app.enqueue("work.task", {"n": 1})
    await asyncio.wait_for(worker, 20)
    assert (await job_row(db, schema, job_id))["state"] == "queued"
    assert ran == []


async def test_graceful_stop_past_shutdown_timeout_releases_the_job(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    started = asyncio.Event()

    @app.job(name="stuck.task")
    async def stuck() -> None:
        started.set()
        await asyncio.Event().wait()

    job_id = await app.enqueue("stuck.task")
    worker = start_worker(app, shutdown_timeout=timedelta(milliseconds=200))
    await asyncio.wait_for(started.wait(), 20)
    await app.stop()
    await asyncio.wait_for(worker, 20)
    row = await job_row(db, schema, job_id)
    assert (row["state"], row["attempts"], row["claim_token"]) == ("queued", 0, None)


async def test_open_ended_handler_gets_every_arg_and_return_value_is_ignored(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    received: dict[str, Any] = {}

    @app.job(name="kw.task")
    async def kw(a: int, **rest: Any) -> str:
        received.update(a=a, **rest)
        return "ignored"

    job_id = await app.enqueue("kw.task", {"a": 1, "b": [2], "c": None})
    worker = start_worker(app)
    row = await wait_state(db, schema, job_id, "done")
    await stop_worker(worker)
    assert received == {"a": 1, "b": [2], "c": None}
    assert json.loads(row["args_text"]) == {"a": 1, "b": [2], "c": None}


async def test_exception_text_postgres_cannot_store_is_recorded_and_the_worker_goes_on(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="odd.text", retries=0)
    async def odd_text(kind: str) -> None:
        raise ValueError({"nul": "before\x00after", "surrogate": "before\ud800after"}[kind])

    @app.job(name="plain.task")
    async def plain() -> None:
        return None

    nul = await app.enqueue("odd.text", {"kind": "nul"})
    surrogate = await app.enqueue("odd.text", {"kind": "surrogate"})
    worker = start_worker(app)
    nul_row = await wait_state(db, schema, nul, "dead")
    surrogate_row = await wait_state(db, schema, surrogate, "dead")
    # the worker still records outcomes afterwards
    later = await app.enqueue("plain.task")
    await wait_state(db, schema, later, "done")
    await stop_worker(worker)
    for row in (nul_row, surrogate_row):
        assert row["error_reason"] == "exception"
        assert "before" in row["error_message"] and "after" in row["error_message"]
        assert "ValueError" in json.loads(row["detail_text"])


async def test_exception_whose_str_fails_is_still_recorded(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    @app.job(name="unprintable.task", retries=0)
    async def unprintable() -> None:
        raise Unprintable

    job_id = await app.enqueue("unprintable.task")
    worker = start_worker(app)
    row = await wait_state(db, schema, job_id, "dead", timeout=10)
    await stop_worker(worker)
    assert row["error_reason"] == "exception"
    assert "Unprintable" in row["error_message"]
