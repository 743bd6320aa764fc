"""Statements behind operators' actions on jobs: cancel, replay and purge."""

from __future__ import annotations

from collections.abc import Sequence

from soniq.db.jobs.moves import CANCELLED_MESSAGE, free_keys, to_history
from soniq.db.sql import Queryable, Statement, Statements

_CANCELLED = f"'cancelled', {CANCELLED_MESSAGE}, NULL"


class JobActions(Statements):
    """``app.cancel()`` and the dead-letter queue's replay and purge."""

    _cancel_scheduled = Statement(
        f"""
        WITH gone AS (
            DELETE FROM {{schema}}.job_scheduled WHERE id = :job_id
            RETURNING *, now() AS cancel_requested_at
        ),
        history AS ({to_history("gone", "'cancelled'", errors=_CANCELLED, result="NULL")}),
        keys AS ({free_keys("gone")})
        SELECT id, pg_notify('{{schema}}.results', id::text),
               {{schema}}.settle_children(ARRAY[id], ARRAY['cancelled']) FROM gone"""
    )
    # A job waiting for its parents: cancelled like a scheduled one (and so are the jobs
    # waiting for it in turn).
    _cancel_waiting = Statement(
        f"""
        WITH gone AS (
            DELETE FROM {{schema}}.job_waiting WHERE id = :job_id
            RETURNING *, now() AS cancel_requested_at
        ),
        history AS ({to_history("gone", "'cancelled'", errors=_CANCELLED, result="NULL")}),
        keys AS ({free_keys("gone")}),
        waits AS (
            DELETE FROM {{schema}}.job_dependencies AS d USING gone WHERE d.child_id = gone.id
        )
        SELECT id, pg_notify('{{schema}}.results', id::text),
               {{schema}}.settle_children(ARRAY[id], ARRAY['cancelled']) FROM gone"""
    )
    # One UPDATE whatever the job's state now (a claim racing with it is re-checked by
    # PostgreSQL on the claimed row): a queued job is marked, so no claim takes it, and then
    # moved to history; a running one is for its worker to stop.
    _request_cancel = Statement(
        """
        UPDATE {schema}.job_live AS j
        SET cancel_requested_at = coalesce(j.cancel_requested_at, now())
        WHERE j.id = :job_id AND j.state IN ('queued', 'running')
        RETURNING j.state,
                  CASE WHEN j.state = 'running'
                       THEN pg_notify('{schema}.cancel', j.id::text) END"""
    )
    _cancel_queued = Statement(
        f"""
        WITH gone AS (
            DELETE FROM {{schema}}.job_live
            WHERE id = :job_id AND state = 'queued' AND cancel_requested_at IS NOT NULL
            RETURNING *
        ),
        history AS ({to_history("gone", "'cancelled'", errors=_CANCELLED, result="NULL")}),
        keys AS ({free_keys("gone")})
        SELECT id, pg_notify('{{schema}}.results', id::text),
               {{schema}}.settle_children(ARRAY[id], ARRAY['cancelled']) FROM gone"""
    )

    async def cancel(self, db: Queryable, job_id: int) -> str | None:
        """Cancel a queued job, or ask the worker running it to stop; returns the job's state
        afterwards (``cancelled`` or ``running``), None when it is not queued or running."""
        if await self._cancel_scheduled.fetchrow(db, job_id=job_id) is not None:
            return "cancelled"
        if await self._cancel_waiting.fetchrow(db, job_id=job_id) is not None:
            return "cancelled"
        row = await self._request_cancel.fetchrow(db, job_id=job_id)
        if row is None:
            return None
        if row["state"] == "queued" and await self._cancel_queued.fetchrow(db, job_id=job_id):
            return "cancelled"
        return "running"  # or claimed meanwhile: its worker sees the request and stops

    _replay = Statement(
        """
        WITH chosen AS (
            -- of several dead jobs sharing a key, only the most recent is replayed
            SELECT d.id, d.dedup_key FROM {schema}.job_dead AS d
            WHERE d.id = ANY(:ids::bigint[])
              AND (d.dedup_key IS NULL OR d.id = (
                  SELECT max(x.id) FROM {schema}.job_dead AS x
                  WHERE x.id = ANY(:ids::bigint[]) AND x.dedup_key = d.dedup_key))
        ),
        -- a job whose key a live job holds stays dead: it would duplicate that job
        key AS (
            INSERT INTO {schema}.job_dedup (dedup_key, job_id)
            SELECT dedup_key, id FROM chosen WHERE dedup_key IS NOT NULL
            ON CONFLICT (dedup_key) DO NOTHING
            RETURNING job_id
        ),
        back AS (
            DELETE FROM {schema}.job_dead AS d USING chosen AS c
            WHERE d.id = c.id AND (c.dedup_key IS NULL OR c.id IN (SELECT job_id FROM key))
            RETURNING d.*
        ),
        lanes AS (
            INSERT INTO {schema}.job_lanes (queue, priority)
            SELECT DISTINCT queue, priority FROM back
            ON CONFLICT DO NOTHING
        ),
        requeued AS (
            INSERT INTO {schema}.job_live (slot, id, task_name, queue, args, state, priority,
                attempts, max_attempts, scheduled_at, enqueued_at, error_reason, error_message,
                error_detail, dedup_key, contract_version, contract_fingerprint, trace_context)
            SELECT {schema}.live_slot(), id, task_name, queue, args, 'queued', priority, 0,
                max_attempts, now(), enqueued_at, error_reason, error_message, error_detail,
                dedup_key, contract_version, contract_fingerprint, trace_context
            FROM back
            RETURNING id, queue
        )
        SELECT id, pg_notify('{schema}.jobs', queue) FROM requeued"""
    )

    async def replay(self, db: Queryable, job_ids: Sequence[int]) -> list[int]:
        """Move dead jobs back to the queue with their attempt count reset (except those whose
        dedup_key a live job holds); returns the ids moved."""
        rows = await self._replay.fetch(db, ids=list(job_ids))
        return [row["id"] for row in rows]

    _purge_dead = Statement("DELETE FROM {schema}.job_dead WHERE id = ANY(:ids::bigint[])")
    _purge_all_dead = Statement("DELETE FROM {schema}.job_dead")

    async def purge_dead(self, db: Queryable, job_ids: Sequence[int] | None) -> int:
        """Delete the given dead jobs, or every dead job when ``job_ids`` is None."""
        if job_ids is None:
            status = await self._purge_all_dead.execute(db)
        else:
            status = await self._purge_dead.execute(db, ids=list(job_ids))
        return int(status.rsplit(" ", 1)[-1])
