"""``soniq status``: queues, live workers, and jobs waiting for a newer consumer."""

from __future__ import annotations

from dataclasses import asdict

import click

from soniq.cli.common import (
    database_option,
    friendly_errors,
    json_option,
    run,
    schema_option,
    with_app,
)
from soniq.cli.output import age, table, to_json
from soniq.status import Status
from soniq.terminal import echo


def _print_status(status: Status) -> None:
    table(
        ["QUEUE", "QUEUED", "SCHEDULED", "WAITING", "RUNNING", "DONE/1H", "DEAD", "OLDEST WAIT"],
        [
            [
                f"{q.queue} (paused)" if q.paused else q.queue,
                str(q.queued),
                str(q.scheduled),
                str(q.waiting),
                str(q.running),
                str(q.done_last_hour),
                str(q.dead),
                age(q.oldest_wait_seconds),
            ]
            for q in status.queues
        ],
    )
    echo()
    table(
        ["WORKER", "QUEUES", "CONCURRENCY", "HEARTBEAT AGE"],
        [
            [
                w.id,
                ",".join(w.queues) if w.queues else "(all)",
                str(w.concurrency),
                age(w.heartbeat_age_seconds),
            ]
            for w in status.workers
        ],
    )
    for waiting in status.waiting_for_newer_consumer:
        echo(
            f"\n{waiting.count} job(s) of {waiting.task_name} v{waiting.contract_version} wait "
            "for a newer consumer: no live worker runs that contract version yet"
        )


@click.command()
@database_option
@schema_option
@json_option
@friendly_errors
def status(database_url: str | None, schema: str | None, as_json: bool) -> None:
    """Show queues, live workers and jobs awaiting a consumer.

    Per queue: queued, scheduled, waiting for parent jobs, running, done in the last hour,
    dead, oldest wait; live workers with their heartbeat age; and jobs waiting for a newer
    consumer."""
    result = run(lambda: with_app(database_url, schema, lambda app: app.status()))
    if as_json:
        click.echo(to_json(asdict(result)))
    else:
        _print_status(result)
