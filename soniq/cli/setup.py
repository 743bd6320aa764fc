"""``soniq setup``: create or upgrade the Soniq schema, and grant roles their privileges."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from soniq.app import Soniq
from soniq.cli.common import (
    database_option,
    friendly_errors,
    run,
    schema_option,
    with_app,
)
from soniq.db.grants import RoleKind
from soniq.settings import resolve_schema
from soniq.terminal import echo

F = TypeVar("F", bound=Callable[..., Any])


def _role_option(kind: RoleKind, what: str) -> Callable[[F], F]:
    return click.option(
        f"--grant-{kind}",
        kind.replace("-", "_"),
        multiple=True,
        metavar="ROLE",
        help=f"Give an existing ROLE the {what} privileges (repeatable).",
    )


@click.command()
@database_option
@schema_option
@_role_option("producer", "producer's (enqueue only)")
@_role_option("worker", "worker's")
@_role_option("viewer", "read-only")
@_role_option("viewer-without-args", "read-only, without job args and results,")
@click.option("--print-sql", is_flag=True, help="Print the SQL instead of running it.")
@friendly_errors
def setup(
    database_url: str | None,
    schema: str | None,
    producer: tuple[str, ...],
    worker: tuple[str, ...],
    viewer: tuple[str, ...],
    viewer_without_args: tuple[str, ...],
    print_sql: bool,
) -> None:
    """Create or upgrade the Soniq schema, and grant roles.

    Safe to run from many processes at once; prints the migrations it applied. With
    --grant-*, gives existing roles their privileges (see docs/security.md)."""
    grants: list[tuple[RoleKind, str]] = [
        *(("producer", role) for role in producer),
        *(("worker", role) for role in worker),
        *(("viewer", role) for role in viewer),
        *(("viewer-without-args", role) for role in viewer_without_args),
    ]

    async def script(app: Soniq) -> str:
        return await app.setup_script(grants=grants)

    async def go(app: Soniq) -> list[int]:
        return await app.setup(grants=grants)

    if print_sql:
        click.echo(run(lambda: with_app(database_url, schema, script)), nl=False)
        return
    applied = run(lambda: with_app(database_url, schema, go))
    name = resolve_schema(schema)
    if applied:
        versions = ", ".join(f"{v:04d}" for v in applied)
        echo(f"schema {name}: applied {len(applied)} migration(s) ({versions}); up to date")
    else:
        echo(f"schema {name} is up to date: no migration to apply")
    for kind, role in grants:
        echo(f"granted {kind} privileges to {role}")
