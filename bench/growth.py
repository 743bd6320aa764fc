"""``python -m bench growth``: whether a full retention week of finished jobs slows the queue,
the reads the CLI makes, or retention itself.

On a scratch database, two schemas: ``growth_empty``, and ``growth_filled`` whose job_history
holds ``--rows`` done and cancelled jobs (10,000,000 by default) finished over the last 7 days,
beside a few thousand dead letters and jobs scheduled for later. Then, by step:

- ``drain``: ``--jobs`` no-op jobs drained by an in-process worker (``--concurrency`` 500) on
  each schema in turn, the order swapped every repeat; timed from the first claim to the
  last outcome on the database clock. Goal: the filled rate within 10% of the empty one.
- ``reads``: every read the CLI makes, as the Python call and as the CLI process (its wall
  time minus a no-op CLI start), ``--calls`` times each in rotation; p50 and max. Each
  answer is checked against what the fill wrote. Goal: under 200 ms; a read that misses it
  has its statements run under EXPLAIN (ANALYZE, BUFFERS), custom and generic plan.
- ``retention``: one day dropped while a drain runs, then a week rolled forward one day at
  a time (a day as big as the one dropped is filled, the days ahead are kept, the oldest
  day is dropped, as a worker's retention pass does), with the history's size after each
  day; and what 20,000 jobs/s would make of a day partition.

The fill is untimed bench work, not Soniq's. ``--keep`` leaves the database (its name is
printed) and ``--reuse NAME`` runs later steps on it, so each locked run stays short.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg

from bench.config import default_database_url
from bench.database import ScratchDatabases, connection, server_facts, with_database
from bench.probe import BenchArgs, make_args
from bench.report import machine
from soniq import Soniq
from soniq.cli.common import job_dict
from soniq.db.jobs import JobStore
from soniq.settings import Settings

REPO = Path(__file__).resolve().parent.parent
EMPTY, FILLED = "growth_empty", "growth_filled"
TASK = "growth.noop"
STEPS = ("fill", "drain", "reads", "retention")
GOAL_MS = 200.0
DRAIN_GOAL = 0.10  # the filled rate within 10% of the empty one
SUSTAINED_PER_S = 20_000
RETENTION: timedelta = next(f.default for f in fields(Settings) if f.name == "done_retention")

# Shares per mille of the jobs in history: queues, tasks (one of them rare), and states.
QUEUES = (("default", 600), ("mail", 250), ("reports", 100), ("bulk", 50))
TASKS = (
    ("email.send", 300),
    ("webhook.deliver", 250),
    ("image.resize", 150),
    ("search.index", 120),
    ("report.build", 80),
    ("billing.charge", 60),
    ("sms.send", 30),
    ("audit.export", 10),
)
WITH_RESULT = {"image.resize", "report.build", "billing.charge", "search.index"}
CANCELLED_PER_MILLE = 5
RARE_TASK, SMALL_QUEUE = "audit.export", "reports"


@dataclass(frozen=True)
class GrowthConfig:
    admin_url: str
    rows: int
    dead: int
    scheduled: int
    jobs: int
    concurrency: int
    repeats: int
    calls: int
    roll_days: int
    steps: tuple[str, ...]
    keep: bool
    reuse: str | None
    json_path: Path
    smoke: bool


def parse_args(argv: list[str]) -> GrowthConfig:
    parser = argparse.ArgumentParser(
        prog="python -m bench growth",
        description="Drain rate, CLI reads and retention with a week of finished jobs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=10_000_000, help="jobs in job_history")
    parser.add_argument("--dead", type=int, default=5000, help="dead letters")
    parser.add_argument("--scheduled", type=int, default=3000, help="jobs scheduled for later")
    parser.add_argument("--jobs", type=int, default=50_000, help="jobs per drain")
    parser.add_argument("--concurrency", type=int, default=500, help="the drain worker's")
    parser.add_argument("--repeats", type=int, default=5, help="drains per schema")
    parser.add_argument("--calls", type=int, default=10, help="calls of each read")
    parser.add_argument(
        "--roll-days", type=int, default=6, help="days the retention step rolls forward"
    )
    parser.add_argument(
        "--steps", default=",".join(STEPS), help=f"steps to run, of {', '.join(STEPS)}"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--reuse", metavar="NAME", help="run on this kept database (no fill)")
    parser.add_argument(
        "--json", type=Path, default=Path("bench-results-growth.json"), help="results file"
    )
    parser.add_argument(
        "--database-url",
        default=default_database_url(),
        help="server to create the scratch database on (needs CREATEDB)",
    )
    args = parser.parse_args(argv)
    steps = tuple(s.strip() for s in args.steps.split(",") if s.strip())
    if not steps or set(steps) - set(STEPS):
        parser.error(f"--steps takes some of {', '.join(STEPS)}")
    if args.reuse and "fill" in steps:
        steps = tuple(s for s in steps if s != "fill")
    elif not args.reuse and "fill" not in steps:
        parser.error("without --reuse the database must be filled: add fill to --steps")
    for name in ("rows", "jobs", "concurrency", "repeats", "calls"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if not 1 <= args.roll_days <= 6:
        parser.error("--roll-days must be 1 to 6 (the week's full days before today)")
    config = GrowthConfig(
        admin_url=args.database_url,
        rows=args.rows,
        dead=args.dead,
        scheduled=args.scheduled,
        jobs=args.jobs,
        concurrency=args.concurrency,
        repeats=args.repeats,
        calls=args.calls,
        roll_days=args.roll_days,
        steps=tuple(s for s in STEPS if s in steps),
        keep=args.keep,
        reuse=args.reuse,
        json_path=args.json,
        smoke=args.smoke,
    )
    if args.smoke:
        config = replace(
            config, rows=20_000, dead=200, scheduled=150, jobs=500, concurrency=50, repeats=1,
            calls=1, roll_days=2,
        )  # fmt: skip
    return config


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _per_mille(expression: str, shares: tuple[tuple[str, int], ...]) -> str:
    """A CASE choosing each name for its share of the values 0..999 of ``expression``."""
    arms, upto = [], 0
    for name, share in shares[:-1]:
        upto += share
        arms.append(f"WHEN {expression} < {upto} THEN '{name}'")
    return f"CASE {' '.join(arms)} ELSE '{shares[-1][0]}' END"


def _hash(column: str, seed: int) -> str:
    """A well-mixed value in 0..999 of a bigint column (unlike ``column % 1000``, independent
    of the other seeds' values)."""
    return f"(((hashint8extended({column}, {seed}) % 1000) + 1000) % 1000)"


_TASK = _per_mille("ht", TASKS)
_QUEUE = _per_mille("hq", QUEUES)
_RESULT_TASKS = ", ".join(f"'{t}'" for t in sorted(WITH_RESULT))
_TRACEBACK = (
    "to_json('Traceback (most recent call last):' "
    "|| repeat(E'\\n  File \"app/tasks.py\", line 42, in handle\\n    return call(**args)', 8) "
    "|| E'\\nRuntimeError: upstream returned 503')"
)


def _history_rows(schema: str, *, id_of: str) -> str:
    """INSERT of the jobs numbered $3 to $4 - 1, finished at $1 + (i + 0.5) x $2; ``id_of``
    makes a job's id from its number ``i``."""
    return f"""
        INSERT INTO {schema}.job_history (id, task_name, queue, args, state, priority,
            attempts, max_attempts, scheduled_at, enqueued_at, started_at, finished_at,
            worker_id, result)
        SELECT {id_of}, task, queue,
               json_build_object('n', i, 'email', 'user' || i || '@example.com',
                                 'amount', i * 0.5, 'tags', json_build_array('bench', 'noop')),
               state, 0, 1 + (i % 97 = 0)::int, 4,
               f - (i % 1000 + 25) * interval '1 millisecond',
               f - (i % 1000 + 25) * interval '1 millisecond',
               f - (i % 50 + 5) * interval '1 millisecond', f,
               'host' || i % 4 || ':' || 1000 + i % 8 || ':0a1b2c',
               CASE WHEN state = 'done' AND task IN ({_RESULT_TASKS})
                    THEN json_build_object('ok', true, 'n', i) END
        FROM (SELECT i, f, {_TASK} AS task, {_QUEUE} AS queue,
                     CASE WHEN hs < {CANCELLED_PER_MILLE} THEN 'cancelled' ELSE 'done' END
                         AS state
              FROM (SELECT i, $1::timestamptz + (i + 0.5) * $2::interval AS f,
                           {_hash("i", 1)} AS ht, {_hash("i", 2)} AS hq, {_hash("i", 3)} AS hs
                    FROM generate_series($3::bigint, $4::bigint - 1) AS i) AS raw) AS g"""


@dataclass
class Facts:
    """What the fill wrote, to check the reads' answers against."""

    rows: int
    dead: int
    scheduled: int
    old_id: int  # one of the oldest jobs with a result
    old_result: Any
    filled_at: str
    fill_seconds: float = 0.0
    vacuum_seconds: float = 0.0


async def fill(url: str, config: GrowthConfig) -> Facts:
    """job_history, job_dead and job_scheduled of ``growth_filled`` as a week leaves them.

    History job ``i`` (0-based, in order of finishing) has id 2i + 2; dead letters take odd
    ids among them (they failed along the same week) and scheduled jobs the ids above."""
    n, week = config.rows, timedelta(days=7)
    started = time.perf_counter()
    async with connection(url) as conn:
        now: datetime = await conn.fetchval("SELECT now()")
        start = now - week
        await conn.execute(
            f"SELECT {FILLED}.add_history_days($1::date, 8)", start.astimezone(timezone.utc)
        )
        chunk = max(1, min(n, 500_000))
        sql = _history_rows(FILLED, id_of="2 * i + 2")
        for lo in range(0, n, chunk):
            await conn.execute(sql, start, week / n, lo, min(n, lo + chunk))
            _log(f"  history: {min(n, lo + chunk):,} of {n:,} rows")
        await conn.execute(
            f"""INSERT INTO {FILLED}.job_dead (id, task_name, queue, args, priority, attempts,
                    max_attempts, scheduled_at, enqueued_at, started_at, finished_at,
                    worker_id, error_reason, error_message, error_detail)
                SELECT 2 * floor((j + 0.5) * $3 / $4)::bigint + 1, {_TASK}, {_QUEUE},
                       json_build_object('n', j), 0, 4, 4, f - interval '2 minutes',
                       f - interval '2 minutes', f - interval '30 milliseconds', f,
                       'host' || j % 4 || ':1000:0a1b2c', 'exception',
                       'RuntimeError: upstream returned 503', {_TRACEBACK}
                FROM (SELECT j, $1::timestamptz + (j + 0.5) * $2::interval AS f,
                             {_hash("j", 4)} AS ht, {_hash("j", 5)} AS hq
                      FROM generate_series(0, $4::bigint - 1) AS j) AS g""",
            start,
            week / max(1, config.dead),
            n,
            config.dead,
        )
        # Delayed jobs and retries due in one to seven days: none becomes due during a run.
        await conn.execute(
            f"""INSERT INTO {FILLED}.job_scheduled (id, task_name, queue, args, priority,
                    attempts, max_attempts, scheduled_at, enqueued_at, error_reason,
                    error_message)
                SELECT 2 * $1::bigint + 1 + k, {_TASK}, {_QUEUE}, json_build_object('n', k),
                       0, k % 3, 4,
                       now() + interval '1 day' + {_hash("k", 6)} * interval '518 seconds',
                       now() - k % 3600 * interval '1 second',
                       CASE WHEN k % 3 > 0 THEN 'exception' END,
                       CASE WHEN k % 3 > 0 THEN 'RuntimeError: upstream returned 503' END
                FROM (SELECT k, {_hash("k", 7)} AS ht, {_hash("k", 8)} AS hq
                      FROM generate_series(0, $2::bigint - 1) AS k) AS g""",
            n,
            config.scheduled,
        )
        await conn.execute(
            f"""INSERT INTO {FILLED}.job_lanes (queue, priority)
                SELECT q, 0 FROM unnest($1::text[]) AS q ON CONFLICT DO NOTHING""",
            [q for q, _ in QUEUES],
        )
        await conn.execute(f"SELECT setval('{FILLED}.job_ids', $1)", 2 * n + config.scheduled + 10)
        fill_seconds = time.perf_counter() - started
        started = time.perf_counter()
        for table in ("job_history", "job_dead", "job_scheduled", "job_lanes"):
            await conn.execute(f"VACUUM (ANALYZE) {FILLED}.{table}")
        vacuum_seconds = time.perf_counter() - started
        old = await conn.fetchrow(
            f"""SELECT id, result FROM {FILLED}.job_history WHERE result IS NOT NULL
                ORDER BY id LIMIT 1"""
        )
        if old is None:
            raise RuntimeError("the fill wrote no job with a result: use more --rows")
        facts = Facts(
            rows=n,
            dead=config.dead,
            scheduled=config.scheduled,
            old_id=old["id"],
            old_result=json.loads(old["result"]),
            filled_at=now.isoformat(),
            fill_seconds=round(fill_seconds, 1),
            vacuum_seconds=round(vacuum_seconds, 1),
        )
        # Kept with the schema, for a later --reuse run.
        await conn.execute(f"COMMENT ON SCHEMA {FILLED} IS {_literal(json.dumps(asdict(facts)))}")
    return facts


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def stored_facts(url: str) -> Facts:
    async with connection(url) as conn:
        comment = await conn.fetchval(
            "SELECT obj_description($1::regnamespace, 'pg_namespace')", FILLED
        )
    if comment is None:
        raise RuntimeError(f"{FILLED} holds no fill facts: not a database this bench kept")
    return Facts(**json.loads(comment))


# ---------------------------------------------------------------------------------- drain


async def _noop(**_: Any) -> None:
    """The drained job: claiming and recording it is what is measured."""


def _app(url: str, schema: str) -> Soniq:
    app = Soniq(url, schema=schema)
    app.job(name=TASK, validate=BenchArgs)(_noop)
    return app


async def _until(probe: Callable[[], Awaitable[bool]], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await probe():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


async def _checkpoint(conn: asyncpg.Connection) -> None:
    """Write out what earlier steps dirtied, so no drain pays for another's checkpoint."""
    with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
        await conn.execute("CHECKPOINT")


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU seconds each process has used so far (none without psutil, or for processes
    not on this machine)."""
    try:
        import psutil  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return {}
    used = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            used[pid] = times.user + times.system
    return used


async def _backends(conn: asyncpg.Connection) -> dict[int, float]:
    """CPU seconds so far of the database's other backends (the worker's connections)."""
    pids = await conn.fetch(
        "SELECT pid FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return _cpu_seconds([row["pid"] for row in pids])


async def drain_once(
    url: str,
    schema: str,
    config: GrowthConfig,
    during: Callable[[], Awaitable[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Queue ``config.jobs`` no-op jobs with a worker idle, then time the drain on the
    database clock; ``during`` runs once the first job has been claimed."""
    app = _app(url, schema)
    worker: asyncio.Task[None] | None = None
    async with connection(url) as conn:
        try:
            if schema == EMPTY:  # empty means empty: no earlier drain's jobs
                await conn.execute(f"TRUNCATE {EMPTY}.job_history")
            await _checkpoint(conn)
            load = os.getloadavg()[0]
            worker = asyncio.create_task(app.run_worker(concurrency=config.concurrency))

            async def registered() -> bool:
                return bool(await conn.fetchval(f"SELECT count(*) FROM {schema}.workers"))

            await _until(registered, timeout=60, what="the worker to register")
            ids = await app.enqueue_many(TASK, [make_args(i) for i in range(config.jobs)])
            lo, hi = min(ids), max(ids)
            # CPU per job is steadier than the rate on a shared machine.
            cpu_before, backends_before = time.process_time(), await _backends(conn)
            extra: dict[str, Any] = {}
            if during is not None:

                async def claimed() -> bool:  # running now, or already finished: a small
                    # drain can run from first claim to last outcome between two looks
                    return bool(
                        await conn.fetchval(
                            f"""SELECT EXISTS (SELECT 1 FROM {schema}.job_live
                                               WHERE id BETWEEN $1 AND $2 AND state = 'running')
                                OR EXISTS (SELECT 1 FROM {schema}.job_history
                                           WHERE id BETWEEN $1 AND $2)""",
                            lo,
                            hi,
                        )
                    )

                await _until(claimed, timeout=60, what="the first claim")
                extra = await during()

            async def drained() -> bool:
                return not await conn.fetchval(
                    f"SELECT EXISTS (SELECT 1 FROM {schema}.job_live WHERE id BETWEEN $1 AND $2)",
                    lo,
                    hi,
                )

            await _until(drained, timeout=900, what="the drain")
            worker_cpu = time.process_time() - cpu_before
            backends_after = await _backends(conn)  # before stop(): the pool is still open
            postgres_cpu = sum(
                t - backends_before.get(pid, 0.0) for pid, t in backends_after.items()
            )
            row = await conn.fetchrow(
                f"""SELECT count(*) FILTER (WHERE state = 'done') AS done,
                           extract(epoch FROM max(finished_at) - min(started_at)) AS seconds
                    FROM {schema}.job_history WHERE id BETWEEN $1 AND $2""",
                lo,
                hi,
            )
        finally:
            await app.stop()
            if worker is not None:
                await worker
            await app.close()
    seconds = float(row["seconds"])
    return {
        "schema": schema,
        "jobs": config.jobs,
        "done": row["done"],
        "verified": row["done"] == config.jobs,
        "seconds": round(seconds, 3),
        "jobs_per_s": round(config.jobs / seconds, 1),
        "load_average_before": round(load, 2),
        "worker_cpu_ms_per_1k": round(worker_cpu / config.jobs * 1e6, 1),
        # None when the server's processes are not visible from here
        "postgres_cpu_ms_per_1k": round(postgres_cpu / config.jobs * 1e6, 1)
        if backends_after
        else None,
        **extra,
    }


async def drains(url: str, config: GrowthConfig) -> dict[str, Any]:
    """Empty and filled in turn, the order swapped each repeat (ABBA...)."""
    runs = []
    for repeat in range(config.repeats):
        order = (EMPTY, FILLED) if repeat % 2 == 0 else (FILLED, EMPTY)
        for schema in order:
            run = await drain_once(url, schema, config)
            run["repeat"] = repeat
            _log(f"  drain {schema}: {run['jobs_per_s']:,.0f} jobs/s ({run['seconds']:.2f} s)")
            runs.append(run)
    summary: dict[str, dict[str, Any]] = {}
    for schema in (EMPTY, FILLED):
        ran = [r for r in runs if r["schema"] == schema and r["verified"]]
        summary[schema] = {"rates": [r["jobs_per_s"] for r in ran]}
        for metric in ("jobs_per_s", "worker_cpu_ms_per_1k", "postgres_cpu_ms_per_1k"):
            values = [r[metric] for r in ran if r[metric] is not None]
            summary[schema][metric] = (
                {"median": statistics.median(values), "min": min(values), "max": max(values)}
                if values
                else None
            )

    def ratio(metric: str) -> float | None:
        empty, filled = summary[EMPTY][metric], summary[FILLED][metric]
        return round(filled["median"] / empty["median"], 3) if empty and filled else None

    rate = ratio("jobs_per_s")
    # Each repeat's two drains ran back to back: their ratio cancels a slow phase of the
    # machine that spans both.
    paired = [
        round(f["jobs_per_s"] / e["jobs_per_s"], 3)
        for repeat in range(config.repeats)
        for e in runs
        for f in runs
        if e["repeat"] == f["repeat"] == repeat and e["schema"] == EMPTY and f["schema"] == FILLED
    ]
    return {
        "runs": runs,
        "summary": summary,
        "filled_over_empty": rate,
        "paired_filled_over_empty": paired,
        "paired_median": statistics.median(paired) if paired else None,
        "cpu_filled_over_empty": {
            "worker": ratio("worker_cpu_ms_per_1k"),
            "postgres": ratio("postgres_cpu_ms_per_1k"),
        },
        "within_goal": None if rate is None else rate >= 1 - DRAIN_GOAL,
        "all_verified": all(r["verified"] for r in runs),
    }


# ---------------------------------------------------------------------------------- reads


@dataclass(frozen=True)
class Read:
    """One read the CLI makes: the Python call, the CLI arguments (None: no CLI command),
    a check of the answer (as the CLI's JSON has it; returns what is wrong, or None), and
    the statements it runs, to EXPLAIN if it misses the goal."""

    name: str
    call: Callable[[Soniq], Awaitable[Any]]
    cli: list[str] | None
    check: Callable[[Any], str | None]
    statements: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _as_json(value: Any) -> Any:
    """A Python read's answer as the CLI prints it with --json."""

    def plain(item: Any) -> Any:
        if hasattr(item, "task_name"):
            return job_dict(item)
        return asdict(item) if hasattr(item, "__dataclass_fields__") else item

    value = [plain(v) for v in value] if isinstance(value, list) else plain(value)
    return json.loads(json.dumps(value, default=str))


def _jobs_check(count: int, **want: str) -> Callable[[Any], str | None]:
    def check(jobs: Any) -> str | None:
        if len(jobs) != count:
            return f"{len(jobs)} jobs, not {count}"
        ids = [j["id"] for j in jobs]
        if ids != sorted(ids, reverse=True):
            return "not newest first"
        wrong = [j["id"] for j in jobs if any(j[k] != v for k, v in want.items())]
        return f"jobs {wrong[:5]} do not match {want}" if wrong else None

    return check


def _list(limit: int, **filters: str) -> tuple[Callable[[Soniq], Awaitable[Any]], list[str]]:
    cli = ["jobs", "list", "--limit", str(limit)]
    for key, value in filters.items():
        cli += [f"--{'task' if key == 'task_name' else key}", value]

    async def call(app: Soniq) -> Any:
        return await app.list_jobs(limit=limit, **filters)

    return call, cli


async def _list_read(conn: asyncpg.Connection, name: str, limit: int, **filters: str) -> Read:
    call, cli = _list(limit, **filters)
    where = " AND ".join(f"{key} = ${n}" for n, key in enumerate(filters, 1)) or "true"
    count = await conn.fetchval(
        f"SELECT count(*) FROM (SELECT 1 FROM {FILLED}.jobs WHERE {where} LIMIT {limit}) AS f",
        *filters.values(),
    )
    if not count:
        raise RuntimeError(f"{name}: no job matches, so the read would check nothing")
    # The statement JobReads.list_jobs picks for these filters, with the parameters it takes.
    if "queue" in filters:
        statement, keys = "reads._list_queue", ("state", "queue", "task_name")
    elif "task_name" in filters:
        statement, keys = "reads._list_task", ("state", "task_name")
    else:
        statement, keys = "reads._list_all", ("state",)
    params: dict[str, Any] = {key: filters.get(key) for key in keys} | {"limit": limit}
    return Read(name, call, cli, _jobs_check(count, **filters), [(statement, params)])


async def reads(conn: asyncpg.Connection, facts: Facts) -> list[Read]:
    """The reads, with checks against what the fill wrote (how many jobs each list should
    return is counted here, through the jobs view)."""

    def status_check(status: Any) -> str | None:
        queues = status if isinstance(status, list) else status["queues"]  # stats, or status
        dead = sum(q["dead"] for q in queues)
        waiting = sum(q["queued"] + q["scheduled"] for q in queues)
        if dead != facts.dead or waiting != facts.scheduled:
            return f"dead {dead} (want {facts.dead}), waiting {waiting} (want {facts.scheduled})"
        return None

    def show_check(job: Any) -> str | None:
        if job["id"] != facts.old_id or job["state"] != "done":
            return f"job {job['id']} is {job['state']}"
        return None if job["result"] == facts.old_result else f"result {job['result']!r}"

    def dead_check(jobs: Any) -> str | None:
        if len(jobs) != min(100, facts.dead) or any(j["state"] != "dead" for j in jobs):
            return f"{len(jobs)} jobs, states {sorted({j['state'] for j in jobs})}"
        finished = [j["finished_at"] for j in jobs]
        return None if finished == sorted(finished, reverse=True) else "not latest first"

    async def queue_stats(app: Soniq) -> Any:
        async with app.connection() as conn:
            return await JobStore(app.schema).reads.queue_stats(conn)

    async def get_result(app: Soniq) -> Any:
        return await app.get_result(facts.old_id, timeout=5)

    get = [("reads._get", {"job_id": facts.old_id})]
    stats = [("reads._queue_stats", {})]
    return [
        Read(
            "status",
            lambda app: app.status(),
            ["status"],
            status_check,
            [*stats, ("reads._waiting_for_newer", {})],
        ),
        Read("queue stats", queue_stats, None, status_check, stats),
        await _list_read(conn, "jobs list", 50),
        await _list_read(conn, "jobs list --state done", 50, state="done"),
        await _list_read(conn, "jobs list --state cancelled", 50, state="cancelled"),
        await _list_read(conn, "jobs list --state dead", 50, state="dead"),
        await _list_read(conn, "jobs list --state queued", 50, state="queued"),
        await _list_read(conn, f"jobs list --queue {SMALL_QUEUE}", 50, queue=SMALL_QUEUE),
        await _list_read(conn, f"jobs list --task {RARE_TASK}", 50, task_name=RARE_TASK),
        await _list_read(
            conn,
            "jobs list --state cancelled --queue mail --task email.send",
            50,
            state="cancelled",
            queue="mail",
            task_name="email.send",
        ),
        Read(
            "jobs show (a week old)",
            lambda app: app.get_job(facts.old_id),
            ["jobs", "show", str(facts.old_id)],
            show_check,
            get,
        ),
        Read(
            "dead-letter list",
            lambda app: app.dead_letter.list(limit=100),
            ["dead-letter", "list", "--limit", "100"],
            dead_check,
            [("reads._list_dead", {"task_name": None, "queue": None, "limit": 100})],
        ),
        Read(
            "get_result (a week old)",
            get_result,
            None,
            lambda result: None if result == facts.old_result else f"result {result!r}",
            get,
        ),
    ]


def _cli(url: str, schema: str, args: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = dict(
        os.environ,
        SONIQ_DATABASE_URL=url,
        SONIQ_SCHEMA=schema,
        PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "soniq", *args], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    return time.perf_counter() - started, done


def _ms(values: list[float]) -> dict[str, Any]:
    return {
        "p50_ms": round(statistics.median(values) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
        "samples_ms": [round(v * 1000, 1) for v in values],  # in call order
    }


async def time_reads(url: str, facts: Facts, config: GrowthConfig) -> dict[str, Any]:
    """Each read ``config.calls`` times in rotation, as the Python call, then as the CLI."""
    async with connection(url) as conn:
        found = await reads(conn, facts)
    python: dict[str, list[float]] = {r.name: [] for r in found}
    cli: dict[str, list[float]] = {r.name: [] for r in found if r.cli is not None}
    problems: dict[str, list[str]] = {r.name: [] for r in found}
    async with _app(url, FILLED) as app:
        await app.status()  # the pool is open before the first timed call
        for _ in range(config.calls):
            for read in found:
                started = time.perf_counter()
                answer = await read.call(app)
                python[read.name].append(time.perf_counter() - started)
                problem = read.check(_as_json(answer))
                if problem:
                    problems[read.name].append(f"python: {problem}")
    # Untimed: the first start of a process after the code changed compiles its modules.
    for args in (["--version"], ["status", "--json"]):
        _cli(url, FILLED, args)
    baseline = []
    for _ in range(config.calls):
        baseline.append(_cli(url, FILLED, ["--version"])[0])
        for read in found:
            if read.cli is None:
                continue
            seconds, done = _cli(url, FILLED, [*read.cli, "--json"])
            cli[read.name].append(seconds)
            if done.returncode != 0:
                problems[read.name].append(f"cli exited {done.returncode}: {done.stderr[-500:]}")
                continue
            answer = json.loads(done.stdout)
            problem = read.check(answer)
            if problem:
                problems[read.name].append(f"cli: {problem}")
    start = statistics.median(baseline)
    results = []
    for read in found:
        entry: dict[str, Any] = {"read": read.name, "python": _ms(python[read.name])}
        if read.name in cli:
            entry["cli"] = _ms([s - start for s in cli[read.name]])
            entry["cli_wall"] = _ms(cli[read.name])
        timed = [entry["python"], *([entry["cli"]] if "cli" in entry else [])]
        entry["within_goal"] = all(t["p50_ms"] < GOAL_MS for t in timed)
        slowest = max(t["max_ms"] for t in timed)
        entry["problems"] = problems[read.name]
        entry["verified"] = not problems[read.name]
        if slowest >= GOAL_MS or config.smoke:
            entry["plans"] = await explain(url, read.statements)
        results.append(entry)
    return {
        "calls": config.calls,
        "cli_start": _ms(baseline),
        "reads": results,
        "all_verified": all(r["verified"] for r in results),
    }


async def explain(url: str, statements: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement as a prepared statement, under its
    custom plan (what a fresh CLI process runs) and the generic plan (what a long-lived
    app's cached statement may switch to after five runs)."""
    store = JobStore(FILLED)
    plans: dict[str, Any] = {}
    async with connection(url) as conn:
        for name, values in statements:
            group, attribute = name.split(".")
            statement = getattr(getattr(store, group), attribute)
            args = statement.args(values)
            literals = []
            prepared = await conn.prepare(statement.sql)
            for value, param in zip(args, prepared.get_parameters(), strict=True):
                sql_type = await conn.fetchval("SELECT format_type($1, NULL)", param.oid)
                text = await conn.fetchval(f"SELECT quote_nullable($1::{sql_type}::text)", value)
                literals.append(f"{text}::{sql_type}")
            given = f"({', '.join(literals)})" if literals else ""
            for mode in ("force_custom_plan", "force_generic_plan"):
                await conn.execute(f"SET plan_cache_mode = {mode}")
                await conn.execute(f"PREPARE growth_probe AS {statement.sql}")
                try:
                    rows = await conn.fetch(
                        f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE growth_probe{given}"
                    )
                finally:
                    await conn.execute("DEALLOCATE growth_probe")
                    await conn.execute("RESET plan_cache_mode")
                plans[f"{name} {mode.split('_')[1]}"] = [r[0] for r in rows]
    return plans


# ------------------------------------------------------------------------------ retention

_PARTITIONS = """
    SELECT c.relname AS name, to_date(substr(c.relname, 13), 'YYYYMMDD') AS day,
           pg_total_relation_size(c.oid) AS bytes, pg_relation_size(c.oid) AS heap_bytes
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = '{schema}.job_history'::regclass
    ORDER BY c.relname"""


async def partitions(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """job_history's day partitions: day, rows (counted), bytes with indexes, heap bytes."""
    found = []
    for row in await conn.fetch(_PARTITIONS.replace("{schema}", FILLED)):
        rows = await conn.fetchval(f"SELECT count(*) FROM {FILLED}.{row['name']}")
        found.append({**dict(row), "day": row["day"].isoformat(), "rows": rows})
    return found


def _size(parts: list[dict[str, Any]]) -> int:
    return sum(p["bytes"] for p in parts)


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


async def _timed(conn: asyncpg.Connection, sql: str, *args: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    value = await conn.fetchval(sql, *args)
    return value, time.perf_counter() - started


async def _drop(conn: asyncpg.Connection, oldest: dict[str, Any]) -> dict[str, Any]:
    """Drop the day partition ``oldest`` as retention does: drop_history_before the end of
    that day, timed."""
    cutoff = _day_start(date.fromisoformat(oldest["day"]) + timedelta(days=1))
    dropped, seconds = await _timed(conn, f"SELECT {FILLED}.drop_history_before($1)", cutoff)
    return {
        "day": oldest["day"],
        "rows": oldest["rows"],
        "bytes": oldest["bytes"],
        "dropped": dropped,
        "drop_ms": round(seconds * 1000, 1),
    }


async def _oldest(conn: asyncpg.Connection) -> dict[str, Any]:
    return next(p for p in await partitions(conn) if p["rows"])


async def retention(url: str, facts: Facts, config: GrowthConfig) -> dict[str, Any]:
    """A day dropped during a drain, then ``config.roll_days`` days rolled forward."""
    async with connection(url) as conn:
        before = await partitions(conn)
        full = [p for p in before if p["rows"]]
        rows_before = max(1, sum(p["rows"] for p in full))
        bytes_per_row = _size(full) / rows_before
        heap_per_row = sum(p["heap_bytes"] for p in full) / rows_before
        today = (await conn.fetchval("SELECT now()")).astimezone(timezone.utc).date()
        oldest = full[0]

        async def drop_during() -> dict[str, Any]:
            return {"drop_during_drain": await _drop(conn, oldest)}

        under_load = await drain_once(url, FILLED, config, during=drop_during)
        _log(f"  drop during a drain: {under_load['drop_during_drain']}")
        roll = []
        next_id = await conn.fetchval(f"SELECT last_value + 1 FROM {FILLED}.job_ids")
        for k in range(1, config.roll_days + 1):
            day = today + timedelta(days=k)
            oldest = await _oldest(conn)
            rows = oldest["rows"]  # the day that goes makes room for one as big
            # As a worker's retention pass on that day: keep the days ahead, then drop.
            added, add_seconds = await _timed(
                conn, f"SELECT {FILLED}.add_history_days($1, 9)", day - timedelta(days=1)
            )
            started = time.perf_counter()
            await conn.execute(
                _history_rows(FILLED, id_of=f"{next_id} + i"),
                _day_start(day),
                timedelta(days=1) / max(1, rows),
                0,
                rows,
            )
            fill_seconds = time.perf_counter() - started
            next_id += rows
            await conn.execute(f"ANALYZE {FILLED}.job_history_{day:%Y%m%d}")
            step = await _drop(conn, oldest)
            after = await partitions(conn)
            roll.append(
                {
                    "filled_day": day.isoformat(),
                    "filled_rows": rows,
                    "fill_seconds": round(fill_seconds, 1),
                    "days_added": added,
                    "add_ms": round(add_seconds * 1000, 1),
                    **step,
                    "history_bytes": _size(after),
                    "history_rows": sum(p["rows"] for p in after),
                    "partitions": len(after),
                    "database_bytes": await conn.fetchval(
                        "SELECT pg_database_size(current_database())"
                    ),
                }
            )
            _log(
                f"  roll {k}: dropped {step['day']} ({step['rows']:,} rows) in "
                f"{step['drop_ms']:.0f} ms, added a day in {add_seconds * 1000:.0f} ms; "
                f"history {_size(after) / 2**20:,.0f} MiB"
            )
        await conn.execute(f"SELECT setval('{FILLED}.job_ids', $1)", next_id)
    per_day = SUSTAINED_PER_S * 86_400
    full_days = [s for s in roll if s["rows"] >= 0.9 * facts.rows / 7]
    sizes = [s["history_bytes"] for s in roll]
    return {
        "partitions_before": before,
        "history_bytes_before": _size(before),
        "bytes_per_row": round(bytes_per_row, 1),
        "heap_bytes_per_row": round(heap_per_row, 1),
        "drop_during_drain": under_load,
        "roll": roll,
        "drop_ms_full_days": [s["drop_ms"] for s in full_days],
        "add_ms": [s["add_ms"] for s in roll],
        "history_bytes_spread": round((max(sizes) - min(sizes)) / max(sizes), 4) if sizes else None,
        "all_dropped": all(s["dropped"] == 1 for s in roll)
        and under_load["drop_during_drain"]["dropped"] == 1,
        "at_20k_per_s": {
            "rows_per_day": per_day,
            "day_partition_gb": round(per_day * bytes_per_row / 1e9, 1),
            "day_partition_heap_gb": round(per_day * heap_per_row / 1e9, 1),
            "retained_week_tb": round(per_day * bytes_per_row * (RETENTION.days + 1) / 1e12, 2),
            "day_partition_segments": int(per_day * bytes_per_row / 2**30) + 1,
        },
    }


# --------------------------------------------------------------------------------- report


def print_report(result: dict[str, Any]) -> None:
    facts = result.get("facts") or {}
    print(
        f"growth: {facts.get('rows', 0):,} jobs in job_history, {facts.get('dead', 0):,} dead, "
        f"{facts.get('scheduled', 0):,} scheduled"
    )
    if "fill" in result:
        print(
            f"fill {result['fill']['fill_seconds']:.0f} s, VACUUM ANALYZE "
            f"{result['fill']['vacuum_seconds']:.0f} s"
        )
    if "drain" in result:
        d = result["drain"]
        print(f"\ndrain ({d['runs'][0]['jobs']:,} no-op jobs, first claim to last outcome)")
        for schema, s in d["summary"].items():
            rates = ", ".join(f"{r:,.0f}" for r in s["rates"])
            rate = s["jobs_per_s"]["median"] if s["jobs_per_s"] else 0
            cpu = " ".join(
                f"{side} {s[key]['median']:.0f}"
                for side, key in (
                    ("worker", "worker_cpu_ms_per_1k"),
                    ("pg", "postgres_cpu_ms_per_1k"),
                )
                if s[key]
            )
            print(f"  {schema:<14} median {rate:>8,.0f} jobs/s ({rates}); CPU ms/1k jobs: {cpu}")
        cpu_ratio = d["cpu_filled_over_empty"]
        paired = ", ".join(f"{r:.2f}" for r in d["paired_filled_over_empty"])
        print(f"  filled/empty per repeat: {paired}; median {d['paired_median']}")
        print(
            f"  filled/empty of medians {d['filled_over_empty']} (goal >= {1 - DRAIN_GOAL:.2f}); "
            f"CPU per job filled/empty: worker {cpu_ratio['worker']}, "
            f"postgres {cpu_ratio['postgres']}"
        )
    if "reads" in result:
        r = result["reads"]
        start = r["cli_start"]
        print(
            f"\nreads, {r['calls']} calls each (ms; CLI = wall minus a no-op start of "
            f"p50 {start['p50_ms']:.0f} / max {start['max_ms']:.0f})"
        )
        print(f"  {'read':<58} {'python p50/max':>15} {'cli p50/max':>13}  p50 < {GOAL_MS:.0f}")
        for e in r["reads"]:
            p = e["python"]
            c = e.get("cli")
            cli = f"{c['p50_ms']:.0f}/{c['max_ms']:.0f}" if c else "-"
            ok = ("yes" if e["within_goal"] else "MISS") + ("" if e["verified"] else " WRONG")
            print(f"  {e['read']:<58} {p['p50_ms']:>7.1f}/{p['max_ms']:<7.1f} {cli:>13}  {ok}")
            for problem in e["problems"][:3]:
                print(f"      {problem}")
            for plan, lines in ({} if result["smoke"] else e.get("plans", {})).items():
                times = [ln.strip() for ln in lines if ln.startswith(("Planning T", "Execution"))]
                print(f"      EXPLAIN {plan}: {lines[0].strip()[:60]}...; {'; '.join(times)}")
    if "retention" in result:
        t = result["retention"]
        load = t["drop_during_drain"]
        drop = load["drop_during_drain"]
        print(
            f"\nretention: {t['bytes_per_row']:.0f} bytes/row with indexes "
            f"({t['heap_bytes_per_row']:.0f} heap)"
        )
        print(
            f"  drop of {drop['day']} ({drop['rows']:,} rows) during a drain: "
            f"{drop['drop_ms']:.0f} ms, dropped {drop['dropped']}; drain "
            f"{load['jobs_per_s']:,.0f} jobs/s"
        )
        for s in t["roll"]:
            print(
                f"  +{s['filled_day']} ({s['filled_rows']:,} rows, add {s['add_ms']:.0f} ms) "
                f"-{s['day']} (drop {s['drop_ms']:.0f} ms): history "
                f"{s['history_bytes'] / 2**20:,.0f} MiB in {s['partitions']} partitions"
            )
        at = t["at_20k_per_s"]
        print(
            f"  at {SUSTAINED_PER_S:,} jobs/s: {at['rows_per_day']:,} rows/day, a day partition "
            f"{at['day_partition_gb']:,} GB ({at['day_partition_segments']} 1-GiB segments), "
            f"{at['retained_week_tb']} TB retained"
        )


async def run(config: GrowthConfig) -> int:
    scratch = ScratchDatabases(config.admin_url)
    if config.reuse:
        url = with_database(config.admin_url, config.reuse)
    else:
        url = await scratch.create("growth")
    result: dict[str, Any] = {"benchmark": "growth", "smoke": config.smoke}
    try:
        postgres = await server_facts(url)
        if "fill" in config.steps:
            for schema in (EMPTY, FILLED):
                async with Soniq(url, schema=schema) as app:
                    await app.setup()
            _log(f"filling {url.rsplit('/', 1)[-1]}.{FILLED} with {config.rows:,} jobs ...")
            facts = await fill(url, config)
            result["fill"] = {
                "fill_seconds": facts.fill_seconds,
                "vacuum_seconds": facts.vacuum_seconds,
            }
        else:
            facts = await stored_facts(url)
        result["facts"] = asdict(facts)
        if "drain" in config.steps:
            _log("drains ...")
            result["drain"] = await drains(url, config)
        if "reads" in config.steps:
            _log("reads ...")
            result["reads"] = await time_reads(url, facts, config)
        if "retention" in config.steps:
            _log("retention ...")
            result["retention"] = await retention(url, facts, config)
        result["machine"] = machine(postgres, ["asyncpg", "pydantic"])
        result["config"] = {
            k: str(v) if isinstance(v, Path) else v
            for k, v in asdict(config).items()
            if k != "admin_url"
        }
    finally:
        if config.keep or config.reuse:
            _log(f"kept database {url.rsplit('/', 1)[-1]} (drop it when done)")
        else:
            await scratch.drop_all()
    print_report(result)
    config.json_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {config.json_path}")
    return 0


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(parse_args(argv)))
