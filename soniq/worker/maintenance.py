"""The worker's maintenance loop: leases renewed, expired ones rescued (retention is a
service of its own, :mod:`soniq.worker.retention`, so that a heartbeat never waits on it)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg

from soniq.db.connection import CONNECTION_ERRORS, pooled
from soniq.db.jobs import JobStore
from soniq.worker.service import Service

logger = logging.getLogger("soniq.worker")

_RESCUE_BATCH = 1000


class Maintenance(Service):
    """Every third of the lease: ``renew`` this worker's leases (the heartbeat), and take
    back jobs whose lease ran out on any worker (the rescuer)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        store: JobStore,
        *,
        lease: timedelta,
        renew: Callable[[asyncpg.Connection], Awaitable[None]],
    ) -> None:
        self._pool = pool
        self._store = store
        self._interval = lease.total_seconds() / 3
        self._renew = renew

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                async with pooled(self._pool) as conn:
                    await self._renew(conn)
                    await self._rescue(conn)
            except CONNECTION_ERRORS as exc:
                logger.warning("maintenance skipped (%s: %s)", type(exc).__name__, exc)
            except Exception:  # never let heartbeats stop while the worker runs
                logger.exception("maintenance failed; trying again in %.1fs", self._interval)

    async def _rescue(self, conn: asyncpg.Connection) -> None:
        """Take back jobs whose lease ran out, on any worker."""
        rescued = await self._store.maintenance.rescue_expired(conn, limit=_RESCUE_BATCH)
        for job_id, state in rescued:
            logger.warning(
                "job %d: its worker's lease expired; %s",
                job_id,
                {"dead": "dead-lettered", "cancelled": "cancelled"}.get(state, "requeued"),
            )
