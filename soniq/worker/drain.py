"""Running every due job in this process, one at a time, for tests (``app.drain()``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from soniq import tracing
from soniq.backoff import Backoff
from soniq.db.connection import Database, pooled
from soniq.db.jobs import JobStore
from soniq.db.jobs.claims import EVERYTHING
from soniq.registry import Registry
from soniq.worker.attempt import log_outcome, run_claimed
from soniq.worker.limited import LimitedClaims
from soniq.worker.threads import HandlerThreads
from soniq.worker.worker import new_worker_id

# No heartbeat runs during a drain: the lease only has to outlast the longest handler.
_DRAIN_LEASE = timedelta(hours=1)


async def drain(
    database: Database,
    store: JobStore,
    registry: Registry,
    *,
    policy: Backoff,
    queues: Sequence[str] | None,
) -> int:
    """Claim, run and record due jobs of ``queues`` (all when None) one at a time, through
    the worker's own claim statement, attempt path and outcome statement, until none is
    due; returns how many attempts ran (see :meth:`soniq.Soniq.drain`)."""
    pool = await database.pool()
    worker_id = f"drain:{new_worker_id()}"
    threads = HandlerThreads("soniq-drain")
    limits = LimitedClaims(
        store,
        queues,
        max_attempts_by_task=registry.max_attempts_by_task(),
        version_by_task=registry.versions_by_task(),
        lease=_DRAIN_LEASE,
        worker_id=worker_id,
    )
    ran = 0
    while True:
        with database.errors():
            async with pooled(pool) as conn:
                while (await store.claims.promote(conn, limit=1000))[0]:
                    pass  # every due scheduled job (a retry whose backoff passed) is runnable
                claimed = await store.claims.claim(
                    conn,
                    limit=1,
                    queues=queues,
                    max_attempts_by_task=registry.max_attempts_by_task(),
                    version_by_task=registry.versions_by_task(),
                    lease=_DRAIN_LEASE,
                    worker_id=worker_id,
                    window=EVERYTHING,
                )
                if not claimed:  # a job a queue's limits let start now, if any
                    claimed, _ = await limits.claim(conn, 1)
        if not claimed:
            return ran
        job = claimed[0]
        try:
            outcome = await run_claimed(
                job, registry, policy=policy, threads=threads, traced=tracing.active()
            )
        except BaseException:
            # Cancelled (or a bug): give the job back unspent, as a worker does on shutdown.
            async with pooled(pool) as conn:
                await store.outcomes.release(conn, [job.claim])
            raise
        log_outcome(job, outcome)
        with database.errors():
            async with pooled(pool) as conn:
                await store.outcomes.record(conn, [outcome])
        ran += 1
