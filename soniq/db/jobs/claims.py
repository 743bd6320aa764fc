"""The claim: locking due jobs for a worker, the statement every worker runs the most."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from soniq.db.sql import Queryable, Statement, Statements
from soniq.job import ClaimedJob

# The expression of each ClaimedJob field: the RETURNING list is built from ClaimedJob's own
# field order, so the row unpacks into it by position (the fast way, once per job).
_CLAIMED_COLUMNS = {
    "id": "j.id",
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
_RETURNING = ", ".join(f"{_CLAIMED_COLUMNS[field]} AS {field}" for field in ClaimedJob._fields)

# Claim order is per queue through jobs_claim_queue_idx: each queue in the worker's list
# gives its first `limit` claimable jobs (locked, skipping rows other workers hold), then
# the best `limit` of those across queues are taken. Locks on the rest last only for this
# statement.
_CLAIM = (
    """
    WITH RECURSIVE {queues},
    next AS (
        SELECT c.id FROM queues AS q CROSS JOIN LATERAL (
            SELECT id, priority, scheduled_at FROM {schema}.jobs AS c
            WHERE c.queue = q.name AND c.state = 'queued' AND c.scheduled_at <= now()
              -- a job written against a newer contract version than this worker runs is
              -- left, unspent, for a worker that can run it
              AND (c.contract_version IS NULL OR c.contract_version <= coalesce(
                    (SELECT v.version FROM unnest(:versioned_tasks::text[],
                                                  :versions::int[]) AS v(task_name, version)
                     WHERE v.task_name = c.task_name),
                    c.contract_version))
            ORDER BY c.priority DESC, c.scheduled_at, c.id
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
        ) AS c
        ORDER BY c.priority DESC, c.scheduled_at, c.id
        LIMIT :limit
    )
    UPDATE {schema}.jobs AS j SET
        state = 'running',
        attempts = j.attempts + 1,
        -- the consumer's registered retries decide, not the producer's guess
        max_attempts = coalesce(
            (SELECT l.max_attempts FROM unnest(:registered_tasks::text[],
                                               :max_attempts::int[]) AS l(task_name, max_attempts)
             WHERE l.task_name = j.task_name),
            j.max_attempts),
        claim_token = gen_random_uuid(),
        started_at = now(),
        lease_expires_at = now() + :lease::interval,
        worker_id = :worker_id
    -- ANY(ARRAY(...)) keeps the primary-key lookup; a join back to next may turn into a
    -- hash join over a sequential scan of jobs.
    WHERE j.id = ANY(ARRAY(SELECT id FROM next))
    RETURNING """
    + _RETURNING
)

# Every queue that has a queued job: a skip scan of jobs_claim_queue_idx, one index probe
# per queue, so its cost grows with the number of queues, not of jobs.
_EVERY_QUEUE = """queues(name) AS (
        (SELECT queue FROM {schema}.jobs WHERE state = 'queued' ORDER BY queue LIMIT 1)
        UNION ALL
        SELECT (SELECT queue FROM {schema}.jobs
                WHERE state = 'queued' AND queue > q.name ORDER BY queue LIMIT 1)
        FROM queues AS q WHERE q.name IS NOT NULL
    )"""
_LISTED_QUEUES = "queues(name) AS (SELECT DISTINCT unnest(:queues::text[]))"


class JobClaims(Statements):
    """How workers (and ``app.drain()``) take due jobs from ``<schema>.jobs``."""

    _claim_any = Statement(_CLAIM.replace("{queues}", _EVERY_QUEUE))
    _claim_queues = Statement(_CLAIM.replace("{queues}", _LISTED_QUEUES))

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
    ) -> list[ClaimedJob]:
        """Lock up to ``limit`` due jobs, highest priority then oldest first, for this worker,
        skipping jobs of a newer contract version than ``version_by_task`` allows."""
        values = {
            "limit": limit,
            "registered_tasks": list(max_attempts_by_task),
            "max_attempts": list(max_attempts_by_task.values()),
            "lease": lease,
            "worker_id": worker_id,
            "versioned_tasks": list(version_by_task),
            "versions": list(version_by_task.values()),
        }
        if queues is None:
            rows = await self._claim_any.fetch(db, **values)
        else:
            rows = await self._claim_queues.fetch(db, **values, queues=list(queues))
        return [ClaimedJob._make(row) for row in rows]
