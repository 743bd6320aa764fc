"""Statements behind the web console's pages (:mod:`soniq.console`).

Every page reads a bounded amount whatever the tables hold: job lists walk an id window
(ids are handed out in enqueue order, and every job table has an index that starts with
``id``), so a page costs the same with a million finished jobs as with ten; the last hour
of history is reached through its day partition; dead letters by task and reason through
``job_dead_task_reason_idx``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from soniq.db.sql import Queryable, Statement, Statements

# The states the console shows: "scheduled" is queued for a later time, "retrying" queued
# again after a failed attempt (due now or later).
STATES = ("queued", "scheduled", "retrying", "running", "done", "cancelled", "dead")

_PREVIEW = 300  # characters of args and error messages shown in lists


@dataclass(frozen=True)
class JobRow:
    """One line of a job list."""

    id: int
    task_name: str
    queue: str
    state: str
    attempts: int
    max_attempts: int
    priority: int
    enqueued_at: datetime
    scheduled_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker_id: str | None
    error_reason: str | None
    error_message: str | None
    contract_version: int | None
    args_preview: str


@dataclass(frozen=True)
class JobFilter:
    """What a job list is narrowed to; None leaves a field unfiltered."""

    state: str | None = None
    queue: str | None = None
    task_name: str | None = None
    worker_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    args: dict[str, Any] | None = None  # JSON containment: the job's args contain these

    def values(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "queue": self.queue,
            "task_name": self.task_name,
            "worker_id": self.worker_id,
            "since": self.since,
            "until": self.until,
            "args_filter": None if self.args is None else json.dumps(self.args),
        }


@dataclass(frozen=True)
class QueueOverview:
    """One queue on the overview page."""

    queue: str
    queued: int
    scheduled: int
    retrying: int
    running: int
    dead: int
    oldest_wait_seconds: float | None


@dataclass(frozen=True)
class Throughput:
    """Jobs finished in one minute of the last hour (0: the current minute)."""

    minutes_ago: int
    done: int
    dead: int


@dataclass(frozen=True)
class Waits:
    """Queue wait (start minus due time, by the database's clock) of recent done jobs."""

    sampled: int
    p50_seconds: float | None
    p95_seconds: float | None


@dataclass(frozen=True)
class DeadGroup:
    """Dead letters of one task that died for one reason."""

    task_name: str
    error_reason: str | None
    count: int
    newest_id: int
    newest_message: str | None
    newest_at: datetime | None


@dataclass(frozen=True)
class FingerprintCount:
    """Waiting or dead jobs of one task written against one contract version and fingerprint."""

    task_name: str
    contract_version: int | None
    contract_fingerprint: str | None
    state: str
    count: int


def _row(row: asyncpg.Record) -> JobRow:
    return JobRow(**dict(row))


_LIST_COLUMNS = f"""id, task_name, queue, {{state}} AS state, attempts, max_attempts, priority,
    enqueued_at, scheduled_at, started_at, {{finished}} AS finished_at, worker_id,
    error_reason, left(error_message, {_PREVIEW}) AS error_message, contract_version,
    left(args::text, {_PREVIEW}) AS args_preview"""

_FILTERS = """id < :before AND id >= :floor
    AND (:queue::text IS NULL OR queue = :queue)
    AND (:task_name::text IS NULL OR task_name = :task_name)
    AND (:worker_id::text IS NULL OR worker_id = :worker_id)
    AND (:since::timestamptz IS NULL OR enqueued_at >= :since)
    AND (:until::timestamptz IS NULL OR enqueued_at < :until)
    AND (:args_filter::jsonb IS NULL OR args::jsonb @> :args_filter::jsonb)"""


def _branch(table: str, state: str, finished: str, states: tuple[str, ...], extra: str) -> str:
    """One table's part of a job list: skipped outright when the state filter rules it out."""
    shown = ", ".join(f"'{s}'" for s in states)
    return f"""
        SELECT {_LIST_COLUMNS.format(state=state, finished=finished)}
        FROM {{schema}}.{table}
        WHERE {_FILTERS} {extra}
          AND (:state::text IS NULL OR (:state IN ({shown}) AND {state} = :state))"""


_RETRYING_OR = "CASE WHEN attempts > 0 THEN 'retrying' ELSE {} END"
_DEAD_FILTER = """(:task_name::text IS NULL OR task_name = :task_name)
      AND (:reason::text IS NULL OR error_reason = :reason)"""


class JobBrowse(Statements):
    """What the console's pages read: job lists, the overview, dead-letter groups."""

    _bounds = Statement(
        """
        SELECT greatest((SELECT max(id) FROM {schema}.job_live),
                        (SELECT max(id) FROM {schema}.job_scheduled),
                        (SELECT max(id) FROM {schema}.job_dead),
                        (SELECT max(id) FROM {schema}.job_history)) AS top,
               least((SELECT min(id) FROM {schema}.job_live),
                     (SELECT min(id) FROM {schema}.job_scheduled),
                     (SELECT min(id) FROM {schema}.job_dead),
                     (SELECT min(id) FROM {schema}.job_history)) AS bottom"""
    )

    async def bounds(self, db: Queryable) -> tuple[int, int] | None:
        """The highest and lowest job id in any table; None when there is no job."""
        row = await self._bounds.fetchrow(db)
        assert row is not None
        return None if row["top"] is None else (row["top"], row["bottom"])

    _window = Statement(
        " UNION ALL ".join(
            (
                _branch(
                    "job_live",
                    "CASE WHEN state = 'queued' AND attempts > 0 THEN 'retrying' ELSE state END",
                    "NULL::timestamptz",
                    ("queued", "retrying", "running"),
                    "",
                ),
                _branch(
                    "job_scheduled",
                    _RETRYING_OR.format("'scheduled'"),
                    "NULL::timestamptz",
                    ("scheduled", "retrying"),
                    "",
                ),
                _branch("job_dead", "'dead'", "finished_at", ("dead",), ""),
                _branch(
                    "job_history",
                    "state",
                    "finished_at",
                    ("done", "cancelled"),
                    # finished after it was enqueued: prunes the days before `since`
                    "AND (:since::timestamptz IS NULL OR finished_at >= :since)",
                ),
            )
        )
        + "\nORDER BY id DESC LIMIT :limit"
    )

    async def window(
        self, db: Queryable, jobs: JobFilter, *, before: int, floor: int, limit: int
    ) -> list[JobRow]:
        """Jobs matching ``jobs`` with ids in ``[floor, before)``, newest first."""
        rows = await self._window.fetch(
            db, **jobs.values(), before=before, floor=floor, limit=limit
        )
        return [_row(row) for row in rows]

    _job = Statement(
        """
        SELECT j.*, j.trace_context::text AS trace_text, now() AS db_now
        FROM {schema}.jobs AS j WHERE j.id = :job_id"""
    )

    async def job(self, db: Queryable, job_id: int) -> dict[str, Any] | None:
        """Every column of one job (as the ``jobs`` view has it), and the database clock."""
        row = await self._job.fetchrow(db, job_id=job_id)
        return None if row is None else dict(row)

    # As reads._queue_stats: the ring and job_scheduled are small by construction, and
    # job_dead holds what waits for a person.
    _overview = Statement(
        """
        SELECT queue, sum(queued)::bigint AS queued, sum(scheduled)::bigint AS scheduled,
               sum(retrying)::bigint AS retrying, sum(running)::bigint AS running,
               sum(dead)::bigint AS dead,
               extract(epoch FROM now() - min(oldest))::float8 AS oldest_wait_seconds
        FROM (
            SELECT queue,
                   count(*) FILTER (WHERE state = 'queued' AND attempts = 0) AS queued,
                   0 AS scheduled,
                   count(*) FILTER (WHERE state = 'queued' AND attempts > 0) AS retrying,
                   count(*) FILTER (WHERE state = 'running') AS running, 0 AS dead,
                   min(scheduled_at) FILTER (WHERE state = 'queued') AS oldest
            FROM {schema}.job_live GROUP BY queue
            UNION ALL
            SELECT queue, 0, count(*) FILTER (WHERE attempts = 0),
                   count(*) FILTER (WHERE attempts > 0), 0, 0,
                   min(scheduled_at) FILTER (WHERE scheduled_at <= now())
            FROM {schema}.job_scheduled GROUP BY queue
            UNION ALL
            SELECT queue, 0, 0, 0, 0, count(*), NULL FROM {schema}.job_dead GROUP BY queue
        ) AS counts
        GROUP BY queue
        ORDER BY queue"""
    )

    async def overview(self, db: Queryable) -> list[QueueOverview]:
        """Per queue: jobs waiting, retrying, running and dead, and the oldest due job's wait."""
        return [QueueOverview(**dict(row)) for row in await self._overview.fetch(db)]

    _throughput = Statement(
        """
        SELECT (extract(epoch FROM date_trunc('minute', now())
                                  - date_trunc('minute', finished_at)) / 60)::int
                   AS minutes_ago,
               count(*) FILTER (WHERE state = 'done') AS done,
               count(*) FILTER (WHERE state = 'dead') AS dead
        FROM (SELECT finished_at, state FROM {schema}.job_history
              WHERE finished_at > now() - interval '1 hour' AND state = 'done'
              UNION ALL
              SELECT finished_at, 'dead' FROM {schema}.job_dead
              WHERE finished_at > now() - interval '1 hour') AS finished
        GROUP BY 1
        ORDER BY 1"""
    )

    async def throughput(self, db: Queryable) -> list[Throughput]:
        """Done and dead-lettered jobs per minute over the last hour (minutes with none are
        left out)."""
        return [Throughput(**dict(row)) for row in await self._throughput.fetch(db)]

    _waits = Statement(
        """
        SELECT count(*) AS sampled,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY wait) AS p50_seconds,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY wait) AS p95_seconds
        FROM (SELECT extract(epoch FROM started_at - scheduled_at)::float8 AS wait
              FROM {schema}.job_history
              WHERE finished_at > now() - interval '1 hour' AND state = 'done'
                AND started_at IS NOT NULL
              ORDER BY id DESC
              LIMIT :limit) AS recent"""
    )

    async def waits(self, db: Queryable, sample: int) -> Waits:
        """Queue wait percentiles of the newest ``sample`` jobs done in the last hour."""
        row = await self._waits.fetchrow(db, limit=sample)
        assert row is not None
        return Waits(**dict(row))

    _finished_estimate = Statement(
        """
        SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint
        FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
        WHERE i.inhparent = '{schema}.job_history'::regclass"""
    )

    async def finished_estimate(self, db: Queryable) -> int:
        """The planner's estimate of the done and cancelled jobs kept (from statistics)."""
        return int(await self._finished_estimate.fetchval(db))

    _running_by_worker = Statement(
        """
        SELECT worker_id, count(*) AS running FROM {schema}.job_live
        WHERE state = 'running' GROUP BY worker_id"""
    )

    async def running_by_worker(self, db: Queryable) -> dict[str, int]:
        """How many jobs each worker holds now."""
        rows = await self._running_by_worker.fetch(db)
        return {row["worker_id"]: row["running"] for row in rows if row["worker_id"]}

    _dead_groups = Statement(
        f"""
        SELECT g.task_name, g.error_reason, g.count, g.newest_id,
               left(d.error_message, {_PREVIEW}) AS newest_message, d.finished_at AS newest_at
        FROM (SELECT task_name, error_reason, count(*) AS count, max(id) AS newest_id
              FROM {{schema}}.job_dead
              WHERE :task_name::text IS NULL OR task_name = :task_name
              GROUP BY task_name, error_reason) AS g
        LEFT JOIN {{schema}}.job_dead AS d ON d.id = g.newest_id
        ORDER BY g.count DESC, g.task_name, g.error_reason
        LIMIT :limit"""
    )

    async def dead_groups(
        self, db: Queryable, task_name: str | None, limit: int
    ) -> list[DeadGroup]:
        """Dead letters grouped by task and reason, the largest groups first."""
        rows = await self._dead_groups.fetch(db, task_name=task_name, limit=limit)
        return [DeadGroup(**dict(row)) for row in rows]

    _dead_page = Statement(
        f"""
        SELECT {_LIST_COLUMNS.format(state="'dead'", finished="finished_at")}
        FROM {{schema}}.job_dead
        WHERE {_DEAD_FILTER} AND id < :before
        ORDER BY id DESC
        LIMIT :limit"""
    )

    async def dead_page(
        self,
        db: Queryable,
        *,
        task_name: str | None,
        reason: str | None,
        before: int,
        limit: int,
    ) -> list[JobRow]:
        """Dead letters of a task and reason (None: any) below id ``before``, newest first."""
        rows = await self._dead_page.fetch(
            db, task_name=task_name, reason=reason, before=before, limit=limit
        )
        return [_row(row) for row in rows]

    # Ordered by id so the count walks an index, and capped so it stays cheap: the page
    # shows "more than" past the cap.
    _dead_count = Statement(
        f"""
        SELECT count(*) FROM (
            SELECT id FROM {{schema}}.job_dead WHERE {_DEAD_FILTER}
            ORDER BY id DESC LIMIT :limit) AS matching"""
    )

    async def dead_count(
        self, db: Queryable, *, task_name: str | None, reason: str | None, cap: int
    ) -> int:
        """How many dead letters match, counted up to ``cap``."""
        count = await self._dead_count.fetchval(db, task_name=task_name, reason=reason, limit=cap)
        return int(count)

    _dead_ids = Statement(
        f"""
        SELECT id FROM {{schema}}.job_dead
        WHERE {_DEAD_FILTER} AND id < :before
        ORDER BY id DESC
        LIMIT :limit"""
    )

    async def dead_ids(
        self,
        db: Queryable,
        *,
        task_name: str | None,
        reason: str | None,
        before: int,
        limit: int,
    ) -> list[int]:
        """Ids of matching dead letters below ``before``, highest first: one batch of a bulk
        replay or purge."""
        rows = await self._dead_ids.fetch(
            db, task_name=task_name, reason=reason, before=before, limit=limit
        )
        return [row["id"] for row in rows]

    _fingerprints = Statement(
        """
        SELECT task_name, contract_version, contract_fingerprint, state, count(*) AS count
        FROM (SELECT task_name, contract_version, contract_fingerprint,
                     CASE WHEN state = 'running' THEN 'running' ELSE 'queued' END AS state
              FROM {schema}.job_live
              UNION ALL
              SELECT task_name, contract_version, contract_fingerprint, 'queued'
              FROM {schema}.job_scheduled
              UNION ALL
              SELECT task_name, contract_version, contract_fingerprint, 'dead'
              FROM {schema}.job_dead) AS waiting
        GROUP BY 1, 2, 3, 4
        ORDER BY 1, 2 NULLS FIRST, 3 NULLS FIRST, 4"""
    )

    async def fingerprints(self, db: Queryable) -> list[FingerprintCount]:
        """Queued, running and dead jobs by task, contract version and fingerprint."""
        return [FingerprintCount(**dict(row)) for row in await self._fingerprints.fetch(db)]

    # A loose index scan: one descent of job_history_task_idx per distinct task, however
    # many jobs each has.
    _history_tasks = Statement(
        """
        WITH RECURSIVE seen AS (
            (SELECT task_name FROM {schema}.job_history ORDER BY task_name LIMIT 1)
            UNION ALL
            SELECT (SELECT h.task_name FROM {schema}.job_history AS h
                    WHERE h.task_name > seen.task_name ORDER BY h.task_name LIMIT 1)
            FROM seen WHERE seen.task_name IS NOT NULL
        )
        SELECT task_name FROM seen WHERE task_name IS NOT NULL"""
    )

    async def history_tasks(self, db: Queryable) -> list[str]:
        """The distinct tasks of the done and cancelled jobs kept."""
        return [row["task_name"] for row in await self._history_tasks.fetch(db)]
