"""``soniq setup``: create or upgrade the Soniq schema."""

from __future__ import annotations

import click

from soniq.app import Soniq
from soniq.cli.common import (
    database_option,
    friendly_errors,
    run,
    schema_option,
    with_app,
)
from soniq.settings import resolve_schema
from soniq.terminal import echo


@click.command()
@database_option
@schema_option
@friendly_errors
def setup(database_url: str | None, schema: str | None) -> None:
    """Create or upgrade the Soniq schema (safe to run concurrently)."""

    async def go(app: Soniq) -> None:
        await app.setup()

    run(lambda: with_app(database_url, schema, go))
    echo(f"schema {resolve_schema(schema)} is up to date")
