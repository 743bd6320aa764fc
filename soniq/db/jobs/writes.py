"""Statements that add jobs: one, many, and the job of a periodic tick.

A job due now goes into the live ring (``job_live``, at the partition of this 5-second
slot), a job due later into ``job_scheduled``; one statement decides, by the database's
clock. Its lane (queue, priority) is registered in the same statement: the insert only
writes when the lane is new, so producers never queue behind each other on it (except on
the very first job of a lane, which two producers may race to register).
"""

from __future__ import annotations

from datetime import datetime

from soniq.db.sql import Queryable, Statement, Statements
from soniq.job import NewJob

_LANE = """
    lane AS (
        INSERT INTO {schema}.job_lanes (queue, priority)
        SELECT :queue, :priority
        WHERE NOT EXISTS (SELECT 1 FROM {schema}.job_lanes
                          WHERE queue = :queue AND priority = :priority)
        ON CONFLICT DO NOTHING
    )"""
# When the job is due; statement_timestamp(), not now(): a job enqueued late in a long
# caller transaction is still recent to the claims' window (see JobClaims).
_DUE = "coalesce(:scheduled_at, statement_timestamp() + :delay::interval, statement_timestamp())"

_INSERT = f"""
    WITH {{ident}},{_LANE},
    live AS (
        INSERT INTO {{schema}}.job_live (slot, id, task_name, queue, args, state, priority,
            max_attempts, scheduled_at, enqueued_at, dedup_key, contract_version,
            contract_fingerprint, trace_context)
        SELECT {{schema}}.live_slot(), new.id, :task_name, :queue, :args::json, 'queued',
            :priority, :max_attempts, new.due, statement_timestamp(), :dedup_key,
            :contract_version, :contract_fingerprint, :trace_context::json
        FROM new WHERE new.due <= statement_timestamp()
        RETURNING id, queue
    ),
    later AS (
        INSERT INTO {{schema}}.job_scheduled (id, task_name, queue, args, priority,
            max_attempts, scheduled_at, enqueued_at, dedup_key, contract_version,
            contract_fingerprint, trace_context)
        SELECT new.id, :task_name, :queue, :args::json, :priority, :max_attempts, new.due,
            statement_timestamp(), :dedup_key, :contract_version, :contract_fingerprint,
            :trace_context::json
        FROM new WHERE new.due > statement_timestamp()
        RETURNING id
    )
    -- pg_notify inside the statement: one round trip, and in a caller's transaction the
    -- notification is only delivered at commit. A job due later is announced when due.
    SELECT id, pg_notify('{{schema}}.jobs', queue) FROM live
    UNION ALL SELECT id, NULL FROM later"""

_NEW_ID = f"new AS (SELECT nextval('{{schema}}.job_ids') AS id, {_DUE} AS due)"
# The key's row is the claim on it: a second job with a key held by a live job inserts
# nothing here (waiting first, if the holder's transaction is still open).
_NEW_ID_WITH_KEY = f"""
    key AS (
        INSERT INTO {{schema}}.job_dedup (dedup_key, job_id)
        VALUES (:dedup_key, nextval('{{schema}}.job_ids'))
        ON CONFLICT (dedup_key) DO NOTHING
        RETURNING job_id
    ),
    new AS (SELECT job_id AS id, {_DUE} AS due FROM key)"""


