"""``soniq queues list|pause|resume|set``: queue settings from a shell (see
docs/runtime.md, "Steering queues")."""

from __future__ import annotations

import json
from dataclasses import asdict
from types import EllipsisType
from typing import Any

import click

from soniq.cli.common import (
    database_option,
    friendly_errors,
    json_option,
    run,
    schema_option,
    with_app,
)
from soniq.cli.output import table
from soniq.queues import QueueSettings

# What `queues set` takes to remove a setting.
_NONE = "none"


def _show(settings: list[QueueSettings], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([asdict(s) for s in settings], indent=2, default=str))
        return
    table(
        ["QUEUE", "PAUSED", "CONCURRENCY", "RATE LIMIT", "PARTITION BY"],
        [
            [
                s.queue,
                "yes" if s.paused else "no",
                "-" if s.concurrency is None else str(s.concurrency),
                s.rate_limit or "-",
                ",".join(s.partition_by) or "-",
            ]
            for s in settings
        ],
    )


def _configure(
    database_url: str | None, schema: str | None, queue: str, as_json: bool, **changes: Any
) -> None:
    settings = run(
        lambda: with_app(database_url, schema, lambda app: app.configure_queue(queue, **changes))
    )
    _show([settings], as_json)


@click.group("queues")
def queues() -> None:
    """Pause queues and limit their concurrency and rate."""


@queues.command("list")
@database_option
@schema_option
@json_option
@friendly_errors
def queues_list(database_url: str | None, schema: str | None, as_json: bool) -> None:
    """List the queues that have settings.

    A queue not listed has none."""
    _show(run(lambda: with_app(database_url, schema, lambda app: app.configured_queues())), as_json)


@queues.command("pause")
@click.argument("queue")
@database_option
@schema_option
@json_option
@friendly_errors
def queues_pause(queue: str, database_url: str | None, schema: str | None, as_json: bool) -> None:
    """Stop starting jobs of QUEUE.

    Once this returns no worker starts a new job of QUEUE; running jobs finish."""
    _configure(database_url, schema, queue, as_json, paused=True)


@queues.command("resume")
@click.argument("queue")
@database_option
@schema_option
@json_option
@friendly_errors
def queues_resume(queue: str, database_url: str | None, schema: str | None, as_json: bool) -> None:
    """Start jobs of QUEUE again.

    Workers claim its waiting jobs at once."""
    _configure(database_url, schema, queue, as_json, paused=False)


def _or_none(text: str | None) -> str | EllipsisType | None:
    """An option's text: ``...`` when not given (unchanged), None for 'none'."""
    return ... if text is None else None if text.strip().lower() == _NONE else text


@queues.command("set")
@click.argument("queue")
@click.option("--concurrency", default=None, help="At most N running (per partition); 'none'.")
@click.option("--rate-limit", default=None, help="At most N starts per period: 100/s, 1000/min.")
@click.option("--partition-by", default=None, help="Comma-separated args keys; 'none'.")
@database_option
@schema_option
@json_option
@friendly_errors
def queues_set(
    queue: str,
    concurrency: str | None,
    rate_limit: str | None,
    partition_by: str | None,
    database_url: str | None,
    schema: str | None,
    as_json: bool,
) -> None:
    """Change the limits of QUEUE.

    An option not given stays as it is; 'none' removes it."""
    if concurrency is None and rate_limit is None and partition_by is None:
        raise click.UsageError("give --concurrency, --rate-limit or --partition-by")
    given = _or_none(concurrency)
    limit: int | EllipsisType | None = given if not isinstance(given, str) else None
    if isinstance(given, str):
        if not given.strip().isdigit():
            raise click.BadParameter(f"--concurrency {given!r} is not a whole number or 'none'")
        limit = int(given)
    keys = _or_none(partition_by)
    _configure(
        database_url,
        schema,
        queue,
        as_json,
        concurrency=limit,
        rate_limit=_or_none(rate_limit),
        partition_by=[k.strip() for k in keys.split(",")] if isinstance(keys, str) else keys,
    )
