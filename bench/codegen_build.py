"""Benchmark: build 200 task contracts in a cold process, then a no-change rebuild.

Two sets: contracts of plain fields, and the same contracts each also using a discriminated
``oneOf``, an ``anyOf`` of scalars, ``multipleOf``, ``uniqueItems`` and ``dependentRequired``
(the keywords checked as data).

Each build runs ``soniq-codegen``'s entry point in a fresh process. Run with
``python bench/codegen_build.py``; prints the wall-clock times in seconds.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

COUNT = 200


def _variant(method: str, field: str) -> dict[str, object]:
    return {
        "type": "object",
        "properties": {"method": {"const": method}, field: {"type": "string"}},
        "required": ["method", field],
        "additionalProperties": False,
    }


#: What the second set adds to every contract's args.
UNIONS: dict[str, Any] = {
    "properties": {
        "delivery": {"oneOf": [_variant("email", "to"), _variant("post", "street")]},
        "reference": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        "step": {"type": "number", "multipleOf": 0.5},
        "labels": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
    },
    "dependentRequired": {"step": ["reference"]},
}


def write_contracts(root: Path, unions: bool) -> None:
    (root / "common").mkdir(parents=True)
    (root / "common" / "money.yaml").write_text(
        yaml.safe_dump(
            {
                "title": "Money",
                "type": "object",
                "properties": {
                    "amount_cents": {"type": "integer", "minimum": 0},
                    "currency": {"type": "string", "enum": ["EUR", "GBP", "USD"]},
                },
                "required": ["amount_cents", "currency"],
                "additionalProperties": False,
            }
        )
    )
    for i in range(COUNT):
        contract = {
            "task": f"bench.task_{i:03d}",
            "version": 1 + i % 3,
            "default_queue": "bench",
            "description": f"Benchmark task number {i}.",
            "args": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "string", "minLength": 1, "maxLength": 64},
                    "amount": {"$ref": "../common/money.yaml"},
                    "due_at": {"type": "string", "format": "date-time"},
                    "plan": {"type": "string", "enum": ["free", "pro", "enterprise"]},
                    "note": {"type": ["string", "null"]},
                    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
                    "retries": {"type": "integer", "minimum": 0, "default": 3},
                    "address": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
                    },
                },
                "required": ["order_id", "amount"],
                "additionalProperties": False,
            },
        }
        if unions:
            contract["args"]["properties"].update(UNIONS["properties"])
            contract["args"]["dependentRequired"] = UNIONS["dependentRequired"]
        group = root / f"group_{i % 10}"
        group.mkdir(exist_ok=True)
        (group / f"task_{i:03d}.yaml").write_text(yaml.safe_dump(contract))


def timed_build(contracts: Path, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from soniq_codegen.entry import main; main()",
            "build",
            str(contracts),
            "-o",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main() -> None:
    for unions, label in ((False, "plain fields"), (True, "with unions")):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            write_contracts(root / "contracts", unions)
            cold = timed_build(root / "contracts", root / "bench_tasks")
            again = timed_build(root / "contracts", root / "bench_tasks")
        print(
            f"{label}: cold build of {COUNT} contracts {cold:.2f} s, "
            f"no-change rebuild {again:.2f} s"
        )


if __name__ == "__main__":
    main()
