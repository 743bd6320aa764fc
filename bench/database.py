"""Scratch databases: each system gets its own, created for the run and dropped after it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead (user, host and options kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


class ScratchDatabases:
    """Creates ``bench_<system>_<random>`` databases through the admin URL, drops them all."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.run_id = secrets.token_hex(3)
        self._created: list[str] = []

    async def create(self, system: str) -> str:
        """A fresh, empty database for ``system``; returns its URL."""
        name = f"bench_{system}_{self.run_id}"
        conn = await asyncpg.connect(self.admin_url, timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self._created.append(name)
        return with_database(self.admin_url, name)

    async def drop_all(self) -> None:
        conn = await asyncpg.connect(self.admin_url, timeout=10)
        try:
            while self._created:
                name = self._created.pop()
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@asynccontextmanager
async def connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        yield conn
    finally:
        await conn.close()


async def server_facts(url: str) -> dict[str, str]:
    """PostgreSQL version and the settings that decide commit cost."""
    async with connection(url) as conn:
        facts = {"version": str(await conn.fetchval("SELECT version()"))}
        for setting in ("server_version", "synchronous_commit", "fsync", "shared_buffers"):
            facts[setting] = str(await conn.fetchval(f"SHOW {setting}"))
    return facts
