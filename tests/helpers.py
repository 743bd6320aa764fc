"""Helpers the tests share: the repository root, scratch schemas, and waiting on database
state instead of sleeping blindly."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from soniq.db.migrate import load_migrations

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent


def new_schema_name() -> str:
    return f"t_{secrets.token_hex(6)}"


async def drop_schema(database_url: str, schema: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


async def wait_until(
    probe: Callable[[], Awaitable[T]], *, timeout: float = 20.0, interval: float = 0.02
) -> T:
    """Poll ``probe`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)


async def stop_worker(task: asyncio.Task[None]) -> None:
    """Cancel a run_worker task and wait for its clean shutdown."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def count_jobs(db: Any, schema: str, where: str = "TRUE", *params: object) -> int:
    """How many rows ``<schema>.jobs`` holds (optionally matching a WHERE clause)."""
    return int(await db.fetchval(f"SELECT count(*) FROM {schema}.jobs WHERE {where}", *params))


async def job_row(db: Any, schema: str, job_id: int) -> Any:
    """The full row of one job, with ``args`` and ``error_detail`` as their stored text."""
    return await db.fetchrow(
        f"SELECT *, args::text AS args_text, error_detail::text AS detail_text "
        f"FROM {schema}.jobs WHERE id = $1",
        job_id,
    )


async def wait_state(
    db: Any, schema: str, job_id: int, state: str, *, timeout: float = 20.0
) -> Any:
    """Wait until the job is in ``state``; returns its row."""

    async def probe() -> Any:
        row = await job_row(db, schema, job_id)
        return row if row is not None and row["state"] == state else None

    return await wait_until(probe, timeout=timeout)


def start_worker(app: Any, *, poll: float = 0.05, **kwargs: Any) -> asyncio.Task[None]:
    """Run ``app.run_worker`` as a task with a short poll interval (tests only)."""
    kwargs.setdefault("poll_interval", timedelta(seconds=poll))
    return asyncio.create_task(app.run_worker(**kwargs))


async def set_up_to_migration(db: Any, schema: str, last: int) -> None:
    """Create ``schema`` as Soniq left it after migration ``last`` (to test an upgrade from
    there), recording each applied migration as ``soniq setup`` does."""
    async with db.transaction():
        await db.execute(f"CREATE SCHEMA {schema}")
        await db.execute(
            f"""CREATE TABLE {schema}.schema_migrations (version integer PRIMARY KEY,
                    name text NOT NULL, checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        for migration in load_migrations():
            if migration.version > last:
                break
            await db.execute(migration.sql.replace("{schema}", schema))
            await db.execute(
                f"INSERT INTO {schema}.schema_migrations VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )


async def listening(db: Any, schema: str) -> bool:
    """True once a worker's LISTEN connection has subscribed to this schema's channel."""
    return bool(
        await db.fetchval(
            "SELECT count(*) > 0 FROM pg_stat_activity "
            "WHERE application_name = 'soniq-listener' AND query ILIKE $1",
            f'LISTEN "{schema}.jobs"%',
        )
    )
