"""The recycler every worker runs: once a second, truncates the live ring's partitions
that no longer take inserts and hold nothing (or only a few stragglers, moved out first).
Whichever worker gets the advisory lock does it; see
:meth:`soniq.db.jobs.maintenance.JobMaintenance.recycle`."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from soniq.db.connection import CONNECTION_ERRORS, pooled
from soniq.db.jobs import JobStore
from soniq.worker.service import Service

logger = logging.getLogger("soniq.worker")

_EVERY = 1.0
# A partition held this long by another transaction is reported (the ring grows meanwhile).
_REPORT_BLOCKED_AFTER = 60.0


class Recycler(Service):
    """Keeps the live ring small: see the module docstring."""

    def __init__(self, pool: asyncpg.Pool, store: JobStore) -> None:
        self._pool = pool
        self._store = store

    async def run(self) -> None:
        blocked_since: float | None = None
        while True:
            await asyncio.sleep(_EVERY)
            try:
                async with pooled(self._pool) as conn:
                    recycled = await self._store.maintenance.recycle(conn)
            except CONNECTION_ERRORS as exc:
                logger.debug("ring recycling skipped (%s)", type(exc).__name__)
                continue
            except Exception:  # never let one bad round stop recycling
                logger.exception("ring recycling failed; trying again in %.0fs", _EVERY)
                continue
            if not recycled.blocked:
                blocked_since = None
                continue
            now = time.monotonic()
            if blocked_since is None:
                blocked_since = now
            elif now - blocked_since >= _REPORT_BLOCKED_AFTER:
                logger.warning(
                    "the live ring cannot be recycled: %s; a long transaction that read "
                    "Soniq's tables holds it, and the ring grows until it ends",
                    ", ".join(recycled.blocked),
                )
                blocked_since = now
