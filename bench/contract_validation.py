"""What checking a union-heavy contract costs per job: its generated model's validation.

The contract below uses what a pydantic type cannot state alone (a discriminated ``oneOf``,
an ``anyOf`` of scalars, ``multipleOf``, ``uniqueItems``, ``dependentRequired``), so its
model also checks its rules as data (the package's ``RuledModel``, jsonschema). The same
args are validated by a plain model of the same fields, generated from a contract without
those keywords. Both are timed the way a worker validates args at dispatch:
``model_validate_json`` of the stored JSON, best of alternating rounds.

Run alone with ``python -m bench.contract_validation``; ``python -m bench`` records it in the
validation-cost scenario.
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from soniq_codegen import check_contracts
from soniq_codegen.render import render_package

_VARIANTS = [
    {
        "title": "CardPayment",
        "type": "object",
        "properties": {
            "kind": {"const": "card"},
            "last4": {"type": "string", "pattern": "^[0-9]{4}$"},
            "expires": {"type": "string", "pattern": "^[0-9]{2}/[0-9]{2}$"},
        },
        "required": ["kind", "last4"],
        "additionalProperties": False,
    },
    {
        "title": "BankPayment",
        "type": "object",
        "properties": {"kind": {"const": "bank"}, "iban": {"type": "string", "minLength": 15}},
        "required": ["kind", "iban"],
        "additionalProperties": False,
    },
    {
        "title": "WalletPayment",
        "type": "object",
        "properties": {"kind": {"const": "wallet"}, "wallet_id": {"type": "string"}},
        "required": ["kind", "wallet_id"],
        "additionalProperties": False,
    },
]
_PROPERTIES: dict[str, Any] = {
    "order_id": {"type": "string", "minLength": 1},
    "payment": {"oneOf": _VARIANTS},
    "reference": {"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0}]},
    "amount": {"type": "number", "minimum": 0, "multipleOf": 0.01},
    "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
    "coupon": {"type": "string"},
    "coupon_owner": {"type": "string"},
}
UNION_CONTRACT = {
    "task": "bench.union_heavy",
    "args": {
        "title": "UnionArgs",
        "type": "object",
        "properties": _PROPERTIES,
        "required": ["order_id", "payment", "amount"],
        "dependentRequired": {"coupon": ["coupon_owner"]},
        "additionalProperties": False,
    },
}
#: The same fields with only what pydantic states alone: no rules checked as data.
PLAIN_CONTRACT = {
    "task": "bench.plain",
    "args": {
        "title": "PlainArgs",
        "type": "object",
        "properties": {
            **_PROPERTIES,
            "payment": {"$ref": "#/$defs/card"},
            "reference": {"type": "string"},
            "amount": {"type": "number", "minimum": 0},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["order_id", "payment", "amount"],
        "additionalProperties": False,
    },
    "$defs": {"card": {**_VARIANTS[0], "title": "PlainCard"}},
}
ARGS = {
    "order_id": "o-1001",
    "payment": {"kind": "card", "last4": "4242", "expires": "12/29"},
    "reference": "r-77",
    "amount": 129.99,
    "tags": ["web", "gift"],
    "coupon": "XMAS",
    "coupon_owner": "marketing",
}
ROUNDS = 7
CALLS = 2000


def _models(root: Path) -> tuple[Any, Any]:
    contracts = root / "contracts"
    contracts.mkdir()
    (contracts / "union.yaml").write_text(yaml.safe_dump(UNION_CONTRACT))
    (contracts / "plain.yaml").write_text(yaml.safe_dump(PLAIN_CONTRACT))
    for path, data in render_package(check_contracts(contracts), "bench_cv", "0.1.0").items():
        target = root / "out" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    sys.path.insert(0, str(root / "out"))
    try:
        models = importlib.import_module("bench_cv.models")
    finally:
        sys.path.remove(str(root / "out"))
    return models.UnionArgs, models.PlainArgs


def measure() -> dict[str, float]:
    """Microseconds per validation of one job's args, union-heavy and plain (best round)."""
    payload = json.dumps(ARGS, separators=(",", ":"))
    with tempfile.TemporaryDirectory() as tmp:
        union, plain = _models(Path(tmp))
        best = {"union": float("inf"), "plain": float("inf")}
        for _ in range(ROUNDS):
            for name, model in (("union", union), ("plain", plain)):
                start = time.perf_counter()
                for _ in range(CALLS):
                    model.model_validate_json(payload)
                best[name] = min(best[name], (time.perf_counter() - start) / CALLS * 1e6)
    return {"union_model_us_per_job": best["union"], "plain_model_us_per_job": best["plain"]}


def main() -> None:
    result = measure()
    print(
        f"union-heavy model: {result['union_model_us_per_job']:.1f} us per job; "
        f"plain model of the same fields: {result['plain_model_us_per_job']:.1f} us"
    )


if __name__ == "__main__":
    main()
