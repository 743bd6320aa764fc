"""What the database itself allows on Soniq's tables, from Python on this machine: the
ceilings Soniq's drain and bulk enqueue are measured against.

- :func:`limit_drain`: jobs queued as for a drain, then claimed and recorded done, 500 at a
  time, on one connection, as fast as the database answers, with no handler and no worker
  around the statements. ``jobs_per_s`` runs Soniq's own two statements per batch (the
  claim, which marks the jobs running under a lease, then the outcome, which moves them to
  ``job_history``): the same work as a drain, so the honest upper bound for one.
  ``one_statement_jobs_per_s`` does the claim and the move in a single statement and never
  writes the running state: what a design without leases could reach.
- :func:`limit_copy`: a binary COPY of ready-made rows into ``job_live``
  (``copy_records_to_table``): no validation, no encoding, no sequence, no notification;
  the ceiling for bulk enqueue. ``encode_and_copy_jobs_per_s`` adds the JSON encoding of
  the args and building the rows.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

import asyncpg

from bench.config import LIMIT_COPY, LIMIT_DRAIN, Sizes
from bench.database import connection
from bench.probe import make_args
from bench.scenarios import WARMUP, Measurement, preload
from bench.systems import System
from bench.systems.soniq import MODEL_TASK, SCHEMA
from soniq.db.jobs import JobStore
from soniq.db.jobs.claims import CLAIM_WINDOW, EVERYTHING
from soniq.db.jobs.moves import free_keys, to_history
from soniq.db.sql import Statement
from soniq.job import Outcome
from soniq.settings import Settings

BATCH = 500
WORKER_ID = "bench-limit"
LEASE = CLAIM_WINDOW * 60  # no job outlives it here
MAX_ATTEMPTS = Settings.default_retries + 1  # as the bench's tasks are registered

# The claim's lane scan, the move to job_history and the results notification of Soniq's
# statements, in one statement: the job goes from queued to done without being running.
_CLAIM_AND_FINISH = Statement(
    f"""
    WITH next AS (
        SELECT c.id, c.slot FROM {{schema}}.job_lanes AS l CROSS JOIN LATERAL (
            SELECT id, slot, priority, scheduled_at FROM {{schema}}.job_live AS c
            WHERE c.queue = l.queue AND c.priority = l.priority AND c.state = 'queued'
              AND c.scheduled_at <= now() AND c.scheduled_at > now() - :window::interval
              AND c.cancel_requested_at IS NULL
            ORDER BY c.scheduled_at, c.id
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
        ) AS c
        ORDER BY c.priority DESC, c.scheduled_at, c.id
        LIMIT :limit
    ),
    fin AS (
        DELETE FROM {{schema}}.job_live AS j
        WHERE j.id = ANY(ARRAY(SELECT id FROM next))
          AND j.slot = ANY(ARRAY(SELECT slot FROM next))
        RETURNING j.id, j.task_name, j.queue, j.args, j.priority, j.attempts + 1 AS attempts,
            j.max_attempts, j.scheduled_at, j.enqueued_at, now() AS started_at,
            :worker_id::text AS worker_id, j.dedup_key, j.contract_version,
            j.contract_fingerprint, j.trace_context, j.cancel_requested_at
    ),
    history AS ({to_history("fin", "'done'", errors="NULL, NULL, NULL", result="NULL")}),
    keys AS ({free_keys("fin")})
    SELECT count(*) AS n, pg_notify('{{schema}}.results', '') FROM fin"""
).bind(SCHEMA)

_COPY_COLUMNS = ("slot", "id", "task_name", "queue", "args", "state", "priority",
                 "max_attempts", "scheduled_at", "enqueued_at")  # fmt: skip


async def limit_drain(system: System, variant: str, sizes: Sizes, m: Measurement) -> None:
    """Claim and complete ``drain_jobs`` queued jobs, ``BATCH`` per statement, one
    connection; Soniq's statements, then the single-statement variant."""
    jobs = sizes.drain_jobs
    m.extra["batch"] = BATCH
    for metric, finish in (("jobs_per_s", _two_statements), ("one_statement", _one_statement)):
        await system.reset()
        await preload(system, variant, jobs)
        async with connection(system.url) as conn:
            started = time.perf_counter()
            while await finish(conn):
                pass
            elapsed = time.perf_counter() - started
        done = await system.count(f"SELECT count(*) FROM {SCHEMA}.job_history WHERE state = 'done'")
        left = await system.unfinished()
        m.jobs_enqueued += jobs
        m.jobs_ran = (m.jobs_ran or 0) + done
        if done != jobs or left:
            m.error = f"{metric}: {done} of {jobs} jobs done, {left} left"
            return
        m.metrics[metric if metric == "jobs_per_s" else f"{metric}_jobs_per_s"] = jobs / elapsed
    m.verified = True


