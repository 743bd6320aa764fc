"""Fixtures for the fault-injection tests; the machinery lives in tests/fault_support.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from soniq import Soniq
from tests.fault_support import TcpProxy, Workers


@pytest.fixture
async def side_effects(app: Soniq, db: asyncpg.Connection, schema: str) -> str:
    """Creates ``<schema>.side_effects``, which fault_app's handlers write one row to when
    they start and one when they end; returns the table's qualified name."""
    table = f"{schema}.side_effects"
    await db.execute(
        f"""CREATE TABLE {table} (
                seq    bigserial PRIMARY KEY,
                job_id bigint NOT NULL,
                pid    integer NOT NULL,
                phase  text NOT NULL,
                at     timestamptz NOT NULL DEFAULT clock_timestamp())"""
    )
    return table


@pytest.fixture
def workers(python: str, subprocess_env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    """Starts fault_app worker processes; any still alive after the test is killed."""
    started = Workers(python, subprocess_env, tmp_path)
    yield started
    started.kill_all()


@pytest.fixture
async def pg_proxy(database_url: str) -> AsyncIterator[TcpProxy]:
    """A TCP proxy to the test database, up; tests take it down to simulate an outage."""
    parts = urlsplit(database_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.up()
    yield proxy
    await proxy.down()