class JobWrites(Statements):
    """How producers and the periodic scheduler add jobs."""

    _insert = Statement(_INSERT.replace("{ident}", _NEW_ID))
    # Only a job with a dedup_key pays for the key's row.
    _insert_dedup = Statement(_INSERT.replace("{ident}", _NEW_ID_WITH_KEY))

    async def insert(self, db: Queryable, job: NewJob) -> int | None:
        """Insert one job and wake a worker; ``None`` when its dedup_key is already live."""
        values = {
            "task_name": job.task_name,
            "queue": job.queue,
            "args": job.args_json,
            "priority": job.priority,
            "max_attempts": job.max_attempts,
            "scheduled_at": job.scheduled_at,
            "delay": job.delay,
            "contract_version": job.contract_version,
            "contract_fingerprint": job.contract_fingerprint,
            "trace_context": job.trace_context,
            "dedup_key": job.dedup_key,
        }
        statement = self._insert if job.dedup_key is None else self._insert_dedup
        row = await statement.fetchrow(db, **values)
        return None if row is None else int(row["id"])

    _live_id_for_dedup_key = Statement(
        "SELECT job_id FROM {schema}.job_dedup WHERE dedup_key = :dedup_key"
    )

    async def live_id_for_dedup_key(self, db: Queryable, dedup_key: str) -> int | None:
        """The queued, scheduled or running job holding ``dedup_key``, if any."""
        value = await self._live_id_for_dedup_key.fetchval(db, dedup_key=dedup_key)
        return None if value is None else int(value)

    _insert_many = Statement(
        f"""
        WITH {_LANE.strip()},
        due AS (SELECT {_DUE} AS at),
        new AS (
            SELECT nextval('{{schema}}.job_ids') AS id, a.args
            FROM (SELECT args, n FROM unnest(:args_list::json[]) WITH ORDINALITY AS a(args, n)
                  ORDER BY n) AS a
        ),
        live AS (
            INSERT INTO {{schema}}.job_live (slot, id, task_name, queue, args, state, priority,
                max_attempts, scheduled_at, enqueued_at, contract_version, contract_fingerprint,
                trace_context)
            SELECT {{schema}}.live_slot(), new.id, :task_name, :queue, new.args, 'queued',
                :priority, :max_attempts, due.at, statement_timestamp(), :contract_version,
                :contract_fingerprint, :trace_context::json
            FROM new, due WHERE due.at <= statement_timestamp()
            RETURNING id
        ),
        later AS (
            INSERT INTO {{schema}}.job_scheduled (id, task_name, queue, args, priority,
                max_attempts, scheduled_at, enqueued_at, contract_version,
                contract_fingerprint, trace_context)
            SELECT new.id, :task_name, :queue, new.args, :priority, :max_attempts, due.at,
                statement_timestamp(), :contract_version, :contract_fingerprint,
                :trace_context::json
            FROM new, due WHERE due.at > statement_timestamp()
            RETURNING id
        )
        SELECT array_agg(id ORDER BY id) AS ids, pg_notify('{{schema}}.jobs', :queue)
        FROM (SELECT id FROM live UNION ALL SELECT id FROM later) AS inserted"""
    )

    async def insert_many(self, db: Queryable, template: NewJob, args_json: list[str]) -> list[int]:
        """Insert one job per args text (same task and options) in one statement; returns
        the ids in the order of ``args_json``."""
        row = await self._insert_many.fetchrow(
            db,
            task_name=template.task_name,
            queue=template.queue,
            args_list=args_json,
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
        f"""
        WITH claimed AS (
            INSERT INTO {{schema}}.periodic_schedules AS p (key, last_tick) VALUES (:key, :tick)
            ON CONFLICT (key) DO UPDATE SET last_tick = excluded.last_tick
                WHERE p.last_tick < excluded.last_tick
            RETURNING key
        ),{_LANE},
        inserted AS (
            INSERT INTO {{schema}}.job_live (slot, id, task_name, queue, args, state, priority,
                max_attempts, scheduled_at, enqueued_at, contract_version, contract_fingerprint)
            SELECT {{schema}}.live_slot(), nextval('{{schema}}.job_ids'), :task_name, :queue,
                :args::json, 'queued', :priority, :max_attempts, :tick, statement_timestamp(),
                :contract_version, :contract_fingerprint
            FROM claimed
            RETURNING id, queue
        )
        SELECT id, pg_notify('{{schema}}.jobs', queue) FROM inserted"""
    )

    async def insert_for_tick(
        self, db: Queryable, key: str, tick: datetime, job: NewJob
    ) -> int | None:
        """Enqueue ``job`` for this (past) tick of schedule ``key``, scheduled at the tick,
        unless the tick, or a later one, was already enqueued; returns the new job's id."""
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
