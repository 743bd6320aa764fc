"""The worker's hot statements must keep their index plans as the table grows.

Fills a schema (1,000,000 done jobs and a few queued ones for the claim), then asks
PostgreSQL for the plans of the exact statements a worker sends: ``JobStore`` methods are
called with a recording stand-in for the connection, so the SQL and its parameters are
whatever Soniq sends today. Plans are taken for both the custom plans of a statement's first
executions and the generic plan a cached statement (asyncpg caches them) may switch to
later.
"""

from __future__ import annotations

import inspect
import json
from collections import defaultdict
from datetime import timedelta
from typing import Any

import asyncpg

from soniq import Soniq
from soniq.db.jobs import JobStore
from soniq.db.jobs.claims import JobClaims
from soniq.job import ClaimedJob, Outcome

DONE_ROWS = 1_000_000
CLAIM_INDEXES = {"jobs_claim_queue_idx"}
TASK = "bench.noop"
# Realistic values for JobStore.claim's keyword arguments, by name.
CLAIM_ARGUMENTS: dict[str, Any] = {
    "limit": 10,
    "queues": None,
    "max_attempts_by_task": {TASK: 4},
    "version_by_task": {TASK: 1},
    "lease": timedelta(seconds=30),
    "worker_id": "host:1:abc",
}


class Recorder:
    """Stands in for a connection: keeps the statement and parameters, returns no rows (and
    from fetchrow, a row whose every column is NULL, as an aggregate over no rows gives)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def fetch(self, sql: str, *params: Any) -> list[Any]:
        self.calls.append((sql, params))
        return []

    async def fetchrow(self, sql: str, *params: Any) -> defaultdict[str, None]:
        self.calls.append((sql, params))
        return defaultdict(lambda: None)

    async def fetchval(self, sql: str, *params: Any) -> None:
        self.calls.append((sql, params))


def claim_arguments(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments for ``JobStore.claim`` as it is declared today."""
    values = {**CLAIM_ARGUMENTS, **overrides}
    arguments = {}
    for name, param in inspect.signature(JobClaims.claim).parameters.items():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        if name in values:
            arguments[name] = values[name]
        elif param.default is inspect.Parameter.empty:
            raise AssertionError(f"JobStore.claim has a new argument {name!r}: add a value")
    return arguments


