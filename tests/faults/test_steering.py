"""Queue limits hold across real worker processes: three workers at concurrency 20 each
contend for queues with a concurrency limit, a per-customer limit, a rate limit, a pause,
and a worker SIGKILLed while it holds limited places.

What ran when is read from the side table the handlers write on start and end
(tests/apps/fault_app.py), or, for the rate, from the start times the database gave the
jobs; never from logs.
"""

from __future__ import annotations

import asyncio
import signal
from collections import defaultdict

import asyncpg
import pytest

from soniq import Soniq
from tests.fault_support import Workers
from tests.helpers import wait_until

WORKERS = 3
CONCURRENCY = 20


def _start(workers: Workers, count: int = WORKERS, *options: str) -> None:
    for _ in range(count):
        workers.start("--concurrency", str(CONCURRENCY), *options)


async def _all_done(db: asyncpg.Connection, schema: str, jobs: int) -> None:
    await wait_until(
        lambda: db.fetchval(f"SELECT count(*) = $1 FROM {schema}.jobs WHERE state = 'done'", jobs),
        timeout=60,
        interval=0.1,
    )


async def _most_at_once(db: asyncpg.Connection, side_effects: str, schema: str) -> dict[str, int]:
    """The most handlers that ran at once, per customer ('' for jobs without one), from
    the start and end rows in the order they were written."""
    rows = await db.fetch(
        f"""SELECT s.phase, coalesce(j.args->>'customer_id', '') AS customer
            FROM {side_effects} AS s JOIN {schema}.jobs AS j ON j.id = s.job_id
            ORDER BY s.seq"""
    )
    now: dict[str, int] = defaultdict(int)
    most: dict[str, int] = defaultdict(int)
    for row in rows:
        for key in (row["customer"], "*"):
            now[key] += 1 if row["phase"] == "start" else -1
            most[key] = max(most[key], now[key])
    return dict(most)


@pytest.mark.faults
async def test_a_queue_limited_to_5_never_runs_more_than_5_across_three_workers(
    app: Soniq, db: asyncpg.Connection, schema: str, side_effects: str, workers: Workers
) -> None:
    await app.configure_queue("default", concurrency=5)
    await app.enqueue_many("fault.sleep", [{"seconds": 0.2}] * 60)
    _start(workers)
    await _all_done(db, schema, 60)
    most = await _most_at_once(db, side_effects, schema)
    assert most["*"] == 5, workers.outputs()  # the limit is used, and never passed
    pids = await db.fetchval(f"SELECT count(DISTINCT pid) FROM {side_effects}")
    assert pids > 1, "the jobs should have been shared by the workers"


@pytest.mark.faults
async def test_one_job_per_customer_at_a_time_while_other_customers_proceed(
    app: Soniq, db: asyncpg.Connection, schema: str, side_effects: str, workers: Workers
) -> None:
    await app.configure_queue("default", concurrency=1, partition_by=["customer_id"])
    jobs = [{"customer_id": c, "seconds": 0.1} for _ in range(8) for c in range(6)]
    await app.enqueue_many("fault.customer", jobs)
    _start(workers)
    await _all_done(db, schema, len(jobs))
    most = await _most_at_once(db, side_effects, schema)
    assert {most[str(c)] for c in range(6)} == {1}, workers.outputs()
    assert most["*"] > 1, "customers should have run side by side"


@pytest.mark.faults
async def test_a_rate_of_20_per_second_never_starts_21_within_a_second(
    app: Soniq, db: asyncpg.Connection, schema: str, side_effects: str, workers: Workers
) -> None:
    await app.configure_queue("default", rate_limit="20/s")
    await app.enqueue_many("fault.count", [{"n": i} for i in range(200)])
    _start(workers)
    await _all_done(db, schema, 200)
    starts = [
        r["started_at"]
        for r in await db.fetch(
            f"SELECT started_at FROM {schema}.jobs WHERE state = 'done' ORDER BY started_at"
        )
    ]
    # any 21 consecutive starts span at least a second: no window holds more than 20
    spans = [
        (later - first).total_seconds() for first, later in zip(starts, starts[20:], strict=False)
    ]
    assert min(spans) >= 1.0, workers.outputs()
    assert (starts[-1] - starts[0]).total_seconds() >= 9.0  # 200 starts took ten windows
    attempts = await db.fetchval(f"SELECT max(attempts) FROM {schema}.jobs")
    assert attempts == 1  # waiting for the rate spent no attempt


