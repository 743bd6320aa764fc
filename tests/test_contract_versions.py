"""Contract versions at run time: stamped on jobs, upcast for newer workers, never run by
older ones, and checked against the jobs that actually wait."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import asyncpg
import pytest
from pydantic import BaseModel

from soniq import Soniq, task_ref
from tests.apps.invoice_contracts import SEND_INVOICE_V1, SEND_INVOICE_V2, SendInvoiceV2
from tests.helpers import stop_worker, wait_until


async def _state(db: asyncpg.Connection, schema: str, job_id: int) -> asyncpg.Record:
    return await db.fetchrow(
        f"SELECT state, attempts, error_reason, error_message, contract_version, "
        f"contract_fingerprint FROM {schema}.jobs WHERE id = $1",
        job_id,
    )


async def test_jobs_record_the_contract_version_of_their_producer(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    by_ref = await app.enqueue(SEND_INVOICE_V1, args={"order_id": "o1", "amount": 3})
    by_name = await app.enqueue("billing.send_invoice", args={"order_id": "o1", "amount": 3})
    assert tuple((await _state(db, schema, by_ref))[4:]) == (1, "sha256:v1")
    assert tuple((await _state(db, schema, by_name))[4:]) == (None, None)


async def test_v1_jobs_run_on_a_v2_worker_through_the_upcaster(
    app: Soniq, database_url: str, db: asyncpg.Connection, schema: str
) -> None:
    ids = [
        await app.enqueue(SEND_INVOICE_V1, args={"order_id": f"o{i}", "amount": i})
        for i in range(1, 4)
    ]
    v2_id = await app.enqueue(
        SEND_INVOICE_V2, args={"order_id": "o9", "amount_cents": 900, "currency": "GBP"}
    )

    consumer = Soniq(database_url, schema=schema)
    received: list[tuple[str, int, str]] = []

    @consumer.job(SEND_INVOICE_V2)
    async def send_invoice(order_id: str, amount_cents: int, currency: str) -> None:
        received.append((order_id, amount_cents, currency))

    @consumer.upcaster(SEND_INVOICE_V2, from_version=1)
    def amount_in_cents(args: dict[str, Any]) -> dict[str, Any]:
        return {
            "order_id": args["order_id"],
            "amount_cents": args["amount"] * 100,
            "currency": "EUR",
        }

    worker = asyncio.create_task(consumer.run_worker(queues=["billing"]))
    await wait_until(
        lambda: db.fetchval(f"SELECT count(*) = 4 FROM {schema}.jobs WHERE state = 'done'")
    )
    await stop_worker(worker)
    await consumer.close()
    assert sorted(received) == [
        ("o1", 100, "EUR"),
        ("o2", 200, "EUR"),
        ("o3", 300, "EUR"),
        ("o9", 900, "GBP"),
    ]
    assert {(await _state(db, schema, i))["attempts"] for i in [*ids, v2_id]} == {1}


async def test_a_v2_job_never_reaches_a_v1_worker_and_waits_unspent(
    app: Soniq, database_url: str, db: asyncpg.Connection, schema: str
) -> None:
    v2_id = await app.enqueue(
        SEND_INVOICE_V2, args={"order_id": "new", "amount_cents": 1, "currency": "EUR"}
    )
    v1_id = await app.enqueue(SEND_INVOICE_V1, args={"order_id": "old", "amount": 1})

    old_consumer = Soniq(database_url, schema=schema)
    ran: list[str] = []

    @old_consumer.job(SEND_INVOICE_V1)
    async def send_invoice(order_id: str, amount: int) -> None:
        ran.append(order_id)

    worker = asyncio.create_task(old_consumer.run_worker(queues=["billing"]))
    await wait_until(
        lambda: db.fetchval(f"SELECT state = 'done' FROM {schema}.jobs WHERE id = $1", v1_id)
    )
    # The worker is live and polling; the v2 job is due and still not taken.
    status = await wait_until(lambda: _status_with_waiting(app), timeout=10)
    await stop_worker(worker)
    await old_consumer.close()

    assert ran == ["old"]
    row = await _state(db, schema, v2_id)
    assert (row["state"], row["attempts"]) == ("queued", 0)
    waiting = status.waiting_for_newer_consumer
    assert [(w.task_name, w.contract_version, w.count) for w in waiting] == [
        ("billing.send_invoice", 2, 1)
    ]
    assert [len(status.workers)] == [1]


async def _status_with_waiting(app: Soniq) -> Any:
    status = await app.status()
    return status if status.waiting_for_newer_consumer else None


async def test_a_job_older_than_any_upcaster_path_is_dead_lettered_naming_the_versions(
    app: Soniq, database_url: str, db: asyncpg.Connection, schema: str
) -> None:
    class V3(BaseModel):
        order_id: str

    v3 = task_ref(name="billing.send_invoice", args_model=V3, default_queue="billing", version=3)
    job_id = await app.enqueue(SEND_INVOICE_V1, args={"order_id": "o1", "amount": 1})
    consumer = Soniq(database_url, schema=schema)

    @consumer.job(v3)
    async def send_invoice(order_id: str) -> None:
        return None

    @consumer.upcaster(v3, from_version=2)
    def drop_amount(args: dict[str, Any]) -> dict[str, Any]:
        return {"order_id": args["order_id"]}

    worker = asyncio.create_task(consumer.run_worker(queues=["billing"]))
    await wait_until(
        lambda: db.fetchval(f"SELECT state = 'dead' FROM {schema}.jobs WHERE id = $1", job_id)
    )
    await stop_worker(worker)
    await consumer.close()
    row = await _state(db, schema, job_id)
    assert row["error_reason"] == "unsupported contract version"
    assert "version 1" in row["error_message"] and "version 3" in row["error_message"]
    assert "from_version=1" in row["error_message"]


async def test_a_failing_upcaster_dead_letters_the_job(
    app: Soniq, database_url: str, db: asyncpg.Connection, schema: str
) -> None:
    job_id = await app.enqueue(SEND_INVOICE_V1, args={"order_id": "o1", "amount": 1})
    consumer = Soniq(database_url, schema=schema)

    @consumer.job(SEND_INVOICE_V2)
    async def send_invoice(order_id: str, amount_cents: int, currency: str) -> None:
        return None

    @consumer.upcaster(SEND_INVOICE_V2, from_version=1)
    def broken(args: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("currency")

    worker = asyncio.create_task(consumer.run_worker(queues=["billing"]))
    await wait_until(
        lambda: db.fetchval(f"SELECT state = 'dead' FROM {schema}.jobs WHERE id = $1", job_id)
    )
    await stop_worker(worker)
    await consumer.close()
    row = await _state(db, schema, job_id)
    assert row["error_reason"] == "upcaster failed"
    assert "KeyError" in row["error_message"]


def test_upcaster_registration_rules(app: Soniq) -> None:
    from soniq import RegistrationError

    with pytest.raises(RegistrationError, match="from_version must be an integer from 1 to 1"):
        app.upcaster(SEND_INVOICE_V2, from_version=2)
    unversioned = task_ref(name="billing.x", args_model=SendInvoiceV2)
    with pytest.raises(RegistrationError, match="versioned TaskRef"):
        app.upcaster(unversioned, from_version=1)


async def test_check_contracts_against_waiting_jobs(
    app: Soniq, database_url: str, db: asyncpg.Connection, schema: str
) -> None:
    await app.enqueue(SEND_INVOICE_V1, args={"order_id": "o1", "amount": 1})
    await app.enqueue(SEND_INVOICE_V1, args={"order_id": "o2", "amount": 2}, delay=3600)

    consumer = Soniq(database_url, schema=schema)

    @consumer.job(SEND_INVOICE_V2)
    async def send_invoice(order_id: str, amount_cents: int, currency: str) -> None:
        return None

    without_upcaster = await consumer.check_contracts()
    assert not without_upcaster.ok
    [group] = without_upcaster.versions
    assert (group.contract_version, group.verdict) == (1, "no upcaster path")
    assert group.counts == {"queued": 1, "scheduled": 1}

    @consumer.upcaster(SEND_INVOICE_V2, from_version=1)
    def amount_in_cents(args: dict[str, Any]) -> dict[str, Any]:
        return {
            "order_id": args["order_id"],
            "amount_cents": args["amount"] * 100,
            "currency": "EUR",
        }

    assert (await consumer.check_contracts()).ok

    # A v1 job whose args the upcaster cannot carry (written by raw SQL).
    await db.execute(
        f"INSERT INTO {schema}.jobs (task_name, queue, args, max_attempts, contract_version) "
        "VALUES ('billing.send_invoice', 'billing', '{\"order_id\": \"o3\"}', 1, 1)"
    )
    report = await consumer.check_contracts()
    await consumer.close()
    assert not report.ok
    [group] = report.versions
    assert group.invalid == 1 and "KeyError" in (group.first_error or "")


async def test_contracts_check_cli_exit_codes(
    app: Soniq, python: str, subprocess_env: dict[str, str], schema: str
) -> None:
    await app.enqueue(SEND_INVOICE_V1, args={"order_id": "o1", "amount": 1})
    ok = subprocess.run(
        [python, "-m", "soniq", "contracts", "check", "--app", "tests.apps.versioned_app:app"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "billing.send_invoice v1" in ok.stdout and "upcast to current" in ok.stdout

    # The bare contract package view (no upcasters): v1 jobs cannot be run by v2 models.
    failing = subprocess.run(
        [python, "-m", "soniq", "contracts", "check", "tests.apps.invoice_contracts", "--json"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert '"verdict": "no upcaster path"' in failing.stdout
