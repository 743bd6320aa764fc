"""``soniq jobs show|list`` and ``soniq cancel``: inspect jobs, and stop them."""

from __future__ import annotations

import json

import click

from soniq.app import Soniq
from soniq.cli.common import (
    database_option,
    fail,
    friendly_errors,
    job_dict,
    json_option,
    run,
    schema_option,
    with_app,
)
from soniq.cli.output import table, timestamp, to_json
from soniq.job import Job, JobState
from soniq.terminal import echo


def _print_job(job: Job) -> None:
    echo(f"job {job.id}  {job.task_name}  queue={job.queue}  state={job.state.value}")
    echo(f"  attempts   {job.attempts}/{job.max_attempts}   priority {job.priority}")
    echo(f"  enqueued   {timestamp(job.enqueued_at)}")
    if job.finished_at is not None:
        echo(f"  finished   {timestamp(job.finished_at)}")
    echo(f"  args       {json.dumps(job.args)}")
    if job.result is not None:
        echo(f"  result     {json.dumps(job.result)}")
    if job.error is not None:
        echo(f"  error      [{job.error.reason}] {job.error.message}")


@click.group()
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
        click.echo(to_json(job_dict(job)))
    else:
        _print_job(job)


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
        click.echo(to_json([job_dict(job) for job in found]))
        return
    if not found:
        echo("no jobs")
        return
    table(
        ["ID", "TASK", "QUEUE", "STATE", "ATTEMPTS", "ENQUEUED", "ERROR"],
        [
            [
                str(job.id),
                job.task_name,
                job.queue,
                job.state.value,
                f"{job.attempts}/{job.max_attempts}",
                timestamp(job.enqueued_at),
                job.error.reason if job.error else "",
            ]
            for job in found
        ],
    )


@click.command()
@click.argument("job_ids", nargs=-1, type=int, required=True)
@database_option
@schema_option
@friendly_errors
def cancel(job_ids: tuple[int, ...], database_url: str | None, schema: str | None) -> None:
    """Cancel queued jobs, and ask running ones to stop.

    Queued and scheduled jobs are cancelled at once; a running job's handler is asked to
    stop. Exit 1 when some job had already finished (or was not found)."""

    async def go(app: Soniq) -> list[int]:
        return [job_id for job_id in job_ids if await app.cancel(job_id)]

    cancelled = run(lambda: with_app(database_url, schema, go))
    echo(f"cancelled {len(cancelled)} job(s)")
    missing = sorted(set(job_ids) - set(cancelled))
    if missing:
        fail(f"already finished (or not found): {', '.join(map(str, missing))}")
