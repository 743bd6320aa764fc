"""``soniq worker``: run a worker for the app at MODULE:APP (or made by the factory
MODULE:FUNCTION with ``--factory``) until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
from datetime import timedelta

import click

from soniq.cli.common import (
    friendly_errors,
    load_app,
    run,
)


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
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
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
    log_level: str,
) -> None:
    """Run a worker for the Soniq app at MODULE:APP until SIGTERM or SIGINT."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = load_app(app_path, factory=factory)
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