_STORE = JobStore(SCHEMA)
_MAX_ATTEMPTS = {MODEL_TASK: MAX_ATTEMPTS}


async def _two_statements(conn: asyncpg.Connection) -> int:
    """Soniq's claim (the recent window, then all due jobs when it comes back short, as its
    worker does), then Soniq's outcome statement for the jobs claimed; how many."""

    async def claim(limit: int, window: Any) -> list[Any]:
        return await _STORE.claims.claim(
            conn, limit=limit, queues=None, max_attempts_by_task=_MAX_ATTEMPTS,
            version_by_task={}, lease=LEASE, worker_id=WORKER_ID, window=window,
        )  # fmt: skip

    claimed = await claim(BATCH, CLAIM_WINDOW)
    if len(claimed) < BATCH:
        claimed += await claim(BATCH - len(claimed), EVERYTHING)
    if claimed:
        await _STORE.outcomes.record(conn, [Outcome(job.claim, "done") for job in claimed])
    return len(claimed)


async def _one_statement(conn: asyncpg.Connection) -> int:
    n = 0
    for window in (CLAIM_WINDOW, EVERYTHING):
        row = await _CLAIM_AND_FINISH.fetchrow(
            conn, limit=BATCH - n, window=window, worker_id=WORKER_ID
        )
        assert row is not None
        n += int(row["n"])
        if n == BATCH:
            break
    return n


async def limit_copy(system: System, variant: str, sizes: Sizes, m: Measurement) -> None:
    """Binary COPY of ``bulk_jobs`` rows into job_live, after a warm-up COPY."""
    jobs = sizes.bulk_jobs
    await system.reset()
    async with connection(system.url) as conn:
        slot = await conn.fetchval(f"SELECT {SCHEMA}.live_slot()")
        ids = [r[0] for r in await conn.fetch(
            f"SELECT nextval('{SCHEMA}.job_ids') FROM generate_series(1, $1)", jobs + WARMUP
        )]  # fmt: skip
        now = datetime.now(timezone.utc)

        def rows(args: list[dict[str, Any]], first: int) -> list[tuple[Any, ...]]:
            return [
                (slot, ids[first + i], MODEL_TASK, "default",
                 json.dumps(a, separators=(",", ":")), "queued", 0, MAX_ATTEMPTS, now, now)
                for i, a in enumerate(args)
            ]  # fmt: skip

        async def copy(records: list[tuple[Any, ...]]) -> None:
            await conn.copy_records_to_table(
                "job_live", schema_name=SCHEMA, columns=_COPY_COLUMNS, records=records
            )

        await copy(rows([make_args(i) for i in range(WARMUP)], 0))
        before = await system.stored()
        args = [make_args(i) for i in range(jobs)]
        started = time.perf_counter()
        records = rows(args, WARMUP)
        encoded = time.perf_counter()
        await copy(records)
        copied = time.perf_counter()
    m.metrics["jobs_per_s"] = jobs / (copied - encoded)
    m.metrics["encode_and_copy_jobs_per_s"] = jobs / (copied - started)
    m.jobs_enqueued = jobs
    m.verified = await system.stored() - before == jobs


LIMITS = {LIMIT_DRAIN: limit_drain, LIMIT_COPY: limit_copy}
