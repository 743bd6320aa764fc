"""soniq.testing and soniq.pytest_plugin: drain, assert_enqueued, and the fixtures."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import BaseModel

from soniq import InvalidArgumentsError, JobContext, Soniq, task_ref
from soniq.testing import assert_enqueued, assert_not_enqueued

pytest_plugins = ["soniq.pytest_plugin", "pytester"]


class InvoiceArgs(BaseModel):
    order_id: str
    amount_cents: int
    currency: str = "EUR"


SEND_INVOICE = task_ref(
    name="billing.send_invoice", args_model=InvoiceArgs, default_queue="billing"
)


class ReceiptArgs(BaseModel):
    order_id: str


SEND_RECEIPT = task_ref(name="billing.send_receipt", args_model=ReceiptArgs)


@pytest.fixture
async def helper_app(soniq_database_url: str, soniq_schema: str) -> AsyncIterator[Soniq]:
    # a long backoff: a failed attempt's retry is never due again during the test
    app = Soniq(soniq_database_url, schema=soniq_schema, retry_backoff=timedelta(minutes=10))
    await app.setup()
    yield app
    await app.close()


@pytest.fixture
async def pg(soniq_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(soniq_database_url)
    yield conn
    await conn.close()


async def _jobs(pg: asyncpg.Connection, schema: str) -> list[tuple[str, str, str, int, str]]:
    rows = await pg.fetch(
        f"SELECT task_name, queue, state, attempts, args::text AS args "
        f"FROM {schema}.jobs ORDER BY id"
    )
    return [
        (r["task_name"], r["queue"], r["state"], r["attempts"], r["args"].replace(" ", ""))
        for r in rows
    ]


async def test_drain_runs_due_jobs_and_the_jobs_they_enqueue(
    helper_app: Soniq, soniq_schema: str, pg: asyncpg.Connection
) -> None:
    app = helper_app
    sent: list[tuple[str, int, str]] = []
    receipts: list[str] = []

    @app.job(SEND_INVOICE)
    async def send_invoice(order_id: str, amount_cents: int, currency: str) -> None:
        sent.append((order_id, amount_cents, currency))
        await app.enqueue(SEND_RECEIPT, args={"order_id": order_id})

    @app.job(SEND_RECEIPT)
    def send_receipt(order_id: str) -> None:  # a sync handler runs on a thread, as in a worker
        receipts.append(order_id)

    await app.enqueue(SEND_INVOICE, args={"order_id": "o1", "amount_cents": 100})
    await app.enqueue(SEND_INVOICE, args={"order_id": "o2", "amount_cents": 200})
    await app.enqueue(SEND_INVOICE, args={"order_id": "later", "amount_cents": 1}, delay=3600)

    assert await app.drain() == 4
    assert sent == [("o1", 100, "EUR"), ("o2", 200, "EUR")]
    assert receipts == ["o1", "o2"]
    states = [(t, s, a) for t, _, s, a, _ in await _jobs(pg, soniq_schema)]
    assert states == [
        ("billing.send_invoice", "done", 1),
        ("billing.send_invoice", "done", 1),
        ("billing.send_invoice", "queued", 0),  # scheduled in an hour: not due
        ("billing.send_receipt", "done", 1),
        ("billing.send_receipt", "done", 1),
    ]
    assert await app.drain() == 0
    assert not await pg.fetchval(f"SELECT count(*) FROM {soniq_schema}.jobs WHERE state='running'")


async def test_drain_validates_retries_and_dead_letters_like_a_worker(
    helper_app: Soniq, soniq_schema: str, pg: asyncpg.Connection
) -> None:
    app = helper_app
    calls: list[str] = []

    @app.job(SEND_INVOICE, retries=1)
    async def send_invoice(order_id: str, amount_cents: int, currency: str) -> None:
        calls.append(order_id)
        if order_id == "boom":
            raise RuntimeError("payment provider down")

    boom = await app.enqueue(SEND_INVOICE, args={"order_id": "boom", "amount_cents": 1})
    # stored behind the producer's back: fails validation at dispatch
    bad = await pg.fetchval(
        f"INSERT INTO {soniq_schema}.jobs (task_name, queue, args, max_attempts) "
        "VALUES ('billing.send_invoice', 'billing', $1::json, 2) RETURNING id",
        json.dumps({"order_id": "bad"}),
    )
    unknown = await app.enqueue("billing.unknown", args={"x": 1})

    assert await app.drain() == 3
    assert calls == ["boom"]  # the invalid job never reached the handler

    first = await app.get_job(boom)
    assert (first.state.value, first.attempts) == ("queued", 1)  # retry in ~10 minutes
    assert first.error is not None and "payment provider down" in first.error.message
    invalid = await app.get_job(bad)
    assert invalid.state.value == "dead"
    assert invalid.error is not None and invalid.error.reason == "invalid arguments"
    assert "amount_cents" in invalid.error.message
    orphan = await app.get_job(unknown)
    assert orphan.state.value == "dead"
    assert orphan.error is not None and orphan.error.reason == "Job not registered"

    # once the backoff has passed the retry is due, and its last attempt dead-letters it
    await pg.execute(
        f"UPDATE {soniq_schema}.job_scheduled SET scheduled_at = now() WHERE id = $1", boom
    )
    assert await app.drain() == 1
    last = await app.get_job(boom)
    assert (last.state.value, last.attempts) == ("dead", 2)


async def test_drain_only_the_given_queues(
    helper_app: Soniq, soniq_schema: str, pg: asyncpg.Connection
) -> None:
    app = helper_app
    ran: list[str] = []

    @app.job(name="mail.send")
    async def send(to: str) -> None:
        ran.append(to)

    await app.enqueue("mail.send", args={"to": "a"}, queue="mail")
    await app.enqueue("mail.send", args={"to": "b"}, queue="other")

    assert await app.drain(queues=["mail"]) == 1
    assert ran == ["a"]
    assert await app.drain("other") == 1
    assert ran == ["a", "b"]
    assert [s for _, _, s, _, _ in await _jobs(pg, soniq_schema)] == ["done", "done"]


async def test_assert_enqueued_compares_validated_args(helper_app: Soniq) -> None:
    app = helper_app
    await app.enqueue(SEND_INVOICE, args={"order_id": "o1", "amount_cents": 100})
    await app.enqueue(SEND_INVOICE, args={"order_id": "o2", "amount_cents": 5, "currency": "USD"})

    # defaults filled in by the model, as stored; a model instance or a dict
    jobs = await assert_enqueued(app, SEND_INVOICE, args={"order_id": "o1", "amount_cents": 100})
    assert [j.args for j in jobs] == [{"order_id": "o1", "amount_cents": 100, "currency": "EUR"}]
    await assert_enqueued(
        app, SEND_INVOICE, args=InvoiceArgs(order_id="o2", amount_cents=5, currency="USD")
    )
    await assert_enqueued(app, "billing.send_invoice", queue="billing", count=2, state="queued")
    await assert_not_enqueued(app, SEND_RECEIPT)
    await assert_not_enqueued(app, SEND_INVOICE, args={"order_id": "o3", "amount_cents": 100})
    await assert_not_enqueued(app, SEND_INVOICE, queue="default")

    with pytest.raises(AssertionError) as failure:
        await assert_enqueued(app, SEND_INVOICE, args={"order_id": "o1", "amount_cents": 999})
    message = str(failure.value)
    assert "expected at least 1 job(s) of 'billing.send_invoice'" in message
    assert '"amount_cents": 999' in message
    # it lists the jobs that do exist for the task
    assert '"order_id": "o1"' in message and '"order_id": "o2"' in message
    assert "state=queued" in message

    with pytest.raises(AssertionError, match="expected 3 job"):
        await assert_enqueued(app, SEND_INVOICE, count=3)
    with pytest.raises(AssertionError, match="expected 0 job"):
        await assert_not_enqueued(app, SEND_INVOICE, args={"order_id": "o1", "amount_cents": 100})
    with pytest.raises(InvalidArgumentsError):  # args that could never have been enqueued
        await assert_enqueued(app, SEND_INVOICE, args={"order_id": "o1"})


async def test_assert_enqueued_sees_the_callers_transaction(
    helper_app: Soniq, soniq_schema: str
) -> None:
    app = helper_app
    async with app.connection() as conn:
        tx = conn.transaction()
        await tx.start()
        await app.enqueue(SEND_RECEIPT, args={"order_id": "o7"}, connection=conn)
        await assert_enqueued(conn, SEND_RECEIPT, args={"order_id": "o7"}, schema=soniq_schema)
        await assert_not_enqueued(app, SEND_RECEIPT)  # not committed: invisible to others
        await tx.rollback()
        await assert_not_enqueued(conn, SEND_RECEIPT, schema=soniq_schema)


async def test_drain_after_assert_then_the_job_counts_as_done(helper_app: Soniq) -> None:
    app = helper_app

    @app.job(SEND_RECEIPT)
    async def send_receipt(order_id: str) -> None:
        pass

    await app.enqueue(SEND_RECEIPT, args={"order_id": "o1"})
    await assert_enqueued(app, SEND_RECEIPT, args={"order_id": "o1"}, state="queued")
    assert await app.drain() == 1
    await assert_enqueued(app, SEND_RECEIPT, args={"order_id": "o1"}, state="done", count=1)
    await assert_not_enqueued(app, SEND_RECEIPT, state=["queued", "running"])


def test_plugin_gives_each_test_a_schema_and_drops_it(
    pytester: pytest.Pytester, soniq_database_url: str
) -> None:
    pytester.makeini(
        """
        [pytest]
        asyncio_mode = auto
        asyncio_default_fixture_loop_scope = function
        filterwarnings = error
        """
    )
    pytester.makepyfile(
        """
        import pytest
        from soniq import Soniq
        from soniq.testing import assert_enqueued

        @pytest.fixture
        async def app(soniq_database_url, soniq_schema):
            app = Soniq(soniq_database_url, schema=soniq_schema)
            await app.setup()
            yield app
            await app.close()

        async def test_uses_schema(app, soniq_schema):
            @app.job(name="a.b")
            async def handler(n: int) -> None:
                pass

            await app.enqueue("a.b", args={"n": 1})
            assert await app.drain() == 1
            await assert_enqueued(app, "a.b", args={"n": 1}, state="done")
            print("SCHEMA=" + soniq_schema)
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "soniq.pytest_plugin", "-p", "no:cacheprovider", "-s"
    )
    result.assert_outcomes(passed=1)
    [schema] = re.findall(r"SCHEMA=(soniq_test_[0-9a-f]+)", result.stdout.str())

    async def exists() -> bool:
        conn = await asyncpg.connect(soniq_database_url)
        try:
            return bool(
                await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema)
            )
        finally:
            await conn.close()

    assert schema.startswith("soniq_test_")
    assert not asyncio.run(exists())


