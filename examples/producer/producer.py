"""The checkout producer service: enqueues billing work, never runs it.

It imports only the generated contract package `billing_tasks` and the soniq runtime,
never the consumer. Args are validated here, at enqueue, by the contract's models.

    SONIQ_DATABASE_URL=postgresql://... python examples/producer/producer.py
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, timedelta, timezone

from billing_tasks import (
    CANCEL_SUBSCRIPTION,
    CHARGE_SUBSCRIPTION,
    DELIVER_RECEIPT,
    REFUND_PAYMENT,
    SEND_INVOICE,
    ChargeSubscriptionArgs,
    DeliverReceiptArgs,
    Money,
    PostDelivery,
    RefundPaymentArgs,
    SendInvoiceArgs,
)

from soniq import InvalidArgumentsError, JobState, Soniq

app = Soniq()  # SONIQ_DATABASE_URL, or "embedded"


async def enqueue_work() -> list[int]:
    due = datetime.now(timezone.utc) + timedelta(days=14)
    ids = [
        await app.enqueue(
            SEND_INVOICE,
            args=SendInvoiceArgs(
                order_id="o-1001",
                customer="ap@acme.example",
                amount=Money(amount_cents=129900, currency="EUR"),
                due_at=due,
            ),
        ),
        await app.enqueue(
            REFUND_PAYMENT,
            args=RefundPaymentArgs(
                payment_id=uuid.UUID("0b5f5a4e-4f39-4c8e-9a57-7f0c2b0f6d11"),
                amount=Money(amount_cents=2500, currency="USD"),
                reason="requested_by_customer",
            ),
        ),
        await app.enqueue(
            CHARGE_SUBSCRIPTION,
            args=ChargeSubscriptionArgs(
                subscription_id="sub_42", plan="pro", period_start=date(2026, 12, 1), seats=3
            ),
        ),
        # A plain dict works too: it is validated against the contract all the same.
        await app.enqueue(CANCEL_SUBSCRIPTION, args={"subscription_id": "sub_7"}),
        # One of the contract's variants (a oneOf told apart by `method`).
        await app.enqueue(
            DELIVER_RECEIPT,
            args=DeliverReceiptArgs(
                payment_id="pay_9",
                delivery=PostDelivery(
                    method="post", lines=["Acme Ltd", "1 Main Street"], postcode="AB1 2CD"
                ),
            ),
        ),
    ]

    # Inside our own transaction: the order row and its invoice job commit together.
    async with app.connection() as conn, conn.transaction():
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS demo_orders (id text PRIMARY KEY, total_cents int)"
        )
        await conn.execute(
            "INSERT INTO demo_orders VALUES ('o-1002', 4200) ON CONFLICT (id) DO NOTHING"
        )
        ids.append(
            await app.enqueue(
                SEND_INVOICE,
                args={
                    "order_id": "o-1002",
                    "customer": "billing@globex.example",
                    "amount": {"amount_cents": 4200, "currency": "GBP"},
                },
                connection=conn,
            )
        )
    print(f"[producer] enqueued jobs {ids} (one inside a database transaction)")
    return ids


async def show_rejected_args() -> None:
    try:
        await app.enqueue(SEND_INVOICE, args={"order_id": "", "customer": "not-an-email"})
    except InvalidArgumentsError as exc:
        print(f"[producer] rejected at enqueue, nothing written: {exc}")


async def wait_until_finished(ids: list[int], timeout: float = 60) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        jobs = [await app.get_job(job_id) for job_id in ids]
        if all(job.state in (JobState.DONE, JobState.DEAD) for job in jobs):
            for job in jobs:
                print(f"[producer] job {job.id} {job.task_name}: {job.state.value}")
            return all(job.state is JobState.DONE for job in jobs)
        await asyncio.sleep(0.2)
    print("[producer] jobs did not finish in time: is the consumer running?")
    return False


async def main() -> int:
    await app.setup()
    try:
        ids = await enqueue_work()
        await show_rejected_args()
        return 0 if await wait_until_finished(ids) else 1
    finally:
        await app.close()


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
