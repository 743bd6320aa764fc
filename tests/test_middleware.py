"""Middleware around job execution: order, context, results and failures."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from soniq import JobContext, RegistrationError, Soniq
from tests.helpers import start_worker, stop_worker, wait_state

CallNext = Callable[[], Awaitable[Any]]


async def test_middleware_runs_in_registration_order_outermost_first(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    events: list[str] = []

    @app.middleware
    async def outer(ctx: JobContext, call_next: CallNext) -> Any:
        events.append(f"outer in {ctx.task_name} #{ctx.job_id} attempt {ctx.attempt}")
        result = await call_next()
        events.append(f"outer out {result}")
        return result

    @app.middleware
    async def inner(ctx: JobContext, call_next: CallNext) -> Any:
        events.append("inner in")
        result = await call_next()
        events.append("inner out")
        return result * 10

    @app.job(name="mw.task")
    def handler(n: int) -> int:  # a sync handler goes through the same chain
        events.append("handler")
        return n

    job_id = await app.enqueue("mw.task", {"n": 4})
    worker = start_worker(app)
    row = await wait_state(db, schema, job_id, "done")
    await stop_worker(worker)
    assert events == [
        f"outer in mw.task #{job_id} attempt 1",
        "inner in",
        "handler",
        "inner out",
        "outer out 40",
    ]
    assert json.loads(row["result"]) == 40


async def test_an_exception_in_middleware_fails_the_attempt(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    calls: list[int] = []

    @app.middleware
    async def flaky(ctx: JobContext, call_next: CallNext) -> Any:
        if ctx.attempt == 1:
            raise RuntimeError("session unavailable")
        return await call_next()

    @app.job(name="mw.retry", retries=2)
    async def handler() -> str:
        calls.append(1)
        return "ok"

    job_id = await app.enqueue("mw.retry")
    worker = start_worker(app, poll=0.01)
    row = await wait_state(db, schema, job_id, "done")
    await stop_worker(worker)
    assert (row["attempts"], json.loads(row["result"])) == (2, "ok")
    assert calls == [1]  # the first attempt never reached the handler


async def test_middleware_sees_handler_exceptions(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    seen: list[str] = []

    @app.middleware
    async def observe(ctx: JobContext, call_next: CallNext) -> Any:
        try:
            return await call_next()
        except ValueError as exc:
            seen.append(str(exc))
            raise

    @app.job(name="mw.dead", retries=0)
    async def handler() -> None:
        raise ValueError("bad input")

    job_id = await app.enqueue("mw.dead")
    worker = start_worker(app)
    row = await wait_state(db, schema, job_id, "dead")
    await stop_worker(worker)
    assert seen == ["bad input"]
    assert row["error_reason"] == "exception"
    assert "ValueError: bad input" in row["error_message"]


def test_middleware_must_be_callable(app: Soniq) -> None:
    with pytest.raises(RegistrationError):
        app.middleware("not a function")  # type: ignore[arg-type]
