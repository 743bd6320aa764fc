"""Read-only reporting SQL over jobs and workers: ``soniq status`` and ``soniq contracts``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import asyncpg

from soniq.db.jobs import Queryable
from soniq.db.workers import STALE_AFTER_LEASES
from soniq.status import QueueStats, VersionCount, WaitingJob

_LIVE_WORKER = (
    f"w.heartbeat_at >= now() - make_interval(secs => {STALE_AFTER_LEASES} * w.lease_seconds)"
)


class ReportStore:
    def __init__(self, schema: str) -> None:
        jobs = f"{schema}.jobs"
        workers = f"{schema}.workers"
        self._queue_stats = f"""
            SELECT queue,
                count(*) FILTER (WHERE state = 'queued' AND scheduled_at <= now()) AS queued,
                count(*) FILTER (WHERE state = 'queued' AND scheduled_at > now()) AS scheduled,
                count(*) FILTER (WHERE state = 'running') AS running,
                count(*) FILTER (WHERE state = 'done') AS done_last_hour,
                count(*) FILTER (WHERE state = 'dead') AS dead,
                extract(epoch FROM now() - min(scheduled_at)
                        FILTER (WHERE state = 'queued' AND scheduled_at <= now())) AS oldest
            FROM {jobs}
            WHERE state IN ('queued', 'running', 'dead')
               OR (state = 'done' AND finished_at > now() - interval '1 hour')
            GROUP BY queue
            ORDER BY queue"""
        # Jobs written against a newer contract version than any live worker runs: they
        # wait, unspent, for a newer consumer. Workers registered without a version take
        # any version, so they are left out of the max().
        self._waiting_for_newer = f"""
            WITH served AS (
                SELECT t.key AS task_name, max((t.value #>> '{{}}')::int) AS version
                FROM {workers} w, json_each(w.tasks) AS t
                WHERE {_LIVE_WORKER}
                GROUP BY t.key
            )
            SELECT j.task_name, j.contract_version, count(*) AS count
            FROM {jobs} j JOIN served s ON s.task_name = j.task_name
            WHERE j.state = 'queued' AND j.contract_version > s.version
            GROUP BY j.task_name, j.contract_version
            ORDER BY j.task_name, j.contract_version"""
        self._versions = f"""
            SELECT task_name, contract_version,
                   CASE WHEN state = 'queued' AND scheduled_at > now() THEN 'scheduled'
                        ELSE state END AS state,
                   count(*) AS count
            FROM {jobs}
            WHERE state IN ('queued', 'dead')
            GROUP BY 1, 2, 3
            ORDER BY 1, 2 NULLS FIRST, 3"""
        self._waiting_jobs = f"""
            SELECT id, contract_version,
                   CASE WHEN state = 'queued' AND scheduled_at > now() THEN 'scheduled'
                        ELSE state END AS state,
                   args::text AS args
            FROM {jobs}
            WHERE task_name = $1 AND state IN ('queued', 'dead')
            ORDER BY id"""

    async def queue_stats(self, db: Queryable) -> list[QueueStats]:
        rows = await db.fetch(self._queue_stats)
        return [
            QueueStats(
                queue=row["queue"],
                queued=row["queued"],
                scheduled=row["scheduled"],
                running=row["running"],
                done_last_hour=row["done_last_hour"],
                dead=row["dead"],
                oldest_wait_seconds=None if row["oldest"] is None else float(row["oldest"]),
            )
            for row in rows
        ]

    async def waiting_for_newer_consumer(self, db: Queryable) -> list[VersionCount]:
        rows = await db.fetch(self._waiting_for_newer)
        return [
            VersionCount(row["task_name"], row["contract_version"], "queued", row["count"])
            for row in rows
        ]

    async def contract_versions(self, db: Queryable) -> list[VersionCount]:
        """Per task, version and state (queued, scheduled, dead): how many jobs wait."""
        rows = await db.fetch(self._versions)
        return [
            VersionCount(row["task_name"], row["contract_version"], row["state"], row["count"])
            for row in rows
        ]

    async def waiting_jobs(
        self, conn: asyncpg.Connection, task_names: Sequence[str]
    ) -> AsyncIterator[tuple[str, WaitingJob]]:
        """Every queued, scheduled or dead job of these tasks, streamed with a cursor."""
        async with conn.transaction(readonly=True):
            for task_name in task_names:
                async for row in conn.cursor(self._waiting_jobs, task_name, prefetch=500):
                    yield (
                        task_name,
                        WaitingJob(row["id"], row["contract_version"], row["state"], row["args"]),
                    )
