"""The ``soniq`` command line, run as users run it: a real process, real exit codes."""

from __future__ import annotations

import asyncio
import json
import subprocess

import asyncpg
import pytest

from soniq import Soniq
from tests.helpers import stop_worker, wait_until


def soniq_cli(python: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "soniq", *args], env=env, capture_output=True, text=True, timeout=60
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    for text in expected:
        assert text in output


async def test_setup_creates_the_schema(
    python: str, subprocess_env: dict[str, str], db: asyncpg.Connection, schema: str
) -> None:
    result = soniq_cli(python, subprocess_env, "setup")
    assert result.returncode == 0, result.stderr
    assert await db.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.jobs")
    again = soniq_cli(python, subprocess_env, "setup")
    assert again.returncode == 0, again.stderr


def test_unknown_module_is_a_clean_error(python: str, subprocess_env: dict[str, str]) -> None:
    result = soniq_cli(python, subprocess_env, "worker", "no_such_module:app")
    assert_clean_failure(result, "cannot import module 'no_such_module'")


def test_module_without_app_attribute_is_a_clean_error(
    python: str, subprocess_env: dict[str, str]
) -> None:
    result = soniq_cli(python, subprocess_env, "worker", "tests.apps.counting_app:nope")
    assert_clean_failure(result, "has no Soniq app named 'nope'")
    result = soniq_cli(python, subprocess_env, "worker", "tests.apps.counting_app")
    assert_clean_failure(result, "is not MODULE:APP")


def test_unreachable_database_never_prints_the_password(
    python: str, subprocess_env: dict[str, str]
) -> None:
    url = "postgresql://postgres:hunter2@127.0.0.1:1/postgres"
    result = soniq_cli(python, subprocess_env, "setup", "--database-url", url)
    assert_clean_failure(result, "cannot reach PostgreSQL")
    assert "hunter2" not in result.stdout + result.stderr


def test_missing_database_url_says_how_to_set_one(
    python: str, subprocess_env: dict[str, str]
) -> None:
    env = {k: v for k, v in subprocess_env.items() if k != "SONIQ_DATABASE_URL"}
    result = soniq_cli(python, env, "dead-letter", "list")
    assert_clean_failure(result, "SONIQ_DATABASE_URL")


def test_missing_schema_says_to_run_setup(python: str, subprocess_env: dict[str, str]) -> None:
    result = soniq_cli(python, subprocess_env, "dead-letter", "list")
    assert_clean_failure(result, "soniq setup")


