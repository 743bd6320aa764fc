"""What every command shares: error reporting, options, and opening an app."""

from __future__ import annotations

import asyncio
import functools
import importlib
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict
from typing import Any, ParamSpec, TypeVar

import asyncpg
import click

from soniq.app import Soniq
from soniq.errors import ConfigurationError, SoniqError
from soniq.job import Job
from soniq.terminal import echo
from soniq.urls import redact

P = ParamSpec("P")
T = TypeVar("T")


def fail(message: str) -> None:
    echo(f"Error: {redact(message)}", err=True)
    sys.exit(1)


def friendly_errors(command: Callable[P, T]) -> Callable[P, T]:
    """Print Soniq and database errors as one line and exit 1, with no traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return command(*args, **kwargs)
        except SoniqError as exc:
            fail(str(exc))
        except asyncpg.PostgresError as exc:
            fail(f"PostgreSQL error: {exc}")
        except KeyboardInterrupt:
            echo("interrupted", err=True)
            sys.exit(130)
        raise AssertionError("unreachable")

    return wrapper


def run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(make())


database_option = click.option(
    "--database-url",
    envvar="SONIQ_DATABASE_URL",
    help="PostgreSQL URL, or 'embedded' [env: SONIQ_DATABASE_URL].",
)
schema_option = click.option(
    "--schema", envvar="SONIQ_SCHEMA", help="Soniq schema name [env: SONIQ_SCHEMA; default soniq]."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


async def with_app(
    database_url: str | None, schema: str | None, use: Callable[[Soniq], Awaitable[T]]
) -> T:
    app = Soniq(database_url, schema=schema)
    try:
        return await use(app)
    finally:
        await app.close()


def job_dict(job: Job) -> dict[str, Any]:
    """A job for --json (its timestamps are turned to text by ``output.to_json``)."""
    data = asdict(job)
    data["state"] = job.state.value
    return data


def load_app(target: str, *, factory: bool = False) -> Soniq:
    """The Soniq app at MODULE:APP; with ``factory``, what calling MODULE:APP() returns."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(
            f"{target!r} is not MODULE:APP, e.g. `soniq worker myservice.jobs:app`"
        )
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise ConfigurationError(
                f"cannot import module {module_name!r} (from {target!r}): {exc}; run from the "
                "directory that contains it or install it"
            ) from exc
        raise
    app = getattr(module, attribute, None)
    if factory:
        if not callable(app) or isinstance(app, Soniq):
            raise ConfigurationError(
                f"{target!r}: --factory needs a function that returns a Soniq app, and module "
                f"{module_name!r} has no function named {attribute!r}"
            )
        app = app()
        if not isinstance(app, Soniq):
            raise ConfigurationError(
                f"{target!r}: the factory returned {type(app).__name__}, not a Soniq app"
            )
    elif callable(app) and not isinstance(app, Soniq):
        raise ConfigurationError(
            f"{target!r} is a function, not a Soniq app: pass --factory to call it for the app"
        )
    if not isinstance(app, Soniq):
        raise ConfigurationError(
            f"{target!r}: module {module_name!r} has no Soniq app named {attribute!r}"
        )
    return app