async def claim(db: Any, store: JobStore, **overrides: Any) -> list[ClaimedJob]:
    return await store.claims.claim(db, **claim_arguments(**overrides))


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan tree."""
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(_nodes(child))
    return found


async def _literals(conn: asyncpg.Connection, sql: str, params: tuple[Any, ...]) -> str:
    """``params`` as typed SQL literals, each rendered by PostgreSQL itself."""
    statement = await conn.prepare(sql)
    literals = []
    for value, param in zip(params, statement.get_parameters(), strict=True):
        sql_type = await conn.fetchval("SELECT format_type($1, NULL)", param.oid)
        text = await conn.fetchval(f"SELECT quote_nullable($1::{sql_type}::text)", value)
        literals.append(f"{text}::{sql_type}")
    return ", ".join(literals)


async def _explain(
    conn: asyncpg.Connection,
    sql: str,
    params: tuple[Any, ...],
    plan_mode: str = "auto",
    *,
    analyze: bool = False,
) -> list[dict[str, Any]]:
    """The plan PostgreSQL runs for ``sql`` as a prepared statement under ``plan_mode``;
    with ``analyze`` it runs too, inside a transaction that is rolled back.

    SQL-level PREPARE + EXPLAIN EXECUTE, not EXPLAIN with bound parameters: the latter always
    plans with the values known (a custom plan), while a driver that caches the statement
    gets a generic plan after five executions when PostgreSQL judges it no worse.
    """
    args = await _literals(conn, sql, params)
    options = "ANALYZE, FORMAT JSON" if analyze else "FORMAT JSON"
    await conn.execute(f"SET plan_cache_mode = {plan_mode}")
    await conn.execute(f"PREPARE plan_probe AS {sql}")
    transaction = conn.transaction()
    await transaction.start()
    try:
        raw = await conn.fetchval(f"EXPLAIN ({options}) EXECUTE plan_probe({args})")
    finally:
        await transaction.rollback()  # undoes what ANALYZE ran; PREPARE is not transactional
        await conn.execute("DEALLOCATE plan_probe")
        await conn.execute("RESET plan_cache_mode")
    document = json.loads(raw) if isinstance(raw, str) else raw
    return _nodes(document[0]["Plan"])


async def _fill(db: asyncpg.Connection, schema: str, *, done: int, queued: int) -> None:
    """Add ``done`` finished and ``queued`` waiting jobs over two queues, then ANALYZE."""
    await db.execute(
        f"""
        INSERT INTO {schema}.jobs (task_name, queue, args, state, max_attempts, attempts,
                                   started_at, finished_at)
        SELECT '{TASK}', CASE WHEN i % 2 = 0 THEN 'default' ELSE 'other' END, '{{}}',
               'done', 1, 1, now() - interval '1 minute', now()
        FROM generate_series(1, {done}) AS i"""
    )
    await db.execute(
        f"""
        INSERT INTO {schema}.jobs (task_name, queue, args, max_attempts)
        SELECT '{TASK}', CASE WHEN i % 2 = 0 THEN 'default' ELSE 'other' END, '{{}}', 4
        FROM generate_series(1, {queued}) AS i"""
    )
    await db.execute(f"ANALYZE {schema}.jobs")


def _summary(nodes: list[dict[str, Any]]) -> list[tuple[str, str | None, str | None]]:
    return [(n["Node Type"], n.get("Relation Name"), n.get("Index Name")) for n in nodes]


async def _claim_plan_problems(db: asyncpg.Connection, schema: str, limit: int) -> list[str]:
    """Each claim statement, custom and generic plan: a line per seq scan or missing index."""
    store = JobStore(schema)
    recorder = Recorder()
    for queues in (None, ["default"], ["default", "other"]):
        await claim(recorder, store, limit=limit, queues=queues)
    problems = []
    for plan_mode in ("force_custom_plan", "force_generic_plan"):
        for (sql, params), case in zip(recorder.calls, ("all", "one", "two"), strict=True):
            nodes = await _explain(db, sql, params, plan_mode)
            where = f"claim from {case} queue(s), {plan_mode}"
            if any(
                n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "jobs" for n in nodes
            ):
                problems.append(f"{where}: sequential scan of jobs: {_summary(nodes)}")
            if not {n.get("Index Name") for n in nodes} & CLAIM_INDEXES:
                problems.append(f"{where}: no claim index: {_summary(nodes)}")
    return problems


async def test_claim_uses_its_index_among_a_million_done_jobs(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    await _fill(db, schema, done=DONE_ROWS, queued=20)
    problems = await _claim_plan_problems(db, schema, limit=10)
    assert not problems, "\n".join(problems)


async def test_claim_uses_its_index_with_a_deep_backlog(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    await _fill(db, schema, done=0, queued=10_000)
    problems = await _claim_plan_problems(db, schema, limit=100)
    assert not problems, "\n".join(problems)


async def test_outcomes_heartbeats_and_releases_find_jobs_by_primary_key(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    # Statistics taken while nothing runs, as after a burst of enqueues.
    await _fill(db, schema, done=100_000, queued=10_000)
    store = JobStore(schema)
    running = await claim(db, store, limit=5000)
    batch = running[:1000]
    claims = [(j.id, j.claim_token) for j in batch]
    recorder = Recorder()
    await store.outcomes.record(recorder, [Outcome(j.id, j.claim_token, "done") for j in batch])
    await store.maintenance.heartbeat(recorder, claims, timedelta(seconds=30))
    await store.outcomes.release(recorder, claims)
    problems = []
    for plan_mode in ("force_custom_plan", "force_generic_plan"):
        for (sql, params), case in zip(
            recorder.calls, ("record_outcomes", "heartbeat", "release"), strict=True
        ):
            nodes = await _explain(db, sql, params, plan_mode)
            scans = {
                (n["Node Type"], n.get("Index Name"))
                for n in nodes
                if n.get("Relation Name") == "jobs"
            }
            if scans != {("ModifyTable", None), ("Index Scan", "jobs_pkey")}:
                problems.append(f"{case}, {plan_mode}: jobs reached by {sorted(map(str, scans))}")
    assert not problems, "\n".join(problems)


async def _rows_read(db: asyncpg.Connection, sql: str, params: tuple[Any, ...]) -> int:
    """Claim-order index entries the statement read (kept or filtered out), run and rolled
    back: every index scan of jobs but the primary-key lookup of the claimed ids."""
    return sum(
        (n["Actual Rows"] + n.get("Rows Removed by Filter", 0)) * n["Actual Loops"]
        for n in await _explain(db, sql, params, analyze=True)
        if n.get("Relation Name") == "jobs" and n.get("Index Name") not in (None, "jobs_pkey")
    )


async def test_a_backlog_in_one_queue_does_not_slow_claims_from_others(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    # 10,000 older, higher-priority jobs in "bulk"; 1,000 each in "default" and "mail".
    await db.execute(
        f"""INSERT INTO {schema}.jobs (task_name, queue, args, max_attempts, priority)
            SELECT '{TASK}', 'bulk', '{{}}', 4, 10 FROM generate_series(1, 10000)"""
    )
    await db.execute(
        f"""INSERT INTO {schema}.jobs (task_name, queue, args, max_attempts)
            SELECT '{TASK}', q, '{{}}', 4
            FROM unnest(ARRAY['default', 'mail']) AS q, generate_series(1, 1000)"""
    )
    await db.execute(f"ANALYZE {schema}.jobs")
    store = JobStore(schema)
    recorder = Recorder()
    for queues in (["default"], ["default", "mail"], None):
        await claim(recorder, store, limit=10, queues=queues)
    read = [await _rows_read(db, sql, params) for sql, params in recorder.calls]
    # Each served queue reads its first `limit` jobs, plus, when the worker serves every
    # queue, an entry per queue for the skip scan that finds them (give or take EXPLAIN's
    # rounding of rows per loop): never a queue's whole backlog.
    assert read[0] <= 10 and read[1] <= 20 and read[2] <= 3 * 10 + 10, read
