"""Waiting for a job's result: re-read the job's row whenever its results notification
arrives, and at least every second whatever happens to the LISTEN connection."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
from pydantic import BaseModel

from soniq.db.connection import CONNECTION_ERRORS, Database
from soniq.db.jobs import JobStore
from soniq.errors import (
    DatabaseUnavailableError,
    JobFailedError,
    JobNotFoundError,
    ResultTimeoutError,
)
from soniq.job import JobState
from soniq.waiting import wait_event

# How often the row is read again without a notification: the bound on how late a result
# is seen when notifications are lost (the listener's connection died, or LISTEN is not
# available through a transaction-mode pooler and this is the polling interval).
RECHECK_SECONDS = 1.0
POLL_SECONDS = 0.25


class _ResultListener:
    """A LISTEN connection on the results channel that sets ``finished`` for this job, and
    is opened again after it is lost."""

    def __init__(self, database: Database, channel: str, job_id: int) -> None:
        self._database = database
        self._channel = channel
        self._job_id = str(job_id)
        self.finished = asyncio.Event()
        self._conn: asyncpg.Connection | None = None

    def _on_notify(self, _c: object, _pid: int, _channel: str, payload: str) -> None:
        # '' is a batch of successes (ids not listed): look at the row again.
        if payload in ("", self._job_id):
            self.finished.set()

    async def ensure(self) -> None:
        """Listen, if not listening; a failure is left to the next round (the row is read
        every second anyway)."""
        if self._conn is not None and not self._conn.is_closed():
            return
        self.close()
        with contextlib.suppress(*CONNECTION_ERRORS, asyncpg.PostgresError):
            conn = await self._database.listen()
            conn.add_termination_listener(lambda _c: self.finished.set())
            await conn.add_listener(self._channel, self._on_notify)
            self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None


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
    listener = (
        _ResultListener(database, store.results_channel, job_id) if database.can_listen else None
    )
    try:
        while True:
            if listener is not None:
                listener.finished.clear()
                # Listening before each look: a job finishing in between still wakes us.
                await listener.ensure()
            try:
                job = await database.run(lambda db: store.reads.get(db, job_id))
            except DatabaseUnavailableError:
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(min(deadline - loop.time(), POLL_SECONDS))
                continue  # a restart or a killed connection: look again
            if job is None:
                raise JobNotFoundError(job_id)
            if job.state is JobState.DONE:
                return job.result if model is None else model.model_validate(job.result)
            if job.state in (JobState.DEAD, JobState.CANCELLED):
                raise JobFailedError(job_id, job.state.value, job.error)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ResultTimeoutError(job_id, seconds)
            if listener is None:
                await asyncio.sleep(min(remaining, POLL_SECONDS))
            else:
                await wait_event(listener.finished, min(remaining, RECHECK_SECONDS))
    finally:
        if listener is not None:
            listener.close()
