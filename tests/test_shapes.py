"""The three usage shapes from the product contract, written as users write them."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from pydantic import BaseModel

from soniq import JobState, Soniq, task_ref
from tests.helpers import stop_worker, wait_until


@pytest.fixture(autouse=True)
def _schema_env(monkeypatch: pytest.MonkeyPatch, schema: str) -> None:
    # Lets the shapes construct Soniq(database_url=...) exactly as written, on this test's schema.
    monkeypatch.setenv("SONIQ_SCHEMA", schema)


async def _rows(db: asyncpg.Connection, schema: str) -> list[asyncpg.Record]:
    return await db.fetch(
        f"SELECT task_name, queue, args::text AS args, state, error_reason, error_message "
        f"FROM {schema}.jobs ORDER BY id"
    )


async def test_producer_enqueues_by_name_without_handlers(
    database_url: str, schema: str, db: asyncpg.Connection
) -> None:
    app = Soniq(database_url=database_url)
    await app.setup()
    job_id = await app.enqueue("billing.send", args={"order_id": 7})
    await app.close()

    rows = await _rows(db, schema)
    assert [(r["task_name"], r["queue"], r["args"], r["state"]) for r in rows] == [
        ("billing.send", "default", '{"order_id":7}', "queued")
    ]
    assert isinstance(job_id, int)


async def test_consumer_runs_job_enqueued_by_name(
    database_url: str, schema: str, db: asyncpg.Connection
) -> None:
    producer = Soniq(database_url=database_url)
    await producer.setup()
    await producer.enqueue("billing.send", args={"order_id": 7})

    app = Soniq(database_url=database_url)
    received: list[int] = []
    done = asyncio.Event()

    @app.job(name="billing.send")
    async def send(order_id: int) -> None:
        received.append(order_id)
        done.set()

    worker = asyncio.create_task(app.run_worker())
    await asyncio.wait_for(done.wait(), 20)
    await wait_until(lambda: _states(db, schema, {"done"}))
    await stop_worker(worker)
    await producer.close()
    await app.close()

    assert received == [7]
    assert [r["state"] for r in await _rows(db, schema)] == ["done"]


async def _states(db: asyncpg.Connection, schema: str, wanted: set[str]) -> bool:
    states = {r["state"] for r in await db.fetch(f"SELECT state FROM {schema}.jobs")}
    return bool(states) and states <= wanted


class SendInvoiceArgs(BaseModel):
    order_id: str
    customer: str


SEND_INVOICE = task_ref(
    name="billing.send_invoice", args_model=SendInvoiceArgs, default_queue="billing"
)


async def test_shared_stub_package_shape(
    database_url: str, schema: str, db: asyncpg.Connection
) -> None:
    # producer
    producer = Soniq(database_url=database_url)
    await producer.setup()
    await producer.enqueue(
        SEND_INVOICE, args=SendInvoiceArgs(order_id="o1", customer="acme").model_dump()
    )
    await producer.enqueue(SEND_INVOICE, args=SendInvoiceArgs(order_id="o2", customer="beta"))

    # consumer
    app = Soniq(database_url=database_url)
    calls: list[tuple[str, str]] = []

    @app.job(name=SEND_INVOICE.name, validate=SendInvoiceArgs)
    async def send_invoice(order_id: str, customer: str) -> None:
        calls.append((order_id, customer))

    worker = asyncio.create_task(app.run_worker(queues=["billing"]))
    await wait_until(lambda: _states(db, schema, {"done"}))
    await stop_worker(worker)
    await producer.close()
    await app.close()

    assert sorted(calls) == [("o1", "acme"), ("o2", "beta")]
    rows = await _rows(db, schema)
    assert {r["queue"] for r in rows} == {"billing"}


async def test_register_straight_from_ref(app: Soniq, db: asyncpg.Connection, schema: str) -> None:
    calls: list[str] = []

    @app.job(SEND_INVOICE)
    async def send_invoice(order_id: str, customer: str) -> None:
        calls.append(order_id)

    await app.enqueue(SEND_INVOICE, args={"order_id": "o9", "customer": "acme"})
    worker = asyncio.create_task(app.run_worker(queues=["billing"]))
    await wait_until(lambda: _states(db, schema, {"done"}))
    await stop_worker(worker)
    assert calls == ["o9"]


async def test_producer_that_runs_a_worker_dead_letters_unregistered_jobs(
    database_url: str, schema: str, db: asyncpg.Connection
) -> None:
    app = Soniq(database_url=database_url)
    await app.setup()
    job_id = await app.enqueue("billing.send", args={"order_id": 7})

    worker = asyncio.create_task(app.run_worker())
    await wait_until(lambda: _states(db, schema, {"dead"}))
    await stop_worker(worker)

    job = await app.get_job(job_id)
    await app.close()
    assert job.state is JobState.DEAD
    assert job.attempts == 1
    assert job.error is not None
    assert job.error.reason == "Job not registered"
    assert "billing.send" in job.error.message


async def test_same_instance_enqueues_follow_ups_from_a_handler(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="orders.place")
    async def place(order_id: int) -> None:
        await app.enqueue("orders.confirm", args={"order_id": order_id})

    @app.job(name="orders.confirm")
    async def confirm(order_id: int) -> None:
        return None

    await app.enqueue("orders.place", args={"order_id": 1})
    worker = asyncio.create_task(app.run_worker())
    await wait_until(
        lambda: db.fetchval(f"SELECT count(*) = 2 FROM {schema}.jobs WHERE state = 'done'")
    )
    await stop_worker(worker)
    names = [r["task_name"] for r in await _rows(db, schema)]
    assert names == ["orders.place", "orders.confirm"]
