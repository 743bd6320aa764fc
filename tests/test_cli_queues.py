"""``soniq queues list|pause|resume|set`` and the paused column of ``soniq status``, run as
users run them."""

from __future__ import annotations

import json

import asyncpg

from soniq import Soniq
from tests.test_cli import assert_clean_failure, soniq_cli


async def test_queues_set_pause_resume_and_list(
    app: Soniq, python: str, subprocess_env: dict[str, str], db: asyncpg.Connection, schema: str
) -> None:
    env = subprocess_env
    await app.enqueue("anything.at_all", {}, queue="billing")
    made = soniq_cli(
        python, env, "queues", "set", "billing", "--concurrency", "5", "--rate-limit",
        "1000/min", "--partition-by", "customer_id, region",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "billing" in made.stdout and "1000/min" in made.stdout
    row = await db.fetchrow(f"SELECT * FROM {schema}.queue_settings WHERE queue = 'billing'")
    assert (row["concurrency"], row["rate_limit"]) == (5, 1000)
    assert row["partition_by"] == ["customer_id", "region"]

    assert soniq_cli(python, env, "queues", "pause", "billing").returncode == 0
    status = soniq_cli(python, env, "status")
    assert "billing (paused)" in status.stdout, status.stdout
    listed = soniq_cli(python, env, "queues", "list", "--json")
    [shown] = json.loads(listed.stdout)
    assert shown["paused"] and shown["concurrency"] == 5 and shown["rate_limit"] == "1000/min"

    resumed = soniq_cli(python, env, "queues", "resume", "billing")
    assert resumed.returncode == 0, resumed.stderr
    cleared = soniq_cli(
        python, env, "queues", "set", "billing", "--concurrency", "none", "--rate-limit",
        "none", "--partition-by", "none",
    )  # fmt: skip
    assert cleared.returncode == 0, cleared.stderr
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.queue_settings") == 0


async def test_queues_set_refuses_bad_values_without_a_traceback(
    app: Soniq, python: str, subprocess_env: dict[str, str], db: asyncpg.Connection, schema: str
) -> None:
    bad_rate = soniq_cli(python, subprocess_env, "queues", "set", "billing", "--rate-limit", "9")
    assert_clean_failure(bad_rate, "rate_limit must look like '100/s'")
    bad_count = soniq_cli(python, subprocess_env, "queues", "set", "billing", "--concurrency", "x")
    assert bad_count.returncode == 2 and "Traceback" not in bad_count.stderr
    assert "not a whole number" in bad_count.stderr
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.queue_settings") == 0
