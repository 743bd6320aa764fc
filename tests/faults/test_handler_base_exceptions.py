"""A handler cannot take its worker down or wedge its job by raising something that is not
an ``Exception``: ``SystemExit``, ``KeyboardInterrupt``, ``GeneratorExit`` or a custom
``BaseException``, from an async handler, a blocking one (in a thread) or one with a
timeout (in a task of its own). Each is recorded as a failed attempt naming what was
raised; the worker process keeps running the next jobs and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal

import asyncpg
import pytest

from soniq import Soniq
from tests.fault_support import Workers
from tests.helpers import wait_until

KINDS = ["SystemExit", "KeyboardInterrupt", "GeneratorExit", "custom"]
TASKS = ["fault.raise_base", "fault.raise_base_sync", "fault.raise_base_limited"]


@pytest.mark.faults
async def test_base_exceptions_from_handlers_are_failed_attempts_and_the_worker_goes_on(
    app: Soniq, db: asyncpg.Connection, schema: str, side_effects: str, workers: Workers
) -> None:
    raising = {
        (task, kind): await app.enqueue(task, {"kind": kind}) for task in TASKS for kind in KINDS
    }
    worker = workers.start("--concurrency", "4")
    await wait_until(
        lambda: db.fetchval(
            f"SELECT count(*) = $2 FROM {schema}.jobs WHERE id = ANY($1::bigint[]) "
            "AND state = 'dead'",
            list(raising.values()),
            len(raising),
        ),
        timeout=30,
    )
    rows = {
        r["id"]: r
        for r in await db.fetch(
            f"SELECT id, state, error_reason, error_message FROM {schema}.jobs "
            "WHERE id = ANY($1::bigint[])",
            list(raising.values()),
        )
    }
    for (task, kind), job_id in raising.items():
        row = rows[job_id]
        assert row["error_reason"] == "exception", (task, kind, dict(row))
        name = "_Custom" if kind == "custom" else kind
        assert f"{name}: raised by job {job_id}" in row["error_message"], (task, dict(row))
        assert "not an Exception" in row["error_message"]

    # The same process runs the next job, then stops gracefully with nothing left running.
    assert worker.process.poll() is None, worker.output()
    after = await app.enqueue("fault.count", {"n": 1})
    await wait_until(
        lambda: db.fetchval(f"SELECT state = 'done' FROM {schema}.jobs WHERE id = $1", after)
    )
    worker.signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 30) == 0, worker.output()
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.jobs WHERE state = 'running'") == 0
