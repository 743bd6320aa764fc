"""Database loss: when the workers' connections are killed, or the database disappears for a
while, the workers keep running, reconnect with backoff, LISTEN again and carry on. No job
is lost and none is completed twice; while the database is unreachable ``enqueue`` raises
DatabaseUnavailableError and writes nothing.

The shared PostgreSQL server is never restarted (other tests use it): connections are cut
with ``pg_terminate_backend`` on exactly the workers' own backends, and an outage is
simulated with a TCP proxy in front of the server that drops every connection and refuses
new ones until it comes back.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import pytest

from soniq import DatabaseUnavailableError, Soniq
from tests.fault_support import (
    TcpProxy,
    Workers,
    assert_each_job_done_once,
    client_ports,
    soniq_backends,
)
from tests.helpers import wait_until
from tests.processes import WorkerProcess

JOBS = 10_000
WORKERS = 3
CONCURRENCY = 20
# Cut every Soniq connection of every worker each time the drain passes one of these.
KILL_AT = (1_000, 3_500, 6_000, 8_000)
RECONNECTED = "reconnected to PostgreSQL; listening again"


async def _done(db: asyncpg.Connection, schema: str) -> int:
    return int(await db.fetchval(f"SELECT count(*) FROM {schema}.jobs WHERE state = 'done'"))


async def _connected(db: asyncpg.Connection, pids: list[int], since: datetime | None) -> bool:
    """Every worker has a LISTEN connection (opened after ``since``) and a pool connection."""
    backends = await soniq_backends(db, pids)
    for pid in pids:
        mine = [b for b in backends if b["worker_pid"] == pid]
        listeners = [b for b in mine if b["application_name"] == "soniq-listener"]
        if len(listeners) != 1 or not any(b["application_name"] == "soniq" for b in mine):
            return False
        if since is not None and listeners[0]["backend_start"] <= since:
            return False
    return True


@pytest.mark.faults
async def test_workers_survive_repeated_backend_termination_while_draining_10000_jobs(
    app: Soniq,
    db: asyncpg.Connection,
    schema: str,
    side_effects: str,
    workers: Workers,
) -> None:
    await app.enqueue_many("fault.count", [{"n": i} for i in range(JOBS)])
    procs = [
        workers.start("--concurrency", str(CONCURRENCY), "--lease-seconds", "2")
        for _ in range(WORKERS)
    ]
    pids = [w.pid for w in procs]

    last_kill: datetime | None = None
    for threshold in KILL_AT:
        await wait_until(lambda t=threshold: _at_least(db, schema, t), timeout=60, interval=0.01)
        # Hit healthy workers: each has come back from the previous cut.
        await wait_until(lambda since=last_kill: _connected(db, pids, since), timeout=30)
        backends = await soniq_backends(db, pids)
        last_kill = await db.fetchval("SELECT now()")
        terminated = await db.fetchval(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
            "FROM unnest($1::int[]) AS b(pid)",
            [b["pid"] for b in backends],
        )
        assert terminated >= 2 * WORKERS, backends  # each: its LISTEN and pool connections
    assert await _done(db, schema) < JOBS, "the cuts should land during the drain"

    await wait_until(lambda: _at_least(db, schema, JOBS), timeout=90, interval=0.1)

    # Primary facts, from the database: each job done once, extra runs only after re-claims.
    reran = await assert_each_job_done_once(db, schema, side_effects, JOBS)
    # A re-run needs a lease to run out, which a cut connection alone should not cause; in
    # any case only jobs in flight at the moment of a cut can be affected.
    assert reran <= len(KILL_AT) * WORKERS * CONCURRENCY

    # Each worker is connected again, on a new LISTEN connection that has run LISTEN (the
    # last statement of a listener is its LISTEN, or the keep-alive ping that follows it).
    await wait_until(lambda: _connected(db, pids, last_kill), timeout=30)
    listeners = [
        b for b in await soniq_backends(db, pids) if b["application_name"] == "soniq-listener"
    ]
    assert all(b["query"].startswith(("LISTEN", "SELECT 1")) for b in listeners), listeners

    # And they keep working: a job enqueued now is picked up and done.
    late = await app.enqueue("fault.count", {"n": -1})
    await wait_until(
        lambda: db.fetchval(f"SELECT state = 'done' FROM {schema}.jobs WHERE id = $1", late)
    )

    codes = [await asyncio.to_thread(_stop, w) for w in procs]
    assert codes == [0] * WORKERS, workers.outputs()
    # Secondary, from the logs: each worker reported re-establishing LISTEN after each cut.
    for worker in procs:
        assert worker.output().count(RECONNECTED) >= len(KILL_AT), worker.output()


async def _at_least(db: asyncpg.Connection, schema: str, n: int) -> bool:
    return await _done(db, schema) >= n


def _stop(worker: WorkerProcess) -> int:
    worker.signal(signal.SIGTERM)
    return worker.wait(30)


@pytest.mark.faults
async def test_workers_ride_out_a_database_outage_and_enqueue_fails_clearly_meanwhile(
    database_url: str,
    app: Soniq,
    db: asyncpg.Connection,
    schema: str,
    side_effects: str,
    workers: Workers,
    pg_proxy: TcpProxy,
) -> None:
    jobs = 2_000
    via_proxy = pg_proxy.url(database_url)
    await app.enqueue_many("fault.sleep", [{"seconds": 0.05}] * jobs)
    # Soniq's own connections go through the proxy; the handlers' side-effect writes go
    # straight to the server, so the outage hits only the queue machinery.
    env = {"SONIQ_DATABASE_URL": via_proxy, "FAULT_SIDE_EFFECTS_URL": database_url}
    procs = [
        workers.start("--concurrency", "20", "--lease-seconds", "2", env=env) for _ in range(2)
    ]
    producer = Soniq(via_proxy, schema=schema)
    try:
        await producer.enqueue("fault.count", {"n": -1})  # connected before the outage
        await wait_until(lambda: _at_least(db, schema, jobs // 4), timeout=60)

        await pg_proxy.down()
        outage_started = asyncio.get_running_loop().time()
        before = await db.fetchval(f"SELECT count(*) FROM {schema}.jobs")
        with pytest.raises(DatabaseUnavailableError, match="cannot reach PostgreSQL"):
            await producer.enqueue("fault.count", {"n": -2})
        never_connected = Soniq(via_proxy, schema=schema)
        with pytest.raises(DatabaseUnavailableError, match="cannot reach PostgreSQL"):
            await never_connected.enqueue("fault.count", {"n": -3})
        await never_connected.close()
        # Longer than the lease: leases run out, and the workers must still sort it out.
        await asyncio.sleep(3.0 - (asyncio.get_running_loop().time() - outage_started))
        assert all(w.process.poll() is None for w in procs), workers.outputs()
        await pg_proxy.up()

        assert await db.fetchval(f"SELECT count(*) FROM {schema}.jobs") == before, (
            "a refused enqueue wrote nothing"
        )
        await producer.enqueue("fault.count", {"n": -4})  # works again once it is back
        await wait_until(lambda: _at_least(db, schema, jobs + 2), timeout=60, interval=0.1)
    finally:
        await producer.close()

    reran = await assert_each_job_done_once(db, schema, side_effects, jobs + 2)
    # Only jobs in flight when the database went away can have run twice.
    assert reran <= 2 * 20
    codes = [await asyncio.to_thread(_stop, w) for w in procs]
    assert codes == [0, 0], workers.outputs()
    for worker in procs:
        assert RECONNECTED in worker.output(), worker.output()


@pytest.mark.faults
async def test_enqueue_against_an_unreachable_server_raises_database_unavailable(
    db: asyncpg.Connection, schema: str, app: Soniq
) -> None:
    unreachable = Soniq("postgresql://postgres@127.0.0.1:1/postgres", schema=schema)
    with pytest.raises(DatabaseUnavailableError, match="cannot reach PostgreSQL at"):
        await unreachable.enqueue("fault.count", {"n": 1})
    with pytest.raises(DatabaseUnavailableError):
        await unreachable.enqueue_many("fault.count", [{"n": 1}])
    await unreachable.close()
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.jobs") == 0


@dataclass
class KilledEnqueues:
    attempts: int
    stored: dict[int, int]  # job id returned -> n
    failed: list[int]  # n of the enqueues that raised DatabaseUnavailableError
    other_errors: list[str]
    rows: dict[int, int]  # what the table holds: id -> n


async def _enqueue_while_killing(
    database_url: str, db: asyncpg.Connection, schema: str, attempts: int
) -> KilledEnqueues:
    """``attempts`` enqueues in a row while this process's Soniq backends are terminated
    every few milliseconds (the caller has closed every other Soniq pool it has)."""
    producer = Soniq(database_url, schema=schema, pool_size=2)
    stop = asyncio.Event()

    async def killer() -> None:
        while not stop.is_set():
            await asyncio.sleep(random.uniform(0.001, 0.01))
            await db.execute(
                """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                   WHERE application_name = 'soniq' AND client_port = ANY($1::int[])""",
                sorted(client_ports(os.getpid())),
            )

    result = KilledEnqueues(attempts, {}, [], [], {})
    killing = asyncio.create_task(killer())
    try:
        for n in range(attempts):
            try:
                result.stored[await producer.enqueue("fault.count", {"n": n})] = n
            except DatabaseUnavailableError:
                result.failed.append(n)
            except Exception as exc:
                result.other_errors.append(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")
    finally:
        stop.set()
        await killing
        await producer.close()
    rows = await db.fetch(f"SELECT id, (args->>'n')::int AS n FROM {schema}.jobs")
    result.rows = {r["id"]: r["n"] for r in rows}
    return result


@pytest.mark.faults
async def test_enqueue_whose_connection_is_killed_raises_database_unavailable_and_loses_nothing(
    database_url: str, app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    """A producer sees its connection being killed as DatabaseUnavailableError, never as a
    raw driver error, and every id it was given is a stored job."""
    await app.close()  # only the producer below goes by "soniq" in this process
    run = await _enqueue_while_killing(database_url, db, schema, attempts=400)
    assert run.failed, "the killer should have hit some enqueues"
    assert run.other_errors == [], run.other_errors
    assert {i: run.rows.get(i) for i in run.stored} == run.stored


@pytest.mark.faults
async def test_enqueue_that_raised_database_unavailable_almost_never_wrote_the_job(
    database_url: str, app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    """A failed enqueue wrote nothing, short of the unavoidable case of a connection dying
    between the commit and its reply (rare: under 1% here). A producer retrying a
    DatabaseUnavailableError must not routinely create a second copy of the job."""
    await app.close()
    run = await _enqueue_while_killing(database_url, db, schema, attempts=400)
    assert run.failed, "the killer should have hit some enqueues"
    phantoms = sorted(set(run.rows.values()) & set(run.failed))
    assert len(phantoms) <= run.attempts // 100, (
        f"{len(phantoms)} of {len(run.failed)} enqueues that raised DatabaseUnavailableError "
        "were in fact written"
    )
