"""All SQL for the workers table: who is running, what they serve, and when they last beat."""

from __future__ import annotations

import json
from collections.abc import Sequence

from soniq.db.sql import Queryable, Statement, Statements
from soniq.status import WorkerRecord

# A worker row whose heartbeat is older than this many leases is gone (killed, partitioned).
STALE_AFTER_LEASES = 3
LIVE_WORKER = (
    f"w.heartbeat_at >= now() - make_interval(secs => {STALE_AFTER_LEASES} * w.lease_seconds)"
)


class WorkerStore(Statements):
    """The statements on ``<schema>.workers``; the schema is a checked identifier."""

    _register = Statement(
        """
        INSERT INTO {schema}.workers (id, hostname, pid, queues, tasks, concurrency,
                                      lease_seconds)
        VALUES (:worker_id, :hostname, :pid, :queues, :tasks::json, :concurrency,
                :lease_seconds)
        ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()  -- the heartbeat"""
    )

    async def register(
        self,
        db: Queryable,
        *,
        worker_id: str,
        hostname: str,
        pid: int,
        queues: Sequence[str] | None,
        tasks: dict[str, int | None],
        concurrency: int,
        lease_seconds: float,
    ) -> None:
        """Add this worker's row, or beat it if it exists."""
        await self._register.execute(
            db,
            worker_id=worker_id,
            hostname=hostname,
            pid=pid,
            queues=None if queues is None else list(queues),
            tasks=json.dumps(tasks, sort_keys=True),
            concurrency=concurrency,
            lease_seconds=lease_seconds,
        )

    _remove = Statement("DELETE FROM {schema}.workers WHERE id = :worker_id")

    async def remove(self, db: Queryable, worker_id: str) -> None:
        await self._remove.execute(db, worker_id=worker_id)

    _remove_stale = Statement(
        f"""
        DELETE FROM {{schema}}.workers
        WHERE heartbeat_at < now() - make_interval(secs => {STALE_AFTER_LEASES} * lease_seconds)
                                   - interval '1 minute'"""
    )

    async def remove_stale(self, db: Queryable) -> None:
        """Delete the rows of workers gone for a while (a minute past being stale)."""
        await self._remove_stale.execute(db)

    _live = Statement(
        f"""
        SELECT id, hostname, pid, queues, tasks::text AS tasks, concurrency, started_at,
               heartbeat_at, extract(epoch FROM now() - heartbeat_at) AS age
        FROM {{schema}}.workers AS w
        WHERE {LIVE_WORKER}
        ORDER BY started_at, id"""
    )

    async def live(self, db: Queryable) -> list[WorkerRecord]:
        """The workers that beat recently, oldest first."""
        rows = await self._live.fetch(db)
        return [
            WorkerRecord(
                id=row["id"],
                hostname=row["hostname"],
                pid=row["pid"],
                queues=row["queues"],
                tasks=json.loads(row["tasks"]),
                concurrency=row["concurrency"],
                started_at=row["started_at"],
                heartbeat_at=row["heartbeat_at"],
                heartbeat_age_seconds=float(row["age"]),
            )
            for row in rows
        ]
