"""Two versions of the ``billing.send_invoice`` contract, as two stub-package releases
would define them: v1 has ``amount`` in whole units, v2 ``amount_cents`` and ``currency``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from soniq import task_ref


class SendInvoiceV1(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str
    amount: int


class SendInvoiceV2(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str
    amount_cents: int
    currency: str


SEND_INVOICE_V1 = task_ref(
    name="billing.send_invoice",
    args_model=SendInvoiceV1,
    default_queue="billing",
    version=1,
    fingerprint="sha256:v1",
)
SEND_INVOICE_V2 = task_ref(
    name="billing.send_invoice", args_model=SendInvoiceV2, default_queue="billing", version=2
)
