"""``soniq dead-letter list|replay|purge``: the dead-letter queue from a shell.

``--older-than`` takes one number and one unit (30s, 15m, 12h, 7d), parsed here rather than
by a duration library: those (pytimeparse and the like) also accept forms such as ``1:30``
whose unit a reader has to guess, and an age filter that deletes jobs should not be guessed.
"""

from __future__ import annotations

import re
from datetime import timedelta

import click

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
from soniq.dead_letter import Progress
from soniq.settings import resolve_schema
from soniq.terminal import echo

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _duration(_ctx: object, _param: object, value: str | None) -> timedelta | None:
    if value is None:
        return None
    match = re.fullmatch(r"(\d+)([smhd])", value.strip())
    if match is None:
        raise click.BadParameter(f"{value!r} is not a duration like 30s, 15m, 12h or 7d")
    try:
        return timedelta(**{_UNITS[match[2]]: int(match[1])})
    except OverflowError:
        raise click.BadParameter(f"{value!r} is longer than any job has existed") from None


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
        echo(f"{verb} {done}/{total}", err=True)

    return report


@click.group("dead-letter")
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
        click.echo(to_json([job_dict(job) for job in dead]))
        return
    if not dead:
        echo("no dead jobs")
        return
    table(
        ["ID", "TASK", "QUEUE", "ATTEMPTS", "DIED", "ERROR"],
        [
            [
                str(job.id),
                job.task_name,
                job.queue,
                f"{job.attempts}/{job.max_attempts}",
                timestamp(job.finished_at) if job.finished_at is not None else "",
                f"[{job.error.reason}] {job.error.message}" if job.error else "",
            ]
            for job in dead
        ],
    )


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
    """Send dead jobs back to their queue, attempts reset.

    The given ids (exit 1 if some were not dead), or --all (optionally filtered), in
    batches with a progress line on stderr."""
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
        echo(f"replayed {count} job(s)")
        return
    replayed = run(
        lambda: with_app(database_url, schema, lambda app: app.dead_letter.replay(job_ids))
    )
    echo(f"replayed {len(replayed)} job(s)")
    missing = sorted(set(job_ids) - set(replayed))
    if missing:
        fail(f"not dead (or not found): {', '.join(map(str, missing))}")


@dead_letter.command("purge")
@click.argument("job_ids", nargs=-1, type=int)
@_bulk_filters
@click.option("--yes", "-y", is_flag=True, help="With --all: do not ask for confirmation.")
@click.option(
    "--dry-run", is_flag=True, help="With --all: print how many would be purged, purge none."
)
@database_option
@schema_option
@friendly_errors
def dead_letter_purge(
    job_ids: tuple[int, ...],
    every: bool,
    task_name: str | None,
    queue: str | None,
    older_than: timedelta | None,
    yes: bool,
    dry_run: bool,
    database_url: str | None,
    schema: str | None,
) -> None:
    """Delete dead jobs: the given ids, or --all.

    The given ids (exit 1 if some were not dead, as replay), or --all (optionally filtered;
    asks first unless --yes), in batches with a progress line on stderr."""
    _check_bulk(job_ids, every, any(f is not None for f in (task_name, queue, older_than)))
    if (yes or dry_run) and not every:
        raise click.UsageError("--yes and --dry-run go with --all")
    if every and (dry_run or not yes):
        matching = run(
            lambda: with_app(
                database_url,
                schema,
                lambda app: app.dead_letter.count(
                    task_name=task_name, queue=queue, older_than=older_than
                ),
            )
        )
        if dry_run:
            echo(f"would purge {matching} dead job(s); purged none (--dry-run)")
            return
        click.confirm(
            f"purge {matching} dead job(s) from schema {resolve_schema(schema)}?", abort=True
        )
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
    echo(f"purged {count} dead job(s)")
    if not every and count < len(set(job_ids)):
        # as replay: exit 1 when some given job was not dead
        fail(f"not dead (or not found): {len(set(job_ids)) - count} of the given job(s)")