async def test_dead_letter_list_replay_purge_and_job_show(
    app: Soniq, python: str, subprocess_env: dict[str, str], db: asyncpg.Connection, schema: str
) -> None:
    first = await app.enqueue("billing.gone", args={"order_id": 1})
    second = await app.enqueue("billing.gone", args={"order_id": 2})
    worker = asyncio.create_task(app.run_worker())
    await wait_until(
        lambda: db.fetchval(f"SELECT count(*) = 2 FROM {schema}.jobs WHERE state = 'dead'")
    )
    await stop_worker(worker)

    listed = soniq_cli(python, subprocess_env, "dead-letter", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    dead = json.loads(listed.stdout)
    assert {job["id"] for job in dead} == {first, second}
    assert {job["error"]["reason"] for job in dead} == {"Job not registered"}

    shown = soniq_cli(python, subprocess_env, "jobs", "show", str(first))
    assert shown.returncode == 0, shown.stderr
    assert "billing.gone" in shown.stdout and "Job not registered" in shown.stdout

    replayed = soniq_cli(python, subprocess_env, "dead-letter", "replay", str(first))
    assert replayed.returncode == 0, replayed.stderr
    row = await db.fetchrow(f"SELECT state, attempts FROM {schema}.jobs WHERE id = $1", first)
    assert (row["state"], row["attempts"]) == ("queued", 0)

    not_dead = soniq_cli(python, subprocess_env, "dead-letter", "replay", str(first))
    assert_clean_failure(not_dead, f"not dead (or not found): {first}")

    refused = soniq_cli(python, subprocess_env, "dead-letter", "purge")
    assert refused.returncode == 2
    purged = soniq_cli(python, subprocess_env, "dead-letter", "purge", "--all", "--yes")
    assert purged.returncode == 0 and "purged 1" in purged.stdout
    remaining = await db.fetch(f"SELECT id FROM {schema}.jobs ORDER BY id")
    assert [r["id"] for r in remaining] == [first]


@pytest.mark.parametrize("command", [["jobs", "show", "999999"]])
def test_missing_job_is_a_clean_error(
    python: str, subprocess_env: dict[str, str], command: list[str]
) -> None:
    setup = soniq_cli(python, subprocess_env, "setup")
    assert setup.returncode == 0
    result = soniq_cli(python, subprocess_env, *command)
    assert_clean_failure(result, "job 999999 does not exist")


async def test_status_shows_queues_and_live_workers(
    app: Soniq, python: str, subprocess_env: dict[str, str], db: asyncpg.Connection, schema: str
) -> None:
    later = await app.enqueue("billing.later", args={}, queue="billing", delay=3600)
    await app.enqueue("billing.gone", args={}, queue="billing")
    await app.enqueue("mail.send", args={}, queue="mail")
    await app.enqueue("mail.after", args={}, queue="mail", after=[later])  # waits an hour
    worker = asyncio.create_task(app.run_worker(queues=["billing"]))
    await wait_until(
        lambda: db.fetchval(f"SELECT count(*) = 1 FROM {schema}.jobs WHERE state = 'dead'")
    )
    await wait_until(lambda: db.fetchval(f"SELECT count(*) = 1 FROM {schema}.workers"))

    result = soniq_cli(python, subprocess_env, "status", "--json")
    text = soniq_cli(python, subprocess_env, "status")
    await stop_worker(worker)

    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    queues = {q["queue"]: q for q in status["queues"]}
    assert (queues["billing"]["scheduled"], queues["billing"]["dead"]) == (1, 1)
    assert (queues["mail"]["queued"], queues["mail"]["waiting"], queues["mail"]["dead"]) == (
        1,
        1,
        0,
    )
    assert queues["billing"]["waiting"] == 0
    assert queues["mail"]["oldest_wait_seconds"] >= 0
    [live] = status["workers"]
    assert live["queues"] == ["billing"] and live["heartbeat_age_seconds"] < 30
    assert text.returncode == 0 and "OLDEST WAIT" in text.stdout and live["id"] in text.stdout
    assert "WAITING" in text.stdout
    # A stopped worker removes its row.
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.workers") == 0


async def test_job_data_reaches_the_terminal_escaped_and_json_exactly(
    python: str, subprocess_env: dict[str, str], app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    hostile = "\x1b]0;owned\x07\u2028next"

    @app.job(name="strict.task")
    async def strict(n: int) -> None:
        return None

    # A producer without the model sends an extra key; the worker dead-letters the job with
    # an "invalid arguments" message that quotes the key.
    producer = Soniq(subprocess_env["SONIQ_DATABASE_URL"], schema=schema)
    job_id = await producer.enqueue("strict.task", {"n": 1, hostile: 1})
    await producer.close()
    assert await app.drain() == 1
    message = await db.fetchval(f"SELECT error_message FROM {schema}.jobs WHERE id = $1", job_id)
    assert hostile in message

    for args in (["jobs", "show", str(job_id)], ["dead-letter", "list"], ["jobs", "list"]):
        shown = soniq_cli(python, subprocess_env, *args)
        assert shown.returncode == 0, shown.stderr
        assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout, args
        assert "\u2028" not in shown.stdout, args
    assert (
        "\\x1b]0;owned\\x07\\u2028next"
        in soniq_cli(python, subprocess_env, "dead-letter", "list").stdout
    )
    exact = soniq_cli(python, subprocess_env, "jobs", "show", str(job_id), "--json")
    assert hostile in json.loads(exact.stdout)["error"]["message"]


async def test_worker_runs_the_app_a_factory_returns(
    app: Soniq, python: str, subprocess_env: dict[str, str]
) -> None:
    job_id = await app.enqueue("factory.hello", args={"name": "team"})
    worker = subprocess.Popen(
        [python, "-m", "soniq", "worker", "tests.apps.factory_app:create_app", "--factory"],
        env=subprocess_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert await app.get_result(job_id, timeout=30) == "hello team"
    finally:
        worker.terminate()
        _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr


def test_worker_factory_mistakes_are_clean_errors(
    python: str, subprocess_env: dict[str, str]
) -> None:
    result = soniq_cli(python, subprocess_env, "worker", "tests.apps.factory_app:create_app")
    assert_clean_failure(result, "is a function, not a Soniq app: pass --factory")
    result = soniq_cli(
        python, subprocess_env, "worker", "tests.apps.factory_app:not_an_app", "--factory"
    )
    assert_clean_failure(result, "the factory returned int, not a Soniq app")
    result = soniq_cli(python, subprocess_env, "worker", "tests.apps.counting_app:app", "--factory")
    assert_clean_failure(result, "--factory needs a function that returns a Soniq app")
