"""``soniq enqueue``: enqueue one job from a shell, as a producer would."""

from __future__ import annotations

import json
from typing import Any

import click

from soniq.app import Soniq
from soniq.cli.common import database_option, friendly_errors, run, schema_option, with_app
from soniq.job import JobId
from soniq.terminal import echo


def _args(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON ({exc})", param_hint="--args") from None
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--args")
    return value


@click.command()
@click.argument("task")
@click.option("--args", "args_text", default="{}", show_default=True, help="JSON object.")
@click.option("--queue", default=None, help="Queue (default: the task's, else default).")
@click.option("--priority", default=None, type=int, help="Higher runs first.")
@click.option("--delay", default=None, type=click.FloatRange(min=0), help="Seconds from now.")
@click.option("--dedup-key", default=None, help="At most one live job per key.")
@database_option
@schema_option
@friendly_errors
def enqueue(
    task: str,
    args_text: str,
    queue: str | None,
    priority: int | None,
    delay: float | None,
    dedup_key: str | None,
    database_url: str | None,
    schema: str | None,
) -> None:
    """Enqueue one job of TASK and print its id. The args are validated as
    app.enqueue(TASK, args) validates them, with the installed contract packages."""
    args = _args(args_text)

    async def go(app: Soniq) -> JobId:
        return await app.enqueue(
            task, args, queue=queue, priority=priority, delay=delay, dedup_key=dedup_key
        )

    job_id = run(lambda: with_app(database_url, schema, go))
    if job_id.created:
        echo(f"enqueued job {job_id}")
    else:
        echo(f"job {job_id} already holds dedup key {dedup_key!r}: nothing enqueued")
