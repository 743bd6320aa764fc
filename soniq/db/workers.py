"""All SQL for the workers table: who is running, what they serve, and when they last beat."""

from __future__ import annotations

import json
from collections.abc import Sequence

from soniq.db.jobs import Queryable
from soniq.status import WorkerRecord

# A worker row whose heartbeat is older than this many leases is gone (killed, partitioned).
STALE_AFTER_LEASES = 3


class WorkerStore:
    """The statements on ``<schema>.workers``; the schema is a checked identifier."""

    def __init__(self, schema: str) -> None:
        t = f"{schema}.workers"
        self._register = f"""
            INSERT INTO {t} (id, hostname, pid, queues, tasks, concurrency, lease_seconds)
            VALUES ($1, $2, $3, $4, $5::json, $6, $7)
            ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()  -- the heartbeat"""
        self._remove = f"DELETE FROM {t} WHERE id = $1"
        self._remove_stale = f"""
            DELETE FROM {t}
            WHERE heartbeat_at < now() - make_interval(secs => {STALE_AFTER_LEASES} * lease_seconds)
                                       - interval '1 minute'"""
        self._live = f"""
            SELECT id, hostname, pid, queues, tasks::text AS tasks, concurrency, started_at,
                   heartbeat_at, extract(epoch FROM now() - heartbeat_at) AS age
            FROM {t}
            WHERE heartbeat_at
                  >= now() - make_interval(secs => {STALE_AFTER_LEASES} * lease_seconds)
            ORDER BY started_at, id"""

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
        await db.execute(
            self._register,
            worker_id,
            hostname,
            pid,
            None if queues is None else list(queues),
            json.dumps(tasks, sort_keys=True),
            concurrency,
            lease_seconds,
        )

    async def remove(self, db: Queryable, worker_id: str) -> None:
        await db.execute(self._remove, worker_id)

    async def remove_stale(self, db: Queryable) -> None:
        await db.execute(self._remove_stale)

    async def live(self, db: Queryable) -> list[WorkerRecord]:
        rows = await db.fetch(self._live)
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
