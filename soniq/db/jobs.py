"""All SQL for the jobs table, one method per statement.

Every state change is ONE statement whose WHERE clause checks its precondition: outcomes,
heartbeats and releases apply only while the writer's ``claim_token`` still owns a running
job, which is how a worker that lost its lease is fenced out instead of overwriting the
result of the worker that took the job over.

A claim token is set if and only if the job is running (a CHECK constraint holds the
table to it), so matching ``id`` and ``claim_token`` alone proves "still running, still
mine". Fenced statements deliberately do not repeat ``state = 'running'``: that predicate
matches the partial ``jobs_lease_idx`` and tempts the planner into rescanning every running
job per outcome.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, TypeAlias

import asyncpg

from soniq.job import ClaimedJob, Job, JobError, JobState, NewJob, Outcome

# What a statement runs on: a pool, or a caller's connection (possibly in their transaction).
Queryable: TypeAlias = "asyncpg.Connection | asyncpg.Pool"


_JOB_COLUMNS = """id, task_name, queue, args, state, priority, attempts, max_attempts,
    scheduled_at, enqueued_at, started_at, finished_at, error_reason, error_message,
    error_detail, dedup_key, contract_version, contract_fingerprint, worker_id, result"""


def _job_from_row(row: asyncpg.Record) -> Job:
    error = None
    if row["error_reason"] is not None:
        detail = row["error_detail"]
        error = JobError(
            reason=row["error_reason"],
            message=row["error_message"] or "",
            detail=json.loads(detail) if detail is not None else None,
        )
    return Job(
        id=row["id"],
        task_name=row["task_name"],
        queue=row["queue"],
        args=json.loads(row["args"]),
        state=JobState(row["state"]),
        priority=row["priority"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        scheduled_at=row["scheduled_at"],
        enqueued_at=row["enqueued_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        error=error,
        dedup_key=row["dedup_key"],
        contract_version=row["contract_version"],
        contract_fingerprint=row["contract_fingerprint"],
        worker_id=row["worker_id"],
        result=None if row["result"] is None else json.loads(row["result"]),
    )


def storable_text(text: str) -> str:
    """``text`` as a PostgreSQL text value can hold it: NUL characters and lone surrogates
    (which an exception message may contain) are written as backslash escapes."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


_CANCELLED_MESSAGE = "'cancelled by app.cancel() before it finished'"


