"""Enqueue on the caller's own connection of another driver (SQLAlchemy over asyncpg or
psycopg, psycopg 3), async and sync: in the caller's transaction, woken at commit."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import asyncpg
import psycopg
import pytest
import sqlalchemy
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from soniq import ConfigurationError, EnqueueError, InvalidArgumentsError, Soniq, task_ref
from tests.helpers import count_jobs, listening, start_worker, stop_worker, wait_state, wait_until


class Rollback(Exception):
    pass


class Order(BaseModel):
    order_id: int


class Mail(BaseModel):
    model_config = ConfigDict(strict=True)
    to: str


Opener = Callable[[], AbstractAsyncContextManager[Any]]


def _sqlalchemy_url(url: str, driver: str) -> str:
    return url.replace("postgresql://", f"postgresql+{driver}://", 1)


@pytest.fixture(params=["sqlalchemy-asyncpg", "sqlalchemy-psycopg", "sqlalchemy-conn", "psycopg"])
def transaction(request: pytest.FixtureRequest, database_url: str) -> Opener:
    """Opens the caller's connection in a transaction: committed when the block ends,
    rolled back when it raises."""

    @asynccontextmanager
    async def session(driver: str) -> AsyncIterator[Any]:
        engine = create_async_engine(_sqlalchemy_url(database_url, driver))
        try:
            async with AsyncSession(engine) as session, session.begin():
                yield session
        finally:
            await engine.dispose()

    @asynccontextmanager
    async def connection() -> AsyncIterator[Any]:
        engine = create_async_engine(_sqlalchemy_url(database_url, "asyncpg"))
        try:
            async with engine.begin() as conn:
                yield conn
        finally:
            await engine.dispose()

    @asynccontextmanager
    async def psycopg_connection() -> AsyncIterator[Any]:
        async with (
            await psycopg.AsyncConnection.connect(database_url) as conn,
            conn.transaction(),
        ):
            yield conn

    return {
        "sqlalchemy-asyncpg": lambda: session("asyncpg"),
        "sqlalchemy-psycopg": lambda: session("psycopg"),
        "sqlalchemy-conn": connection,
        "psycopg": psycopg_connection,
    }[request.param]


async def test_rolled_back_enqueue_leaves_nothing(
    app: Soniq, transaction: Opener, db: asyncpg.Connection, schema: str
) -> None:
    with pytest.raises(Rollback):
        async with transaction() as conn:
            job_id = await app.enqueue("orders.confirm", {"order_id": 1}, connection=conn)
            ids = await app.enqueue_many(
                "orders.confirm", [{"order_id": 2}, {"order_id": 3}], connection=conn
            )
            assert job_id.created and len(ids) == 2
            assert await count_jobs(db, schema) == 0  # not committed: invisible to others
            raise Rollback
    assert await count_jobs(db, schema) == 0


async def test_committed_enqueue_is_stored_and_wakes_an_idle_worker(
    app: Soniq, transaction: Opener, db: asyncpg.Connection, schema: str
) -> None:
    ran: list[int] = []

    @app.job(name="orders.confirm", queue="orders")
    async def confirm(order_id: int) -> None:
        ran.append(order_id)

    # A 30 s poll interval: within this test only a notification can make it claim.
    worker = start_worker(app, poll=30)
    await wait_until(lambda: listening(db, schema))
    async with transaction() as conn:
        job_id = await app.enqueue("orders.confirm", {"order_id": 1}, connection=conn)
        await asyncio.sleep(0.3)  # the worker's first claim, right after LISTEN, is done
    await wait_state(db, schema, job_id, "done", timeout=5)
    await stop_worker(worker)
    assert ran == [1]
    row = await db.fetchrow(f"SELECT queue, args::text FROM {schema}.jobs WHERE id = $1", job_id)
    assert (row["queue"], row["args"]) == ("orders", '{"order_id":1}')


async def test_a_bad_item_writes_nothing_in_the_callers_transaction(
    app: Soniq, transaction: Opener, db: asyncpg.Connection, schema: str
) -> None:
    ref = task_ref(name="orders.confirm", args_model=Order)
    async with transaction() as conn:
        with pytest.raises(InvalidArgumentsError, match=r"item 1"):
            await app.enqueue_many(ref, [{"order_id": 1}, {"order_id": "x"}], connection=conn)
        await app.enqueue(ref, {"order_id": 5}, connection=conn)
    assert await count_jobs(db, schema) == 1


async def test_an_unknown_kind_of_connection_is_refused(app: Soniq, database_url: str) -> None:
    with (
        psycopg.connect(database_url) as sync_conn,
        pytest.raises(EnqueueError, match="enqueue_sync"),
    ):
        await app.enqueue("orders.confirm", {}, connection=sync_conn)
    with pytest.raises(EnqueueError, match="asyncpg connection, an SQLAlchemy AsyncSession"):
        await app.enqueue("orders.confirm", {}, connection="postgresql://")
    async with await psycopg.AsyncConnection.connect(database_url) as async_conn:
        with pytest.raises(EnqueueError, match=r"async connections go to app\.enqueue\b"):
            app.enqueue_sync("orders.confirm", {}, connection=async_conn)


# The synchronous producer: Django/Flask-style code, no event loop.


def test_enqueue_sync_on_a_psycopg_connection_commits_and_rolls_back_with_it(
    app: Soniq, database_url: str, schema: str
) -> None:
    with psycopg.connect(database_url) as conn:
        with conn.transaction():
            job_id = app.enqueue_sync("mail.send", {"to": "a@example.com"}, connection=conn)
            ids = app.enqueue_many_sync("mail.send", [{"to": "b"}, {"to": "c"}], connection=conn)
        with pytest.raises(Rollback), conn.transaction():
            app.enqueue_sync("mail.send", {"to": "lost"}, connection=conn)
            raise Rollback
        rows = conn.execute(f"SELECT id, args->>'to' FROM {schema}.jobs ORDER BY id").fetchall()
    assert job_id.created
    assert rows == [(job_id, "a@example.com"), (ids[0], "b"), (ids[1], "c")]


def test_enqueue_sync_on_an_sqlalchemy_session(app: Soniq, database_url: str, schema: str) -> None:
    engine = sqlalchemy.create_engine(_sqlalchemy_url(database_url, "psycopg"))
    try:
        with Session(engine) as session:
            first = app.enqueue_sync("mail.send", {"to": "a"}, dedup_key="a", connection=session)
            again = app.enqueue_sync("mail.send", {"to": "a"}, dedup_key="a", connection=session)
            session.rollback()
        with Session(engine) as session, session.begin():
            kept = app.enqueue_sync("mail.send", {"to": "b"}, connection=session)
        with engine.connect() as conn:
            count = conn.exec_driver_sql(f"SELECT count(*) FROM {schema}.jobs").scalar()
            stored = conn.exec_driver_sql(f"SELECT id FROM {schema}.jobs").scalar()
    finally:
        engine.dispose()
    assert (first.created, again.created, int(again)) == (True, False, int(first))
    assert (count, stored) == (1, kept)


async def test_enqueue_sync_without_a_connection_commits_on_its_own(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    ref = task_ref(name="mail.send", args_model=Mail)
    job_id = app.enqueue_sync(ref, {"to": "a"}, queue="mail", delay=60)
    with pytest.raises(InvalidArgumentsError, match=r"mail\.send"):
        app.enqueue_sync(ref, {"to": 5})
    with pytest.raises(InvalidArgumentsError, match=r"item 1"):
        app.enqueue_many_sync(ref, [{"to": "b"}, {"to": 5}])
    rows = await db.fetch(
        f"SELECT id, queue, scheduled_at > now() + interval '50 seconds' FROM {schema}.jobs"
    )
    assert [tuple(row) for row in rows] == [(job_id, "mail", True)]


def test_enqueue_sync_without_psycopg_says_what_to_install(
    app: Soniq, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    with pytest.raises(ConfigurationError, match=r"pip install 'soniq-jobs\[psycopg\]'"):
        app.enqueue_sync("mail.send", {"to": "a"})
