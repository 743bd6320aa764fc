"""Statements that add jobs: one, many, and the job of a periodic tick.

A job due now goes into the live ring (``job_live``, at the partition of the current
10-second slot), a job due later into ``job_scheduled``; the database's clock decides. Its
lane (queue, priority) is registered at the same time, written only when the lane is new,
so producers never queue behind each other on it (except on the very first job of a lane,
which two producers may race to register).
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


class JobWrites(Statements):
    """How producers and the periodic scheduler add jobs."""

    # Producers write through the SECURITY DEFINER functions of migrations 0010 and 0011, the same
    # ones other languages call (docs/sql-api.md): they hold the checks SQL can make, and a
    # producer role needs no privilege on the tables themselves.
    _enqueue = Statement(
        """
        SELECT job_id, created FROM {schema}.enqueue_job(:task_name, :args::json, queue => :queue,
            priority => :priority, scheduled_at => :scheduled_at, delay => :delay::interval,
            dedup_key => :dedup_key, max_attempts => :max_attempts,
            contract_version => :contract_version,
            contract_fingerprint => :contract_fingerprint,
            trace_context => :trace_context::json, max_args_bytes => :max_args_bytes)"""
    )

    # The same, then the job waits for its parents (migration 0014).
    _enqueue_after = Statement(
        """
        SELECT job_id, created FROM {schema}.enqueue_job_after(:task_name, :args::json,
            :after::bigint[], queue => :queue, priority => :priority,
            scheduled_at => :scheduled_at, delay => :delay::interval, dedup_key => :dedup_key,
            max_attempts => :max_attempts, contract_version => :contract_version,
            contract_fingerprint => :contract_fingerprint,
            trace_context => :trace_context::json, max_args_bytes => :max_args_bytes)"""
    )

    async def insert(self, db: Queryable, job: NewJob, *, max_args_bytes: int) -> tuple[int, bool]:
        """Insert one job and wake a worker at commit (one with ``after`` waits for those
        jobs first): its id and True; with a ``dedup_key`` a live job already holds, that
        job's id and False (nothing written)."""
        extra = {"after": list(job.after)} if job.after else {}
        row = await (self._enqueue_after if job.after else self._enqueue).fetchrow(
            db,
            **extra,
            task_name=job.task_name,
            queue=job.queue,
            args=job.args_json,
            priority=job.priority,
            max_attempts=job.max_attempts,
            scheduled_at=job.scheduled_at,
            delay=job.delay,
            contract_version=job.contract_version,
            contract_fingerprint=job.contract_fingerprint,
            trace_context=job.trace_context,
            dedup_key=job.dedup_key,
            max_args_bytes=max_args_bytes,
        )
        assert row is not None
        return int(row["job_id"]), bool(row["created"])

    _enqueue_many = Statement(
        """
        SELECT {schema}.enqueue_many(:task_name, :args_list::json[], queue => :queue,
            priority => :priority, scheduled_at => :scheduled_at, delay => :delay::interval,
            max_attempts => :max_attempts, contract_version => :contract_version,
            contract_fingerprint => :contract_fingerprint,
            trace_context => :trace_context::json, max_args_bytes => :max_args_bytes)"""
    )

    _enqueue_many_after = Statement(
        """
        SELECT {schema}.enqueue_many_after(:task_name, :args_list::json[], :after::bigint[],
            queue => :queue, priority => :priority, scheduled_at => :scheduled_at,
            delay => :delay::interval, max_attempts => :max_attempts,
            contract_version => :contract_version,
            contract_fingerprint => :contract_fingerprint,
            trace_context => :trace_context::json, max_args_bytes => :max_args_bytes)"""
    )

    async def insert_many(
        self, db: Queryable, template: NewJob, args_json: list[str], *, max_args_bytes: int
    ) -> list[int]:
        """Insert one job per args text (same task and options) in one statement; returns
        the ids in the order of ``args_json``. With ``after``, each waits for those jobs."""
        extra = {"after": list(template.after)} if template.after else {}
        ids = await (self._enqueue_many_after if template.after else self._enqueue_many).fetchval(
            db,
            **extra,
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
            max_args_bytes=max_args_bytes,
        )
        return list(ids)

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
