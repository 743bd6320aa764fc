"""Every statement on the jobs tables keeps an index plan as the tables grow, and claims
stay short while a long transaction pins the xmin horizon.

The schema is filled as a busy week leaves it (1,000,000 finished jobs in history, a
backlog in the live ring, scheduled jobs, dead letters), then each statement of
:class:`~soniq.db.jobs.JobStore` is explained with realistic values for its named
parameters, both as the custom plan of its first executions and as the generic plan a
cached statement may switch to. Statements are found by walking the store, so a new one
is guarded as soon as it exists (and fails here until its parameters have values).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from soniq import Soniq
from soniq.db.jobs import JobStore
from soniq.db.jobs.claims import CLAIM_WINDOW, EVERYTHING
from soniq.db.sql import BoundStatement, Statement, Statements
from soniq.job import Outcome

HISTORY_ROWS = 1_000_000
LIVE_ROWS = 100_000
TASK = "bench.noop"

# Tables that grow with traffic or retention: never read whole by any statement, except...
BIG = ("job_history", "job_dead", "job_scheduled", "job_live")
# ...the reports that count or test every waiting or dead job (their cost is the size of
# what waits, timed by `python -m bench growth`), and moving a whole partition out.
READ_WHOLE = {
    "reads._queue_stats",
    "reads._contract_versions",
    "reads._waiting_for_newer",
    "reads._waiting_jobs",
    "reads._count_dead",
    "actions._purge_all_dead",
    "maintenance._relocate",
}
# Generic plans that may read a table whole, and why that is acceptable.
GENERIC_MAY_READ_WHOLE = {
    # once a minute, over dead letters only; its custom plan walks job_dead_finished_idx
    "maintenance._prune_dead",
}
# A partition this small (a day not yet reached, a drained ring slot) may be read whole.
SMALL = 1000


def _statements(store: JobStore) -> list[tuple[str, BoundStatement]]:
    """Every statement of every group of the store, by ``group.attribute``."""
    found = []
    for group_name, group in vars(store).items():
        if not isinstance(group, Statements):
            continue
        for name in dir(type(group)):
            if isinstance(getattr(type(group), name, None), Statement):
                found.append((f"{group_name}.{name}", getattr(group, name)))
    return sorted(found, key=lambda item: item[0])


async def _fill(db: asyncpg.Connection, schema: str) -> dict[str, Any]:
    """A busy week's tables; returns ids and tokens for realistic parameter values."""
    await db.execute(f"SELECT {schema}.add_history_days(current_date - 7, 8)")
    await db.execute(
        f"""INSERT INTO {schema}.job_history (id, task_name, queue, args, state, priority,
                attempts, max_attempts, scheduled_at, enqueued_at, started_at, finished_at)
            SELECT nextval('{schema}.job_ids'), '{TASK}', CASE WHEN i % 2 = 0 THEN 'default'
                   ELSE 'other' END, '{{}}', 'done', 0, 1, 1, now(), now(), now(),
                   now() - (i % 13) * interval '12 hours'
            FROM generate_series(1, {HISTORY_ROWS}) AS i"""
    )
    for table, count, extra in (
        ("job_scheduled", 5000, "now() + interval '1 hour'"),
        ("job_dead", 100_000, "now() - interval '1 day'"),
    ):
        finished = ", finished_at" if table == "job_dead" else ""
        await db.execute(
            f"""INSERT INTO {schema}.{table} (id, task_name, queue, args, priority, attempts,
                    max_attempts, scheduled_at, enqueued_at{finished})
                SELECT nextval('{schema}.job_ids'), '{TASK}', 'default', '{{}}', 0, 1, 4,
                       {extra}, now(){", " + extra if finished else ""}
                FROM generate_series(1, {count})"""
        )
    await db.execute(
        f"""INSERT INTO {schema}.job_live (slot, id, task_name, queue, args, state, priority,
                max_attempts, scheduled_at, enqueued_at)
            SELECT i % 4, nextval('{schema}.job_ids'), '{TASK}', CASE WHEN i % 2 = 0
                   THEN 'default' ELSE 'other' END, '{{}}', 'queued', 0, 4,
                   now() - interval '1 minute', now()
            FROM generate_series(1, {LIVE_ROWS}) AS i"""
    )
    await db.execute(
        f"INSERT INTO {schema}.job_lanes VALUES ('default', 0), ('other', 0) ON CONFLICT DO NOTHING"
    )
    # A few hundred running jobs, as a busy worker holds them.
    running = await db.fetch(
        f"""UPDATE {schema}.job_live SET state = 'running', claim_token = gen_random_uuid(),
                lease_expires_at = now() + interval '30 seconds', attempts = 1
            WHERE id IN (SELECT id FROM {schema}.job_live ORDER BY id LIMIT 100)
            RETURNING id, slot, claim_token"""
    )
    for table in ("job_history", "job_scheduled", "job_dead", "job_live", "job_lanes"):
        await db.execute(f"ANALYZE {schema}.{table}")
    dead = await db.fetch(f"SELECT id FROM {schema}.job_dead ORDER BY id LIMIT 1000")
    return {
        "running": running,
        "dead_ids": [r["id"] for r in dead],
        "any_id": running[0]["id"],
    }


