"""Statements of the worker's maintenance loop: renew leases, rescue expired ones, prune."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from soniq.db.sql import Queryable, Statement, Statements


class JobMaintenance(Statements):
    """Heartbeats (fenced by claim token), the rescuer, and retention."""

    _heartbeat = Statement(
        """
        UPDATE {schema}.jobs AS j SET lease_expires_at = now() + :lease::interval
        FROM unnest(:ids::bigint[], :tokens::uuid[]) AS h(id, token)
        WHERE j.id = h.id AND j.claim_token = h.token
        -- the fallback for a missed cancel notification
        RETURNING j.id, j.cancel_requested_at IS NOT NULL AS cancel_requested"""
    )

    async def heartbeat(
        self, db: Queryable, claims: Sequence[tuple[int, uuid.UUID]], lease: timedelta
    ) -> dict[int, bool]:
        """Extend the leases this worker still owns; returns those ids, each with whether
        its cancellation was requested."""
        rows = await self._heartbeat.fetch(
            db, ids=[c[0] for c in claims], tokens=[c[1] for c in claims], lease=lease
        )
        return {row["id"]: row["cancel_requested"] for row in rows}

    _rescue = Statement(
        """
        WITH expired AS (
            SELECT id FROM {schema}.jobs
            WHERE state = 'running' AND lease_expires_at < now()  -- jobs_lease_idx
            ORDER BY lease_expires_at
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
        )
        UPDATE {schema}.jobs AS j SET
            state = CASE WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
                         WHEN j.attempts >= j.max_attempts THEN 'dead' ELSE 'queued' END,
            finished_at = CASE WHEN j.cancel_requested_at IS NOT NULL
                                 OR j.attempts >= j.max_attempts THEN now() END,
            claim_token = NULL,
            lease_expires_at = NULL,
            error_reason = 'worker lost',
            error_message = format(
                'attempt %s of %s: worker %s stopped renewing its lease (killed, crashed '
                'or cut off from the database)%s', j.attempts, j.max_attempts,
                j.worker_id, CASE WHEN j.attempts >= j.max_attempts
                                  THEN '; no retries left' ELSE '' END),
            error_detail = NULL,
            worker_id = NULL
        FROM expired WHERE j.id = expired.id
        RETURNING j.id, j.state, CASE WHEN j.state = 'queued'
                                      THEN pg_notify('{schema}.jobs', j.queue)
                                      ELSE pg_notify('{schema}.results', j.id::text) END"""
    )

    async def rescue_expired(self, db: Queryable, *, limit: int) -> list[tuple[int, str]]:
        """Take back running jobs whose lease ran out: requeue them, or dead-letter them when
        their attempts are spent. Returns (id, new state) pairs."""
        rows = await self._rescue.fetch(db, limit=limit)
        return [(row["id"], row["state"]) for row in rows]

    _prune_finished = Statement(
        """
        DELETE FROM {schema}.jobs WHERE id IN (
            SELECT id FROM {schema}.jobs
            WHERE state IN ('done', 'cancelled') AND finished_at < now() - :older_than::interval
            -- oldest ids first through the primary key: no index on finished jobs needed
            ORDER BY id
            LIMIT :limit)"""
    )

    async def prune_finished(self, db: Queryable, *, older_than: timedelta, limit: int) -> int:
        """Delete up to ``limit`` done or cancelled jobs older than ``older_than``."""
        status = await self._prune_finished.execute(db, older_than=older_than, limit=limit)
        return int(status.rsplit(" ", 1)[-1])

    _prune_dead = Statement(
        """
        DELETE FROM {schema}.jobs WHERE id IN (
            SELECT id FROM {schema}.jobs
            WHERE state = 'dead' AND finished_at < now() - :older_than::interval  -- jobs_dead_idx
            ORDER BY finished_at
            LIMIT :limit)"""
    )

    async def prune_dead(self, db: Queryable, *, older_than: timedelta, limit: int) -> int:
        """Delete up to ``limit`` dead jobs dead-lettered more than ``older_than`` ago."""
        status = await self._prune_dead.execute(db, older_than=older_than, limit=limit)
        return int(status.rsplit(" ", 1)[-1])
