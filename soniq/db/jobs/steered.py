"""Limited claims: taking jobs of the queues that have a concurrency or a rate limit
(``queue_settings``, migration 0014), exactly, across every worker process and host.

The plain claim (:mod:`.claims`) skips every queue that has settings; a worker claims from
each limited queue it serves with :meth:`JobSteering.claim`: one call of the database
function ``claim_limited`` (migration 0014), so one round trip and one transaction, that

1. locks the queue's settings row: the limited claims of one queue take turns, and a
   paused queue (or one whose row is gone) gives nothing;
2. in a second statement, so its snapshot sees every claim that held the lock before,
   counts the queue's running jobs (a crashed worker's jobs count until they are
   rescued) and, for a rate, the starts recorded in the last period, per partition (the
   values of the ``partition_by`` args keys), and takes the oldest due jobs that fit under
   both, recording their starts. Times are the database's (the clock once the lock is
   held, the same for the start recorded and the job's ``started_at``), so a worker's
   clock never matters;
3. when the rate is why fewer jobs came, tells when its window next lets a job start.

Partitioned queues look at the first :data:`PARTITIONED_SCAN` due jobs of each lane: when
all of those belong to partitions at their limit, later jobs of other partitions wait
until some of them start.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import NamedTuple

from soniq.db.sql import Queryable, Statement, Statements
from soniq.job import ClaimedJob

PARTITIONED_SCAN = 1000


class LimitedQueue(NamedTuple):
    """A served queue with a limit, as a worker needs to know it."""

    queue: str
    rated: bool  # it has a rate limit: a short claim may be followed by a wait
    partitioned: bool


class JobSteering(Statements):
    """How workers claim from queues with limits, and learn which queues have them."""

    _limited = Statement(
        """
        SELECT queue, rate_limit IS NOT NULL AS rated, cardinality(partition_by) > 0
        FROM {schema}.queue_settings
        WHERE NOT paused AND (concurrency IS NOT NULL OR rate_limit IS NOT NULL)
          AND (:queues::text[] IS NULL OR queue = ANY(:queues::text[]))
        ORDER BY queue"""
    )

    async def limited(self, db: Queryable, queues: Sequence[str] | None) -> list[LimitedQueue]:
        """The queues among ``queues`` (all when None) that have a limit and are not
        paused."""
        rows = await self._limited.fetch(db, queues=None if queues is None else list(queues))
        return [LimitedQueue(*row) for row in rows]

    # claim_limited's rows: the claimed jobs (ClaimedJob's fields, in order), then, when
    # the rate is why fewer came, one row with only rate_wait.
    _claim = Statement(
        """
        SELECT * FROM {schema}.claim_limited(:queue, :limit, :scan, :registered_tasks,
            :registered_max_attempts, :lease, :worker_id, :versioned_tasks, :versions)"""
    )

    async def claim(
        self,
        db: Queryable,
        queue: LimitedQueue,
        *,
        limit: int,
        max_attempts_by_task: dict[str, int],
        version_by_task: dict[str, int],
        lease: timedelta,
        worker_id: str,
    ) -> tuple[list[ClaimedJob], float | None]:
        """Claim up to ``limit`` due jobs of ``queue`` within its limits (see the module
        docstring); also, when fewer came and its rate is why, the seconds until the rate
        lets another job start (None: no such wait)."""
        rows = await self._claim.fetch(
            db,
            queue=queue.queue,
            limit=limit,
            scan=max(limit, PARTITIONED_SCAN) if queue.partitioned else limit,
            registered_tasks=list(max_attempts_by_task),
            registered_max_attempts=list(max_attempts_by_task.values()),
            lease=lease,
            worker_id=worker_id,
            versioned_tasks=list(version_by_task),
            versions=list(version_by_task.values()),
        )
        if rows and rows[-1][0] is None:
            return [ClaimedJob._make(row[:-1]) for row in rows[:-1]], rows[-1][-1]
        return [ClaimedJob._make(row[:-1]) for row in rows], None
