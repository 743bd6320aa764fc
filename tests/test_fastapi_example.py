"""examples/fastapi: the order and its invoice job commit together, and the worker started
in the lifespan sends the invoice; a refused order leaves neither row nor job."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
import pytest

from soniq import Soniq
from soniq.testing import assert_enqueued, assert_not_enqueued
from tests.helpers import wait_until

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
asgi_lifespan = pytest.importorskip("asgi_lifespan")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fastapi" / "app.py"


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soniq_fastapi_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the models' annotations through it
    spec.loader.exec_module(module)
    return module


example = _load_example()


@pytest.fixture
async def service(database_url: str, schema: str) -> AsyncIterator[tuple[Any, Soniq, str]]:
    """The example service with its lifespan (setup, worker) running, on this test's schema."""
    jobs = Soniq(database_url, schema=schema)
    orders = f"{schema}.orders"
    api = example.create_api(jobs, orders_table=orders)
    async with asgi_lifespan.LifespanManager(api) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://orders") as client:
            yield client, jobs, orders


async def _orders(db: asyncpg.Connection, orders: str) -> list[tuple[str, int, bool]]:
    rows = await db.fetch(
        f"SELECT reference, invoice_job_id, invoiced_at IS NOT NULL AS invoiced "
        f"FROM {orders} ORDER BY reference"
    )
    return [(r["reference"], r["invoice_job_id"], r["invoiced"]) for r in rows]


async def _job_states(db: asyncpg.Connection, schema: str) -> list[tuple[int, str]]:
    rows = await db.fetch(f"SELECT id, state FROM {schema}.jobs ORDER BY id")
    return [(r["id"], r["state"]) for r in rows]


async def test_order_and_invoice_job_commit_together_and_the_worker_runs_it(
    service: tuple[Any, Soniq, str], db: asyncpg.Connection, schema: str
) -> None:
    client, jobs, orders = service
    response = await client.post(
        "/orders", json={"reference": "o-1", "customer": "ap@acme.example", "amount_cents": 1299}
    )
    assert response.status_code == 201, response.text
    job_id = response.json()["invoice_job_id"]

    await assert_enqueued(
        jobs,
        example.SEND_INVOICE,
        args={"order_reference": "o-1", "customer": "ap@acme.example", "amount_cents": 1299},
        count=1,
    )
    # the worker in the lifespan picks the job up and marks the order invoiced
    await wait_until(lambda: _invoiced(db, orders, "o-1"))
    await wait_until(lambda: _state_is(db, schema, job_id, "done"))
    assert await _orders(db, orders) == [("o-1", job_id, True)]

    shown = await client.get("/orders/o-1")
    assert shown.status_code == 200
    assert shown.json()["invoice_job_state"] == "done"
    assert shown.json()["invoiced_at"] is not None


async def test_refused_order_writes_neither_order_nor_job(
    service: tuple[Any, Soniq, str], db: asyncpg.Connection, schema: str
) -> None:
    client, jobs, orders = service
    # the CHECK constraint fails after the job was enqueued: both roll back
    response = await client.post(
        "/orders", json={"reference": "o-0", "customer": "ap@acme.example", "amount_cents": 0}
    )
    assert response.status_code == 422
    assert await _orders(db, orders) == []
    assert await _job_states(db, schema) == []
    await assert_not_enqueued(jobs, example.SEND_INVOICE)

    # a duplicate reference: only the first order and its one job exist
    first = await client.post(
        "/orders", json={"reference": "o-2", "customer": "a@example.com", "amount_cents": 5}
    )
    assert first.status_code == 201
    job_id = first.json()["invoice_job_id"]
    again = await client.post(
        "/orders", json={"reference": "o-2", "customer": "b@example.com", "amount_cents": 7}
    )
    assert again.status_code == 409
    assert "already exists" in again.json()["detail"]
    await wait_until(lambda: _state_is(db, schema, job_id, "done"))
    assert await _orders(db, orders) == [("o-2", job_id, True)]
    assert await _job_states(db, schema) == [(job_id, "done")]
    await assert_not_enqueued(jobs, example.SEND_INVOICE, args=_args("o-2", "b@example.com", 7))


async def test_lifespan_starts_and_stops_the_worker(database_url: str, schema: str) -> None:
    jobs = Soniq(database_url, schema=schema)
    api = example.create_api(jobs, orders_table=f"{schema}.orders")
    async with asgi_lifespan.LifespanManager(api):
        await wait_until(lambda: _live_workers(jobs, 1))
    # the lifespan cancelled run_worker and awaited it: the worker unregistered itself
    assert await _live_workers(jobs, 0)
    await jobs.close()


async def _live_workers(jobs: Soniq, count: int) -> bool:
    return len((await jobs.status()).workers) == count


def _args(reference: str, customer: str, amount: int) -> dict[str, Any]:
    return {"order_reference": reference, "customer": customer, "amount_cents": amount}


async def _invoiced(db: asyncpg.Connection, orders: str, reference: str) -> bool:
    return bool(
        await db.fetchval(
            f"SELECT invoiced_at IS NOT NULL FROM {orders} WHERE reference = $1", reference
        )
    )


async def _state_is(db: asyncpg.Connection, schema: str, job_id: int, state: str) -> bool:
    return await db.fetchval(f"SELECT state FROM {schema}.jobs WHERE id = $1", job_id) == state


async def test_without_a_worker_the_test_drains_the_job_itself(
    database_url: str, schema: str, db: asyncpg.Connection
) -> None:
    jobs = Soniq(database_url, schema=schema)
    orders = f"{schema}.orders"
    api = example.create_api(jobs, orders_table=orders, run_worker=False)
    async with asgi_lifespan.LifespanManager(api) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://orders") as client:
            response = await client.post(
                "/orders", json={"reference": "o-5", "customer": "c@example.com", "amount_cents": 9}
            )
            assert response.status_code == 201
            job_id = response.json()["invoice_job_id"]
            [job] = await assert_enqueued(
                jobs, example.SEND_INVOICE, args=_args("o-5", "c@example.com", 9), state="queued"
            )
            assert job.id == job_id
            assert await _orders(db, orders) == [("o-5", job_id, False)]

            assert await jobs.drain() == 1
            assert await _orders(db, orders) == [("o-5", job_id, True)]
            assert await _job_states(db, schema) == [(job_id, "done")]


async def test_the_console_is_mounted_at_soniq_and_shows_the_invoice_job(
    service: tuple[Any, Soniq, str], db: asyncpg.Connection, schema: str
) -> None:
    client, _, _ = service
    response = await client.post(
        "/orders", json={"reference": "o-9", "customer": "ap@acme.example", "amount_cents": 5}
    )
    job_id = response.json()["invoice_job_id"]
    page = await client.get(f"/soniq/jobs/{job_id}")
    assert page.status_code == 200
    assert "billing.send_invoice" in page.text
    assert 'href="/soniq/static/console.css"' in page.text  # links stay under the mount
    refused = await client.post(f"/soniq/jobs/{job_id}/cancel", data={"csrf": "x"})
    assert refused.status_code == 403  # read-only
