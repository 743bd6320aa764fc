"""All SQL for ``queue_settings`` (migration 0014): reading and changing how queues are
steered. The claims that obey the settings are in :mod:`soniq.db.jobs.steered`."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from soniq.db.jobs.claims import CLAIM_MARK
from soniq.db.sql import Queryable, Statement, Statements
from soniq.queues import QueueSettings, format_rate, parse_rate

_CLAIMS_WAIT = 2.0
_COLUMNS = "queue, paused, concurrency, rate_limit, rate_period, partition_by, updated_at"


def _settings(row: asyncpg.Record) -> QueueSettings:
    rate = row["rate_limit"]
    return QueueSettings(
        queue=row["queue"],
        paused=row["paused"],
        concurrency=row["concurrency"],
        rate_limit=None if rate is None else format_rate(rate, row["rate_period"]),
        partition_by=tuple(row["partition_by"]),
        updated_at=row["updated_at"],
    )


class QueueStore(Statements):
    """The statements on ``<schema>.queue_settings``; the schema is a checked identifier."""

    _get = Statement(f"SELECT {_COLUMNS} FROM {{schema}}.queue_settings WHERE queue = :queue")
    # Under the row's lock, so that two configure_queue calls on one queue do not lose
    # each other's changes, and a limited claim of the queue under way finishes first.
    _lock = Statement(
        f"SELECT {_COLUMNS} FROM {{schema}}.queue_settings WHERE queue = :queue FOR NO KEY UPDATE"
    )
    _list = Statement(f"SELECT {_COLUMNS} FROM {{schema}}.queue_settings ORDER BY queue")

    async def get(self, db: Queryable, queue: str, *, lock: bool = False) -> QueueSettings:
        """The settings of ``queue`` (the defaults when it has none); with ``lock``, held
        under its row's lock until the caller's transaction ends."""
        row = await (self._lock if lock else self._get).fetchrow(db, queue=queue)
        return QueueSettings(queue) if row is None else _settings(row)

    async def all(self, db: Queryable) -> list[QueueSettings]:
        """Every queue that has settings, by name."""
        return [_settings(row) for row in await self._list.fetch(db)]

    # A queue whose settings are all the defaults has no row: the plain claim serves it.
    # Workers are woken either way, so that a resumed queue is claimed at once.
    _save = Statement(
        """
        WITH kept AS (
            INSERT INTO {schema}.queue_settings AS s (queue, paused, concurrency, rate_limit,
                rate_period, partition_by, updated_at)
            SELECT :queue, :paused, :concurrency, :rate_limit, :rate_period, :partition_by,
                statement_timestamp()
            WHERE :keep
            ON CONFLICT (queue) DO UPDATE SET paused = excluded.paused,
                concurrency = excluded.concurrency, rate_limit = excluded.rate_limit,
                rate_period = excluded.rate_period, partition_by = excluded.partition_by,
                updated_at = excluded.updated_at
            RETURNING updated_at
        ),
        dropped AS (
            DELETE FROM {schema}.queue_settings WHERE queue = :queue AND NOT :keep
        )
        SELECT (SELECT updated_at FROM kept), pg_notify('{schema}.jobs', :queue)"""
    )

    async def save(self, db: Queryable, settings: QueueSettings) -> QueueSettings:
        """Store ``settings`` (checked by :func:`soniq.queues.updated`); returns them as
        stored."""
        count, period = parse_rate(settings.rate_limit) if settings.rate_limit else (None, None)
        keep = settings.paused or settings.limited
        row = await self._save.fetchrow(
            db,
            queue=settings.queue,
            paused=settings.paused,
            concurrency=settings.concurrency,
            rate_limit=count,
            rate_period=period,
            partition_by=list(settings.partition_by),
            keep=keep,
        )
        assert row is not None
        if not keep:
            return QueueSettings(settings.queue)
        return QueueSettings(
            settings.queue,
            settings.paused,
            settings.concurrency,
            settings.rate_limit,
            settings.partition_by,
            row["updated_at"],
        )

    # Plain claims that began before a queue got its settings read it as having none, and
    # may still take its jobs; the ones under way are found by their first line. A role
    # that may not read other roles' queries (pg_read_all_stats) sees none of theirs.
    _claims_under_way = Statement(
        f"""
        SELECT count(*) FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'
          AND query_start < :since AND starts_with(query, '{CLAIM_MARK}')"""
    )

    async def wait_for_claims_under_way(self, conn: asyncpg.Connection) -> None:
        """Return once every plain claim that began before this call has ended (claims
        take milliseconds; at most :data:`_CLAIMS_WAIT` seconds are spent)."""
        since = await conn.fetchval("SELECT clock_timestamp()")
        deadline = time.monotonic() + _CLAIMS_WAIT
        while await self._claims_under_way.fetchval(conn, since=since):
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(0.005)
