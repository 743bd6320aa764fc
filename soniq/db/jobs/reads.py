"""Statements that only read jobs: single jobs, lists, and the reports over them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import asyncpg

from soniq.db.sql import Queryable, Statement, Statements
from soniq.db.workers import LIVE_WORKER, WorkerStore
from soniq.job import Attempt, Claim, Job, JobError, JobState
from soniq.status import QueueStats, Status, VersionCount, WaitingJob

_JOB_COLUMNS = """id, task_name, queue, args, state, priority, attempts, max_attempts,
    scheduled_at, enqueued_at, started_at, finished_at, error_reason, error_message,
    error_detail, dedup_key, contract_version, contract_fingerprint, worker_id, result"""


def _error(row: asyncpg.Record) -> JobError:
    detail = row["error_detail"]
    return JobError(
        reason=row["error_reason"],
        message=row["error_message"] or "",
        detail=json.loads(detail) if detail is not None else None,
    )


def _job_from_row(row: asyncpg.Record) -> Job:
    error = None if row["error_reason"] is None else _error(row)
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


# Jobs done this minute and the 59 before it, as (minute, queue, done) rows: the per-minute
# sums of the minutes the retention service has summed (job_done_minutes, primary key), and
# the completer's per-batch counts of the few minutes after them (job_done_counts, BRIN).
DONE_LAST_HOUR = """
    SELECT minute, queue, done FROM {schema}.job_done_minutes
    WHERE minute >= date_trunc('minute', now()) - interval '59 minutes'
    UNION ALL
    SELECT minute, queue, done FROM {schema}.job_done_counts
    WHERE minute >= date_trunc('minute', now()) - interval '59 minutes'
      AND minute > (SELECT coalesce(max(minute), '-infinity') FROM {schema}.job_done_minutes)"""

# Each table with the states it holds: (table, state, finished_at, result, holds).
_STATE_TABLES = (
    ("job_live", "state", "NULL::timestamptz", "NULL::json", "queued,running"),
    ("job_scheduled", "'queued'::text", "NULL::timestamptz", "NULL::json", "queued"),
    ("job_dead", "'dead'::text", "finished_at", "NULL::json", "dead"),
    ("job_history", "state", "finished_at", "result", "done,cancelled"),
)


def _list_jobs(lead: str) -> str:
    """``list_jobs`` walking ``lead`` newest first: every job (TRUE, by id), one queue (the
    ``(queue, id)`` indexes) or one task (``(task_name, id)``).

    The branches have no WHERE clause of their own (PostgreSQL merges a branch with one
    into the ordered append only as a subquery, sorting it whole), so every condition is
    outside and pushed into each branch: the first, on ``:state`` and the branch's
    constant ``holds`` alone, is checked once before the branch runs, so no plan, custom
    or generic, walks a table that cannot hold the state asked for (reading all of
    job_history to find no queued job took seconds)."""
    branches = " UNION ALL ".join(
        f"""
        SELECT id, task_name, queue, args, {state} AS state, priority, attempts,
               max_attempts, scheduled_at, enqueued_at, started_at, {finished} AS finished_at,
               error_reason, error_message, error_detail, dedup_key, contract_version,
               contract_fingerprint, worker_id, {result} AS result,
               '{{{holds}}}'::text[] AS holds
        FROM {{schema}}.{table}"""
        for table, state, finished, result, holds in _STATE_TABLES
    )
    return f"""
        SELECT {_JOB_COLUMNS} FROM ({branches}) AS jobs
        WHERE (:state::text IS NULL OR :state::text = ANY (holds))
          AND (:state::text IS NULL OR state = :state::text) AND {lead}
        ORDER BY id DESC LIMIT :limit"""


# Every job that waits to run: queued (due now or later) or dead (it may be replayed).
_WAITING = """
    SELECT id, task_name, contract_version, args,
           CASE WHEN scheduled_at > now() THEN 'scheduled' ELSE 'queued' END AS state
    FROM {schema}.job_live WHERE state = 'queued'
    UNION ALL
    SELECT id, task_name, contract_version, args,
           CASE WHEN scheduled_at > now() THEN 'scheduled' ELSE 'queued' END
    FROM {schema}.job_scheduled
    UNION ALL
    SELECT id, task_name, contract_version, args, 'dead' FROM {schema}.job_dead"""

_DEAD_FILTER = """(:task_name::text IS NULL OR task_name = :task_name)
      AND (:queue::text IS NULL OR queue = :queue)
      AND (:older_than::interval IS NULL OR finished_at < now() - :older_than::interval)"""


class JobReads(Statements):
    """What ``app.get_job``, ``list_jobs``, ``status``, the dead-letter queue and
    ``soniq contracts check`` read from ``<schema>.jobs``."""

    _get = Statement(f"SELECT {_JOB_COLUMNS} FROM {{schema}}.jobs WHERE id = :job_id")

    async def get(self, db: Queryable, job_id: int) -> Job | None:
        row = await self._get.fetchrow(db, job_id=job_id)
        return None if row is None else _job_from_row(row)

    _attempts = Statement(
        """
        SELECT attempt, worker_id, started_at, finished_at, outcome, error_reason,
               error_message, error_detail
        FROM {schema}.job_attempts WHERE job_id = :job_id  -- job_attempts_job_idx
        ORDER BY attempt, finished_at"""
    )

    async def attempts(self, db: Queryable, job_id: int) -> list[Attempt]:
        """The failed attempts of one job kept by retention, oldest first."""
        return [
            Attempt(
                attempt=row["attempt"],
                worker_id=row["worker_id"],
                started_at=row["started_at"],
                finished_at=row["finished_at"],
                outcome=JobState(row["outcome"]),
                error=_error(row),
            )
            for row in await self._attempts.fetch(db, job_id=job_id)
        ]

    _list_all = Statement(_list_jobs("TRUE"))
    _list_queue = Statement(
        _list_jobs("queue = :queue AND (:task_name::text IS NULL OR task_name = :task_name)")
    )
    _list_task = Statement(_list_jobs("task_name = :task_name"))

    async def list_jobs(
        self,
        db: Queryable,
        *,
        state: str | None,
        queue: str | None,
        task_name: str | None,
        limit: int | None,
    ) -> list[Job]:
        """Jobs matching every given filter, newest first (all of them when limit is None)."""
        if queue is not None:
            rows = await self._list_queue.fetch(
                db, state=state, queue=queue, task_name=task_name, limit=limit
            )
        elif task_name is not None:
            rows = await self._list_task.fetch(db, state=state, task_name=task_name, limit=limit)
        else:
            rows = await self._list_all.fetch(db, state=state, limit=limit)
        return [_job_from_row(row) for row in rows]

    _list_dead = Statement(
        f"""
        SELECT {_JOB_COLUMNS} FROM {{schema}}.jobs
        WHERE state = 'dead'  -- only job_dead's part of the view is read
          AND (:task_name::text IS NULL OR task_name = :task_name)
          AND (:queue::text IS NULL OR queue = :queue)
        ORDER BY finished_at DESC, id DESC
        LIMIT :limit"""
    )

    async def list_dead(
        self, db: Queryable, *, task_name: str | None, queue: str | None, limit: int
    ) -> list[Job]:
        """Dead jobs, most recently dead-lettered first."""
        rows = await self._list_dead.fetch(db, task_name=task_name, queue=queue, limit=limit)
        return [_job_from_row(row) for row in rows]

    _count_dead = Statement(f"SELECT count(*) FROM {{schema}}.job_dead WHERE {_DEAD_FILTER}")

    async def count_dead(
        self,
        db: Queryable,
        *,
        task_name: str | None,
        queue: str | None,
        older_than: timedelta | None,
    ) -> int:
        """How many dead jobs match the filters (``older_than``: dead for longer than that)."""
        return int(
            await self._count_dead.fetchval(
                db, task_name=task_name, queue=queue, older_than=older_than
            )
        )

    _dead_ids = Statement(
        f"""
        SELECT id FROM {{schema}}.job_dead
        WHERE {_DEAD_FILTER} AND id < :below_id
        ORDER BY id DESC
        LIMIT :limit"""
    )

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
        rows = await self._dead_ids.fetch(
            db,
            task_name=task_name,
            queue=queue,
            older_than=older_than,
            below_id=below_id,
            limit=limit,
        )
        return [row["id"] for row in rows]

    _cancel_requested = Statement(
        """
        SELECT j.id FROM {schema}.job_live AS j
        JOIN unnest(:ids::bigint[], :slots::int2[], :tokens::uuid[]) AS c(id, slot, token)
          ON j.id = c.id AND j.slot = c.slot AND j.claim_token = c.token
        WHERE j.cancel_requested_at IS NOT NULL"""
    )

    async def cancel_requested(self, db: Queryable, claims: Sequence[Claim]) -> set[int]:
        """Of these claims, still owned where they are, the jobs whose cancellation was
        requested (a claim the recycler moved is checked again by the next heartbeat)."""
        rows = await self._cancel_requested.fetch(
            db,
            ids=[c.job_id for c in claims],
            slots=[c.slot for c in claims],
            tokens=[c.token for c in claims],
        )
        return {row["id"] for row in rows}

    # Each table answers for its own states: the ring and job_scheduled are small by
    # construction, job_dead holds what waits for a person, job_waiting what waits for
    # parents (counted from job_waiting_queue_idx), and "done in the last hour" is
    # the sum of the completer's per-batch counts of this minute and the 59 before it (one
    # row per batch, not per job; exact for jobs workers finished).
    _queue_stats = Statement(
        f"""
        SELECT queue, sum(queued)::bigint AS queued, sum(scheduled)::bigint AS scheduled,
               sum(waiting)::bigint AS waiting, sum(running)::bigint AS running,
               sum(done)::bigint AS done_last_hour, sum(dead)::bigint AS dead,
               extract(epoch FROM now() - min(oldest)) AS oldest,
               EXISTS (SELECT FROM {{schema}}.queue_settings AS s
                       WHERE s.queue = counts.queue AND s.paused) AS paused
        FROM (
            SELECT queue,
                   count(*) FILTER (WHERE state = 'queued' AND scheduled_at <= now()) AS queued,
                   count(*) FILTER (WHERE state = 'queued' AND scheduled_at > now())
                       AS scheduled,
                   0 AS waiting, count(*) FILTER (WHERE state = 'running') AS running,
                   0 AS done, 0 AS dead,
                   min(scheduled_at) FILTER (WHERE state = 'queued' AND scheduled_at <= now())
                       AS oldest
            FROM {{schema}}.job_live GROUP BY queue
            UNION ALL
            SELECT queue, count(*) FILTER (WHERE scheduled_at <= now()),
                   count(*) FILTER (WHERE scheduled_at > now()), 0, 0, 0, 0,
                   min(scheduled_at) FILTER (WHERE scheduled_at <= now())
            FROM {{schema}}.job_scheduled GROUP BY queue
            UNION ALL  -- through job_waiting_queue_idx
            SELECT queue, 0, 0, count(*), 0, 0, 0, NULL FROM {{schema}}.job_waiting
            GROUP BY queue
            UNION ALL
            SELECT queue, 0, 0, 0, 0, 0, count(*), NULL FROM {{schema}}.job_dead GROUP BY queue
            UNION ALL
            SELECT queue, 0, 0, 0, 0, sum(done), 0, NULL FROM ({DONE_LAST_HOUR}) AS done
            GROUP BY queue
            UNION ALL  -- a paused queue shows even while it has no jobs
            SELECT queue, 0, 0, 0, 0, 0, 0, NULL FROM {{schema}}.queue_settings WHERE paused
        ) AS counts
        GROUP BY queue
        ORDER BY queue"""
    )

    async def status(self, db: Queryable) -> Status:
        """What ``soniq status`` shows (see :class:`~soniq.Status`)."""
        return Status(
            queues=await self.queue_stats(db),
            workers=await WorkerStore(self.schema).live(db),
            waiting_for_newer_consumer=await self.waiting_for_newer_consumer(db),
        )

    async def queue_stats(self, db: Queryable) -> list[QueueStats]:
        """Per queue: jobs by state (and waiting for parents), done in the last hour, the
        oldest due job's wait, and whether the queue is paused."""
        rows = await self._queue_stats.fetch(db)
        return [
            QueueStats(
                queue=row["queue"],
                queued=row["queued"],
                scheduled=row["scheduled"],
                waiting=row["waiting"],
                running=row["running"],
                done_last_hour=row["done_last_hour"],
                dead=row["dead"],
                oldest_wait_seconds=None if row["oldest"] is None else float(row["oldest"]),
                paused=row["paused"],
            )
            for row in rows
        ]

    # Jobs written against a newer contract version than any live worker runs: they wait,
    # unspent, for a newer consumer. Workers registered without a version take any
    # version, so they are left out of the max().
    _waiting_for_newer = Statement(
        f"""
        WITH served AS (
            SELECT t.key AS task_name, max((t.value #>> '{{}}')::int) AS version
            FROM {{schema}}.workers w, json_each(w.tasks) AS t
            WHERE {LIVE_WORKER}
            GROUP BY t.key
        )
        SELECT j.task_name, j.contract_version, count(*) AS count
        FROM (SELECT task_name, contract_version FROM {{schema}}.job_live
              WHERE state = 'queued'
              UNION ALL
              SELECT task_name, contract_version FROM {{schema}}.job_scheduled) AS j
        JOIN served s ON s.task_name = j.task_name
        WHERE j.contract_version > s.version
        GROUP BY j.task_name, j.contract_version
        ORDER BY j.task_name, j.contract_version"""
    )

    async def waiting_for_newer_consumer(self, db: Queryable) -> list[VersionCount]:
        """Queued jobs of a newer contract version than any live worker runs."""
        rows = await self._waiting_for_newer.fetch(db)
        return [
            VersionCount(row["task_name"], row["contract_version"], "queued", row["count"])
            for row in rows
        ]

    _contract_versions = Statement(
        f"""
        SELECT task_name, contract_version, state, count(*) AS count
        FROM ({_WAITING}) AS waiting
        GROUP BY 1, 2, 3
        ORDER BY 1, 2 NULLS FIRST, 3"""
    )

    async def contract_versions(self, db: Queryable) -> list[VersionCount]:
        """Per task, version and state (queued, scheduled, dead): how many jobs wait."""
        rows = await self._contract_versions.fetch(db)
        return [
            VersionCount(row["task_name"], row["contract_version"], row["state"], row["count"])
            for row in rows
        ]

    _waiting_jobs = Statement(
        f"""
        SELECT id, contract_version, state, args::text AS args
        FROM ({_WAITING}) AS waiting
        WHERE task_name = :task_name
        ORDER BY id"""
    )

    async def waiting_jobs(
        self, conn: asyncpg.Connection, task_names: Sequence[str]
    ) -> AsyncIterator[tuple[str, WaitingJob]]:
        """Every queued, scheduled or dead job of these tasks, streamed with a cursor."""
        statement = self._waiting_jobs
        async with conn.transaction(readonly=True):
            for task_name in task_names:
                args = statement.args({"task_name": task_name})
                async for row in conn.cursor(statement.sql, *args, prefetch=500):
                    yield (
                        task_name,
                        WaitingJob(row["id"], row["contract_version"], row["state"], row["args"]),
                    )
