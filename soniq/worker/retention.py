"""Retention, a service of its own: once a minute, history days and dead letters past their
retention are dropped, days ahead are added for new history, and the completer's counts of
the minutes that are over are summed per minute.

Apart from the heartbeat on purpose: dropping a day waits (briefly) for locks, and deleting
dead letters can wait on a transaction that holds them; a heartbeat that waited behind
either could let this worker's leases run out.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import asyncpg

from soniq.db.connection import CONNECTION_ERRORS, pooled
from soniq.db.jobs import JobStore
from soniq.worker.service import Service

logger = logging.getLogger("soniq.worker")

_EVERY = 60.0


class Retention(Service):
    """Drops what is past ``done_retention`` (whole days of history and attempts) and, when
    ``dead_retention`` is set, dead letters older than that; first when the worker starts."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        store: JobStore,
        *,
        done_retention: timedelta,
        dead_retention: timedelta | None,
    ) -> None:
        self._pool = pool
        self._store = store
        self._done_retention = done_retention
        self._dead_retention = dead_retention

    async def run(self) -> None:
        while True:
            try:
                async with pooled(self._pool) as conn:
                    await self._prune(conn)
            except CONNECTION_ERRORS as exc:
                logger.warning("retention skipped (%s: %s)", type(exc).__name__, exc)
            except Exception:  # never let one bad round stop retention
                logger.exception("retention failed; trying again in %.0fs", _EVERY)
            await asyncio.sleep(_EVERY)

    async def _prune(self, conn: asyncpg.Connection) -> None:
        jobs = self._store.maintenance
        await jobs.add_history_days(conn)
        await jobs.sum_done_minutes(conn)
        await jobs.prune_finished(conn, older_than=self._done_retention)
        if self._dead_retention is not None:
            await jobs.prune_dead(conn, older_than=self._dead_retention)
