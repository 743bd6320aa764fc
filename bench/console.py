"""``python -m bench console``: how long each console page takes on big tables.

A scratch database is filled as a busy week leaves it (1,000,000 done jobs over seven
days of history partitions, the last hour's share among them, and the completer's counts of
them; 100,000 dead letters of a few tasks and reasons, four failed attempts each; a small
live backlog), vacuumed and analyzed as autovacuum would
have, and every page is requested in process through the ASGI app (the console's SQL,
Python and template rendering; no network). Goal: every page under 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
from pydantic import BaseModel, Field

from bench.config import default_database_url
from bench.database import ScratchDatabases
from soniq import Soniq, task_ref
from soniq.db.jobs import JobStore

GOAL_MS = 200.0
TASKS = ("billing.charge", "mail.send", "reports.build", "search.index", "media.resize")
REASONS = ("exception", "timeout", "unsupported contract version")


class ChargeArgs(BaseModel):
    customer: str = Field(description="The customer billed, by account slug.")
    amount: int = Field(description="What to charge, in cents.")


CHARGE = task_ref(name="billing.charge", args_model=ChargeArgs, version=1, fingerprint="ab" * 32)


async def fill(conn: asyncpg.Connection, schema: str, done: int, dead: int) -> dict[str, int]:
    """The tables as a busy week leaves them; returns ids the pages are asked about."""
    await conn.execute(f"SELECT {schema}.add_history_days(current_date - 7, 8)")
    tasks = "ARRAY[" + ", ".join(f"'{t}'" for t in TASKS) + "]"
    reasons = "ARRAY[" + ", ".join(f"'{r}'" for r in REASONS) + "]"
    # 1 in 13 finished within the last hour, spread over its minutes; the rest over the week.
    await conn.execute(
        f"""INSERT INTO {schema}.job_history (id, task_name, queue, args, state, priority,
                attempts, max_attempts, scheduled_at, enqueued_at, started_at, finished_at,
                worker_id, contract_version, contract_fingerprint, result)
            SELECT nextval('{schema}.job_ids'), ({tasks})[1 + i % 5], 'q' || (i % 3),
                   json_build_object('customer', 'c' || (i % 1000), 'amount', i), 'done', 0,
                   1, 4, f - interval '2 seconds', f - interval '2 seconds',
                   f - interval '1 second' + (i % 97) * interval '3 ms', f,
                   'host-' || (i % 4) || ':100:abc', 1, '{"ab" * 32}', '{{"ok": true}}'
            FROM generate_series(1, {done}) AS i,
                 LATERAL (SELECT now() - (i % 13) * interval '12 hours'
                                 - (i % 59) * interval '1 minute' AS f) AS t"""
    )
    await conn.execute(
        f"""INSERT INTO {schema}.job_dead (id, task_name, queue, args, priority, attempts,
                max_attempts, scheduled_at, enqueued_at, started_at, finished_at, worker_id,
                error_reason, error_message, error_detail, contract_version)
            SELECT nextval('{schema}.job_ids'), ({tasks})[1 + i % 5], 'q' || (i % 3),
                   json_build_object('customer', 'c' || (i % 1000)), 0, 4, 4, now(), now(),
                   now(), now() - (i % 1440) * interval '1 minute', 'host-1:100:abc',
                   ({reasons})[1 + i % 3], 'attempt 4 of 4, no retries left: boom ' || i,
                   to_json('Traceback (most recent call last): ...'::text), 1
            FROM generate_series(1, {dead}) AS i"""
    )
    # What the completer wrote for the last hour's done jobs: a count per queue per batch,
    # batches of 10 (small, so the chart reads more rows than a busy worker leaves).
    await conn.execute(
        f"""INSERT INTO {schema}.job_done_counts (minute, queue, done)
            SELECT date_trunc('minute', finished_at), queue, count(*)
            FROM {schema}.job_history
            WHERE finished_at >= date_trunc('minute', now()) - interval '59 minutes'
            GROUP BY 1, 2, id / 10"""
    )
    await JobStore(schema).maintenance.sum_done_minutes(conn)  # as the workers keep them
    # Each dead letter's four failed attempts, with their tracebacks.
    await conn.execute(
        f"""INSERT INTO {schema}.job_attempts (job_id, attempt, worker_id, started_at,
                finished_at, outcome, error_reason, error_message, error_detail)
            SELECT id, n, worker_id, finished_at - (5 - n) * interval '1 second',
                   finished_at - (4 - n) * interval '1 second',
                   CASE WHEN n = 4 THEN 'dead' ELSE 'queued' END, error_reason,
                   'attempt ' || n || ' of 4: boom', error_detail
            FROM {schema}.job_dead, generate_series(1, 4) AS n"""
    )
    await conn.execute(
        f"""INSERT INTO {schema}.jobs (task_name, queue, args, max_attempts, scheduled_at)
            SELECT 'billing.charge', 'q' || (i % 3), json_build_object('customer', 'c1',
                   'amount', i), 4, now() + CASE WHEN i % 2 = 0 THEN interval '0'
                   ELSE interval '1 hour' END
            FROM generate_series(1, 2000) AS i"""
    )
    for table in (
        "job_history",
        "job_dead",
        "job_live",
        "job_scheduled",
        "job_lanes",
        "job_attempts",
        "job_done_counts",
    ):
        await conn.execute(f"VACUUM ANALYZE {schema}.{table}")
    row = await conn.fetchrow(
        f"""SELECT (SELECT max(id) FROM {schema}.job_history) AS done_id,
                   (SELECT max(id) FROM {schema}.job_dead) AS dead_id"""
    )
    assert row is not None
    return dict(row)


def pages(ids: dict[str, int]) -> list[tuple[str, str]]:
    """(name, path) of every page timed."""
    args_rare = json.dumps({"customer": "c7"})
    return [
        ("overview", "/"),
        ("jobs", "/jobs"),
        ("jobs state=done", "/jobs?state=done"),
        ("jobs task", "/jobs?task=mail.send"),
        ("jobs worker", "/jobs?worker=host-2:100:abc"),
        ("jobs args 1/1000", "/jobs?" + urlencode({"args": args_rare})),
        ("jobs older page", f"/jobs?before={ids['done_id'] - 500_000}"),
        ("job done", f"/jobs/{ids['done_id']}"),
        ("job dead", f"/jobs/{ids['dead_id']}"),
        ("dead letters", "/dead"),
        ("dead group", "/dead?task=mail.send&reason=timeout"),
        ("workers", "/workers"),
        ("periodic", "/periodic"),
        ("contracts", "/contracts"),
    ]


async def measure(url: str, done: int, dead: int, repeats: int) -> dict[str, Any]:
    app = Soniq(url, schema="soniq")

    @app.job(CHARGE)
    async def charge(customer: str, amount: int) -> None:
        return None

    await app.setup()
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        ids = await fill(conn, "soniq", done, dead)
        fill_seconds = time.perf_counter() - started
    finally:
        await conn.close()
    results: dict[str, Any] = {}
    transport = httpx.ASGITransport(app=app.console())
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        for name, path in pages(ids):
            response = await client.get(path)  # warm: pool, prepared statements, templates
            assert response.status_code == 200, (path, response.status_code)
            timings = []
            for _ in range(repeats):
                began = time.perf_counter()
                response = await client.get(path)
                timings.append((time.perf_counter() - began) * 1000)
                assert response.status_code == 200
            timings.sort()
            results[name] = {
                "path": path,
                "median_ms": statistics.median(timings),
                "p95_ms": timings[min(len(timings) - 1, int(len(timings) * 0.95))],
                "min_ms": timings[0],
                "max_ms": timings[-1],
                "bytes": len(response.content),
            }
    await app.close()
    return {
        "done": done,
        "dead": dead,
        "repeats": repeats,
        "fill_s": fill_seconds,
        "pages": results,
    }


def report(run: dict[str, Any]) -> str:
    lines = [
        f"console pages: {run['done']:,} done jobs, {run['dead']:,} dead letters, "
        f"{run['repeats']} requests each (fill {run['fill_s']:.0f} s)",
        f"{'page':<18} {'median':>8} {'p95':>8} {'min':>8} {'max':>8}  goal {GOAL_MS:.0f} ms",
    ]
    for name, t in run["pages"].items():
        flag = "" if t["p95_ms"] < GOAL_MS else "  OVER"
        lines.append(
            f"{name:<18} {t['median_ms']:>7.1f}  {t['p95_ms']:>7.1f}  {t['min_ms']:>7.1f}  "
            f"{t['max_ms']:>7.1f}{flag}"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> int:
    scratch = ScratchDatabases(args.database_url)
    try:
        url = await scratch.create("console")
        result = await measure(url, args.done, args.dead, args.repeats)
    finally:
        await scratch.drop_all()
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench console", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="10,000 done, 1,000 dead, 3 runs")
    parser.add_argument("--done", type=int, default=1_000_000)
    parser.add_argument("--dead", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None, help="write the timings here")
    parser.add_argument("--database-url", default=default_database_url())
    args = parser.parse_args(argv)
    if args.smoke:
        args.done, args.dead, args.repeats = 10_000, 1_000, 3
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
