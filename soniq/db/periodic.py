"""SQL for periodic schedules: the last tick enqueued of each (the tick claim that inserts a
tick's job is a jobs statement: :meth:`soniq.db.jobs.writes.JobWrites.insert_for_tick`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from soniq.db.sql import Queryable, Statement, Statements


class PeriodicStore(Statements):
    """The statements on ``<schema>.periodic_schedules``; the schema is a checked identifier."""

    _last_ticks = Statement(
        """
        SELECT now() AS now, array_agg(key) AS keys, array_agg(last_tick) AS ticks
        FROM {schema}.periodic_schedules WHERE key = ANY(:keys::text[])"""
    )

    async def last_ticks(
        self, db: Queryable, keys: Sequence[str]
    ) -> tuple[datetime, dict[str, datetime]]:
        """The database's clock, and the last tick enqueued of each known schedule."""
        row = await self._last_ticks.fetchrow(db, keys=list(keys))
        assert row is not None
        return row["now"], dict(zip(row["keys"] or [], row["ticks"] or [], strict=True))

    _all = Statement("SELECT key, last_tick FROM {schema}.periodic_schedules ORDER BY key")

    async def all(self, db: Queryable) -> dict[str, datetime]:
        """The last tick enqueued of every schedule any worker ever ran."""
        return {row["key"]: row["last_tick"] for row in await self._all.fetch(db)}