class JobStore:
    """The statements on ``<schema>.jobs``; the schema is a checked identifier."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.channel = f"{schema}.jobs"
        # Payload: the id of a job that just finished (done, dead or cancelled).
        self.results_channel = f"{schema}.results"
        # Payload: the id of a running job that app.cancel() asked to stop.
        self.cancel_channel = f"{schema}.cancel"
        t = f"{schema}.jobs"
        insert = f"""
            WITH inserted AS (
                INSERT INTO {t} (task_name, queue, args, priority, max_attempts, scheduled_at,
                                 dedup_key, contract_version, contract_fingerprint,
                                 trace_context)
                VALUES ($1, $2, $3::json, $4, $5, coalesce($6, now()), $7, $8, $9, $11::json)
                {{on_conflict}}
                RETURNING id, queue
            )
            -- pg_notify inside the statement: one round trip, and in a caller's
            -- transaction the notification is only delivered at commit.
            SELECT id, pg_notify($10, queue) FROM inserted"""
        # Only a job with a dedup_key pays for ON CONFLICT's speculative insertion.
        self._insert = insert.replace("{on_conflict}", "")
        self._insert_dedup = insert.replace(
            "{on_conflict}",
            "ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL "
            "AND state IN ('queued', 'running') DO NOTHING",
        )
        self._live_id_for_dedup_key = f"""
            SELECT id FROM {t}
            WHERE dedup_key = $1 AND state IN ('queued', 'running')"""
        self._insert_many = f"""
            WITH inserted AS (
                INSERT INTO {t} (task_name, queue, args, priority, max_attempts, scheduled_at,
                                 contract_version, contract_fingerprint, trace_context)
                SELECT $1, $2, a.args, $4, $5, coalesce($6, now()), $7, $8, $10::json
                FROM unnest($3::json[]) WITH ORDINALITY AS a(args, n)
                ORDER BY a.n
                RETURNING id
            )
            SELECT array_agg(id ORDER BY id) AS ids, pg_notify($9, $2) FROM inserted"""
        # Claim order is per queue through jobs_claim_queue_idx: each queue in the worker's
        # list gives its first `limit` claimable jobs (locked, skipping rows other workers
        # hold), then the best `limit` of those across queues are taken. Locks on the rest
        # last only for this statement.
        claim = f"""
            WITH RECURSIVE {{queues}},
            next AS (
                SELECT c.id FROM queues AS q CROSS JOIN LATERAL (
                    SELECT id, priority, scheduled_at FROM {t} AS c
                    WHERE c.queue = q.name AND c.state = 'queued' AND c.scheduled_at <= now()
                      -- a job written against a newer contract version than this worker
                      -- runs is left, unspent, for a worker that can run it
                      AND (c.contract_version IS NULL OR c.contract_version <= coalesce(
                            (SELECT v.version FROM unnest($6::text[], $7::int[])
                                                      AS v(task_name, version)
                             WHERE v.task_name = c.task_name),
                            c.contract_version))
                    ORDER BY c.priority DESC, c.scheduled_at, c.id
                    LIMIT $1
                    FOR UPDATE SKIP LOCKED
                ) AS c
                ORDER BY c.priority DESC, c.scheduled_at, c.id
                LIMIT $1
            )
            UPDATE {t} AS j SET
                state = 'running',
                attempts = j.attempts + 1,
                -- the consumer's registered retries decide, not the producer's guess
                max_attempts = coalesce(
                    (SELECT l.max_attempts FROM unnest($2::text[], $3::int[])
                                                AS l(task_name, max_attempts)
                     WHERE l.task_name = j.task_name),
                    j.max_attempts),
                claim_token = gen_random_uuid(),
                started_at = now(),
                lease_expires_at = now() + $4::interval,
                worker_id = $5
            -- ANY(ARRAY(...)) keeps the primary-key lookup; a join back to next may
            -- turn into a hash join over a sequential scan of jobs.
            WHERE j.id = ANY(ARRAY(SELECT id FROM next))
            -- ClaimedJob's fields, in its order
            RETURNING j.id, j.task_name, j.queue, j.args, j.attempts, j.max_attempts,
                      j.enqueued_at, j.claim_token, j.contract_version,
                      extract(epoch FROM now() - j.scheduled_at)::float8 AS queue_wait,
                      j.trace_context::text AS trace_context"""
        # Every queue that has a queued job: a skip scan of jobs_claim_queue_idx, one index
        # probe per queue, so its cost grows with the number of queues, not of jobs.
        self._claim_any = claim.replace(
            "{queues}",
            f"""queues(name) AS (
                (SELECT queue FROM {t} WHERE state = 'queued' ORDER BY queue LIMIT 1)
                UNION ALL
                SELECT (SELECT queue FROM {t}
                        WHERE state = 'queued' AND queue > q.name ORDER BY queue LIMIT 1)
                FROM queues AS q WHERE q.name IS NOT NULL
            )""",
        )
        self._claim_queues = claim.replace(
            "{queues}", "queues(name) AS (SELECT DISTINCT unnest($8::text[]))"
        )
        # A failed attempt of a job whose cancellation was requested is not retried.
        retry = "(o.state = 'queued' AND j.cancel_requested_at IS NULL)"
        self._record_outcomes = f"""
            UPDATE {t} AS j SET
                state = CASE WHEN o.state = 'queued' AND j.cancel_requested_at IS NOT NULL
                             THEN 'cancelled' ELSE o.state END,
                finished_at = CASE WHEN {retry} THEN NULL ELSE now() END,
                scheduled_at = CASE WHEN {retry}
                                    THEN now() + make_interval(secs => o.delay)
                                    ELSE j.scheduled_at END,
                claim_token = NULL,
                lease_expires_at = NULL,
                error_reason = o.reason,
                error_message = o.message,
                error_detail = o.detail
            FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::float8[], $5::text[],
                        $6::text[], $7::json[])
                 AS o(id, token, state, delay, reason, message, detail)
            WHERE j.id = o.id AND j.claim_token = o.token
            RETURNING j.id,
                      CASE WHEN j.state <> 'queued' THEN pg_notify($8, j.id::text) END"""
        # One notification per batch, payload '': a waiter on get_result re-reads its own
        # row. A notification per job would cost a queue entry per row on the hot path.
        self._record_done = f"""
            WITH done AS (
            UPDATE {t} AS j SET
                state = 'done',
                finished_at = now(),
                claim_token = NULL,
                lease_expires_at = NULL,
                error_reason = NULL,
                error_message = NULL,
                error_detail = NULL,
                result = o.result
            FROM unnest($1::bigint[], $2::uuid[], $3::json[]) AS o(id, token, result)
            WHERE j.id = o.id AND j.claim_token = o.token
            RETURNING j.id
            )
            SELECT array_agg(id) AS ids, pg_notify($4, '') FROM done"""
        # A released job whose cancellation was requested ends cancelled, not queued again.
        cancelled = "j.cancel_requested_at IS NOT NULL"
        self._release = f"""
            UPDATE {t} AS j SET
                state = CASE WHEN {cancelled} THEN 'cancelled' ELSE 'queued' END,
                attempts = CASE WHEN {cancelled} THEN j.attempts ELSE j.attempts - 1 END,
                finished_at = CASE WHEN {cancelled} THEN now() END,
                error_reason = CASE WHEN {cancelled} THEN 'cancelled' ELSE j.error_reason END,
                error_message = CASE WHEN {cancelled} THEN {_CANCELLED_MESSAGE}
                                     ELSE j.error_message END,
                error_detail = CASE WHEN {cancelled} THEN NULL ELSE j.error_detail END,
                claim_token = NULL,
                lease_expires_at = NULL,
                worker_id = NULL,
                started_at = CASE WHEN {cancelled} THEN j.started_at END
            FROM unnest($1::bigint[], $2::uuid[]) AS r(id, token)
            WHERE j.id = r.id AND j.claim_token = r.token
            RETURNING j.id, CASE WHEN j.state = 'queued' THEN pg_notify($3, j.queue)
                                 ELSE pg_notify($4, j.id::text) END"""
        self._heartbeat = f"""
            UPDATE {t} AS j SET lease_expires_at = now() + $3::interval
            FROM unnest($1::bigint[], $2::uuid[]) AS h(id, token)
            WHERE j.id = h.id AND j.claim_token = h.token
            -- the fallback for a missed cancel notification
            RETURNING j.id, j.cancel_requested_at IS NOT NULL AS cancel_requested"""
        self._rescue = f"""
            WITH expired AS (
                SELECT id FROM {t}
                WHERE state = 'running' AND lease_expires_at < now()  -- jobs_lease_idx
                ORDER BY lease_expires_at
                LIMIT $1
                FOR UPDATE SKIP LOCKED
            )
            UPDATE {t} AS j SET
                state = CASE WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
                             WHEN j.attempts >= j.max_attempts THEN 'dead' ELSE 'queued' END,
                finished_at = CASE WHEN j.cancel_requested_at IS NOT NULL
                                     OR j.attempts >= j.max_attempts THEN now() END,
                claim_token = NULL,
                lease_expires_at = NULL,
                error_reason = 'worker lost',
                error_message = format(
                    'attempt %s of %s: worker %s stopped renewing its lease (killed, crashed '
                    'or cut off from the database)%s', j.attempts, j.max_attempts,
                    j.worker_id, CASE WHEN j.attempts >= j.max_attempts
                                      THEN '; no retries left' ELSE '' END),
                error_detail = NULL,
                worker_id = NULL
            FROM expired WHERE j.id = expired.id
            RETURNING j.id, j.state, CASE WHEN j.state = 'queued' THEN pg_notify($2, j.queue)
                                          ELSE pg_notify($3, j.id::text) END"""
        self._prune_finished = f"""
            DELETE FROM {t} WHERE id IN (
                SELECT id FROM {t}
                WHERE state IN ('done', 'cancelled') AND finished_at < now() - $1::interval
                -- oldest ids first through the primary key: no index on finished jobs needed
                ORDER BY id
                LIMIT $2)"""
        self._prune_dead = f"""
            DELETE FROM {t} WHERE id IN (
                SELECT id FROM {t}
                WHERE state = 'dead' AND finished_at < now() - $1::interval  -- jobs_dead_idx
                ORDER BY finished_at
                LIMIT $2)"""
        self._get = f"SELECT {_JOB_COLUMNS} FROM {t} WHERE id = $1"
        self._cancel = f"""
            UPDATE {t} AS j SET
                state = CASE WHEN j.state = 'queued' THEN 'cancelled' ELSE j.state END,
                finished_at = CASE WHEN j.state = 'queued' THEN now() END,
                error_reason = CASE WHEN j.state = 'queued' THEN 'cancelled'
                                    ELSE j.error_reason END,
                error_message = CASE WHEN j.state = 'queued' THEN {_CANCELLED_MESSAGE}
                                     ELSE j.error_message END,
                error_detail = CASE WHEN j.state = 'queued' THEN NULL ELSE j.error_detail END,
                cancel_requested_at = coalesce(j.cancel_requested_at, now())
            WHERE j.id = $1 AND j.state IN ('queued', 'running')
            -- a queued job is finished now; a running one is for its worker to stop
            RETURNING j.state, CASE WHEN j.state = 'cancelled' THEN pg_notify($2, j.id::text)
                                    ELSE pg_notify($3, j.id::text) END"""
        self._list_jobs = f"""
            SELECT {_JOB_COLUMNS} FROM {t}
            WHERE ($1::text IS NULL OR state = $1)
              AND ($2::text IS NULL OR queue = $2)
              AND ($3::text IS NULL OR task_name = $3)
            ORDER BY id DESC
            LIMIT $4"""
        self._list_dead = f"""
            SELECT {_JOB_COLUMNS} FROM {t}
            WHERE state = 'dead'
              AND ($1::text IS NULL OR task_name = $1)
              AND ($2::text IS NULL OR queue = $2)
            ORDER BY finished_at DESC, id DESC
            LIMIT $3"""
        dead_filter = """state = 'dead'
              AND ($1::text IS NULL OR task_name = $1)
              AND ($2::text IS NULL OR queue = $2)
              AND ($3::interval IS NULL OR finished_at < now() - $3::interval)"""
        self._count_dead = f"SELECT count(*) FROM {t} WHERE {dead_filter}"
        self._dead_ids = f"""
            SELECT id FROM {t}
            WHERE {dead_filter} AND id < $4
            ORDER BY id DESC
            LIMIT $5"""
        self._replay = f"""
            UPDATE {t} SET
                state = 'queued', attempts = 0, scheduled_at = now(), started_at = NULL,
                finished_at = NULL, claim_token = NULL, lease_expires_at = NULL,
                worker_id = NULL
            WHERE id = ANY($1::bigint[]) AND state = 'dead'
              -- A job whose dedup_key a live job holds stays dead (it would duplicate that
              -- job, and the unique index refuses it); of several dead jobs sharing a key,
              -- only the most recent is replayed.
              AND (dedup_key IS NULL OR (
                  NOT EXISTS (SELECT 1 FROM {t} AS live
                              WHERE live.dedup_key = {t}.dedup_key
                                AND live.state IN ('queued', 'running'))
                  AND id = (SELECT max(d.id) FROM {t} AS d
                            WHERE d.id = ANY($1::bigint[]) AND d.state = 'dead'
                              AND d.dedup_key = {t}.dedup_key)))
            RETURNING id, pg_notify($2, queue)"""
        self._purge_dead = f"""
            DELETE FROM {t}
            WHERE state = 'dead' AND ($1::bigint[] IS NULL OR id = ANY($1::bigint[]))
            RETURNING id"""

    async def insert(self, db: Queryable, job: NewJob) -> int | None:
        """Insert one job and wake a worker; ``None`` when its dedup_key is already live."""
        row = await db.fetchrow(
            self._insert if job.dedup_key is None else self._insert_dedup,
            job.task_name,
            job.queue,
            job.args_json,
            job.priority,
            job.max_attempts,
            job.scheduled_at,
            job.dedup_key,
            job.contract_version,
            job.contract_fingerprint,
            self.channel,
            job.trace_context,
        )
        return None if row is None else int(row["id"])

    async def live_id_for_dedup_key(self, db: Queryable, dedup_key: str) -> int | None:
        value = await db.fetchval(self._live_id_for_dedup_key, dedup_key)
        return None if value is None else int(value)

    async def insert_many(self, db: Queryable, template: NewJob, args_json: list[str]) -> list[int]:
        """Insert one job per args text (same task and options) in one statement."""
        row = await db.fetchrow(
            self._insert_many,
            template.task_name,
            template.queue,
            args_json,
            template.priority,
            template.max_attempts,
            template.scheduled_at,
            template.contract_version,
            template.contract_fingerprint,
            self.channel,
            template.trace_context,
        )
        assert row is not None
        return list(row["ids"] or [])

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
        params: list[Any] = [
            limit,
            list(max_attempts_by_task),
            list(max_attempts_by_task.values()),
            lease,
            worker_id,
            list(version_by_task),
            list(version_by_task.values()),
        ]
        if queues is None:
            rows = await db.fetch(self._claim_any, *params)
        else:
            rows = await db.fetch(self._claim_queues, *params, list(queues))
        return [ClaimedJob._make(row) for row in rows]

    async def record_outcomes(self, db: Queryable, outcomes: Sequence[Outcome]) -> set[int]:
        """Write finished attempts; returns the ids still owned (the others were fenced out).

        Successes, the bulk of any batch, go through a lean statement of two arrays; the
        rest (retries, dead letters) through the general one.
        """
        done = [o for o in outcomes if o.state == "done"]
        failed = [o for o in outcomes if o.state != "done"] if len(done) < len(outcomes) else []
        owned: set[int] = set()
        if done:
            row = await db.fetchrow(
                self._record_done,
                [o.job_id for o in done],
                [o.claim_token for o in done],
                [o.result_json for o in done],
                self.results_channel,
            )
            owned.update(row["ids"] or ())
        if failed:
            rows = await db.fetch(
                self._record_outcomes,
                [o.job_id for o in failed],
                [o.claim_token for o in failed],
                [o.state for o in failed],
                [o.retry_delay for o in failed],
                [o.error.reason if o.error else None for o in failed],
                [storable_text(o.error.message) if o.error else None for o in failed],
                [
                    json.dumps(o.error.detail) if o.error and o.error.detail is not None else None
                    for o in failed
                ],
                self.results_channel,
            )
            owned.update(row["id"] for row in rows)
        return owned

    async def release(self, db: Queryable, claims: Sequence[tuple[int, uuid.UUID]]) -> set[int]:
        """Give claimed jobs back to the queue without spending their attempt."""
        rows = await db.fetch(
            self._release,
            [c[0] for c in claims],
            [c[1] for c in claims],
            self.channel,
            self.results_channel,
        )
        return {row["id"] for row in rows}

    async def heartbeat(
        self, db: Queryable, claims: Sequence[tuple[int, uuid.UUID]], lease: timedelta
    ) -> dict[int, bool]:
        """Extend the leases this worker still owns; returns those ids, each with whether
        its cancellation was requested."""
        rows = await db.fetch(
            self._heartbeat, [c[0] for c in claims], [c[1] for c in claims], lease
        )
        return {row["id"]: row["cancel_requested"] for row in rows}

    async def rescue_expired(self, db: Queryable, *, limit: int) -> list[tuple[int, str]]:
        """Take back running jobs whose lease ran out: requeue them, or dead-letter them when
        their attempts are spent. Returns (id, new state) pairs."""
        rows = await db.fetch(self._rescue, limit, self.channel, self.results_channel)
        return [(row["id"], row["state"]) for row in rows]

    async def prune_finished(self, db: Queryable, *, older_than: timedelta, limit: int) -> int:
        """Delete up to ``limit`` done or cancelled jobs older than ``older_than``."""
        status: str = await db.execute(self._prune_finished, older_than, limit)
        return int(status.rsplit(" ", 1)[-1])

    async def prune_dead(self, db: Queryable, *, older_than: timedelta, limit: int) -> int:
        """Delete up to ``limit`` dead jobs dead-lettered more than ``older_than`` ago."""
        status: str = await db.execute(self._prune_dead, older_than, limit)
        return int(status.rsplit(" ", 1)[-1])

    async def get(self, db: Queryable, job_id: int) -> Job | None:
        row = await db.fetchrow(self._get, job_id)
        return None if row is None else _job_from_row(row)

    async def cancel(self, db: Queryable, job_id: int) -> str | None:
        """Cancel a queued job, or ask the worker running it to stop; returns the job's state
        afterwards (``cancelled`` or ``running``), None when it is not queued or running."""
        row = await db.fetchrow(self._cancel, job_id, self.results_channel, self.cancel_channel)
        return None if row is None else str(row["state"])

    async def list_jobs(
        self,
        db: Queryable,
        *,
        state: str | None,
        queue: str | None,
        task_name: str | None,
        limit: int,
    ) -> list[Job]:
        """Jobs matching every given filter, newest first."""
        rows = await db.fetch(self._list_jobs, state, queue, task_name, limit)
        return [_job_from_row(row) for row in rows]

    async def list_dead(
        self, db: Queryable, *, task_name: str | None, queue: str | None, limit: int
    ) -> list[Job]:
        rows = await db.fetch(self._list_dead, task_name, queue, limit)
        return [_job_from_row(row) for row in rows]

    async def count_dead(
        self,
        db: Queryable,
        *,
        task_name: str | None,
        queue: str | None,
        older_than: timedelta | None,
    ) -> int:
        """How many dead jobs match the filters (``older_than``: dead for longer than that)."""
        return int(await db.fetchval(self._count_dead, task_name, queue, older_than))

    async def dead_ids(
        self,
        db: Queryable,
        *,
        task_name: str | None,
        queue: str | None,
        older_than: timedelta | None,
        below_id: int,
        limit: int,
    ) -> list[int]:
        """Ids of matching dead jobs below ``below_id``, highest first: one page of a bulk
        operation."""
        rows = await db.fetch(self._dead_ids, task_name, queue, older_than, below_id, limit)
        return [row["id"] for row in rows]

    async def replay(self, db: Queryable, job_ids: Sequence[int]) -> list[int]:
        """Move dead jobs back to the queue with their attempt count reset (except those whose
        dedup_key a live job holds); returns the ids moved."""
        rows = await db.fetch(self._replay, list(job_ids), self.channel)
        return [row["id"] for row in rows]

    async def purge_dead(self, db: Queryable, job_ids: Sequence[int] | None) -> int:
        """Delete the given dead jobs, or every dead job when ``job_ids`` is None."""
        rows = await db.fetch(self._purge_dead, None if job_ids is None else list(job_ids))
        return len(rows)
