"""Limited claims: taking jobs of the queues that have a concurrency or a rate limit
(``queue_settings``, migration 0014), exactly, across every worker process and host.

The plain claim (:mod:`.claims`) skips every queue that has settings; a worker claims from
each limited queue it serves with :meth:`JobSteering.claim`, one transaction that

1. locks the queue's settings row: the limited claims of one queue take turns, and a
   paused queue (or one whose row is gone) gives nothing;
2. in a second statement, so its snapshot sees every claim that held the lock before,
   counts the queue's running jobs (a crashed worker's jobs count until they are
   rescued) and, for a rate, the starts recorded in the last period, per partition (the
   values of the ``partition_by`` args keys), and takes the oldest due jobs that fit under
   both, recording their starts. Times are the database's (``statement_timestamp()``, the
   same for the start recorded and the job's ``started_at``), so a worker's clock never
   matters.

Partitioned queues look at the first :data:`PARTITIONED_SCAN` due jobs of each lane: when
all of those belong to partitions at their limit, later jobs of other partitions wait
until some of them start.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import NamedTuple

import asyncpg

from soniq.db.jobs.claims import CLAIM_SET, CLAIMABLE, RETURNING_CLAIMED
from soniq.db.sql import Queryable, Statement, Statements
from soniq.job import ClaimedJob

PARTITIONED_SCAN = 1000


def _key(args: str) -> str:
    """The partition of a job whose args are ``args``: its partition_by values, as JSON
    text ('' when the queue is not partitioned)."""
    return f"""coalesce((SELECT json_agg({args} -> p.key ORDER BY p.n)::text
                         FROM unnest((SELECT partition_by FROM s)) WITH ORDINALITY
                              AS p(key, n)), '')"""


# started_at and the recorded start are this statement's time, taken after the lock
_STARTED_NOW = CLAIM_SET.replace("{started}", "statement_timestamp()")


class LimitedQueue(NamedTuple):
    """A served queue with a limit, as a worker needs to know it."""

    queue: str
    rated: bool  # it has a rate limit: a short claim may be followed by a wait
    partitioned: bool


_CLAIM = f"""
    WITH s AS (
        SELECT concurrency, rate_limit, rate_period, partition_by
        FROM {{schema}}.queue_settings WHERE queue = :queue AND NOT paused
    ),
    running AS (
        SELECT {_key("j.args")} AS key, count(*) AS n
        FROM {{schema}}.job_live AS j  -- through job_live_lease_idx: every running job
        WHERE j.state = 'running' AND j.queue = :queue
        GROUP BY 1
    ),
    recent AS (
        SELECT q.partition AS key, count(*) AS n
        FROM {{schema}}.queue_starts AS q, s
        WHERE q.queue = :queue AND q.started_at > statement_timestamp() - s.rate_period
        GROUP BY 1
    ),
    candidates AS (
        SELECT c.id, c.slot, c.priority, c.scheduled_at, k.key,
               row_number() OVER (PARTITION BY k.key
                                  ORDER BY c.priority DESC, c.scheduled_at, c.id) AS rank
        FROM {{schema}}.job_lanes AS l CROSS JOIN LATERAL (
            SELECT id, slot, priority, scheduled_at, args FROM {{schema}}.job_live AS c
            WHERE c.queue = l.queue AND c.priority = l.priority AND c.state = 'queued'
              AND c.scheduled_at <= now() AND {CLAIMABLE}
            ORDER BY c.scheduled_at, c.id
            LIMIT :scan
        ) AS c
        CROSS JOIN LATERAL (SELECT {_key("c.args")} AS key) AS k
        WHERE l.queue = :queue AND EXISTS (SELECT FROM s)
    ),
    chosen AS (
        SELECT c.id, c.slot FROM candidates AS c CROSS JOIN s
        LEFT JOIN running AS r ON r.key = c.key
        LEFT JOIN recent AS q ON q.key = c.key
        WHERE (s.concurrency IS NULL OR c.rank <= s.concurrency - coalesce(r.n, 0))
          AND (s.rate_limit IS NULL OR c.rank <= s.rate_limit - coalesce(q.n, 0))
        ORDER BY c.priority DESC, c.scheduled_at, c.id
        LIMIT :limit
    ),
    claimed AS (
        UPDATE {{schema}}.job_live AS j SET {_STARTED_NOW}
        WHERE j.id = ANY(ARRAY(SELECT id FROM chosen))
          AND j.slot = ANY(ARRAY(SELECT slot FROM chosen))
          AND j.state = 'queued'
        RETURNING {RETURNING_CLAIMED}
    ),
    started AS (
        INSERT INTO {{schema}}.queue_starts (queue, partition, started_at)
        SELECT :queue, {_key("claimed.args_json")}, statement_timestamp() FROM claimed, s
        WHERE s.rate_limit IS NOT NULL
    ),
    forgotten AS (  -- starts older than the period no longer count
        DELETE FROM {{schema}}.queue_starts AS q USING s
        WHERE q.queue = :queue AND q.started_at <= statement_timestamp() - s.rate_period
    )
    SELECT {", ".join(ClaimedJob._fields)} FROM claimed"""


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

    _lock = Statement(
        "SELECT paused FROM {schema}.queue_settings WHERE queue = :queue FOR NO KEY UPDATE"
    )
    _claim = Statement(_CLAIM)
    # When the rate's window next lets a job start: the oldest recorded start leaves it.
    _rate_wait = Statement(
        """
        SELECT extract(epoch FROM min(q.started_at) + s.rate_period - statement_timestamp())
               ::float8
        FROM {schema}.queue_settings AS s
        JOIN {schema}.queue_starts AS q ON q.queue = s.queue
        WHERE s.queue = :queue AND q.started_at > statement_timestamp() - s.rate_period
        GROUP BY s.rate_period"""
    )

    async def claim(
        self,
        conn: asyncpg.Connection,
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
        async with conn.transaction():
            if await self._lock.fetchval(conn, queue=queue.queue) is not False:
                return [], None  # paused, or its settings were removed meanwhile
            rows = await self._claim.fetch(
                conn,
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
            wait = None
            if queue.rated and len(rows) < limit:
                wait = await self._rate_wait.fetchval(conn, queue=queue.queue)
        return [ClaimedJob._make(row) for row in rows], wait
