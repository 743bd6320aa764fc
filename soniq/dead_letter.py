"""The dead-letter queue: jobs that cannot run, kept for inspection, replay or purge."""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from soniq.db.connection import translate_errors
from soniq.db.jobs import JobStore
from soniq.errors import ConfigurationError
from soniq.job import Job

_REPLAY_RACE_RETRIES = 5


class DeadLetterQueue:
    """Reached as ``app.dead_letter``. Needs no handler registered: replay only moves rows."""

    def __init__(
        self, store: JobStore, pool: Callable[[], Awaitable[asyncpg.Pool]], url: Callable[[], str]
    ) -> None:
        self._store = store
        self._pool = pool
        self._url = url

    async def list(
        self, *, task_name: str | None = None, queue: str | None = None, limit: int = 100
    ) -> builtins.list[Job]:
        """Dead jobs, most recently dead-lettered first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"limit must be a positive integer, got {limit!r}")
        pool = await self._pool()
        with translate_errors(self._url(), self._store.schema):
            return await self._store.list_dead(pool, task_name=task_name, queue=queue, limit=limit)

    async def replay(self, job_id: int | Sequence[int]) -> builtins.list[int]:
        """Send dead jobs back to their queue with the attempt count reset; returns the ids
        that were dead and are now queued. A dead job whose ``dedup_key`` is held by a
        queued or running job stays dead, as replaying it would duplicate that job."""
        ids = [job_id] if isinstance(job_id, int) else list(job_id)
        pool = await self._pool()
        with translate_errors(self._url(), self._store.schema):
            for _ in range(_REPLAY_RACE_RETRIES):
                try:
                    return await self._store.replay(pool, ids)
                except asyncpg.UniqueViolationError:
                    # A job with the same dedup_key was enqueued while replaying: look again.
                    continue
            return await self._store.replay(pool, ids)

    async def purge(self, job_ids: Sequence[int] | None = None) -> int:
        """Delete the given dead jobs, or all of them; returns how many were deleted."""
        pool = await self._pool()
        with translate_errors(self._url(), self._store.schema):
            return await self._store.purge_dead(pool, job_ids)
