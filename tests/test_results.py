"""Job results: stored as JSON by the worker, awaited with get_result (LISTEN, and a re-read
of the row every second whatever happens to that connection)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import asyncpg
import pytest
from pydantic import BaseModel

from soniq import JobFailedError, JobNotFoundError, ResultTimeoutError, Soniq
from tests.helpers import job_row, start_worker, stop_worker, wait_state, wait_until


class Total(BaseModel):
    amount: int
    currency: str


async def test_return_value_is_stored_as_json_and_returned(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="sum.task")
    async def add(a: int, b: int) -> dict[str, object]:
        return {"sum": a + b, "parts": [a, b]}

    job_id = await app.enqueue("sum.task", {"a": 2, "b": 3})
    worker = start_worker(app)
    try:
        assert await app.get_result(job_id, timeout=timedelta(seconds=20)) == {
            "sum": 5,
            "parts": [2, 3],
        }
    finally:
        await stop_worker(worker)
    row = await job_row(db, schema, job_id)
    assert (row["state"], json.loads(row["result"])) == ("done", {"sum": 5, "parts": [2, 3]})
    assert (await app.get_job(job_id)).result == {"sum": 5, "parts": [2, 3]}


async def test_none_is_stored_as_null_and_sync_handlers_return_too(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="none.task")
    async def nothing() -> None:
        return None

    @app.job(name="sync.task")
    def sync() -> str:
        return "from a thread"

    none_id = await app.enqueue("none.task")
    sync_id = await app.enqueue("sync.task")
    worker = start_worker(app)
    try:
        assert await app.get_result(none_id, timeout=20) is None
        assert await app.get_result(sync_id, timeout=20) == "from a thread"
    finally:
        await stop_worker(worker)
    assert (await job_row(db, schema, none_id))["result"] is None


async def test_result_model_validates_and_get_result_builds_the_model(app: Soniq) -> None:
    @app.job(name="total.task", result=Total)
    async def total() -> dict[str, object]:
        return {"amount": "12", "currency": "EUR"}  # coerced by the model

    job_id = await app.enqueue("total.task")
    worker = start_worker(app)
    try:
        value = await app.get_result(job_id, timeout=20, model=Total)
    finally:
        await stop_worker(worker)
    assert value == Total(amount=12, currency="EUR")
    assert await app.get_result(job_id, timeout=1) == {"amount": 12, "currency": "EUR"}


@pytest.mark.parametrize(
    ("result_model", "value", "message"),
    [
        (None, {1, 2}, "is not JSON: TypeError"),
        (None, float("nan"), "is not JSON: ValueError"),
        (Total, {"amount": "many"}, "fails Total: amount: "),
    ],
)
async def test_invalid_result_dead_letters_at_once(
    app: Soniq,
    db: asyncpg.Connection,
    schema: str,
    result_model: type[BaseModel] | None,
    value: object,
    message: str,
) -> None:
    @app.job(name="bad.result", retries=5, result=result_model)
    async def bad() -> object:
        return value

    job_id = await app.enqueue("bad.result")
    worker = start_worker(app)
    try:
        with pytest.raises(JobFailedError) as raised:
            await app.get_result(job_id, timeout=20)
    finally:
        await stop_worker(worker)
    row = await job_row(db, schema, job_id)
    assert (row["state"], row["attempts"], row["result"]) == ("dead", 1, None)
    assert row["error_reason"] == "invalid result"
    assert message in row["error_message"]
    assert raised.value.job_id == job_id and raised.value.state == "dead"
    assert raised.value.error is not None and raised.value.error.reason == "invalid result"


async def test_get_result_raises_with_the_error_of_a_dead_job(app: Soniq) -> None:
    @app.job(name="boom.task", retries=1)
    async def boom() -> None:
        raise RuntimeError("kaput")

    job_id = await app.enqueue("boom.task")
    worker = start_worker(app, poll=0.01)
    try:
        with pytest.raises(JobFailedError, match="kaput") as raised:
            await app.get_result(job_id, timeout=20)
    finally:
        await stop_worker(worker)
    assert raised.value.error is not None
    assert raised.value.error.reason == "exception"


async def test_get_result_times_out_and_reports_missing_jobs(app: Soniq) -> None:
    job_id = await app.enqueue("nobody.runs.this")
    started = time.monotonic()
    with pytest.raises(ResultTimeoutError) as raised:
        await app.get_result(job_id, timeout=timedelta(milliseconds=300))
    assert 0.3 <= time.monotonic() - started < 5
    assert raised.value.job_id == job_id
    with pytest.raises(JobNotFoundError):
        await app.get_result(job_id + 1000, timeout=1)


async def test_get_result_is_woken_by_the_notification_not_by_polling(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    release = asyncio.Event()

    @app.job(name="gated.task")
    async def gated() -> int:
        await release.wait()
        return 7

    job_id = await app.enqueue("gated.task")
    worker = start_worker(app)
    try:
        await wait_state(db, schema, job_id, "running")
        waiter = asyncio.create_task(app.get_result(job_id, timeout=30))
        await asyncio.sleep(0.2)  # let it listen and find the job still running
        assert not waiter.done()
        release.set()
        started = time.monotonic()
        assert await waiter == 7
        # the completer writes at once and the NOTIFY arrives at commit
        assert time.monotonic() - started < 2
    finally:
        await stop_worker(worker)


async def test_get_result_sees_the_job_finish_after_its_listen_connection_was_killed(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    release = asyncio.Event()

    @app.job(name="slow.finish")
    async def slow() -> str:
        await release.wait()
        return "finished"

    job_id = await app.enqueue("slow.finish")
    worker = start_worker(app)
    waiter = asyncio.create_task(app.get_result(job_id, timeout=60))
    listening = (
        "SELECT pid, backend_start FROM pg_stat_activity "
        f"WHERE query = 'LISTEN \"{schema}.results\"' AND pid <> pg_backend_pid()"
    )
    try:
        killed = await wait_until(lambda: db.fetchrow(listening))
        await db.execute("SELECT pg_terminate_backend($1)", killed["pid"])
        # It listens again, on a new connection...
        await wait_until(
            lambda: db.fetchval(
                f"SELECT count(*) FROM ({listening}) AS l WHERE l.backend_start > $1",
                killed["backend_start"],
            )
        )
        release.set()
        # ...and, notified or not, reads the row again: the result, not a timeout.
        assert await waiter == "finished"
    finally:
        release.set()
        waiter.cancel()
        await stop_worker(worker)


async def test_a_result_nested_too_deep_for_json_is_an_invalid_result_at_once(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="deep.result", retries=3)
    async def deep() -> list[object]:
        value: list[object] = []
        for _ in range(100_000):
            value = [value]
        return value

    job_id = await app.enqueue("deep.result")
    worker = start_worker(app)
    try:
        row = await wait_state(db, schema, job_id, "dead")
    finally:
        await stop_worker(worker)
    assert row["error_reason"] == "invalid result"
    assert row["attempts"] == 1, "not retried: it would return the same value again"
    assert "not JSON" in row["error_message"]
