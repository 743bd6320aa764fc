"""The billing consumer service: runs the billing tasks.

It imports only the generated contract package `billing_tasks` and the soniq runtime,
never the producer. Start it with:

    SONIQ_DATABASE_URL=postgresql://... python examples/consumer/consumer.py
"""

from __future__ import annotations

import asyncio
import logging

from billing_tasks import (
    CANCEL_SUBSCRIPTION,
    CHARGE_SUBSCRIPTION,
    DELIVER_RECEIPT,
    REFUND_PAYMENT,
    SEND_INVOICE,
    EmailDelivery,
    Money,
    PostDelivery,
    SmsDelivery,
)

from soniq import JobContext, Soniq

app = Soniq()  # SONIQ_DATABASE_URL, or "embedded"


def _money(amount: Money) -> str:
    return f"{amount.amount_cents / 100:.2f} {amount.currency}"


@app.job(SEND_INVOICE)
async def send_invoice(
    order_id: str,
    customer: str,
    amount: Money,
    ctx: JobContext,
    **optional: object,
) -> None:
    total = _money(amount)
    print(f"[consumer] job {ctx.job_id}: invoice {order_id} for {total} sent to {customer}")


@app.job(REFUND_PAYMENT)
async def refund_payment(payment_id: object, amount: Money, reason: str, **_: object) -> None:
    print(f"[consumer] refunded {_money(amount)} of payment {payment_id} ({reason})")


@app.job(CHARGE_SUBSCRIPTION)
async def charge_subscription(
    subscription_id: str, plan: str, period_start: object, seats: int, **_: object
) -> None:
    print(f"[consumer] charged {subscription_id}: {seats} seat(s) of {plan} from {period_start}")


@app.job(CANCEL_SUBSCRIPTION)
def cancel_subscription(subscription_id: str, immediately: bool, **_: object) -> None:
    # A plain function: Soniq runs it in a worker thread.
    when = "now" if immediately else "at period end"
    print(f"[consumer] cancelled {subscription_id} {when}")


@app.job(DELIVER_RECEIPT)
async def deliver_receipt(
    payment_id: str, delivery: EmailDelivery | PostDelivery | SmsDelivery, copies: int
) -> None:
    # The variants are classes: match on them.
    match delivery:
        case EmailDelivery(address=address):
            where = f"by email to {address}"
        case PostDelivery(lines=lines, postcode=postcode):
            where = f"by post to {', '.join(lines)}, {postcode}"
        case SmsDelivery(phone=phone):
            where = f"by text message to {phone}"
    print(f"[consumer] receipt of {payment_id} sent {where} ({copies} copy/copies)")


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[consumer] %(levelname)s %(message)s")
    await app.setup()
    print("[consumer] ready: serving queue 'billing' (Ctrl-C or SIGTERM to stop)", flush=True)
    try:
        await app.run_worker(queues=["billing"], concurrency=8)
    finally:
        await app.close()


if __name__ == "__main__":
    asyncio.run(main())
