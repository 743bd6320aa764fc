"""``soniq worker``: run a worker for the app at MODULE:APP until SIGTERM or SIGINT."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import click

from soniq.cli.common import (
    friendly_errors,
    load_app,
    run,
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the job's fields (job_id,
    task, queue, attempt, outcome, reason, retry_delay) when the record is about a job, and
    the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
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
    queues: str | None,
    concurrency: int,
    lease_seconds: float,
    shutdown_timeout_seconds: float,
    metrics_port: int | None,
    metrics_host: str,
    log_level: str,
    log_format: str,
) -> None:
    """Run a worker for the Soniq app at MODULE:APP until SIGTERM or SIGINT."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=log_level.upper(), handlers=[handler])
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
