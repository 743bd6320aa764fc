"""Claims: locking due jobs for a worker, and promoting scheduled jobs as they fall due.

Why claims look only at recent jobs first. Claiming updates a queued row to running, which
leaves its entry in the claim index pointing at a dead row version. VACUUM removes such
entries, and a scan marks them dead as it passes, but only once no transaction could still
see the old version: while any long transaction pins the xmin horizon (a report, a
``pg_dump``, a forgotten ``BEGIN``), every claim would walk every entry of every job claimed
since, getting slower by the second. So each lane (queue, priority) is scanned from
``now() - window``: the walk is bounded by the jobs claimed in the last ``window``
(:data:`CLAIM_WINDOW`) whatever the horizon. Jobs due longer ago (a backlog, or one
enqueued in a transaction that stayed open longer than the window) are found by the same
statement with an unbounded window, which the worker runs when the recent one comes back
short, at most once a second unless it keeps finding a backlog.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from soniq.db.sql import Queryable, Statement, Statements
from soniq.job import ClaimedJob

# How far back the recent claim looks; rows put back in the ring (released, rescued,
# promoted late) are given a due time at most half of it ago, so the recent claim sees them.
CLAIM_WINDOW = timedelta(seconds=5)
EVERYTHING = timedelta(days=365 * 1000)  # the unbounded window
REQUEUE_AT_MOST_AGO = CLAIM_WINDOW / 2

# The expression of each ClaimedJob field: the RETURNING list is built from ClaimedJob's own
# field order, so the row unpacks into it by position (the fast way, once per job).
_CLAIMED_COLUMNS = {
    "id": "j.id",
    "slot": "j.slot",
    "task_name": "j.task_name",
    "queue": "j.queue",
    "args_json": "j.args",
    "attempts": "j.attempts",
    "max_attempts": "j.max_attempts",
    "enqueued_at": "j.enqueued_at",
    "claim_token": "j.claim_token",
    "contract_version": "j.contract_version",
    "queue_wait": "extract(epoch FROM now() - j.scheduled_at)::float8",
    "trace_context": "j.trace_context::text",
}
RETURNING_CLAIMED = ", ".join(
    f"{_CLAIMED_COLUMNS[field]} AS {field}" for field in ClaimedJob._fields
)

# A queued job c that a claim may take.
CLAIMABLE = """c.cancel_requested_at IS NULL  -- app.cancel() is moving it to history
              -- a job written against a newer contract version than this worker runs is
              -- left, unspent, for a worker that can run it
              AND (c.contract_version IS NULL OR c.contract_version <= coalesce(
                    (SELECT v.version FROM unnest(:versioned_tasks::text[],
                                                  :versions::int[]) AS v(task_name, version)
                     WHERE v.task_name = c.task_name),
                    c.contract_version))"""

# How a claim changes the job j it takes (claim_limited, migration 0014, does the same).
CLAIM_SET = """
        state = 'running',
        attempts = j.attempts + 1,
        -- the consumer's registered retries decide, not the producer's guess
        max_attempts = coalesce(
            (SELECT l.max_attempts FROM unnest(:registered_tasks::text[],
                                               :registered_max_attempts::int[])
                                               AS l(task_name, max_attempts)
             WHERE l.task_name = j.task_name),
            j.max_attempts),
        claim_token = gen_random_uuid(),
        started_at = now(),
        lease_expires_at = now() + :lease::interval,
        worker_id = :worker_id"""

# The plain claim's first line: queue settings wait for the claims under way to finish
# (soniq.db.queues), finding them by it in pg_stat_activity.
CLAIM_MARK = "/* soniq claim {schema} */"

# A lane l of a queue without settings: the limited claims (soniq.db.jobs.steered) serve
# the others. Queue settings are few, so this costs one probe of a tiny table per lane.
UNSTEERED = "NOT EXISTS (SELECT 1 FROM {schema}.queue_settings AS s WHERE s.queue = l.queue)"

# Each lane of the served queues gives its first `limit` claimable jobs through
# job_live_claim_idx (one range per ring partition, merged), locked, skipping rows other
# workers hold; then the best `limit` of those across lanes are taken. Locks on the rest
# last only for this statement.
_CLAIM = (
    CLAIM_MARK
    + """
    WITH next AS (
        SELECT c.id, c.slot FROM {schema}.job_lanes AS l CROSS JOIN LATERAL (
            SELECT id, slot, priority, scheduled_at FROM {schema}.job_live AS c
            WHERE c.queue = l.queue AND c.priority = l.priority AND c.state = 'queued'
              AND c.scheduled_at <= now() AND c.scheduled_at > now() - :window::interval
              AND """
    + CLAIMABLE
    + """
            ORDER BY c.scheduled_at, c.id
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
        ) AS c
        WHERE {lanes}
        ORDER BY c.priority DESC, c.scheduled_at, c.id
        LIMIT :limit
    )
    UPDATE {schema}.job_live AS j SET"""
    + CLAIM_SET
    + """
    -- ANY(ARRAY(...)) keeps the primary-key lookups (a join may hash the whole ring), and
    -- the slots prune the ring to the partitions the jobs are in
    WHERE j.id = ANY(ARRAY(SELECT id FROM next)) AND j.slot = ANY(ARRAY(SELECT slot FROM next))
    RETURNING """
    + RETURNING_CLAIMED
)


class JobClaims(Statements):
    """How workers (and ``app.drain()``) take due jobs."""

    _claim_any = Statement(_CLAIM.replace("{lanes}", UNSTEERED))
    _claim_queues = Statement(
        _CLAIM.replace("{lanes}", f"l.queue = ANY(:queues::text[]) AND {UNSTEERED}")
    )

    async def claim(
        self,
        db: Queryable,
        *,
        limit: int,
        queues: Sequence[str] | None,
        max_attempts_by_task: dict[str, int],
        version_by_task: dict[str, int],
        lease: timedelta,
        worker_id: str,
        window: timedelta = CLAIM_WINDOW,
    ) -> list[ClaimedJob]:
        """Lock up to ``limit`` jobs due within ``window``, highest priority then oldest
        first, for this worker, skipping jobs of a newer contract version than
        ``version_by_task`` allows."""
        values = {
            "limit": limit,
            "registered_tasks": list(max_attempts_by_task),
            "registered_max_attempts": list(max_attempts_by_task.values()),
            "lease": lease,
            "worker_id": worker_id,
            "versioned_tasks": list(version_by_task),
            "versions": list(version_by_task.values()),
            "window": window,
        }
        if queues is None:
            rows = await self._claim_any.fetch(db, **values)
        else:
            rows = await self._claim_queues.fetch(db, **values, queues=list(queues))
        return [ClaimedJob._make(row) for row in rows]

    # Due scheduled jobs move into the ring, in the order they fell due; each lane's
    # workers are woken. Skip-locked, so any number of workers may promote at once.
    _promote = Statement(
        """
        WITH due AS (
            DELETE FROM {schema}.job_scheduled WHERE id IN (
                SELECT id FROM {schema}.job_scheduled
                WHERE scheduled_at <= now()  -- job_scheduled_due_idx
                ORDER BY scheduled_at
                LIMIT :limit
                FOR UPDATE SKIP LOCKED)
            RETURNING *
        ),
        moved AS (
            INSERT INTO {schema}.job_live (slot, id, task_name, queue, args, state, priority,
                attempts, max_attempts, scheduled_at, enqueued_at, started_at, worker_id,
                error_reason, error_message, error_detail, dedup_key, contract_version,
                contract_fingerprint, trace_context)
            SELECT {schema}.live_slot(), id, task_name, queue, args, 'queued', priority,
                attempts, max_attempts, greatest(scheduled_at, now() - :recent::interval),
                enqueued_at, started_at, worker_id, error_reason, error_message,
                error_detail, dedup_key, contract_version, contract_fingerprint,
                trace_context
            FROM due
            RETURNING queue
        )
        SELECT (SELECT count(*) FROM moved) AS moved,
               -- one notification per queue: PostgreSQL folds identical ones
               (SELECT count(*) FROM (SELECT pg_notify('{schema}.jobs', queue) FROM moved)
                AS woken) AS notified,
               extract(epoch FROM (SELECT min(scheduled_at) FROM {schema}.job_scheduled
                                   WHERE scheduled_at > now()) - now())::float8 AS next_due"""
    )

    async def promote(self, db: Queryable, *, limit: int) -> tuple[int, float | None]:
        """Move up to ``limit`` due scheduled jobs into the ring; returns how many moved
        and the seconds until the next scheduled job is due (None: none is waiting)."""
        row = await self._promote.fetchrow(db, limit=limit, recent=REQUEUE_AT_MOST_AGO)
        assert row is not None
        return int(row["moved"]), row["next_due"]
