"""Versioned, checksummed, forward-only migrations of one Soniq schema.

Each ``migrations/NNNN_name.sql`` file is applied once, in order, inside a transaction that
holds a transaction-level advisory lock for the schema, so any number of processes may run
:func:`migrate` at the same time: one applies, the others wait and then find nothing to do.
A changed file that was already applied, or a database migrated by a newer Soniq, is an
error rather than a guess.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import asyncpg

from soniq.errors import MigrationError, SchemaNotReadyError


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    """The migrations shipped with this version of Soniq, in order."""
    found = []
    for entry in resources.files("soniq.db").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    found.sort(key=lambda m: m.version)
    return found


def _lock_key(schema: str) -> int:
    digest = hashlib.sha256(f"soniq-migrate:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _bootstrap(schema: str) -> list[str]:
    """What runs before the migrations, in their transaction."""
    return [
        f"SELECT pg_advisory_xact_lock({_lock_key(schema)})",
        f"CREATE SCHEMA IF NOT EXISTS {schema}",
        f"""CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())""",
    ]


def _record(schema: str, migration: Migration) -> str:
    return (
        f"INSERT INTO {schema}.schema_migrations (version, name, checksum) "
        f"VALUES ({migration.version}, '{migration.name}', '{migration.checksum}')"
    )


async def migrate(
    conn: asyncpg.Connection, schema: str, *, then: list[str] | None = None
) -> list[int]:
    """Bring ``schema`` up to date, then run the statements ``then`` in the same
    transaction; returns the versions applied by this call."""
    migrations = load_migrations()
    applied_now: list[int] = []
    async with conn.transaction():
        for statement in _bootstrap(schema):
            await conn.execute(statement)
        rows = await conn.fetch(f"SELECT version, checksum FROM {schema}.schema_migrations")
        applied = {row["version"]: row["checksum"] for row in rows}
        known = {m.version: m for m in migrations}
        newer = sorted(set(applied) - set(known))
        if newer:
            raise MigrationError(
                f"schema {schema!r} has migration {newer[-1]}, newer than this Soniq knows "
                f"(latest {migrations[-1].version}): upgrade soniq in this service"
            )
        for migration in migrations:
            checksum = applied.get(migration.version)
            if checksum is None:
                await conn.execute(migration.sql.replace("{schema}", schema))
                await conn.execute(_record(schema, migration))
                applied_now.append(migration.version)
            elif checksum != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version} ({migration.name}) in schema {schema!r} "
                    "was applied from a different file: a shipped migration must never change"
                )
        for statement in then or []:
            await conn.execute(statement)
    return applied_now


async def migration_script(conn: asyncpg.Connection, schema: str, then: list[str]) -> str:
    """The SQL :func:`migrate` would run now, with ``then``, as one script to review and
    run by hand (``soniq setup --print-sql``); it reads which migrations are applied."""
    applied: set[int] = set()
    if await conn.fetchval("SELECT to_regclass($1)", f"{schema}.schema_migrations"):
        rows = await conn.fetch(f"SELECT version FROM {schema}.schema_migrations")
        applied = {row["version"] for row in rows}
    statements = _bootstrap(schema)
    for migration in load_migrations():
        if migration.version not in applied:
            statements += [
                migration.sql.replace("{schema}", schema).strip(),
                _record(schema, migration),
            ]
    body = "\n\n".join(statement.strip().rstrip(";") + ";" for statement in [*statements, *then])
    return f"BEGIN;\n\n{body}\n\nCOMMIT;\n"


async def check_current(conn: asyncpg.Connection, schema: str) -> None:
    """Raise :class:`SchemaNotReadyError` unless every shipped migration has been applied."""
    latest = load_migrations()[-1].version
    exists = await conn.fetchval("SELECT to_regclass($1)", f"{schema}.schema_migrations")
    version = None
    if exists is not None:
        version = await conn.fetchval(f"SELECT max(version) FROM {schema}.schema_migrations")
    if version is None or version < latest:
        raise SchemaNotReadyError(
            f"the Soniq schema {schema!r} is missing or outdated (at migration {version}, "
            f"need {latest}): run `soniq setup` or `await app.setup()`"
        )
