"""All SQL for periodic schedules: reading their last ticks, and claiming a tick."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from soniq.job import NewJob


class PeriodicStore:
    """The statements on ``<schema>.periodic_schedules``; the schema is a checked identifier."""

    def __init__(self, schema: str) -> None:
        self._channel = f"{schema}.jobs"
        self._last_ticks = f"""
            SELECT now() AS now, array_agg(key) AS keys, array_agg(last_tick) AS ticks
            FROM {schema}.periodic_schedules WHERE key = ANY($1::text[])"""
        self._enqueue_tick = f"""
            WITH claimed AS (
                INSERT INTO {schema}.periodic_schedules AS p (key, last_tick) VALUES ($1, $2)
                ON CONFLICT (key) DO UPDATE SET last_tick = excluded.last_tick
                    WHERE p.last_tick < excluded.last_tick
                RETURNING key
            ), inserted AS (
                INSERT INTO {schema}.jobs (task_name, queue, args, priority, max_attempts,
                                           scheduled_at, contract_version, contract_fingerprint)
                SELECT $3, $4, $5::json, $6, $7, $2, $8, $9 FROM claimed
                RETURNING id, queue
            )
            SELECT id, pg_notify($10, queue) FROM inserted"""

    async def last_ticks(
        self, conn: asyncpg.Connection, keys: Sequence[str]
    ) -> tuple[datetime, dict[str, datetime]]:
        """The database's clock, and the last tick enqueued of each known schedule."""
        row = await conn.fetchrow(self._last_ticks, list(keys))
        assert row is not None
        return row["now"], dict(zip(row["keys"] or [], row["ticks"] or [], strict=True))

    async def enqueue_tick(
        self, conn: asyncpg.Connection, key: str, tick: datetime, job: NewJob
    ) -> int | None:
        """Enqueue ``job`` for this tick (scheduled at the tick) unless the tick, or a later
        one, was already enqueued; returns the new job's id, or None."""
        value = await conn.fetchval(
            self._enqueue_tick,
            key,
            tick,
            job.task_name,
            job.queue,
            job.args_json,
            job.priority,
            job.max_attempts,
            job.contract_version,
            job.contract_fingerprint,
            self._channel,
        )
        return None if value is None else int(value)
