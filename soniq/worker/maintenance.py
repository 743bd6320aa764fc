"""The worker's maintenance loop: leases renewed, expired ones rescued, old jobs pruned."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg

from soniq.db.connection import CONNECTION_ERRORS, pooled
from soniq.db.jobs import JobStore
from soniq.worker.service import Service

logger = logging.getLogger("soniq.worker")

_RESCUE_BATCH = 1000
_PRUNE_EVERY = 60.0


class Maintenance(Service):
    """Every third of the lease: ``renew`` this worker's leases (the heartbeat), take back
    jobs whose lease ran out on any worker (the rescuer), and once a minute delete finished
    jobs past their retention."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        store: JobStore,
        *,
        lease: timedelta,
        done_retention: timedelta,
        dead_retention: timedelta | None,
        renew: Callable[[asyncpg.Connection], Awaitable[None]],
    ) -> None:
        self._pool = pool
        self._store = store
        self._interval = lease.total_seconds() / 3
        self._done_retention = done_retention
        self._dead_retention = dead_retention
        self._renew = renew

    async def run(self) -> None:
        next_prune = 0.0
        while True:
            await asyncio.sleep(self._interval)
            prune = time.monotonic() >= next_prune
            if prune:
                next_prune = time.monotonic() + _PRUNE_EVERY
            try:
                async with pooled(self._pool) as conn:
                    await self._renew(conn)
                    await self._rescue(conn)
                    if prune:
                        await self._prune(conn)
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

    async def _prune(self, conn: asyncpg.Connection) -> None:
        """Drop history past retention (whole days) and keep days ahead for new history."""
        jobs = self._store.maintenance
        await jobs.add_history_days(conn)
        await jobs.prune_finished(conn, older_than=self._done_retention)
        if self._dead_retention is not None:
            await jobs.prune_dead(conn, older_than=self._dead_retention)