@pytest.mark.faults
async def test_a_paused_queue_holds_its_jobs_until_resumed(
    app: Soniq, db: asyncpg.Connection, schema: str, side_effects: str, workers: Workers
) -> None:
    _start(workers)
    await wait_until(lambda: db.fetchval(f"SELECT count(*) = 3 FROM {schema}.workers"))
    await app.configure_queue("default", paused=True)
    await app.enqueue_many("fault.sleep", [{"seconds": 0.05}] * 30)
    await app.enqueue("fault.sleep", {"seconds": 0.05}, queue="other")
    await wait_until(lambda: db.fetchval(f"SELECT count(*) = 1 FROM {side_effects}"))
    await asyncio.sleep(5)
    queued = await db.fetchval(
        f"SELECT count(*) FROM {schema}.jobs WHERE queue = 'default' AND state = 'queued'"
    )
    assert queued == 30, workers.outputs()
    assert await db.fetchval(f"SELECT count(*) FROM {side_effects} WHERE phase = 'start'") == 1
    status = await app.status()
    assert [q.paused for q in status.queues if q.queue == "default"] == [True]
    await app.configure_queue("default", paused=False)
    await _all_done(db, schema, 31)


@pytest.mark.faults
async def test_a_sigkilled_workers_places_count_until_its_jobs_are_rescued(
    app: Soniq, db: asyncpg.Connection, schema: str, side_effects: str, workers: Workers
) -> None:
    lease = ["--lease-seconds", "2"]
    await app.configure_queue("default", concurrency=5)
    await app.enqueue_many("fault.sleep", [{"seconds": 1.0}] * 25)
    victim = workers.start("--concurrency", str(CONCURRENCY), *lease)
    await wait_until(
        lambda: db.fetchval(f"SELECT count(*) = 5 FROM {side_effects} WHERE phase = 'start'")
    )
    victim.signal(signal.SIGKILL)
    assert victim.wait(10) == -signal.SIGKILL
    orphans = await db.fetch(
        f"SELECT id, lease_expires_at FROM {schema}.jobs WHERE state = 'running'"
    )
    assert len(orphans) == 5
    _start(workers, 2, *lease)
    await _all_done(db, schema, 25)
    # No other worker started a job while the victim's five still held every place: the
    # first start elsewhere came after the first of their leases ran out.
    first_elsewhere = await db.fetchval(
        f"SELECT min(at) FROM {side_effects} WHERE pid <> $1 AND phase = 'start'", victim.pid
    )
    assert first_elsewhere > min(r["lease_expires_at"] for r in orphans), workers.outputs()
    survivors = await db.fetch(
        f"SELECT phase FROM {side_effects} WHERE pid <> $1 ORDER BY seq", victim.pid
    )
    running = most = 0
    for row in survivors:
        running += 1 if row["phase"] == "start" else -1
        most = max(most, running)
    assert most == 5
    rerun = await db.fetch(
        f"SELECT attempts FROM {schema}.jobs WHERE id = ANY($1::bigint[])",
        [r["id"] for r in orphans],
    )
    assert [r["attempts"] for r in rerun] == [2] * 5


@pytest.mark.faults
async def test_a_three_level_chain_runs_in_order_and_a_dead_parent_cancels_descendants(
    app: Soniq, db: asyncpg.Connection, schema: str, side_effects: str, workers: Workers
) -> None:
    a = await app.enqueue("fault.sleep", {"seconds": 0.2})
    b = await app.enqueue("fault.sleep", {"seconds": 0.2}, after=[a])
    c = await app.enqueue("fault.sleep", {"seconds": 0.2}, after=[b])
    dead = await app.enqueue("fault.raise_base", {"kind": "custom"})
    child = await app.enqueue("fault.sleep", {"seconds": 0.2}, after=[dead])
    grandchild = await app.enqueue("fault.sleep", {"seconds": 0.2}, after=[child])
    _start(workers)
    await wait_until(
        lambda: db.fetchval(f"SELECT count(*) = 2 FROM {schema}.jobs WHERE state = 'cancelled'"),
        timeout=30,
    )
    await wait_until(
        lambda: db.fetchval(f"SELECT state = 'done' FROM {schema}.jobs WHERE id = $1", c),
        timeout=30,
    )
    rows = await db.fetch(f"SELECT job_id, phase FROM {side_effects} ORDER BY seq")
    chain = [(r["job_id"], r["phase"]) for r in rows if r["job_id"] in (a, b, c)]
    assert chain == [(a, "start"), (a, "end"), (b, "start"), (b, "end"), (c, "start"), (c, "end")]
    assert not [r for r in rows if r["job_id"] in (child, grandchild)]
    ended = dict(
        await db.fetch(
            f"SELECT id, error_message FROM {schema}.jobs WHERE id = ANY($1::bigint[])",
            [child, grandchild],
        )
    )
    assert ended == {
        child: f"parent job {dead} ended dead",
        grandchild: f"parent job {child} ended cancelled",
    }
