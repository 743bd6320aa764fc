"""Commands that report: ``soniq status``, ``soniq jobs list`` and ``soniq contracts check``."""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import asdict
from typing import Any

import click

from soniq.app import Soniq
from soniq.cli.commands import jobs, main
from soniq.cli.common import (
    database_option,
    friendly_errors,
    job_dict,
    json_option,
    load_app,
    run,
    schema_option,
    with_app,
)
from soniq.contracts import ContractsReport
from soniq.errors import ConfigurationError
from soniq.job import JobState
from soniq.status import Status
from soniq.task_ref import TaskRef


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _print_status(status: Status) -> None:
    _table(
        ["QUEUE", "QUEUED", "SCHEDULED", "RUNNING", "DONE/1H", "DEAD", "OLDEST WAIT"],
        [
            [
                q.queue,
                str(q.queued),
                str(q.scheduled),
                str(q.running),
                str(q.done_last_hour),
                str(q.dead),
                _age(q.oldest_wait_seconds),
            ]
            for q in status.queues
        ],
    )
    click.echo()
    _table(
        ["WORKER", "QUEUES", "CONCURRENCY", "HEARTBEAT AGE"],
        [
            [
                w.id,
                ",".join(w.queues) if w.queues else "(all)",
                str(w.concurrency),
                _age(w.heartbeat_age_seconds),
            ]
            for w in status.workers
        ],
    )
    for waiting in status.waiting_for_newer_consumer:
        click.echo(
            f"\n{waiting.count} job(s) of {waiting.task_name} v{waiting.contract_version} wait "
            "for a newer consumer: no live worker runs that contract version yet"
        )


@main.command()
@database_option
@schema_option
@json_option
@friendly_errors
def status(database_url: str | None, schema: str | None, as_json: bool) -> None:
    """Queues (queued, scheduled, running, done in the last hour, dead, oldest wait),
    live workers with heartbeat age, and jobs waiting for a newer consumer."""
    result = run(lambda: with_app(database_url, schema, lambda app: app.status()))
    if as_json:
        click.echo(json.dumps(asdict(result), indent=2, default=str))
    else:
        _print_status(result)


def _refs_in_package(name: str) -> list[TaskRef[Any]]:
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import contract package {name!r}: {exc}") from exc
    refs = [value for value in vars(module).values() if isinstance(value, TaskRef)]
    if not refs:
        raise ConfigurationError(f"package {name!r} exports no TaskRef constants")
    return refs


def _print_contracts(report: ContractsReport) -> None:
    if not report.versions:
        click.echo("no waiting jobs of these tasks")
    for v in report.versions:
        counts = ", ".join(f"{n} {state}" for state, n in sorted(v.counts.items()))
        version = "unversioned" if v.contract_version is None else f"v{v.contract_version}"
        mark = "ok  " if v.runnable else "FAIL"
        line = f"{mark} {v.task_name} {version} ({counts}): {v.verdict}"
        if v.current_version is not None:
            line += f" [current v{v.current_version}]"
        if v.invalid:
            line += f"; {v.invalid} job(s) fail validation, e.g. {v.first_error}"
        click.echo(line)
    for name in report.uncovered_tasks:
        click.echo(f"skip {name}: waiting jobs, but no contract for it was given")


@main.group()
def contracts() -> None:
    """Check contracts against the jobs that exist."""


@contracts.command("check")
@click.argument("package", required=False)
@click.option(
    "--app",
    "app_path",
    default=None,
    metavar="MODULE:APP",
    help="The consumer app: its registered refs and upcasters are used.",
)
@database_option
@schema_option
@json_option
@friendly_errors
def contracts_check(
    package: str | None,
    app_path: str | None,
    database_url: str | None,
    schema: str | None,
    as_json: bool,
) -> None:
    """Can the current contracts (PACKAGE, and the upcasters of --app) run every queued,
    scheduled and dead-lettered job? Exit 1 when some cannot."""
    if package is None and app_path is None:
        raise click.UsageError("name a contract PACKAGE, or --app MODULE:APP, or both")
    refs = _refs_in_package(package) if package is not None else None
    app = load_app(app_path) if app_path is not None else Soniq(database_url, schema=schema)

    async def go() -> ContractsReport:
        try:
            return await app.check_contracts(refs)
        finally:
            await app.close()

    report = run(go)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": report.ok,
                    "versions": [v.as_dict() for v in report.versions],
                    "uncovered_tasks": report.uncovered_tasks,
                },
                indent=2,
            )
        )
    else:
        _print_contracts(report)
    if not report.ok:
        sys.exit(1)


@jobs.command("list")
@click.option("--state", type=click.Choice([s.value for s in JobState]), default=None)
@click.option("--queue", default=None, help="Only this queue.")
@click.option("--task", "task_name", default=None, help="Only this task name.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1))
@database_option
@schema_option
@json_option
@friendly_errors
def jobs_list(
    state: str | None,
    queue: str | None,
    task_name: str | None,
    limit: int,
    database_url: str | None,
    schema: str | None,
    as_json: bool,
) -> None:
    """List jobs, newest first."""
    found = run(
        lambda: with_app(
            database_url,
            schema,
            lambda app: app.list_jobs(state=state, queue=queue, task_name=task_name, limit=limit),
        )
    )
    if as_json:
        click.echo(json.dumps([job_dict(job) for job in found], indent=2))
        return
    if not found:
        click.echo("no jobs")
        return
    _table(
        ["ID", "TASK", "QUEUE", "STATE", "ATTEMPTS", "ENQUEUED", "ERROR"],
        [
            [
                str(job.id),
                job.task_name,
                job.queue,
                job.state.value,
                f"{job.attempts}/{job.max_attempts}",
                f"{job.enqueued_at:%Y-%m-%d %H:%M:%S}",
                job.error.reason if job.error else "",
            ]
            for job in found
        ],
    )
