"""The claims of a worker (or a drain) from the queues it serves that have a concurrency or
a rate limit; the limits themselves are enforced in the database
(:mod:`soniq.db.jobs.steered`), this only knows which queues to ask, and when to ask again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta

import asyncpg

from soniq.db.jobs import JobStore
from soniq.db.jobs.steered import LimitedQueue
from soniq.job import ClaimedJob

# How often the list of limited queues is read again: the longest a queue newly given a
# limit (or resumed with one) waits before this worker claims from it.
LOOK_EVERY = 0.5


class LimitedClaims:
    """Claims from the limited queues among ``queues`` (all when None)."""

    def __init__(
        self,
        store: JobStore,
        queues: Sequence[str] | None,
        *,
        max_attempts_by_task: dict[str, int],
        version_by_task: dict[str, int],
        lease: timedelta,
        worker_id: str,
    ) -> None:
        self._store = store
        self._queues = queues
        self._max_attempts, self._versions = max_attempts_by_task, version_by_task
        self._lease, self._worker_id = lease, worker_id
        self._limited: list[LimitedQueue] = []
        self._next_look = 0.0
        # The queues whose jobs this worker started: one finishing may free a place.
        self.names: frozenset[str] = frozenset()

    async def claim(
        self, conn: asyncpg.Connection, free: int
    ) -> tuple[list[ClaimedJob], float | None]:
        """Up to ``free`` jobs from the limited queues, and the seconds until a rate limit
        lets one more start (None: no rate is why fewer came)."""
        now = time.monotonic()
        if now >= self._next_look:
            self._next_look = now + LOOK_EVERY
            self._limited = await self._store.steering.limited(conn, self._queues)
            self.names = frozenset(q.queue for q in self._limited)
        jobs: list[ClaimedJob] = []
        soonest: float | None = None
        for queue in self._limited:
            if len(jobs) >= free:
                break
            more, wait = await self._store.steering.claim(
                conn,
                queue,
                limit=free - len(jobs),
                max_attempts_by_task=self._max_attempts,
                version_by_task=self._versions,
                lease=self._lease,
                worker_id=self._worker_id,
            )
            jobs.extend(more)
            if wait is not None:
                soonest = wait if soonest is None else min(soonest, wait)
        return jobs, soonest
