"""Through PgBouncer in transaction pooling mode: producers and workers run with no
prepared-statement cache and no session state; LISTEN goes through a direct ``listen_url``,
or, without one, workers and ``get_result`` poll. Each test starts a PgBouncer of its own
(tests/pgbouncer.py) in front of the test server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from soniq import Soniq
from tests.helpers import start_worker, stop_worker, wait_until
from tests.pgbouncer import PgBouncer, pgbouncer, pgbouncer_missing

pytestmark = pytest.mark.skipif(
    pgbouncer_missing(), reason="needs PgBouncer (apt-get install pgbouncer; scripts/test does)"
)


@pytest.fixture
def bouncer(database_url: str) -> Iterator[PgBouncer]:
    with pgbouncer(database_url) as running:
        yield running


@pytest.fixture
async def pooled_app(bouncer: PgBouncer, database_url: str, schema: str) -> AsyncIterator[Soniq]:
    """An app whose every statement, set-up included, goes through PgBouncer; LISTEN goes
    straight to the server."""
    app = Soniq(bouncer.url, schema=schema, transaction_pooling=True, listen_url=database_url)
    await app.setup()
    yield app
    await app.close()


async def _listeners(db: asyncpg.Connection, schema: str) -> int:
    """Soniq's LISTEN connections on this test's channels (other tests may be listening on
    the same server; a listener's last statement names its channel until it first pings)."""
    return int(
        await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'soniq-listener'"
            " AND query LIKE '%' || $1 || '.%'",
            schema,
        )
    )


async def test_producer_and_worker_through_pgbouncer_with_a_direct_listen_url(
    pooled_app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    seen: list[int] = []

    @pooled_app.job(name="pool.echo")
    async def echo(n: int) -> int:
        seen.append(n)
        return n * 2

    single = [await pooled_app.enqueue("pool.echo", {"n": i}) for i in range(50)]
    bulk = await pooled_app.enqueue_many("pool.echo", [{"n": i} for i in range(50, 300)])
    # A long poll interval: only the NOTIFY, through the direct LISTEN connection, can wake
    # the worker for the job enqueued after it started.
    worker = start_worker(pooled_app, poll=60, concurrency=8)
    try:
        await wait_until(lambda: _done(db, schema, 300))
        await wait_until(lambda: _listeners(db, schema))
        late = await pooled_app.enqueue("pool.echo", {"n": 1000})
        assert await pooled_app.get_result(late, timeout=20) == 2000
    finally:
        await stop_worker(worker)
    assert sorted(seen) == [*range(300), 1000]
    assert await pooled_app.get_result(single[0], timeout=1) == 0
    assert await pooled_app.get_result(bulk[-1], timeout=1) == 598


async def test_without_a_listen_url_workers_and_get_result_poll(
    bouncer: PgBouncer, db: asyncpg.Connection, schema: str
) -> None:
    app = Soniq(bouncer.url, schema=schema, transaction_pooling=True)
    await app.setup()

    @app.job(name="pool.double")
    async def double(n: int) -> int:
        return n * 2

    worker = start_worker(app, poll=0.1)
    try:
        job_id = await app.enqueue("pool.double", {"n": 21})
        assert await app.get_result(job_id, timeout=20) == 42
        assert await _listeners(db, schema) == 0, "nothing may LISTEN through transaction pooling"
    finally:
        await stop_worker(worker)
        await app.close()


async def test_transactional_enqueue_through_pgbouncer_commits_and_rolls_back(
    pooled_app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    ran: list[str] = []

    @pooled_app.job(name="pool.order")
    async def order(order_id: str) -> None:
        ran.append(order_id)

    worker = start_worker(pooled_app, poll=60)
    try:
        await wait_until(lambda: _listeners(db, schema))
        with pytest.raises(RuntimeError):
            async with pooled_app.connection() as conn, conn.transaction():
                await pooled_app.enqueue("pool.order", {"order_id": "o-1"}, connection=conn)
                raise RuntimeError("the order fails after the enqueue")
        async with pooled_app.connection() as conn, conn.transaction():
            kept = await pooled_app.enqueue("pool.order", {"order_id": "o-2"}, connection=conn)
        # Woken by the NOTIFY sent at commit (the poll interval is a minute).
        await pooled_app.get_result(kept, timeout=20)
    finally:
        await stop_worker(worker)
    rows = await db.fetch(f"SELECT args::text AS args, state FROM {schema}.jobs")
    assert [(r["args"], r["state"]) for r in rows] == [('{"order_id":"o-2"}', "done")]
    assert ran == ["o-2"]


async def _done(db: asyncpg.Connection, schema: str, n: int) -> bool:
    done = await db.fetchval(f"SELECT count(*) FROM {schema}.jobs WHERE state = 'done'")
    return int(done) >= n
