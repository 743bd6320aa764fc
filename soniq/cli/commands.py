"""Commands: setup, worker, jobs show, cancel, dead-letter list|replay|purge.

Exit codes: 0 success; 1 a Soniq error (printed as one line, never with a traceback or a
password); 2 a usage error; 130 interrupted before a worker was running.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta

import click

from soniq.app import Soniq
from soniq.cli.common import (
    database_option,
    fail,
    friendly_errors,
    job_dict,
    json_option,
    load_app,
    run,
    schema_option,
    with_app,
)
from soniq.dead_letter import Progress
from soniq.job import Job
from soniq.settings import resolve_schema

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _duration(_ctx: object, _param: object, value: str | None) -> timedelta | None:
    if value is None:
        return None
    match = re.fullmatch(r"(\d+)([smhd])", value.strip())
    if match is None:
        raise click.BadParameter(f"{value!r} is not a duration like 30s, 15m, 12h or 7d")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def _bulk_filters(fn: click.decorators.FC) -> click.decorators.FC:
    """--all and the filters that narrow it."""
    for decorator in reversed(
        [
            click.option("--all", "every", is_flag=True, help="Every dead job (matching filters)."),
            click.option("--task", "task_name", default=None, help="With --all: only this task."),
            click.option("--queue", default=None, help="With --all: only this queue."),
            click.option(
                "--older-than",
                default=None,
                callback=_duration,
                help="With --all: only jobs dead for longer than this (30s, 15m, 12h, 7d).",
            ),
        ]
    ):
        fn = decorator(fn)
    return fn


def _check_bulk(job_ids: tuple[int, ...], every: bool, filtered: bool) -> None:
    if bool(job_ids) == every:
        raise click.UsageError("give job ids, or --all (not both)")
    if filtered and not every:
        raise click.UsageError("--task, --queue and --older-than go with --all")


def _progress(verb: str) -> Progress:
    def report(done: int, total: int) -> None:
        click.echo(f"{verb} {done}/{total}", err=True)

    return report


def _print_job(job: Job) -> None:
    click.echo(f"job {job.id}  {job.task_name}  queue={job.queue}  state={job.state.value}")
    click.echo(f"  attempts   {job.attempts}/{job.max_attempts}   priority {job.priority}")
    click.echo(f"  enqueued   {job.enqueued_at:%Y-%m-%d %H:%M:%S%z}")
    if job.finished_at is not None:
        click.echo(f"  finished   {job.finished_at:%Y-%m-%d %H:%M:%S%z}")
    click.echo(f"  args       {json.dumps(job.args)}")
    if job.result is not None:
        click.echo(f"  result     {json.dumps(job.result)}")
    if job.error is not None:
        click.echo(f"  error      [{job.error.reason}] {job.error.message}")


@click.group()
@click.version_option(package_name="soniq")
def main() -> None:
    """Soniq: background jobs stored in PostgreSQL."""


@main.command()
@database_option
@schema_option
@friendly_errors
def setup(database_url: str | None, schema: str | None) -> None:
    """Create or upgrade the Soniq schema (safe to run concurrently)."""

    async def go(app: Soniq) -> None:
        await app.setup()

    run(lambda: with_app(database_url, schema, go))
    click.echo(f"schema {resolve_schema(schema)} is up to date")


@main.command()
@click.argument("app_path", metavar="MODULE:APP")
@click.option(
    "--queues", "-q", default=None, help="Comma-separated queues to serve (default: all)."
)
@click.option("--concurrency", "-c", default=10, show_default=True, type=click.IntRange(1))
@click.option(
    "--lease-seconds",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="How long a claim lasts without a heartbeat before other workers take the job back.",
)
@click.option(
    "--shutdown-timeout-seconds",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="On SIGTERM/SIGINT, how long running jobs may finish before they are released.",
)
@click.option(
    "--metrics-port",
    default=None,
    type=click.IntRange(0, 65535),
    help="Serve Prometheus metrics on this port (needs soniq[metrics]).",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@click.option("--log-level", default="INFO", show_default=True)
@friendly_errors
def worker(
    app_path: str,
    queues: str | None,
    concurrency: int,
    lease_seconds: float,
    shutdown_timeout_seconds: float,
    metrics_port: int | None,
    metrics_host: str,
    log_level: str,
) -> None:
    """Run a worker for the Soniq app at MODULE:APP until SIGTERM or SIGINT."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = load_app(app_path)
    queue_list = [q.strip() for q in queues.split(",") if q.strip()] if queues else None

    async def go() -> None:
        try:
            if metrics_port is not None:
                port = app.serve_metrics(metrics_port, metrics_host)
                logging.getLogger("soniq.worker").info(
                    "serving metrics at http://%s:%d/metrics", metrics_host, port
                )
            await app.run_worker(
                queue_list,
                concurrency=concurrency,
                lease=timedelta(seconds=lease_seconds),
                shutdown_timeout=timedelta(seconds=shutdown_timeout_seconds),
            )
        finally:
            await app.close()

    run(go)


