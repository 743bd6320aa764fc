"""The promoter every worker runs: moves scheduled jobs (delayed, or retrying after a
backoff) into the live ring as they fall due, and wakes the workers of their queues."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from soniq.db.connection import CONNECTION_ERRORS, pooled
from soniq.db.jobs import JobStore
from soniq.waiting import backoff
from soniq.worker.service import Service

logger = logging.getLogger("soniq.worker")

_BATCH = 1000
# The longest it sleeps: a job scheduled meanwhile by another process is due at most this
# late (a job due sooner than that is not announced to the promoters).
_MAX_SLEEP = 0.25


class Promoter(Service):
    """Promotes due scheduled jobs, then sleeps until the next is due (at most 250 ms).
    Any number of workers may promote at once: each takes rows the others do not hold."""

    def __init__(self, pool: asyncpg.Pool, store: JobStore) -> None:
        self._pool = pool
        self._store = store

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                async with pooled(self._pool) as conn:
                    moved, next_due = await self._store.claims.promote(conn, limit=_BATCH)
                failures = 0
            except CONNECTION_ERRORS as exc:
                failures += 1
                logger.warning("cannot promote scheduled jobs (%s)", type(exc).__name__)
                await asyncio.sleep(backoff(failures))
                continue
            except Exception:  # never let one bad round stop promotion
                logger.exception("promoting scheduled jobs failed; trying again shortly")
                await asyncio.sleep(1.0)
                continue
            if moved == _BATCH:
                continue  # more are due
            delay = _MAX_SLEEP if next_due is None else min(_MAX_SLEEP, max(0.0, next_due))
            await asyncio.sleep(delay)
