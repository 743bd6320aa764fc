"""Shared fixtures: a REAL PostgreSQL for every test, one fresh schema per test.

The server and the schema come from Soniq's own pytest plugin (``soniq.pytest_plugin``):
``SONIQ_TEST_DATABASE_URL`` if set, else the local server at 127.0.0.1:5432 (user postgres,
no password) when it answers, else an embedded PostgreSQL started for the session. Each
test gets its own schema, dropped afterwards.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from soniq import Soniq
from tests.helpers import REPO

# The plugin Soniq ships for its users provides the database and the per-test schema.
pytest_plugins = ["soniq.pytest_plugin"]


@pytest.fixture(scope="session")
def database_url(soniq_database_url: str) -> str:
    return soniq_database_url


@pytest.fixture
def schema(soniq_schema: str) -> str:
    """A unique schema name, dropped after the test (whether or not it was created)."""
    return soniq_schema


@pytest.fixture
async def app(database_url: str, schema: str) -> AsyncIterator[Soniq]:
    """A Soniq app on its own, already set-up schema, with fast retries for tests."""
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