@main.group()
def jobs() -> None:
    """Inspect jobs."""


@jobs.command("show")
@click.argument("job_id", type=int)
@database_option
@schema_option
@json_option
@friendly_errors
def jobs_show(job_id: int, database_url: str | None, schema: str | None, as_json: bool) -> None:
    """Show one job: state, attempts, args and last error."""
    job = run(lambda: with_app(database_url, schema, lambda app: app.get_job(job_id)))
    if as_json:
        click.echo(json.dumps(job_dict(job), indent=2))
    else:
        _print_job(job)


@main.group("dead-letter")
def dead_letter() -> None:
    """List, replay or purge dead-lettered jobs."""


@dead_letter.command("list")
@click.option("--task", "task_name", default=None, help="Only this task name.")
@click.option("--queue", default=None, help="Only this queue.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
@database_option
@schema_option
@json_option
@friendly_errors
def dead_letter_list(
    task_name: str | None,
    queue: str | None,
    limit: int,
    database_url: str | None,
    schema: str | None,
    as_json: bool,
) -> None:
    """List dead jobs, most recent first."""
    dead = run(
        lambda: with_app(
            database_url,
            schema,
            lambda app: app.dead_letter.list(task_name=task_name, queue=queue, limit=limit),
        )
    )
    if as_json:
        click.echo(json.dumps([job_dict(job) for job in dead], indent=2))
        return
    if not dead:
        click.echo("no dead jobs")
    for job in dead:
        reason = f"[{job.error.reason}] {job.error.message}" if job.error else ""
        click.echo(f"{job.id}\t{job.task_name}\t{job.queue}\t{reason}")


@dead_letter.command("replay")
@click.argument("job_ids", nargs=-1, type=int)
@_bulk_filters
@database_option
@schema_option
@friendly_errors
def dead_letter_replay(
    job_ids: tuple[int, ...],
    every: bool,
    task_name: str | None,
    queue: str | None,
    older_than: timedelta | None,
    database_url: str | None,
    schema: str | None,
) -> None:
    """Send dead jobs back to their queue with attempts reset: the given ids, or --all
    (optionally filtered), in batches with a progress line on stderr."""
    _check_bulk(job_ids, every, any(f is not None for f in (task_name, queue, older_than)))
    if every:
        count = run(
            lambda: with_app(
                database_url,
                schema,
                lambda app: app.dead_letter.replay_all(
                    task_name=task_name,
                    queue=queue,
                    older_than=older_than,
                    progress=_progress("replayed"),
                ),
            )
        )
        click.echo(f"replayed {count} job(s)")
        return
    replayed = run(
        lambda: with_app(database_url, schema, lambda app: app.dead_letter.replay(job_ids))
    )
    click.echo(f"replayed {len(replayed)} job(s)")
    missing = sorted(set(job_ids) - set(replayed))
    if missing:
        fail(f"not dead (or not found): {', '.join(map(str, missing))}")


@dead_letter.command("purge")
@click.argument("job_ids", nargs=-1, type=int)
@_bulk_filters
@database_option
@schema_option
@friendly_errors
def dead_letter_purge(
    job_ids: tuple[int, ...],
    every: bool,
    task_name: str | None,
    queue: str | None,
    older_than: timedelta | None,
    database_url: str | None,
    schema: str | None,
) -> None:
    """Delete the given dead jobs, or --all (optionally filtered), in batches with a
    progress line on stderr."""
    _check_bulk(job_ids, every, any(f is not None for f in (task_name, queue, older_than)))
    if every:
        count = run(
            lambda: with_app(
                database_url,
                schema,
                lambda app: app.dead_letter.purge_all(
                    task_name=task_name,
                    queue=queue,
                    older_than=older_than,
                    progress=_progress("purged"),
                ),
            )
        )
    else:
        count = run(
            lambda: with_app(database_url, schema, lambda app: app.dead_letter.purge(job_ids))
        )
    click.echo(f"purged {count} dead job(s)")


@main.command()
@click.argument("job_ids", nargs=-1, type=int, required=True)
@database_option
@schema_option
@friendly_errors
def cancel(job_ids: tuple[int, ...], database_url: str | None, schema: str | None) -> None:
    """Cancel jobs: queued ones at once, running ones are asked to stop."""

    async def go(app: Soniq) -> list[int]:
        return [job_id for job_id in job_ids if await app.cancel(job_id)]

    cancelled = run(lambda: with_app(database_url, schema, go))
    click.echo(f"cancelled {len(cancelled)} job(s)")
    missing = sorted(set(job_ids) - set(cancelled))
    if missing:
        fail(f"already finished (or not found): {', '.join(map(str, missing))}")
