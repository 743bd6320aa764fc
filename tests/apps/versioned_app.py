"""A consumer at contract version 2 of ``billing.send_invoice``, with an upcaster from v1,
for the `soniq contracts check --app` test."""

from __future__ import annotations

from typing import Any

from soniq import Soniq
from tests.apps.invoice_contracts import SEND_INVOICE_V2

app = Soniq()


@app.job(SEND_INVOICE_V2)
async def send_invoice(order_id: str, amount_cents: int, currency: str) -> None:
    return None


@app.upcaster(SEND_INVOICE_V2, from_version=1)
def amount_in_cents(args: dict[str, Any]) -> dict[str, Any]:
    return {"order_id": args["order_id"], "amount_cents": args["amount"] * 100, "currency": "EUR"}
