"""What a pressure run samples from the database while it runs, each on a connection of its
own (application_name ``pressure-sampler``, left out of the wait-event samples):

- every second: queue depth (queued rows in job_live plus due rows of job_scheduled), running
  jobs, the age of the oldest transaction holding back the xmin horizon, and, per table of
  the schema, table+index size (``pg_total_relation_size``) and the statistics' dead-tuple
  count (``n_dead_tup``);
- every ``tuple_every`` seconds: exact dead tuples (``pgstattuple``) of the hot tables (the
  ring partitions, job_scheduled, job_dedup); job_history, insert-only and large, with
  ``pgstattuple_approx`` every sixth time;
- five times a second: what each active backend of the database is doing (running on CPU
  or its wait event), by who it is (worker, producer, reader, autovacuum...).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

SAMPLER = "pressure-sampler"
HOT = ("job_scheduled", "job_dedup", "job_lanes")  # beside the ring partitions
WAIT_EVERY = 0.2

_STATE = """
SELECT extract(epoch FROM clock_timestamp())::float8 AS t,
       (SELECT count(*) FROM {schema}.job_live WHERE state = 'queued') AS queued_live,
       (SELECT count(*) FROM {schema}.job_scheduled WHERE scheduled_at <= now()) AS due_scheduled,
       (SELECT count(*) FROM {schema}.job_live WHERE state = 'running') AS running,
       (SELECT extract(epoch FROM clock_timestamp() - min(xact_start))::float8
        FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()
          AND (backend_xid IS NOT NULL OR backend_xmin IS NOT NULL)) AS oldest_xact_s"""

_TABLES = r"""
SELECT c.relname AS name, pg_total_relation_size(c.oid) AS bytes,
       coalesce(s.n_dead_tup, 0) AS dead
FROM pg_class AS c LEFT JOIN pg_stat_user_tables AS s ON s.relid = c.oid
WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'r' AND c.relname LIKE 'job\_%'"""

_HOT_TUPLES = r"""
SELECT c.relname AS name, t.tuple_count AS live, t.dead_tuple_count AS dead
FROM pg_class AS c CROSS JOIN LATERAL pgstattuple(c.oid) AS t
WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'r'
  AND (c.relname LIKE 'job\_live\_%' OR c.relname = ANY($2::text[]))"""

_HISTORY_TUPLES = r"""
SELECT coalesce(sum(t.approx_tuple_count), 0)::bigint AS live,
       coalesce(sum(t.dead_tuple_count), 0)::bigint AS dead
FROM pg_class AS c CROSS JOIN LATERAL pgstattuple_approx(c.oid) AS t
WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'r' AND c.relname LIKE 'job\_history\_%'"""

_ACTIVE = """
SELECT usename, application_name, backend_type,
       coalesce(wait_event_type || ':' || wait_event, 'CPU') AS doing
FROM pg_stat_activity
WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()"""


def is_hot(table: str) -> bool:
    """The tables a queue churns: the live ring's partitions and the ones beside it."""
    return table.startswith("job_live_") or table in HOT


class Sampler:
    """Runs the three sampling loops from :meth:`start` until :meth:`stop`; the samples
    are in ``seconds``, ``tuples`` and ``waits`` (all stamped with the database clock)."""

    def __init__(self, url: str, schema: str, worker_user: str, *, tuple_every: float) -> None:
        self._url = url
        self._schema = schema
        self._worker_user = worker_user
        self._tuple_every = tuple_every
        self._tasks: list[asyncio.Task[None]] = []
        self.seconds: list[dict[str, Any]] = []
        self.tuples: list[dict[str, Any]] = []
        self.waits: dict[int, Counter[str]] = {}  # whole second -> "who doing" -> samples
        self.errors: Counter[str] = Counter()

    async def start(self) -> None:
        for loop in (self._state, self._tuples, self._waits):
            conn = await asyncpg.connect(
                self._url, timeout=30, server_settings={"application_name": SAMPLER}
            )
            self._tasks.append(asyncio.create_task(loop(conn)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _every(
        self, conn: asyncpg.Connection, period: float, sample: Callable[[], Awaitable[None]]
    ) -> None:
        """Run ``sample`` on a fixed period (a slow one skips ticks, never bunches them)."""
        loop = asyncio.get_running_loop()
        tick = loop.time()
        try:
            while True:
                try:
                    await sample()
                except (asyncpg.PostgresError, OSError) as exc:
                    self.errors[type(exc).__name__] += 1
                now = loop.time()
                while tick <= now:
                    tick += period
                await asyncio.sleep(tick - now)
        finally:
            conn.terminate()

    async def _state(self, conn: asyncpg.Connection) -> None:
        state = _STATE.replace("{schema}", self._schema)

        async def sample() -> None:
            row = await conn.fetchrow(state)
            tables = await conn.fetch(_TABLES, self._schema)
            assert row is not None
            history = [r for r in tables if r["name"].startswith("job_history_")]
            self.seconds.append(
                {
                    "t": row["t"],
                    "depth": row["queued_live"] + row["due_scheduled"],
                    "running": row["running"],
                    "oldest_xact_s": row["oldest_xact_s"],
                    "tables": {
                        r["name"]: [r["bytes"], r["dead"]] for r in tables if is_hot(r["name"])
                    },
                    "history": [sum(r["bytes"] for r in history), sum(r["dead"] for r in history)],
                }
            )

        await self._every(conn, 1.0, sample)

    async def _tuples(self, conn: asyncpg.Connection) -> None:
        count = 0

        async def sample() -> None:
            nonlocal count
            t = await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8")
            hot = await conn.fetch(_HOT_TUPLES, self._schema, list(HOT))
            entry: dict[str, Any] = {
                "t": t,
                "tables": {r["name"]: [r["live"], r["dead"]] for r in hot},
            }
            if count % 6 == 0:
                history = await conn.fetchrow(_HISTORY_TUPLES, self._schema)
                assert history is not None
                entry["history"] = [history["live"], history["dead"]]
            count += 1
            self.tuples.append(entry)

        await self._every(conn, self._tuple_every, sample)

    async def _waits(self, conn: asyncpg.Connection) -> None:
        async def sample() -> None:
            t = await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8")
            bucket = self.waits.setdefault(int(t), Counter())
            for row in await conn.fetch(_ACTIVE):
                who = self._who(row)
                if who is not None:
                    bucket[f"{who} {row['doing']}"] += 1

        await self._every(conn, WAIT_EVERY, sample)

    def _who(self, row: asyncpg.Record) -> str | None:
        app = row["application_name"] or ""
        if app == SAMPLER:
            return None
        if row["backend_type"] == "autovacuum worker":
            return "autovacuum"
        if row["usename"] == self._worker_user:
            return "worker"
        if app == "soniq":
            return "producer"
        return app.removeprefix("pressure-") or row["backend_type"]
