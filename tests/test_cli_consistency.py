"""The CLI commands users expect to behave alike: setup reports what it applied, purge --all
asks first (or --yes, or --dry-run), enqueue from a shell, every command takes --database-url
and --schema, help summaries are whole sentences, timestamps are ISO 8601 in text and JSON,
purge and replay fail alike on jobs that are not dead, worker warns of unserved queues."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone

import asyncpg
import click
import pytest
from click.testing import CliRunner

from soniq import Soniq
from soniq.cli import main
from soniq.db.migrate import load_migrations
from tests.helpers import count_jobs, start_worker, stop_worker, wait_until
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
    first_line = stderr.splitlines()[0]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 INFO ", first_line), stderr
    pinned = _cli(python, env, "worker", "tests.apps.factory_app:pinned", "--schema", schema)
    assert_clean_failure(pinned, "was created with schema 'pinned', not --schema")


def _commands(
    group: click.Group, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


def test_every_command_takes_database_url_and_schema() -> None:
    leaves = [(path, c) for path, c in _commands(main) if not isinstance(c, click.Group)]
    assert len(leaves) >= 12
    for path, command in leaves:
        names = {param.name for param in command.params}
        assert {"database_url", "schema"} <= names, " ".join(path)


def test_every_help_summary_is_a_whole_sentence() -> None:
    groups = [((), main)] + [(p, c) for p, c in _commands(main) if isinstance(c, click.Group)]
    for path, _group in groups:
        shown = CliRunner().invoke(main, [*path, "--help"], terminal_width=80)
        assert shown.exit_code == 0, shown.output
        listed = shown.output.split("Commands:\n", 1)[1].splitlines()
        assert listed
        for line in listed:
            _name, summary = line.split(maxsplit=1)
            assert summary.endswith(".") and not summary.endswith("..."), (path, line)


_ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"
_OTHER_TIME = re.compile(r"\d{4}-\d\d-\d\d[ _]\d\d:\d\d|\d\d:\d\d:\d\d\.\d")


def _timestamps(text: str) -> list[datetime]:
    assert not _OTHER_TIME.search(text), text
    return [datetime.fromisoformat(found) for found in re.findall(_ISO, text)]


async def test_timestamps_are_iso_8601_in_text_and_json(
    app: Soniq, python: str, subprocess_env: dict[str, str]
) -> None:
    await _two_dead(app)
    [dead, _] = await app.dead_letter.list()
    assert dead.finished_at is not None
    expected = dead.finished_at.astimezone(timezone.utc).replace(microsecond=0)
    for args in (["jobs", "list"], ["jobs", "show", str(dead.id)], ["dead-letter", "list"]):
        text = _cli(python, subprocess_env, *args)
        as_json = _cli(python, subprocess_env, *args, "--json")
        assert text.returncode == as_json.returncode == 0, text.stderr + as_json.stderr
        assert _timestamps(text.stdout) and _timestamps(as_json.stdout), args
        json.loads(as_json.stdout)
        if args[0] != "jobs" or args[1] == "show":
            assert expected in _timestamps(text.stdout) and expected in _timestamps(as_json.stdout)
    status = _cli(python, subprocess_env, "status", "--json")
    assert status.returncode == 0, status.stderr
    _timestamps(status.stdout)


async def test_dead_letter_list_prints_a_header(
    app: Soniq, python: str, subprocess_env: dict[str, str]
) -> None:
    await _two_dead(app)
    listed = _cli(python, subprocess_env, "dead-letter", "list")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["ID", "TASK", "QUEUE", "ATTEMPTS", "DIED", "ERROR"]
    assert len(rows) == 2 and all("gone.task" in row for row in rows)


async def test_purge_and_replay_fail_alike_on_jobs_that_are_not_dead(
    app: Soniq, python: str, subprocess_env: dict[str, str], db: asyncpg.Connection, schema: str
) -> None:
    queued = await app.enqueue("live.task", {})
    for verb in ("replay", "purge"):
        result = _cli(python, subprocess_env, "dead-letter", verb, str(queued), "987654321")
        assert_clean_failure(result, "not dead (or not found)")
    assert await count_jobs(db, schema, "state = 'queued'") == 1


async def test_worker_warns_when_registered_tasks_queues_are_not_served(
    app: Soniq, caplog: pytest.LogCaptureFixture
) -> None:
    @app.job(name="mail.send", queue="mail")
    async def send() -> None:
        return None

    @app.job(name="reports.build", queue="reports")
    async def build() -> None:
        return None

    caplog.set_level(logging.INFO, logger="soniq.worker")
    worker = start_worker(app, queues=["reports"])

    async def started() -> bool:
        return "started:" in caplog.text

    await wait_until(started)
    await stop_worker(worker)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "tasks mail.send go to queue mail, which this worker does not serve (queues=reports): "
        "add it to the worker's queues, or run another worker for it"
    ]