async def test_drain_runs_handlers_through_the_apps_middleware(helper_app: Soniq) -> None:
    app = helper_app
    seen: list[tuple[str, int]] = []

    @app.middleware
    async def record(ctx: JobContext, call_next: Any) -> Any:
        seen.append((ctx.task_name, ctx.attempt))
        return await call_next()

    @app.job(SEND_RECEIPT)
    async def send_receipt(order_id: str) -> dict[str, str]:
        return {"sent": order_id}

    job_id = await app.enqueue(SEND_RECEIPT, args={"order_id": "o1"})
    assert await app.drain() == 1
    assert seen == [("billing.send_receipt", 1)]
    assert (await app.get_job(job_id)).result == {"sent": "o1"}  # written with the outcome


def test_the_complete_example_in_the_docs_passes(pytester: pytest.Pytester) -> None:
    docs = (Path(__file__).resolve().parent.parent / "docs" / "testing.md").read_text()
    [ini] = re.findall(r"```toml\n# pyproject.toml\n(.*?)```", docs, re.S)
    [code] = re.findall(r"```python\n# tests/test_invoices.py\n(.*?)```", docs, re.S)
    pytester.makefile(".toml", pyproject=ini + 'filterwarnings = ["error"]\n')
    pytester.makepyfile(test_invoices=code)
    result = pytester.runpytest_subprocess("-p", "soniq.pytest_plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
