"""The periodic loop every worker runs: enqueues each due tick of the app's schedules.

All workers run it; the tick claim in :class:`PeriodicStore` makes exactly one of them
enqueue each tick. The database's clock decides what is due, so workers whose clocks
disagree still agree on the ticks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import asyncpg

from soniq.db.connection import CONNECTION_ERRORS, pooled
from soniq.db.jobs import JobStore
from soniq.db.periodic import PeriodicStore
from soniq.periodic import Schedule
from soniq.waiting import backoff
from soniq.worker.service import Service

logger = logging.getLogger("soniq.worker")

_MAX_SLEEP = 60.0


class Scheduler(Service):
    """Enqueues the due ticks of an app's periodic schedules."""

    def __init__(
        self,
        store: PeriodicStore,
        jobs: JobStore,
        pool: asyncpg.Pool,
        schedules: Sequence[Schedule],
    ) -> None:
        self._store = store
        self._jobs = jobs
        self._pool = pool
        self._schedules = list(schedules)

    async def run(self) -> None:
        """Enqueue due ticks, then sleep until the next one, until cancelled."""
        failures = 0
        while True:
            try:
                delay = await self._enqueue_due()
                failures = 0
            except CONNECTION_ERRORS as exc:
                failures += 1
                delay = backoff(failures)
                logger.warning("periodic jobs: cannot reach the database (%s)", exc)
            except Exception:  # never let one bad round stop the schedules
                logger.exception("periodic jobs: enqueueing failed; trying again shortly")
                delay = 5.0
            await asyncio.sleep(delay)

    async def _enqueue_due(self) -> float:
        """Enqueue what is due; returns the seconds until the next tick of any schedule."""
        async with pooled(self._pool) as conn:
            now, last = await self._store.last_ticks(conn, [s.key for s in self._schedules])
            for schedule in self._schedules:
                for tick in schedule.due_ticks(last.get(schedule.key), now):
                    job_id = await self._jobs.writes.insert_for_tick(
                        conn, schedule.key, tick, schedule.job
                    )
                    if job_id is not None:
                        logger.debug(
                            "periodic %s: enqueued job %d for %s", schedule.key, job_id, tick
                        )
        following = min(schedule.next_after(now) for schedule in self._schedules)
        # a little late rather than early: an early wake finds nothing due yet
        return min(_MAX_SLEEP, max(0.0, (following - now).total_seconds()) + 0.005)
