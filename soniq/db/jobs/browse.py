"""Statements behind the web console's pages (:mod:`soniq.console`).

Every page reads a bounded amount whatever the tables hold: job lists walk an id window
(ids are handed out in enqueue order, and every job table has an index that starts with
``id``), so a page costs the same with a million finished jobs as with ten; counts stop at
a cap, through an index; groups are formed among the newest dead letters; the chart sums
the completer's per-batch counts. The values they take and return are in
:mod:`.browse_values`.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from soniq.db.jobs.browse_values import (
    DeadGroup,
    FingerprintCount,
    JobFilter,
    JobRow,
    QueueOverview,
    Throughput,
    Waits,
)
from soniq.db.jobs.reads import DONE_LAST_HOUR
from soniq.db.sql import Queryable, Statement, Statements

# The states the console shows: "scheduled" is queued for a later time, "retrying" queued
# again after a failed attempt (due now or later).
STATES = ("queued", "scheduled", "retrying", "running", "done", "cancelled", "dead")

_PREVIEW = 300  # characters of args and error messages shown in lists


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

    # One row per queue (job_lanes lists every queue ever enqueued), each count walking an
    # index and stopping at :cap rows: the claim index for due jobs, the (queue, id)
    # indexes of job_scheduled and job_dead. (BETWEEN, not =: an equality with the outer
    # queue lets the planner walk the primary key instead, filtering, which reads every
    # dead letter to count a queue that has none.) Running jobs are read through the lease
    # index (as many as the fleet's slots); the oldest due job is each lane's first entry
    # in the claim index, or a due job the promoter has not moved yet.
    _overview = Statement(
        """
        SELECT q.queue, live.queued, later.scheduled,
               live.retrying + later.retrying AS retrying, coalesce(run.running, 0) AS running,
               dead.dead, greatest(live.n, later.n, dead.dead) >= :cap AS capped,
               extract(epoch FROM now() - least(oldest.live, oldest.scheduled))::float8
                   AS oldest_wait_seconds
        FROM (SELECT DISTINCT queue FROM {schema}.job_lanes) AS q
        CROSS JOIN LATERAL (
            SELECT count(*) AS n, count(*) FILTER (WHERE attempts = 0) AS queued,
                   count(*) FILTER (WHERE attempts > 0) AS retrying
            FROM (SELECT attempts FROM {schema}.job_live
                  WHERE queue = q.queue AND state = 'queued'
                  ORDER BY priority, scheduled_at LIMIT :cap) AS l  -- job_live_claim_idx
        ) AS live
        CROSS JOIN LATERAL (
            SELECT count(*) AS n, count(*) FILTER (WHERE attempts = 0) AS scheduled,
                   count(*) FILTER (WHERE attempts > 0) AS retrying
            FROM (SELECT attempts FROM {schema}.job_scheduled
                  WHERE queue BETWEEN q.queue AND q.queue LIMIT :cap) AS s
        ) AS later
        CROSS JOIN LATERAL (
            SELECT count(*) AS dead
            FROM (SELECT 1 FROM {schema}.job_dead
                  WHERE queue BETWEEN q.queue AND q.queue LIMIT :cap) AS d
        ) AS dead
        CROSS JOIN LATERAL (
            SELECT (SELECT min(first.scheduled_at) FROM {schema}.job_lanes AS lane
                    CROSS JOIN LATERAL (
                        SELECT scheduled_at FROM {schema}.job_live AS j
                        WHERE j.queue = lane.queue AND j.priority = lane.priority
                          AND j.state = 'queued'
                        ORDER BY j.scheduled_at LIMIT 1) AS first
                    WHERE lane.queue = q.queue) AS live,
                   (SELECT s.scheduled_at FROM {schema}.job_scheduled AS s
                    WHERE s.queue = q.queue AND s.scheduled_at <= now()
                    ORDER BY s.scheduled_at LIMIT 1) AS scheduled
        ) AS oldest
        LEFT JOIN (SELECT queue, count(*) AS running FROM {schema}.job_live
                   WHERE state = 'running' GROUP BY queue) AS run ON run.queue = q.queue
        WHERE live.n + later.n + dead.dead + coalesce(run.running, 0) > 0
        ORDER BY q.queue"""
    )

    async def overview(self, db: Queryable, cap: int) -> list[QueueOverview]:
        """Per queue: jobs waiting, retrying, running and dead (each counted up to ``cap``),
        and the oldest due job's wait."""
        return [QueueOverview(**dict(row)) for row in await self._overview.fetch(db, cap=cap)]

    # Done jobs from the per-minute and per-batch counts (reads.DONE_LAST_HOUR); dead
    # letters of the last hour through job_dead_finished_idx.
    _throughput = Statement(
        f"""
        SELECT (extract(epoch FROM date_trunc('minute', now()) - minute) / 60)::int
                   AS minutes_ago,
               sum(done)::bigint AS done, sum(dead)::bigint AS dead
        FROM (SELECT minute, done, 0 AS dead FROM ({DONE_LAST_HOUR}) AS done
              UNION ALL
              SELECT date_trunc('minute', finished_at), 0, 1 FROM {{schema}}.job_dead
              WHERE finished_at >= date_trunc('minute', now()) - interval '59 minutes'
              ) AS finished
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

    # Grouped among the newest :sample dead letters (the page says so when there are more):
    # the groups an operator acts on first, read through the primary key whatever the
    # table holds.
    _dead_groups = Statement(
        f"""
        SELECT g.task_name, g.error_reason, g.count, g.newest_id,
               left(d.error_message, {_PREVIEW}) AS newest_message, d.finished_at AS newest_at
        FROM (SELECT task_name, error_reason, count(*) AS count, max(id) AS newest_id
              FROM (SELECT task_name, error_reason, id FROM {{schema}}.job_dead
                    ORDER BY id DESC LIMIT :sample) AS newest
              WHERE :task_name::text IS NULL OR task_name = :task_name
              GROUP BY task_name, error_reason) AS g
        LEFT JOIN {{schema}}.job_dead AS d ON d.id = g.newest_id
        ORDER BY g.count DESC, g.task_name, g.error_reason
        LIMIT :limit"""
    )

    async def dead_groups(
        self, db: Queryable, task_name: str | None, limit: int, sample: int
    ) -> list[DeadGroup]:
        """The newest ``sample`` dead letters grouped by task and reason, the largest
        groups first."""
        rows = await self._dead_groups.fetch(db, task_name=task_name, limit=limit, sample=sample)
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

    # Among the newest :sample jobs of each table (the page says so when a table holds
    # more): which versions and fingerprints are about, read through the primary keys.
    _fingerprints = Statement(
        """
        SELECT task_name, contract_version, contract_fingerprint, state, count(*) AS count
        FROM ((SELECT task_name, contract_version, contract_fingerprint,
                      CASE WHEN state = 'running' THEN 'running' ELSE 'queued' END AS state
               FROM {schema}.job_live ORDER BY id DESC LIMIT :sample)
              UNION ALL
              (SELECT task_name, contract_version, contract_fingerprint, 'queued'
               FROM {schema}.job_scheduled ORDER BY id DESC LIMIT :sample)
              UNION ALL
              (SELECT task_name, contract_version, contract_fingerprint, 'dead'
               FROM {schema}.job_dead ORDER BY id DESC LIMIT :sample)) AS waiting
        GROUP BY 1, 2, 3, 4
        ORDER BY 1, 2 NULLS FIRST, 3 NULLS FIRST, 4"""
    )

    async def fingerprints(self, db: Queryable, sample: int) -> list[FingerprintCount]:
        """Queued, running and dead jobs by task, contract version and fingerprint, among
        the newest ``sample`` of each table."""
        rows = await self._fingerprints.fetch(db, sample=sample)
        return [FingerprintCount(**dict(row)) for row in rows]

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
