"""The product end to end: contracts → generated package → a producer and a consumer that
share nothing else, on a real database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import asyncpg
import pytest

from soniq import Soniq
from tests.helpers import REPO, wait_until


@pytest.fixture
def billing_tasks_site(tmp_path: Path, python: str) -> Path:
    """schemas/ built with soniq-codegen and pip-installed into a private site directory."""
    package = tmp_path / "billing_tasks"
    site = tmp_path / "site"
    build = subprocess.run(
        [
            str(Path(python).parent / "soniq-codegen"),
            "build",
            str(REPO / "schemas"),
            "-o",
            str(package),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr
    install = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(package),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert install.returncode == 0, install.stderr
    return site


async def test_producer_and_consumer_share_only_the_generated_package(
    billing_tasks_site: Path,
    subprocess_env: dict[str, str],
    python: str,
    app: Soniq,
    db: asyncpg.Connection,
    schema: str,
    tmp_path: Path,
) -> None:
    env = dict(subprocess_env)
    env["PYTHONPATH"] = os.pathsep.join([str(billing_tasks_site), env["PYTHONPATH"]])
    log = (tmp_path / "consumer.log").open("wb")
    consumer = subprocess.Popen(
        [python, str(REPO / "examples/consumer/consumer.py")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        producer = subprocess.run(
            [python, str(REPO / "examples/producer/producer.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert producer.returncode == 0, producer.stdout + producer.stderr
        assert "rejected at enqueue, nothing written" in producer.stdout

        jobs = await db.fetch(
            f"SELECT task_name, state, contract_version, contract_fingerprint "
            f"FROM {schema}.jobs ORDER BY id"
        )
        # Six valid jobs, all done; the rejected one was never written.
        assert [j["state"] for j in jobs] == ["done"] * 6
        assert {j["task_name"] for j in jobs} == {
            "billing.send_invoice",
            "billing.refund_payment",
            "billing.charge_subscription",
            "billing.cancel_subscription",
            "billing.deliver_receipt",
        }
        lock = json.loads((billing_tasks_site / "billing_tasks" / "soniq.lock.json").read_text())
        assert all(j["contract_version"] is not None for j in jobs)
        assert {j["contract_fingerprint"] for j in jobs} <= {
            task["fingerprint"] for task in _lock_tasks(lock)
        }
        order = await db.fetchval("SELECT total_cents FROM demo_orders WHERE id = 'o-1002'")
        assert order == 4200

        # A job written by raw SQL with args that break the contract: the consumer
        # validates at dispatch and dead-letters it, without retrying.
        bad_id = await db.fetchval(
            f"INSERT INTO {schema}.jobs (task_name, queue, args, max_attempts) "
            "VALUES ('billing.send_invoice', 'billing', '{\"order_id\": 5}', 4) RETURNING id"
        )
        await wait_until(
            lambda: db.fetchval(f"SELECT state = 'dead' FROM {schema}.jobs WHERE id = $1", bad_id)
        )
        bad = await app.get_job(bad_id)
        assert bad.error is not None and bad.error.reason == "invalid arguments"
        assert bad.attempts == 1
        assert {tuple(e["loc"]) for e in bad.error.detail} >= {("order_id",), ("customer",)}
    finally:
        consumer.send_signal(signal.SIGTERM)
        exit_code = consumer.wait(timeout=30)
        log.close()
        await db.execute("DROP TABLE IF EXISTS demo_orders")
    assert exit_code == 0, (tmp_path / "consumer.log").read_text()


def _lock_tasks(lock: object) -> list[dict[str, object]]:
    """The per-task entries of a lock file (a list, or a mapping keyed by task name)."""
    if isinstance(lock, dict) and "tasks" in lock:
        lock = lock["tasks"]
    if isinstance(lock, dict):
        return [dict(entry, task=name) for name, entry in lock.items()]
    assert isinstance(lock, list)
    return lock
