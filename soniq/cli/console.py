"""``soniq console``: serve the web console with uvicorn (needs ``soniq-jobs[console]``)."""

from __future__ import annotations

import ipaddress
import os
from typing import TYPE_CHECKING

import click

from soniq.app import Soniq
from soniq.cli.common import database_option, friendly_errors, load_app, schema_option
from soniq.errors import ConfigurationError
from soniq.terminal import echo

if TYPE_CHECKING:
    from starlette.types import ASGIApp

AUTH_VARIABLE = "SONIQ_CONSOLE_AUTH"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.argument("app_path", metavar="[MODULE:APP]", required=False)
@database_option
@schema_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--allow-actions",
    is_flag=True,
    help="Allow cancel, retry, replay and purge (default: read-only).",
)
@click.option("--hide-args", is_flag=True, help="Show every job's args and results redacted.")
@friendly_errors
def console(
    app_path: str | None,
    database_url: str | None,
    schema: str | None,
    host: str,
    port: int,
    allow_actions: bool,
    hide_args: bool,
) -> None:
    """Serve the web console at http://HOST:PORT/.

    With MODULE:APP it knows that app's tasks (contract field descriptions, versions,
    upcasters, periodic schedules) and uses its database and schema; without, it works
    from the database alone. Basic auth: set SONIQ_CONSOLE_AUTH=user:password.
    """
    try:
        import uvicorn
    except ImportError as exc:
        raise ConfigurationError(
            f"the console needs its extra: pip install 'soniq-jobs[console]' ({exc})"
        ) from exc
    from soniq.console import BasicAuth

    app = load_app(app_path) if app_path else Soniq(database_url, schema=schema)
    web = app.console(allow_actions=allow_actions, hide_args=hide_args)
    credentials = os.environ.get(AUTH_VARIABLE)
    if credentials:
        user, colon, password = credentials.partition(":")
        if not (user and colon and password):
            raise ConfigurationError(f"{AUTH_VARIABLE} must be user:password")
        served: ASGIApp = BasicAuth(web, credentials)
    else:
        served = web
        if not _loopback(host):
            echo(
                f"warning: serving on {host} without authentication; set {AUTH_VARIABLE}="
                "user:password or put it behind your own proxy",
                err=True,
            )
    echo(
        f"Soniq console on http://{host}:{port}/ (schema {app.schema}, "
        f"{'actions allowed' if allow_actions else 'read-only'})",
        err=True,
    )
    uvicorn.run(served, host=host, port=port, log_level="warning")
