"""Statements of the workers' upkeep: leases renewed, expired ones rescued, dead letters
and history past retention dropped, and the live ring's drained partitions truncated."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from soniq.db.jobs.claims import REQUEUE_AT_MOST_AGO
from soniq.db.jobs.moves import free_keys, record_attempts, to_dead, to_history
from soniq.db.sql import BoundStatement, Queryable, Statement, Statements
from soniq.job import Claim

_HEARTBEAT = """
    UPDATE {schema}.job_live AS j SET lease_expires_at = now() + :lease::interval
    FROM unnest(:ids::bigint[], :slots::int2[], :tokens::uuid[]) AS o(id, slot, token)
    WHERE {match}
    -- the fallback for a missed cancel notification; the slot, in case the job moved
    RETURNING j.id, j.slot, j.cancel_requested_at IS NOT NULL AS cancel_requested"""


def _lost(row: str) -> str:
    """The error message of a job whose worker stopped renewing its lease; ``row`` is the
    prefix of its columns."""
    return (
        "format('attempt %s of %s: worker %s stopped renewing its lease (killed, crashed or "
        f"cut off from the database)%s', {row}attempts, {row}max_attempts, {row}worker_id, "
        f"CASE WHEN {row}attempts >= {row}max_attempts THEN '; no retries left' ELSE '' END)"
    )


_WORKER_LOST = f"'worker lost', {_lost('')}, NULL"
_BY_SLOT = "j.id = o.id AND j.slot = o.slot AND j.claim_token = o.token"
_BY_ID = "j.id = o.id AND j.claim_token = o.token"

# Partitions holding more rows than this are a backlog, not stragglers: left to drain.
RELOCATE_AT_MOST = 1000


@dataclass(frozen=True)
class Recycled:
    """What one pass over the ring did: partitions truncated, rows moved out of them first,
    and partitions left alone because another transaction held them."""

    truncated: int = 0
    relocated: int = 0
    blocked: tuple[str, ...] = ()


def _lock_key(schema: str) -> int:
    digest = hashlib.sha256(f"soniq-recycle:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class JobMaintenance(Statements):
    """Heartbeats (fenced by claim token), the rescuer, retention and ring recycling."""

    _heartbeat = Statement(
        _HEARTBEAT.replace("{match}", "j.id = o.id AND j.slot = o.slot AND j.claim_token = o.token")
    )
    _heartbeat_moved = Statement(
        _HEARTBEAT.replace("{match}", "j.id = o.id AND j.claim_token = o.token")
    )

    async def heartbeat(
        self, db: Queryable, claims: Sequence[Claim], lease: timedelta
    ) -> dict[int, tuple[int, bool]]:
        """Extend the leases this worker still owns; returns, by id, each job's slot (it may
        have moved) and whether its cancellation was requested."""
        kept: dict[int, tuple[int, bool]] = {}
        for statement in (self._heartbeat, self._heartbeat_moved):
            rest = [c for c in claims if c.job_id not in kept]
            if not rest:
                break
            rows = await statement.fetch(
                db,
                ids=[c.job_id for c in rest],
                slots=[c.slot for c in rest],
                tokens=[c.token for c in rest],
                lease=lease,
            )
            kept |= {row["id"]: (row["slot"], row["cancel_requested"]) for row in rows}
        return kept

    _rescue = Statement(
        f"""
        WITH expired AS (
            SELECT id, slot, attempts, max_attempts, worker_id, started_at
            FROM {{schema}}.job_live
            WHERE state = 'running' AND lease_expires_at < now()  -- job_live_lease_idx
            ORDER BY lease_expires_at
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
        ),
        requeued AS (
            UPDATE {{schema}}.job_live AS j SET
                state = 'queued',
                scheduled_at = greatest(j.scheduled_at, now() - :recent::interval),
                claim_token = NULL,
                lease_expires_at = NULL,
                error_reason = 'worker lost',
                error_message = {_lost("j.")},
                error_detail = NULL,
                worker_id = NULL
            FROM expired AS e
            WHERE j.id = e.id AND j.slot = e.slot AND j.cancel_requested_at IS NULL
              AND j.attempts < j.max_attempts
            RETURNING j.id, 'queued' AS state, j.queue
        ),
        gone AS (
            DELETE FROM {{schema}}.job_live AS j USING expired AS e
            WHERE j.id = e.id AND j.slot = e.slot
              AND (j.cancel_requested_at IS NOT NULL OR j.attempts >= j.max_attempts)
            RETURNING j.*, CASE WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
                                ELSE 'dead' END AS outcome
        ),
        dead AS ({to_dead("gone", errors=_WORKER_LOST, where="outcome = 'dead'")}),
        cancelled AS (SELECT * FROM gone WHERE outcome = 'cancelled'),
        history AS ({to_history("cancelled", "'cancelled'", errors=_WORKER_LOST, result="NULL")}),
        keys AS ({free_keys("gone")}),
        ended AS (SELECT e.*, r.state FROM expired AS e JOIN (
                      SELECT id, state FROM requeued UNION ALL SELECT id, outcome FROM gone
                  ) AS r USING (id)),
        tried AS ({record_attempts("ended", "state", errors=_WORKER_LOST)})
        SELECT id, state, pg_notify('{{schema}}.jobs', queue), NULL AS settled FROM requeued
        UNION ALL  -- the jobs waiting for one that ended here are settled (migration 0014)
        SELECT id, outcome, pg_notify('{{schema}}.results', id::text),
               {{schema}}.settle_children(ARRAY[id], ARRAY[outcome]) FROM gone"""
    )

    async def rescue_expired(self, db: Queryable, *, limit: int) -> list[tuple[int, str]]:
        """Take back running jobs whose lease ran out: requeue them, or dead-letter them when
        their attempts are spent. Returns (id, new state) pairs."""
        rows = await self._rescue.fetch(db, limit=limit, recent=REQUEUE_AT_MOST_AGO)
        return [(row["id"], row["state"]) for row in rows]

    _prune_history = Statement("SELECT {schema}.drop_history_before(now() - :older_than::interval)")

    async def prune_finished(self, db: Queryable, *, older_than: timedelta) -> int:
        """Drop the days of done and cancelled jobs (and of failed attempts and done counts)
        that all finished more than ``older_than`` ago; returns how many days were dropped."""
        return int(await self._prune_history.fetchval(db, older_than=older_than))

    # Minutes after the last one summed, up to two minutes ago (a batch's count carries the
    # minute its statement began, and commits moments later): summed once, whoever runs
    # it first; a minute summed twice by two workers at once is kept once.
    _sum_done_minutes = Statement(
        """
        INSERT INTO {schema}.job_done_minutes (minute, queue, done)
        SELECT minute, queue, sum(done) FROM {schema}.job_done_counts
        WHERE minute > (SELECT coalesce(max(minute), '-infinity') FROM {schema}.job_done_minutes)
          AND minute >= date_trunc('minute', now()) - interval '1 hour'  -- none older is read
          AND minute < date_trunc('minute', now()) - interval '2 minutes'
        GROUP BY minute, queue
        ON CONFLICT DO NOTHING"""
    )

    async def sum_done_minutes(self, db: Queryable) -> int:
        """Sum the completer's counts of the minutes that are over into one row per minute
        and queue (what ``soniq status`` and the console read); returns the rows added."""
        status = await self._sum_done_minutes.execute(db)
        return int(status.rsplit(" ", 1)[-1])

    _prune_dead = Statement(
        """
        DELETE FROM {schema}.job_dead WHERE id IN (
            SELECT id FROM {schema}.job_dead
            WHERE finished_at < now() - :older_than::interval  -- job_dead_finished_idx
            ORDER BY finished_at
            LIMIT 1000)"""
    )

    async def prune_dead(self, db: Queryable, *, older_than: timedelta) -> int:
        """Delete up to 1,000 dead jobs dead-lettered more than ``older_than`` ago."""
        status = await self._prune_dead.execute(db, older_than=older_than)
        return int(status.rsplit(" ", 1)[-1])

    _add_history_days = Statement(
        "SELECT {schema}.add_history_days((now() AT TIME ZONE 'UTC')::date - 1, :days)"
    )

    async def add_history_days(self, db: Queryable, *, days: int = 9) -> int:
        """Make sure job_history has a partition for yesterday, today and ``days - 2``
        days ahead (every finished job needs one); returns how many were added."""
        return int(await self._add_history_days.fetchval(db, days=days))

    _ring = Statement(
        """
        SELECT c.relname AS name, c.oid AS oid, pg_relation_size(c.oid) AS bytes,
               (c.relname = format('job_live_%s', {schema}.live_slot())
                OR c.relname = format('job_live_%s', ({schema}.live_slot() + 3) % 4)) AS in_use,
               (SELECT a.pid FROM pg_locks AS l LEFT JOIN pg_stat_activity AS a USING (pid)
                WHERE l.relation = c.oid AND l.granted AND l.pid <> pg_backend_pid()
                  AND (a.xact_start IS NULL OR a.xact_start < now() - interval '1 second')
                LIMIT 1) AS held_by
        FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
        WHERE i.inhparent = '{schema}.job_live'::regclass
        ORDER BY c.relname"""
    )
    _relocate = Statement(
        """
        WITH moved AS (DELETE FROM {schema}.job_live_{partition} RETURNING *)
        INSERT INTO {schema}.job_live
        SELECT {schema}.live_slot(), id, task_name, queue, args, state, priority, attempts,
            max_attempts,
            CASE WHEN state = 'queued' THEN greatest(scheduled_at, now() - :recent::interval)
                 ELSE scheduled_at END,
            enqueued_at, started_at, claim_token, lease_expires_at, worker_id, error_reason,
            error_message, error_detail, dedup_key, contract_version, contract_fingerprint,
            trace_context, cancel_requested_at
        FROM moved"""
    )

    async def recycle(self, conn: asyncpg.Connection) -> Recycled:
        """One pass over the live ring: each partition no longer taking inserts that holds
        anything is emptied by TRUNCATE, which needs no VACUUM and so frees its space
        whatever the xmin horizon. A few stragglers (long-running jobs, jobs left over) are
        first moved to the current partition; a backlog is left to drain. One worker at a
        time does this (an advisory lock); the exclusive lock TRUNCATE needs is taken only
        when no transaction has held the partition for long, and given up after 20 ms, so
        claims never queue behind it for longer than that."""
        truncated = relocated = 0
        blocked: list[str] = []
        for part in await self._ring.fetch(conn):
            if part["in_use"] or part["bytes"] == 0:
                continue
            if part["held_by"] is not None:
                blocked.append(f"{part['name']} (held by pid {part['held_by']})")
                continue
            moved = await self._truncate(conn, part["name"])
            if moved is None:
                blocked.append(f"{part['name']} (lock timeout)")
            elif moved >= 0:
                truncated += 1
                relocated += moved
        return Recycled(truncated, relocated, tuple(blocked))

    async def _truncate(self, conn: asyncpg.Connection, name: str) -> int | None:
        """Truncate one partition, moving its rows out first if there are few; returns how
        many were moved, -1 when it holds a backlog, None when the lock was not had."""
        table = f"{self.schema}.{name}"  # a name read from pg_class, of our own partition
        async with conn.transaction():
            if not await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock($1)", _lock_key(self.schema)
            ):
                return -1
            await conn.execute("SET LOCAL lock_timeout = '20ms'")
            try:
                await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            except asyncpg.LockNotAvailableError:
                return None
            rows = int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
            if rows > RELOCATE_AT_MOST:
                return -1
            if rows:
                relocate = self._relocate
                partition = name.rsplit("_", 1)[1]
                statement = BoundStatement(
                    relocate.sql.replace("{partition}", partition), relocate.params
                )
                await statement.execute(conn, recent=REQUEUE_AT_MOST_AGO)
            await conn.execute(f"TRUNCATE {table}")
            return rows
