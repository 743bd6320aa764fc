"""Enqueue inside the caller's transaction: the job exists only if it commits, and workers
are woken at commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from soniq import JobNotFoundError, Soniq
from tests.helpers import (
    count_jobs,
    listening,
    start_worker,
    stop_worker,
    wait_state,
    wait_until,
)


class Rollback(Exception):
    pass


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """The application's own connection, whose transactions jobs join."""
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


async def test_rolled_back_enqueue_never_exists_and_is_never_run(
    app: Soniq, conn: asyncpg.Connection, db: asyncpg.Connection, schema: str
) -> None:
    ran: list[int] = []

    @app.job(name="orders.confirm")
    async def confirm(order_id: int) -> None:
        ran.append(order_id)

    worker = start_worker(app, poll=0.02)
    job_id = None
    with pytest.raises(Rollback):
        async with conn.transaction():
            job_id = await app.enqueue("orders.confirm", {"order_id": 1}, connection=conn)
            ids = await app.enqueue_many(
                "orders.confirm", [{"order_id": 2}, {"order_id": 3}], connection=conn
            )
            assert len(ids) == 2
            # The worker polls every 20 ms meanwhile; it must not see uncommitted rows.
            await asyncio.sleep(0.3)
            raise Rollback
    await asyncio.sleep(0.3)  # and nothing appears after the rollback either
    await stop_worker(worker)
    assert job_id is not None
    assert await count_jobs(db, schema) == 0
    assert ran == []
    with pytest.raises(JobNotFoundError):
        await app.get_job(job_id)


async def test_uncommitted_enqueue_is_invisible_to_other_connections(
    app: Soniq, conn: asyncpg.Connection, db: asyncpg.Connection, schema: str
) -> None:
    async with conn.transaction():
        job_id = await app.enqueue("orders.confirm", {"order_id": 1}, connection=conn)
        # visible inside the transaction...
        assert await conn.fetchval(f"SELECT count(*) FROM {schema}.jobs") == 1
        # ...but not to anyone else until it commits
        assert await count_jobs(db, schema) == 0
        with pytest.raises(JobNotFoundError):
            await app.get_job(job_id)
    assert await count_jobs(db, schema, "id = $1 AND state = 'queued'", job_id) == 1
    assert (await app.get_job(job_id)).args == {"order_id": 1}


async def test_committed_enqueue_wakes_an_idle_worker_at_commit(
    app: Soniq, conn: asyncpg.Connection, db: asyncpg.Connection, schema: str
) -> None:
    ran = asyncio.Event()

    @app.job(name="orders.confirm")
    async def confirm(order_id: int) -> None:
        ran.set()

    # A 30 s poll interval: within this test only a notification can make it claim.
    worker = start_worker(app, poll=30)
    await wait_until(lambda: listening(db, schema))
    async with conn.transaction():
        job_id = await app.enqueue("orders.confirm", {"order_id": 1}, connection=conn)
        # Let the worker finish the claim it makes right after LISTEN; then it idles.
        await asyncio.sleep(0.3)
        assert not ran.is_set()
        assert await count_jobs(db, schema) == 0
    await asyncio.wait_for(ran.wait(), timeout=5)
    await wait_state(db, schema, job_id, "done", timeout=5)
    await stop_worker(worker)


async def test_committed_enqueue_many_wakes_an_idle_worker_at_commit(
    app: Soniq, conn: asyncpg.Connection, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="orders.confirm")
    async def confirm(order_id: int) -> None:
        return None

    worker = start_worker(app, poll=30)
    await wait_until(lambda: listening(db, schema))
    async with conn.transaction():
        await app.enqueue_many(
            "orders.confirm", [{"order_id": i} for i in range(5)], connection=conn
        )
        await asyncio.sleep(0.3)
    await wait_until(
        lambda: db.fetchval(f"SELECT bool_and(state = 'done') FROM {schema}.jobs"), timeout=5
    )
    await stop_worker(worker)
    assert await count_jobs(db, schema, "state = 'done'") == 5
