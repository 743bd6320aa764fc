"""The CLI commands users expect to behave alike: setup reports what it applied, purge --all
asks first (or --yes, or --dry-run), enqueue from a shell, worker takes --database-url and
--schema like every other command."""

from __future__ import annotations

import subprocess

import asyncpg

from soniq import Soniq
from soniq.db.migrate import load_migrations
from tests.helpers import count_jobs
from tests.test_cli import assert_clean_failure, soniq_cli


def _cli(
    python: str, env: dict[str, str], *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "soniq", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_setup_says_what_it_applied(
    python: str, subprocess_env: dict[str, str], schema: str
) -> None:
    first = soniq_cli(python, subprocess_env, "setup")
    assert first.returncode == 0, first.stderr
    versions = [m.version for m in load_migrations()]
    listed = ", ".join(f"{v:04d}" for v in versions)
    assert first.stdout == (
        f"schema {schema}: applied {len(versions)} migration(s) ({listed}); up to date\n"
    )
    again = soniq_cli(python, subprocess_env, "setup")
    assert again.stdout == f"schema {schema} is up to date: no migration to apply\n"


async def _two_dead(app: Soniq) -> None:
    for n in range(2):
        await app.enqueue("gone.task", {"n": n})
    assert await app.drain() == 2  # no handler: dead-lettered


async def test_purge_all_asks_first_unless_yes_and_has_a_dry_run(
    app: Soniq, python: str, subprocess_env: dict[str, str], db: asyncpg.Connection, schema: str
) -> None:
    await _two_dead(app)
    dry = _cli(python, subprocess_env, "dead-letter", "purge", "--all", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout == "would purge 2 dead job(s); purged none (--dry-run)\n"
    declined = _cli(python, subprocess_env, "dead-letter", "purge", "--all", stdin="n\n")
    assert declined.returncode == 1
    assert f"purge 2 dead job(s) from schema {schema}? [y/N]" in declined.stdout
    no_terminal = _cli(python, subprocess_env, "dead-letter", "purge", "--all")
    assert no_terminal.returncode == 1  # nothing answered: nothing purged
    assert await count_jobs(db, schema, "state = 'dead'") == 2
    usage = _cli(python, subprocess_env, "dead-letter", "purge", "1", "--yes")
    assert usage.returncode == 2 and "--yes and --dry-run go with --all" in usage.stderr
    confirmed = _cli(python, subprocess_env, "dead-letter", "purge", "--all", stdin="y\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert "purged 2 dead job(s)" in confirmed.stdout
    assert await count_jobs(db, schema) == 0


async def test_enqueue_from_a_shell(
    app: Soniq, python: str, subprocess_env: dict[str, str], db: asyncpg.Connection, schema: str
) -> None:
    done = _cli(
        python,
        subprocess_env,
        "enqueue",
        "reports.build",
        "--args",
        '{"report": 7}',
        "--queue",
        "reports",
        "--dedup-key",
        "report-7",
    )
    assert done.returncode == 0, done.stderr
    [job] = await app.list_jobs()
    assert done.stdout == f"enqueued job {job.id}\n"
    assert (job.task_name, job.args, job.queue) == ("reports.build", {"report": 7}, "reports")
    again = _cli(python, subprocess_env, "enqueue", "reports.build", "--dedup-key", "report-7")
    assert again.stdout == f"job {job.id} already holds dedup key 'report-7': nothing enqueued\n"
    for bad in ("{not json", "[1, 2]"):
        refused = _cli(python, subprocess_env, "enqueue", "reports.build", "--args", bad)
        assert refused.returncode == 2 and "--args" in refused.stderr
    name = _cli(python, subprocess_env, "enqueue", "Reports!")
    assert_clean_failure(name, "invalid task name 'Reports!'")
    assert await count_jobs(db, schema) == 1


async def test_worker_takes_database_url_and_schema_options(
    app: Soniq, python: str, subprocess_env: dict[str, str], database_url: str, schema: str
) -> None:
    job_id = await app.enqueue("factory.hello", args={"name": "options"})
    env = {
        k: v for k, v in subprocess_env.items() if k not in ("SONIQ_DATABASE_URL", "SONIQ_SCHEMA")
    }
    worker = subprocess.Popen(
        [python, "-m", "soniq", "worker", "tests.apps.factory_app:create_app", "--factory",
         "--database-url", database_url, "--schema", schema],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert await app.get_result(job_id, timeout=30) == "hello options"
    finally:
        worker.terminate()
        _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    pinned = _cli(python, env, "worker", "tests.apps.factory_app:pinned", "--schema", schema)
    assert_clean_failure(pinned, "was created with schema 'pinned', not --schema")
