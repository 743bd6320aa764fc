"""Worker processes through PgBouncer in transaction pooling mode ride out cut server
connections and a killed worker: the fault subset of tests/test_pgbouncer.py."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator

import asyncpg
import pytest

from soniq import Soniq
from tests.fault_support import Workers, assert_each_job_done_once, client_ports
from tests.helpers import wait_until
from tests.pgbouncer import PgBouncer, pgbouncer, pgbouncer_missing

pytestmark = pytest.mark.skipif(pgbouncer_missing(), reason="needs PgBouncer")


@pytest.fixture
def bouncer(database_url: str) -> Iterator[PgBouncer]:
    with pgbouncer(database_url) as running:
        yield running


@pytest.mark.faults
async def test_worker_processes_through_pgbouncer_survive_cut_server_connections_and_a_kill(
    app: Soniq,
    bouncer: PgBouncer,
    database_url: str,
    db: asyncpg.Connection,
    schema: str,
    side_effects: str,
    workers: Workers,
) -> None:
    jobs = 3000
    await app.enqueue_many("fault.count", [{"n": i} for i in range(jobs)])
    env = {
        "SONIQ_DATABASE_URL": bouncer.url,
        "FAULT_TRANSACTION_POOLING": "1",
        "FAULT_LISTEN_URL": database_url,
        "FAULT_SIDE_EFFECTS_URL": database_url,
    }
    options = ("--concurrency", "10", "--lease-seconds", "2")
    procs = [workers.start(*options, env=env), workers.start(*options, env=env)]
    # Cut PgBouncer's server connections (the workers' statements run on them) three times.
    for threshold in (500, 1500, 2500):
        await wait_until(lambda t=threshold: _done(db, schema, t), timeout=60, interval=0.01)
        await db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE client_port = ANY($1::int[]) AND pid <> pg_backend_pid()",
            sorted(client_ports(bouncer.pid)),
        )
    # Kill a worker while it holds sleeping jobs: the other's rescuer takes them back.
    await app.enqueue_many("fault.sleep", [{"seconds": 3.0}] * 10)
    holder = await wait_until(
        lambda: db.fetchval(
            f"SELECT split_part(worker_id, ':', 2)::int FROM {schema}.jobs "
            "WHERE state = 'running' AND task_name = 'fault.sleep' LIMIT 1"
        ),
        timeout=60,
    )
    doomed, survivor = sorted(procs, key=lambda w: w.pid != holder)
    doomed.signal(signal.SIGKILL)
    await wait_until(lambda: _done(db, schema, jobs + 10), timeout=90, interval=0.1)
    await assert_each_job_done_once(db, schema, side_effects, jobs + 10)
    survivor.signal(signal.SIGTERM)
    assert await asyncio.to_thread(survivor.wait, 30) == 0, workers.outputs()


async def _done(db: asyncpg.Connection, schema: str, n: int) -> bool:
    done = await db.fetchval(f"SELECT count(*) FROM {schema}.jobs WHERE state = 'done'")
    return int(done) >= n