def _values(filled: dict[str, Any]) -> dict[str, Any]:
    """A realistic value for every parameter name the statements use."""
    running = filled["running"]
    n = len(running)
    return {
        "task_name": TASK,
        "queue": "default",
        "queues": ["default"],
        "args": "{}",
        "args_list": ["{}"] * 1000,
        "priority": 0,
        "max_attempts": 4,
        "scheduled_at": None,
        "delay": None,
        "contract_version": None,
        "contract_fingerprint": None,
        "trace_context": None,
        "dedup_key": "key-1",
        "max_args_bytes": 1 << 20,
        "key": "periodic-1",
        "tick": None,
        "limit": 100,
        "scan": 1000,  # a partitioned queue's look at each lane
        "after": [filled["any_id"]],
        "registered_tasks": [TASK],
        "registered_max_attempts": [4],
        "versioned_tasks": [TASK],
        "versions": [1],
        "lease": timedelta(seconds=30),
        "worker_id": "host:1:abc",
        "window": CLAIM_WINDOW,
        "recent": CLAIM_WINDOW / 2,
        "ids": [r["id"] for r in running],
        "slots": [r["slot"] for r in running],
        "tokens": [r["claim_token"] for r in running],
        "results": [None] * n,
        "states": ["queued", "dead"] * (n // 2),
        "delays": [1.0] * n,
        "reasons": ["exception"] * n,
        "messages": ["boom"] * n,
        "details": [json.dumps("Traceback ...")] * n,
        "job_id": filled["any_id"],
        "older_than": timedelta(days=7),
        "days": 9,
        "below_id": 2**62,
        "state": None,
        # the console: an id window of a job list, its filters, a dead-letter group
        "before": filled["any_id"] + 20_000,
        "floor": filled["any_id"],
        "since": None,
        "until": None,
        "args_filter": json.dumps({"customer": "acme"}),
        "reason": "exception",
        "cap": 1000,
        "sample": 1000,
    }


async def _explain(
    conn: asyncpg.Connection, sql: str, args: list[Any], plan_mode: str, *, analyze: bool = False
) -> list[dict[str, Any]]:
    """The plan PostgreSQL runs for ``sql`` as a prepared statement under ``plan_mode``
    (with ``analyze``, run inside a transaction that is rolled back)."""
    literals = []
    statement = await conn.prepare(sql)
    for value, param in zip(args, statement.get_parameters(), strict=True):
        sql_type = await conn.fetchval("SELECT format_type($1, NULL)", param.oid)
        text = await conn.fetchval(f"SELECT quote_nullable($1::{sql_type}::text)", value)
        literals.append(f"{text}::{sql_type}")
    options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    await conn.execute(f"SET plan_cache_mode = {plan_mode}")
    await conn.execute(f"PREPARE plan_probe AS {sql}")
    transaction = conn.transaction()
    await transaction.start()
    try:
        given = f"({', '.join(literals)})" if literals else ""
        raw = await conn.fetchval(f"EXPLAIN ({options}) EXECUTE plan_probe{given}")
    finally:
        await transaction.rollback()  # undoes what ANALYZE ran; PREPARE is not transactional
        await conn.execute("DEALLOCATE plan_probe")
        await conn.execute("RESET plan_cache_mode")
    document = json.loads(raw) if isinstance(raw, str) else raw
    found = [document[0]["Plan"]]
    nodes = []
    while found:
        node = found.pop()
        nodes.append(node)
        found.extend(node.get("Plans", []))
    return nodes


def _table_of(relation: str | None) -> str | None:
    """A partition's table: job_live_2 -> job_live, job_history_20261203 -> job_history."""
    if relation is None:
        return None
    for table in BIG:
        if relation == table or relation.startswith(table + "_"):
            return table
    return relation


async def test_no_statement_reads_a_growing_table_whole(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    filled = await _fill(db, schema)
    values = _values(filled)
    problems = []
    statements = _statements(JobStore(schema))
    assert len(statements) >= 25, [name for name, _ in statements]
    rows = {
        r["relname"]: r["reltuples"]
        for r in await db.fetch(
            "SELECT relname, reltuples FROM pg_class WHERE relnamespace = $1::regnamespace",
            schema,
        )
    }
    for name, statement in statements:
        if name in READ_WHOLE:
            continue
        missing = set(statement.params) - values.keys()
        assert not missing, f"{name}: give the test a value for {sorted(missing)}"
        args = statement.args({param: values[param] for param in statement.params})
        sql = statement.sql.replace("{partition}", "0")
        for plan_mode in ("force_custom_plan", "force_generic_plan"):
            try:
                nodes = await _explain(db, sql, args, plan_mode)
            except asyncpg.PostgresError as exc:
                raise AssertionError(f"{name}: {exc}") from exc
            for node in nodes:
                relation = node.get("Relation Name")
                table = _table_of(relation)
                if plan_mode == "force_generic_plan" and name in GENERIC_MAY_READ_WHOLE:
                    continue
                if node["Node Type"] == "Seq Scan" and table in BIG and rows[relation] > SMALL:
                    problems.append(f"{name} ({plan_mode}): sequential scan of {table}")
    assert not problems, "\n".join(sorted(set(problems)))


def _claim_buffers(nodes: list[dict[str, Any]]) -> int:
    """Buffers the scans of job_live's claim index (in any partition; the partitions'
    copies are named after its columns) touched: index pages, and heap pages visited to
    find a row dead. Dead versions are skipped without a count, so buffers are the measure.
    """
    return sum(
        n.get("Shared Hit Blocks", 0) + n.get("Shared Read Blocks", 0)
        for n in nodes
        if (n.get("Index Name") or "").endswith("queue_priority_scheduled_at_id_idx")
    )


@pytest.mark.parametrize("held", [True, False], ids=["horizon pinned", "horizon free"])
async def test_a_claim_reads_only_recent_jobs_even_while_the_horizon_is_pinned(
    app: Soniq, db: asyncpg.Connection, database_url: str, schema: str, held: bool
) -> None:
    store = JobStore(schema)
    holder = await asyncpg.connect(database_url)
    try:
        if held:  # a transaction that took an xid and sits idle: nothing can be vacuumed
            await holder.execute("BEGIN; SELECT txid_current()")
        # 5,000 jobs due a minute ago, claimed and finished: dead versions in the claim
        # index that no scan may mark dead while the horizon is pinned.
        await db.execute(
            f"""INSERT INTO {schema}.jobs (task_name, queue, args, max_attempts, scheduled_at)
                SELECT '{TASK}', 'default', '{{}}', 1, now() - interval '1 minute'
                FROM generate_series(1, 5000)"""
        )
        claim_options: dict[str, Any] = {
            "queues": ["default"],
            "max_attempts_by_task": {TASK: 1},
            "version_by_task": {},
            "lease": timedelta(seconds=30),
            "worker_id": "host:1:abc",
        }
        while claimed := await store.claims.claim(
            db, limit=500, window=EVERYTHING, **claim_options
        ):
            await store.outcomes.record(db, [Outcome(job.claim, "done") for job in claimed])
        for _ in range(10):
            await app.enqueue(TASK, {})
        claim = dict(_statements(store))["claims._claim_queues"]
        args = {
            "limit": 10,
            "registered_tasks": [TASK],
            "registered_max_attempts": [1],
            "lease": timedelta(seconds=30),
            "worker_id": "host:1:abc",
            "versioned_tasks": [],
            "versions": [],
            "queues": ["default"],
        }
        fast = await _explain(
            db, claim.sql, claim.args({**args, "window": CLAIM_WINDOW}), "auto", analyze=True
        )
        slow = await _explain(
            db, claim.sql, claim.args({**args, "window": EVERYTHING}), "auto", analyze=True
        )
    finally:
        await holder.close()
    fast_read, slow_read = _claim_buffers(fast), _claim_buffers(slow)
    assert fast_read <= 20, f"the recent claim touched {fast_read} buffers"
    if held:
        # The unbounded claim walks every dead entry since the pin: what the window avoids.
        assert slow_read >= 5 * fast_read, (fast_read, slow_read)


async def test_outcomes_heartbeats_and_releases_reach_one_partition_by_primary_key(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    filled = await _fill(db, schema)
    values = _values(filled)
    store = JobStore(schema)
    problems = []
    for name in ("_record_done", "_record_failed", "_heartbeat"):
        group = store.outcomes if name.startswith("_record") else store.maintenance
        statement: BoundStatement = getattr(group, name)
        args = statement.args({p: values[p] for p in statement.params})
        for plan_mode in ("force_custom_plan", "force_generic_plan"):
            nodes = await _explain(db, statement.sql, args, plan_mode)
            scans = {
                (n["Node Type"], n.get("Index Name") or "")
                for n in nodes
                if _table_of(n.get("Relation Name")) == "job_live"
                and n["Node Type"] != "ModifyTable"
            }
            if not scans or any(not index.endswith("pkey") for _, index in scans):
                problems.append(f"{name}, {plan_mode}: job_live reached by {sorted(scans)}")
    assert not problems, "\n".join(problems)


def _claim_index_rows(nodes: list[dict[str, Any]]) -> int:
    """Live claim-index entries the statement read (returned or filtered out)."""
    return sum(
        (n["Actual Rows"] + n.get("Rows Removed by Filter", 0)) * n["Actual Loops"]
        for n in nodes
        if (n.get("Index Name") or "").endswith("queue_priority_scheduled_at_id_idx")
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
    await db.execute(f"ANALYZE {schema}.job_live")
    statements = dict(_statements(JobStore(schema)))
    args = {
        "limit": 10,
        "registered_tasks": [TASK],
        "registered_max_attempts": [4],
        "lease": timedelta(seconds=30),
        "worker_id": "host:1:abc",
        "versioned_tasks": [],
        "versions": [],
        "window": CLAIM_WINDOW,
    }
    read = {}
    for queues in (("default",), ("default", "mail")):
        claim = statements["claims._claim_queues"]
        plan = await _explain(
            db, claim.sql, claim.args({**args, "queues": list(queues)}), "auto", analyze=True
        )
        read[queues] = _claim_index_rows(plan)
    # Each served lane reads its first `limit` jobs (per ring partition): never a queue's
    # whole backlog, and never the other queue's.
    assert read[("default",)] <= 4 * 10, read
    assert read[("default", "mail")] <= 2 * 4 * 10, read


# Statements whose reads are bounded whatever the tables hold (a job list by its limit, the
# console's counts by their cap or sample): rows they may read from the growing tables.
# A job list may walk the live ring by id (small by construction: recycled by TRUNCATE).
_NOT_THE_RING = ("job_history", "job_dead", "job_scheduled")
BOUNDED = {
    "reads._list_all": (2000, _NOT_THE_RING),
    "reads._list_queue": (2000, _NOT_THE_RING),
    "reads._list_task": (2000, _NOT_THE_RING),
    "browse._overview": (8000, BIG),
    "browse._fingerprints": (4000, BIG),
    "browse._dead_groups": (2000, BIG),
    "browse._throughput": (2000, BIG),
}


def _rows_read(nodes: list[dict[str, Any]], tables: tuple[str, ...]) -> int:
    """Rows the scans of ``tables`` returned or filtered out, over all loops."""
    return sum(
        (n["Actual Rows"] + n.get("Rows Removed by Filter", 0)) * n["Actual Loops"]
        for n in nodes
        if _table_of(n.get("Relation Name")) in tables and "Scan" in n["Node Type"]
    )


@pytest.mark.parametrize("state", [None, "queued", "running", "dead", "done", "cancelled"])
async def test_job_lists_and_console_counts_read_a_bounded_number_of_rows(
    app: Soniq, db: asyncpg.Connection, schema: str, state: str | None
) -> None:
    filled = await _fill(db, schema)
    values = {**_values(filled), "state": state}
    statements = dict(_statements(JobStore(schema)))
    assert BOUNDED.keys() <= statements.keys()
    problems = []
    for name, (most, tables) in BOUNDED.items():
        statement = statements[name]
        args = statement.args({param: values[param] for param in statement.params})
        custom = await _explain(db, statement.sql, args, "force_custom_plan", analyze=True)
        generic = await _explain(db, statement.sql, args, "force_generic_plan", analyze=True)
        # PostgreSQL runs a cached statement's generic plan only when it is estimated no
        # costlier than the custom plans (a LIMIT it cannot see makes it far costlier).
        plans = [("custom", custom)]
        if generic[0]["Total Cost"] <= 2 * custom[0]["Total Cost"]:
            plans.append(("generic", generic))
        for plan_mode, nodes in plans:
            read = _rows_read(nodes, tables)
            if read > most:
                problems.append(f"{name} ({plan_mode}, state {state}): read {read:,} rows")
    assert not problems, "\n".join(problems)


async def test_status_counts_waiting_jobs_through_their_queue_index(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    # Many jobs waiting for parents (job_waiting), in two queues, as autovacuum leaves them.
    await db.execute(
        f"""INSERT INTO {schema}.job_waiting (id, task_name, queue, args, priority, attempts,
                max_attempts, scheduled_at, enqueued_at)
            SELECT nextval('{schema}.job_ids'), '{TASK}', CASE WHEN i % 2 = 0 THEN 'default'
                   ELSE 'other' END, json_build_object('pad', repeat('x', 200)), 0, 0, 4,
                   now(), now()
            FROM generate_series(1, {LIVE_ROWS}) AS i"""
    )
    await db.execute(f"VACUUM ANALYZE {schema}.job_waiting")
    stats = dict(_statements(JobStore(schema)))["reads._queue_stats"]
    nodes = await _explain(db, stats.sql, [], "auto", analyze=True)
    [waiting] = [n for n in nodes if n.get("Relation Name") == "job_waiting"]
    assert (waiting["Node Type"], waiting["Index Name"]) == (
        "Index Only Scan",
        "job_waiting_queue_idx",
    )
    assert waiting["Heap Fetches"] == 0
    counts = {q.queue: q.waiting for q in (await app.status()).queues}
    assert counts == {"default": LIVE_ROWS // 2, "other": LIVE_ROWS // 2}


@pytest.mark.parametrize(
    "settings",
    [
        "concurrency => 5000",
        "concurrency => 1000, rate_limit => 100, rate_period => interval '1 second', "
        "partition_by => ARRAY['n']",
    ],
)
async def test_the_limited_claim_function_reads_through_indexes(
    app: Soniq, db: asyncpg.Connection, schema: str, settings: str
) -> None:
    # The limited claim runs inside claim_limited (migration 0014), where the walk over
    # the store's statements cannot see its plans: auto_explain reports them as notices.
    filled = await _fill(db, schema)
    columns = [part.split(" => ")[0] for part in settings.split(", ") if " => " in part]
    values = [part.split(" => ")[1] for part in settings.split(", ") if " => " in part]
    await db.execute(
        f"INSERT INTO {schema}.queue_settings (queue, {', '.join(columns)}) "
        f"VALUES ('default', {', '.join(values)})"
    )
    await db.execute(f"ANALYZE {schema}.queue_settings")
    plans: list[str] = []
    db.add_log_listener(lambda _conn, message: plans.append(message.message))
    for setting in (
        "LOAD 'auto_explain'",
        "SET auto_explain.log_min_duration = 0",
        "SET auto_explain.log_nested_statements = on",
        "SET auto_explain.log_format = json",
        "SET auto_explain.log_level = notice",
    ):
        await db.execute(setting)
    claim = dict(_statements(JobStore(schema)))["steering._claim"]
    args = claim.args({param: _values(filled)[param] for param in claim.params})
    transaction = db.transaction()
    await transaction.start()
    try:
        claimed = await db.fetch(claim.sql, *args)
    finally:
        await transaction.rollback()
        await db.execute("SET auto_explain.log_min_duration = -1")
    assert [row["id"] for row in claimed if row["id"] is not None]  # it took jobs
    nested = [json.loads(p[p.index("{") :])["Plan"] for p in plans if "claim_limited" not in p]
    assert len(nested) >= 2, plans  # the lock and the claim
    problems = []
    for plan in nested:
        found = [plan]
        while found:
            node = found.pop()
            found.extend(node.get("Plans", []))
            relation = node.get("Relation Name")
            if node["Node Type"] == "Seq Scan" and _table_of(relation) in BIG:
                problems.append(f"sequential scan of {relation}")
    assert not problems, problems
