"""Waiting for a job's result: LISTEN on the results channel, then re-read the job's row."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from soniq.db.connection import Database
from soniq.db.jobs import JobStore
from soniq.errors import JobFailedError, JobNotFoundError, ResultTimeoutError
from soniq.job import JobState
from soniq.waiting import wait_event


async def wait_for_result(
    database: Database,
    store: JobStore,
    job_id: int,
    *,
    seconds: float,
    model: type[BaseModel] | None,
) -> Any:
    """The finished job's result (see :meth:`soniq.Soniq.get_result`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    finished = asyncio.Event()

    def on_finished(_c: object, _pid: int, _channel: str, payload: str) -> None:
        # '' is a batch of successes (ids not listed): look at the row again.
        if payload in ("", str(job_id)):
            finished.set()

    pool = await database.pool()
    conn = await database.connect()
    try:
        with database.errors():
            await conn.add_listener(store.results_channel, on_finished)
            # Listening before the first look: a job finishing in between still wakes us.
            while True:
                finished.clear()
                job = await store.reads.get(pool, job_id)
                if job is None:
                    raise JobNotFoundError(job_id)
                if job.state is JobState.DONE:
                    return job.result if model is None else model.model_validate(job.result)
                if job.state in (JobState.DEAD, JobState.CANCELLED):
                    raise JobFailedError(job_id, job.state.value, job.error)
                if not await wait_event(finished, max(0.0, deadline - loop.time())):
                    raise ResultTimeoutError(job_id, seconds)
    finally:
        await conn.close()
