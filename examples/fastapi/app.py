"""An orders service on FastAPI that enqueues its invoice job in the request's transaction.

``POST /orders`` writes the order row and enqueues ``billing.send_invoice`` in ONE database
transaction: either both are stored or neither is (a duplicate reference or an amount the
table refuses rolls back the job too, so no invoice is ever sent for an order that does not
exist). The Soniq worker that sends invoices runs inside the service, started and stopped by
FastAPI's lifespan. Run it with:

    pip install 'soniq-jobs[fastapi,console]'
    SONIQ_DATABASE_URL=postgresql://... uvicorn --factory app:main --app-dir examples/fastapi

    curl -X POST localhost:8000/orders -H 'content-type: application/json' \\
         -d '{"reference": "o-1", "customer": "ap@acme.example", "amount_cents": 1299}'
    curl localhost:8000/orders/o-1
    open http://localhost:8000/soniq/     # the Soniq console: the invoice job, live
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from soniq import JobNotFoundError, Soniq, task_ref


class SendInvoiceArgs(BaseModel):
    """The contract of the invoice job (in a real system: from the generated package)."""

    order_reference: str
    customer: str
    amount_cents: int


SEND_INVOICE = task_ref(
    name="billing.send_invoice", args_model=SendInvoiceArgs, default_queue="billing"
)


class OrderIn(BaseModel):
    reference: str
    customer: str
    amount_cents: int  # the table's CHECK constraint refuses amounts <= 0


class OrderOut(BaseModel):
    reference: str
    customer: str
    amount_cents: int
    invoice_job_id: int
    invoice_job_state: str | None
    invoiced_at: datetime | None


def create_api(jobs: Soniq, *, orders_table: str = "orders", run_worker: bool = True) -> FastAPI:
    """The service, on the Soniq app ``jobs``; ``orders_table`` may be schema-qualified."""

    @jobs.job(SEND_INVOICE)
    async def send_invoice(order_reference: str, customer: str, amount_cents: int) -> None:
        # A real service would call its invoicing provider here.
        async with jobs.connection() as conn:
            await conn.execute(
                f"UPDATE {orders_table} SET invoiced_at = now() WHERE reference = $1",
                order_reference,
            )

    @contextlib.asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        await jobs.setup()
        async with jobs.connection() as conn:
            await conn.execute(
                f"""CREATE TABLE IF NOT EXISTS {orders_table} (
                    reference text PRIMARY KEY,
                    customer text NOT NULL,
                    amount_cents integer NOT NULL CHECK (amount_cents > 0),
                    invoice_job_id bigint NOT NULL,
                    invoiced_at timestamptz
                )"""
            )
        # The worker runs as a task of the server's event loop. It installs no signal
        # handlers when the server already has its own (uvicorn does), and cancelling it
        # gives its unfinished jobs back to the queue for the next start.
        worker = asyncio.create_task(jobs.run_worker(queues=["billing"])) if run_worker else None
        try:
            yield
        finally:
            if worker is not None:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            await jobs.close()

    api = FastAPI(title="orders", lifespan=lifespan)
    # The operators' console at /soniq (read-only; needs soniq[console]). Mounted, it sits
    # behind whatever auth middleware the service adds to `api`.
    api.mount("/soniq", jobs.console())

    @api.post("/orders", status_code=201)
    async def create_order(order: OrderIn) -> dict[str, Any]:
        try:
            async with jobs.connection() as conn, conn.transaction():
                job_id = await jobs.enqueue(
                    SEND_INVOICE,
                    args=SendInvoiceArgs(
                        order_reference=order.reference,
                        customer=order.customer,
                        amount_cents=order.amount_cents,
                    ),
                    connection=conn,  # the job is written in this transaction
                )
                # Written after the job on purpose: if this fails, the job goes too.
                await conn.execute(
                    f"INSERT INTO {orders_table} "
                    "(reference, customer, amount_cents, invoice_job_id) VALUES ($1, $2, $3, $4)",
                    order.reference,
                    order.customer,
                    order.amount_cents,
                    job_id,
                )
        except asyncpg.UniqueViolationError:
            raise HTTPException(409, f"order {order.reference!r} already exists") from None
        except asyncpg.CheckViolationError:
            raise HTTPException(422, "amount_cents must be positive") from None
        # Committed: the worker was woken at commit and may already be sending the invoice.
        return {"reference": order.reference, "invoice_job_id": job_id}

    @api.get("/orders/{reference}")
    async def get_order(reference: str) -> OrderOut:
        async with jobs.connection() as conn:
            row = await conn.fetchrow(
                f"SELECT reference, customer, amount_cents, invoice_job_id, invoiced_at "
                f"FROM {orders_table} WHERE reference = $1",
                reference,
            )
        if row is None:
            raise HTTPException(404, f"no order {reference!r}")
        try:
            state: str | None = (await jobs.get_job(row["invoice_job_id"])).state.value
        except JobNotFoundError:  # finished jobs are pruned after the app's done_retention
            state = None
        return OrderOut(**dict(row), invoice_job_state=state)

    return api


def main() -> FastAPI:
    """The factory uvicorn runs: the database from ``SONIQ_DATABASE_URL`` (or "embedded")."""
    return create_api(Soniq())
