"""TaskRef is generic in its args model: mypy accepts the ref's own model and rejects another."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SNIPPET = """
from pydantic import BaseModel
from soniq import Soniq, task_ref

class SendInvoiceArgs(BaseModel):
    order_id: str
    customer: str

class RefundArgs(BaseModel):
    payment_id: str

SEND_INVOICE = task_ref(name="billing.send_invoice", args_model=SendInvoiceArgs)

async def produce(app: Soniq) -> int:
    await app.enqueue(SEND_INVOICE, args={{"order_id": "o1", "customer": "acme"}})
    return await app.enqueue(SEND_INVOICE, args={args})
"""


def _mypy(tmp_path: Path, args: str) -> subprocess.CompletedProcess[str]:
    source = tmp_path / "producer.py"
    source.write_text(SNIPPET.format(args=args))
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(source)],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_mypy_accepts_the_refs_model_and_rejects_another(tmp_path: Path) -> None:
    good = _mypy(tmp_path, 'SendInvoiceArgs(order_id="o1", customer="acme")')
    assert good.returncode == 0, good.stdout
    bad = _mypy(tmp_path, 'RefundArgs(payment_id="p1")')
    assert bad.returncode == 1, bad.stdout
    # The one error is on the enqueue with the wrong model (mypy: it cannot make ArgsT
    # both SendInvoiceArgs, from the ref, and RefundArgs, from the args).
    errors = [line for line in bad.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1 and "producer.py:16:" in errors[0], bad.stdout
