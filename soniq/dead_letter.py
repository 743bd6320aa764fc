"""The dead-letter queue: jobs that cannot run, kept for inspection, replay or purge."""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import asyncpg

from soniq.checks import possible_job_ids, whole_number
from soniq.db.connection import Database
from soniq.db.jobs import JobStore
from soniq.job import Job

_REPLAY_RACE_RETRIES = 5
_BULK_BATCH = 1000
_NO_ID_ABOVE = 2**63 - 1

# Called after each batch of a bulk operation with (done so far, matching at the start).
Progress = Callable[[int, int], None]


class DeadLetterQueue:
    """Reached as ``app.dead_letter``. Needs no handler registered: replay only moves rows."""

    def __init__(self, store: JobStore, database: Database) -> None:
        self._store = store
        self._database = database

    async def list(
        self, *, task_name: str | None = None, queue: str | None = None, limit: int = 100
    ) -> builtins.list[Job]:
        """Dead jobs, most recently dead-lettered first."""
        whole_number(limit, "limit", minimum=1)
        pool = await self._database.pool()
        with self._database.errors():
            return await self._store.reads.list_dead(
                pool, task_name=task_name, queue=queue, limit=limit
            )

    async def replay(self, job_id: int | Sequence[int]) -> builtins.list[int]:
        """Send dead jobs back to their queue with the attempt count reset; returns the ids
        that were dead and are now queued. A dead job whose ``dedup_key`` is held by a
        queued or running job stays dead, as replaying it would duplicate that job."""
        ids = possible_job_ids(job_id)
        pool = await self._database.pool()
        with self._database.errors():
            for _ in range(_REPLAY_RACE_RETRIES):
                try:
                    return await self._store.actions.replay(pool, ids)
                except asyncpg.UniqueViolationError:
                    # A job with the same dedup_key was enqueued while replaying: look again.
                    continue
            return await self._store.actions.replay(pool, ids)

    async def replay_all(
        self,
        *,
        task_name: str | None = None,
        queue: str | None = None,
        older_than: timedelta | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Replay every dead job matching the filters, in batches of 1,000 (each its own
        statement, so claiming goes on meanwhile); returns how many were replayed."""
        return await self._bulk(self.replay, task_name, queue, older_than, progress)

    async def count(
        self,
        *,
        task_name: str | None = None,
        queue: str | None = None,
        older_than: timedelta | None = None,
    ) -> int:
        """How many dead jobs match the filters (what ``purge_all`` would delete now)."""
        pool = await self._database.pool()
        with self._database.errors():
            return await self._store.reads.count_dead(
                pool, task_name=task_name, queue=queue, older_than=older_than
            )

    async def purge_all(
        self,
        *,
        task_name: str | None = None,
        queue: str | None = None,
        older_than: timedelta | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Delete every dead job matching the filters, in batches of 1,000; returns how many
        were deleted."""

        async def purge(ids: Sequence[int]) -> int:
            return await self.purge(ids)

        return await self._bulk(purge, task_name, queue, older_than, progress)

    async def _bulk(
        self,
        apply: Callable[[Sequence[int]], Awaitable[builtins.list[int] | int]],
        task_name: str | None,
        queue: str | None,
        older_than: timedelta | None,
        progress: Progress | None,
    ) -> int:
        pool = await self._database.pool()
        with self._database.errors():
            total = await self._store.reads.count_dead(
                pool, task_name=task_name, queue=queue, older_than=older_than
            )
            done, below = 0, _NO_ID_ABOVE
            while ids := await self._store.reads.dead_ids(
                pool,
                task_name=task_name,
                queue=queue,
                older_than=older_than,
                below_id=below,
                limit=_BULK_BATCH,
            ):
                applied = await apply(ids)
                done += applied if isinstance(applied, int) else len(applied)
                below = ids[-1]
                if progress is not None:
                    progress(done, total)
        return done

    async def purge(self, job_ids: Sequence[int] | None = None) -> int:
        """Delete the given dead jobs, or all of them; returns how many were deleted."""
        ids = None if job_ids is None else possible_job_ids(job_ids)
        pool = await self._database.pool()
        with self._database.errors():
            return await self._store.actions.purge_dead(pool, ids)
