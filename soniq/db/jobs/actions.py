"""Statements behind operators' actions on jobs: cancel, replay and purge."""

from __future__ import annotations

from collections.abc import Sequence

from soniq.db.jobs.outcomes import CANCELLED_MESSAGE
from soniq.db.sql import Queryable, Statement, Statements

_IF_QUEUED = "CASE WHEN j.state = 'queued'"


class JobActions(Statements):
    """``app.cancel()`` and the dead-letter queue's replay and purge."""

    _cancel = Statement(
        f"""
        UPDATE {{schema}}.jobs AS j SET
            state = {_IF_QUEUED} THEN 'cancelled' ELSE j.state END,
            finished_at = {_IF_QUEUED} THEN now() END,
            error_reason = {_IF_QUEUED} THEN 'cancelled' ELSE j.error_reason END,
            error_message = {_IF_QUEUED} THEN {CANCELLED_MESSAGE} ELSE j.error_message END,
            error_detail = {_IF_QUEUED} THEN NULL ELSE j.error_detail END,
            cancel_requested_at = coalesce(j.cancel_requested_at, now())
        WHERE j.id = :job_id AND j.state IN ('queued', 'running')
        -- a queued job is finished now; a running one is for its worker to stop
        RETURNING j.state,
                  CASE WHEN j.state = 'cancelled'
                       THEN pg_notify('{{schema}}.results', j.id::text)
                       ELSE pg_notify('{{schema}}.cancel', j.id::text) END"""
    )

    async def cancel(self, db: Queryable, job_id: int) -> str | None:
        """Cancel a queued job, or ask the worker running it to stop; returns the job's state
        afterwards (``cancelled`` or ``running``), None when it is not queued or running."""
        row = await self._cancel.fetchrow(db, job_id=job_id)
        return None if row is None else str(row["state"])

    _replay = Statement(
        """
        UPDATE {schema}.jobs AS j SET
            state = 'queued', attempts = 0, scheduled_at = now(), started_at = NULL,
            finished_at = NULL, claim_token = NULL, lease_expires_at = NULL, worker_id = NULL
        WHERE j.id = ANY(:ids::bigint[]) AND j.state = 'dead'
          -- A job whose dedup_key a live job holds stays dead (it would duplicate that
          -- job, and the unique index refuses it); of several dead jobs sharing a key, only
          -- the most recent is replayed.
          AND (j.dedup_key IS NULL OR (
              NOT EXISTS (SELECT 1 FROM {schema}.jobs AS live
                          WHERE live.dedup_key = j.dedup_key
                            AND live.state IN ('queued', 'running'))
              AND j.id = (SELECT max(d.id) FROM {schema}.jobs AS d
                          WHERE d.id = ANY(:ids::bigint[]) AND d.state = 'dead'
                            AND d.dedup_key = j.dedup_key)))
        RETURNING j.id, pg_notify('{schema}.jobs', j.queue)"""
    )

    async def replay(self, db: Queryable, job_ids: Sequence[int]) -> list[int]:
        """Move dead jobs back to the queue with their attempt count reset (except those whose
        dedup_key a live job holds); returns the ids moved."""
        rows = await self._replay.fetch(db, ids=list(job_ids))
        return [row["id"] for row in rows]

    _purge_dead = Statement(
        """
        DELETE FROM {schema}.jobs
        WHERE state = 'dead' AND (:ids::bigint[] IS NULL OR id = ANY(:ids::bigint[]))
        RETURNING id"""
    )

    async def purge_dead(self, db: Queryable, job_ids: Sequence[int] | None) -> int:
        """Delete the given dead jobs, or every dead job when ``job_ids`` is None."""
        rows = await self._purge_dead.fetch(db, ids=None if job_ids is None else list(job_ids))
        return len(rows)
