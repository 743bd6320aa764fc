"""Statements that add jobs: one, many, and the job of a periodic tick."""

from __future__ import annotations

from datetime import datetime

from soniq.db.sql import Queryable, Statement, Statements
from soniq.job import NewJob

_INSERT = """
    WITH inserted AS (
        INSERT INTO {schema}.jobs (task_name, queue, args, priority, max_attempts,
                                   scheduled_at, dedup_key, contract_version,
                                   contract_fingerprint, trace_context)
        VALUES (:task_name, :queue, :args::json, :priority, :max_attempts,
                coalesce(:scheduled_at, now() + :delay::interval, now()), :dedup_key,
                :contract_version,
                :contract_fingerprint, :trace_context::json)
        {on_conflict}
        RETURNING id, queue
    )
    -- pg_notify inside the statement: one round trip, and in a caller's transaction the
    -- notification is only delivered at commit.
    SELECT id, pg_notify('{schema}.jobs', queue) FROM inserted"""


class JobWrites(Statements):
    """How producers and the periodic scheduler add rows to ``<schema>.jobs``."""

    _insert = Statement(_INSERT.replace("{on_conflict}", ""))
    # Only a job with a dedup_key pays for ON CONFLICT's speculative insertion.
    _insert_dedup = Statement(
        _INSERT.replace(
            "{on_conflict}",
            "ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL "
            "AND state IN ('queued', 'running') DO NOTHING",
        )
    )

    async def insert(self, db: Queryable, job: NewJob) -> int | None:
        """Insert one job and wake a worker; ``None`` when its dedup_key is already live."""
        statement = self._insert if job.dedup_key is None else self._insert_dedup
        row = await statement.fetchrow(
            db,
            task_name=job.task_name,
            queue=job.queue,
            args=job.args_json,
            priority=job.priority,
            max_attempts=job.max_attempts,
            scheduled_at=job.scheduled_at,
            delay=job.delay,
            dedup_key=job.dedup_key,
            contract_version=job.contract_version,
            contract_fingerprint=job.contract_fingerprint,
            trace_context=job.trace_context,
        )
        return None if row is None else int(row["id"])

    _live_id_for_dedup_key = Statement(
        """SELECT id FROM {schema}.jobs
           WHERE dedup_key = :dedup_key AND state IN ('queued', 'running')"""
    )

    async def live_id_for_dedup_key(self, db: Queryable, dedup_key: str) -> int | None:
        """The queued or running job holding ``dedup_key``, if any."""
        value = await self._live_id_for_dedup_key.fetchval(db, dedup_key=dedup_key)
        return None if value is None else int(value)

    _insert_many = Statement(
        """
        WITH inserted AS (
            INSERT INTO {schema}.jobs (task_name, queue, args, priority, max_attempts,
                                       scheduled_at, contract_version, contract_fingerprint,
                                       trace_context)
            SELECT :task_name, :queue, a.args, :priority, :max_attempts,
                   coalesce(:scheduled_at, now() + :delay::interval, now()),
                   :contract_version, :contract_fingerprint,
                   :trace_context::json
            FROM unnest(:args::json[]) WITH ORDINALITY AS a(args, n)
            ORDER BY a.n
            RETURNING id
        )
        SELECT array_agg(id ORDER BY id) AS ids, pg_notify('{schema}.jobs', :queue)
        FROM inserted"""
    )

    async def insert_many(self, db: Queryable, template: NewJob, args_json: list[str]) -> list[int]:
        """Insert one job per args text (same task and options) in one statement."""
        row = await self._insert_many.fetchrow(
            db,
            task_name=template.task_name,
            queue=template.queue,
            args=args_json,
            priority=template.priority,
            max_attempts=template.max_attempts,
            scheduled_at=template.scheduled_at,
            delay=template.delay,
            contract_version=template.contract_version,
            contract_fingerprint=template.contract_fingerprint,
            trace_context=template.trace_context,
        )
        assert row is not None
        return list(row["ids"] or [])

    # Claiming the tick and inserting its job in one statement: of all the workers running
    # the same schedule, exactly one moves last_tick forward, and only it inserts the job.
    _insert_for_tick = Statement(
        """
        WITH claimed AS (
            INSERT INTO {schema}.periodic_schedules AS p (key, last_tick) VALUES (:key, :tick)
            ON CONFLICT (key) DO UPDATE SET last_tick = excluded.last_tick
                WHERE p.last_tick < excluded.last_tick
            RETURNING key
        ), inserted AS (
            INSERT INTO {schema}.jobs (task_name, queue, args, priority, max_attempts,
                                       scheduled_at, contract_version, contract_fingerprint)
            SELECT :task_name, :queue, :args::json, :priority, :max_attempts, :tick,
                   :contract_version, :contract_fingerprint
            FROM claimed
            RETURNING id, queue
        )
        SELECT id, pg_notify('{schema}.jobs', queue) FROM inserted"""
    )

    async def insert_for_tick(
        self, db: Queryable, key: str, tick: datetime, job: NewJob
    ) -> int | None:
        """Enqueue ``job`` for this tick of schedule ``key`` (scheduled at the tick) unless
        the tick, or a later one, was already enqueued; returns the new job's id, or None."""
        value = await self._insert_for_tick.fetchval(
            db,
            key=key,
            tick=tick,
            task_name=job.task_name,
            queue=job.queue,
            args=job.args_json,
            priority=job.priority,
            max_attempts=job.max_attempts,
            contract_version=job.contract_version,
            contract_fingerprint=job.contract_fingerprint,
        )
        return None if value is None else int(value)
