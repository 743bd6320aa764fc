"""``soniq worker``: run a worker for the app at MODULE:APP (or made by the factory
MODULE:FUNCTION with ``--factory``) until SIGTERM or SIGINT."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timedelta, timezone
from typing import Any

import click
from click.core import ParameterSource

from soniq.cli.common import (
    database_option,
    friendly_errors,
    load_app,
    run,
    schema_option,
)
from soniq.errors import ConfigurationError
from soniq.settings import DATABASE_URL_ENV, SCHEMA_ENV


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: MESSAGE``, the time in ISO 8601 (UTC), as the commands print it."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return log_time(record)


def log_time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the job's fields (job_id,
    task, queue, attempt, outcome, reason, retry_delay) when the record is about a job, and
    the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": log_time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "soniq", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


@click.command()
@click.argument("app_path", metavar="MODULE:APP")
@click.option(
    "--factory",
    is_flag=True,
    help="MODULE:APP names a function that takes no arguments and returns the Soniq app.",
)
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
    help="Serve Prometheus metrics on this port (needs soniq-jobs[metrics]).",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@database_option
@schema_option
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
)
@click.option(
    "--log-format",
    default="text",
    show_default=True,
    type=click.Choice(["text", "json"]),
    help="json: one JSON object per line, with job_id, task, queue and attempt.",
)
@friendly_errors
def worker(
    app_path: str,
    factory: bool,
    queues: str | None,
    concurrency: int,
    lease_seconds: float,
    shutdown_timeout_seconds: float,
    metrics_port: int | None,
    metrics_host: str,
    database_url: str | None,
    schema: str | None,
    log_level: str,
    log_format: str,
) -> None:
    """Run a worker for the app at MODULE:APP until stopped.

    Runs until SIGTERM or SIGINT; warns when registered tasks go to queues that --queues
    leaves out."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=log_level.upper(), handlers=[handler])
    # An app that reads its settings from the environment (Soniq()) gets the options'.
    for name, value in ((DATABASE_URL_ENV, database_url), (SCHEMA_ENV, schema)):
        if value is not None:
            os.environ[name] = value
    app = load_app(app_path, factory=factory)
    ctx = click.get_current_context()

    def given(option: str) -> bool:
        return ctx.get_parameter_source(option) is ParameterSource.COMMANDLINE

    if given("schema") and app.schema != schema:
        raise ConfigurationError(
            f"{app_path} was created with schema {app.schema!r}, not --schema {schema!r}: "
            "create it with Soniq() or Soniq(schema=None) to take the option"
        )
    if given("database_url") and app.settings.database_url not in (None, database_url):
        raise ConfigurationError(
            f"{app_path} was created with its own database URL, not --database-url: create "
            "it with Soniq() to take the option"
        )
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
