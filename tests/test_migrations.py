"""Schema setup: idempotent, concurrent-safe, checksummed, and required before use."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from importlib import resources

import asyncpg
import pytest

from soniq import MigrationError, SchemaNotReadyError, Soniq
from soniq.db.migrate import load_migrations, migrate
from tests.helpers import (
    count_jobs,
    drop_schema,
    new_schema_name,
    set_up_to_migration,
    start_worker,
    stop_worker,
    wait_state,
)


def _shipped() -> list[tuple[int, str, str]]:
    """(version, name, sha256) of each migration file shipped in the package."""
    found = []
    folder = resources.files("soniq.db").joinpath("migrations")
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            digest = hashlib.sha256(entry.read_text().encode()).hexdigest()
            found.append((int(number), rest.removesuffix(".sql"), digest))
    return sorted(found)


async def _migration_rows(db: asyncpg.Connection, schema: str) -> list[tuple[int, str, str]]:
    rows = await db.fetch(
        f"SELECT version, name, checksum FROM {schema}.schema_migrations ORDER BY version"
    )
    return [(r["version"], r["name"], r["checksum"]) for r in rows]


@pytest.fixture
async def fresh(database_url: str, schema: str) -> AsyncIterator[Soniq]:
    """An app on a schema nobody has set up."""
    app = Soniq(database_url, schema=schema)
    yield app
    await app.close()


async def test_setup_is_idempotent_and_records_each_shipped_migration(
    fresh: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    shipped = _shipped()
    assert shipped, "no migration files found in the package"
    await fresh.setup()
    recorded = await _migration_rows(db, schema)
    assert recorded == shipped
    applied_at = await db.fetch(f"SELECT applied_at FROM {schema}.schema_migrations")
    job_id = await fresh.enqueue("kept.task", {"n": 1})

    await fresh.setup()
    assert await migrate(db, schema) == []  # nothing left to apply
    assert await _migration_rows(db, schema) == shipped
    assert await db.fetch(f"SELECT applied_at FROM {schema}.schema_migrations") == applied_at
    assert await count_jobs(db, schema, "id = $1", job_id) == 1  # data untouched


async def test_load_migrations_matches_the_shipped_files() -> None:
    assert [(m.version, m.name, m.checksum) for m in load_migrations()] == _shipped()


async def test_eight_concurrent_setups_on_a_fresh_schema_all_succeed(
    database_url: str, db: asyncpg.Connection, schema: str
) -> None:
    apps = [Soniq(database_url, schema=schema) for _ in range(8)]
    try:
        results = await asyncio.gather(*(a.setup() for a in apps), return_exceptions=True)
    finally:
        await asyncio.gather(*(a.close() for a in apps))
    assert all(isinstance(applied, list) for applied in results), results
    # Each migration was applied by exactly one of them, and each says which it applied.
    assert sorted(v for applied in results for v in applied) == [v for v, _, _ in _shipped()]
    assert await _migration_rows(db, schema) == _shipped()
    assert await db.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.jobs")


async def test_tampered_checksum_is_a_migration_error(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    await db.execute(f"UPDATE {schema}.schema_migrations SET checksum = 'tampered'")
    with pytest.raises(MigrationError) as info:
        await app.setup()
    version = _shipped()[0][0]
    assert str(version) in str(info.value)
    assert "different file" in str(info.value)


async def test_database_migrated_by_newer_code_is_a_migration_error(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    newer = _shipped()[-1][0] + 1
    await db.execute(
        f"INSERT INTO {schema}.schema_migrations (version, name, checksum) "
        "VALUES ($1, 'from_the_future', 'x')",
        newer,
    )
    with pytest.raises(MigrationError) as info:
        await app.setup()
    assert str(newer) in str(info.value)
    assert "upgrade" in str(info.value)
    assert (
        await db.fetchval(f"SELECT count(*) FROM {schema}.schema_migrations") == len(_shipped()) + 1
    )


async def test_schema_never_set_up_raises_schema_not_ready_everywhere(
    fresh: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @fresh.job(name="some.task")
    async def handler() -> None:
        return None

    operations = {
        "enqueue": lambda: fresh.enqueue("some.task"),
        "enqueue_many": lambda: fresh.enqueue_many("some.task", [{}]),
        "get_job": lambda: fresh.get_job(1),
        "run_worker": lambda: fresh.run_worker(),
        "dead_letter.list": lambda: fresh.dead_letter.list(),
        "dead_letter.replay": lambda: fresh.dead_letter.replay(1),
        "dead_letter.purge": lambda: fresh.dead_letter.purge(),
    }
    for name, operation in operations.items():
        with pytest.raises(SchemaNotReadyError) as info:
            await asyncio.wait_for(operation(), 10)
        assert "soniq setup" in str(info.value), name
        assert schema in str(info.value), name
    # nothing was created along the way
    assert await db.fetchval("SELECT to_regnamespace($1)", schema) is None


async def test_outdated_schema_refuses_to_run_a_worker(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    latest = _shipped()[-1][0]
    await db.execute(f"DELETE FROM {schema}.schema_migrations WHERE version = $1", latest)
    with pytest.raises(SchemaNotReadyError, match="soniq setup"):
        await app.run_worker()


async def test_two_schemas_in_one_database_are_independent(
    database_url: str, app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    other_schema = new_schema_name()
    other = Soniq(database_url, schema=other_schema)
    try:
        await other.setup()
        ran: list[str] = []

        @other.job(name="shared.task")
        async def handle(origin: str) -> None:
            ran.append(origin)

        in_app = await app.enqueue("shared.task", {"origin": "app"})
        in_other = await other.enqueue("shared.task", {"origin": "other"})
        worker = start_worker(other)
        await wait_state(db, other_schema, in_other, "done")
        await stop_worker(worker)
        assert ran == ["other"]
        assert (await app.get_job(in_app)).args == {"origin": "app"}
        assert (await app.get_job(in_app)).state.value == "queued"
        assert await count_jobs(db, schema) == 1
        assert await count_jobs(db, other_schema) == 1
        # setting one up again never touches the other
        await other.setup()
        assert await count_jobs(db, schema, "state = 'queued'") == 1
    finally:
        await other.close()
        await drop_schema(database_url, other_schema)


async def test_upgrade_across_the_lifecycle_tables_carries_every_job_over(
    database_url: str, db: asyncpg.Connection, schema: str
) -> None:
    # A schema as Soniq left it before migration 0009, holding a job in every state.
    await set_up_to_migration(db, schema, 8)
    rows = {
        "due": "'queued', now() - interval '1 minute', NULL, NULL, NULL, 'k-due'",
        "later": "'queued', now() + interval '1 hour', NULL, NULL, NULL, NULL",
        "running": "'running', now(), gen_random_uuid(), now() + interval '1 minute', NULL, NULL",
        "done": "'done', now(), NULL, NULL, now() - interval '1 hour', NULL",
        "dead": "'dead', now(), NULL, NULL, now(), NULL",
        "cancelled": "'cancelled', now(), NULL, NULL, now(), NULL",
    }
    ids = {}
    for name, values in rows.items():
        ids[name] = await db.fetchval(
            f"""INSERT INTO {schema}.jobs (task_name, queue, args, max_attempts, state,
                    scheduled_at, claim_token, lease_expires_at, finished_at, dedup_key, result)
                VALUES ('up.grade', 'default', $1::json, 3, {values}, $2::json) RETURNING id""",
            f'{{"name": "{name}"}}',
            '{"ok": true}' if name == "done" else None,
        )

    app = Soniq(database_url, schema=schema)
    try:
        await app.setup()
        where = {
            "job_live": ("due", "running"),
            "job_scheduled": ("later",),
            "job_dead": ("dead",),
            "job_history": ("done", "cancelled"),
        }
        for table, names in where.items():
            held = {r["id"] for r in await db.fetch(f"SELECT id FROM {schema}.{table}")}
            assert held == {ids[n] for n in names}, table
        for name, job_id in ids.items():
            job = await app.get_job(job_id)
            expected = "queued" if name in ("due", "later") else name
            assert (job.state.value, job.args) == (expected, {"name": name})
        assert (await app.get_job(ids["done"])).result == {"ok": True}
        # the live key still deduplicates; new ids continue after the old ones
        assert await app.enqueue("up.grade", {}, dedup_key="k-due") == ids["due"]
        assert await app.enqueue("up.grade", {}) > max(ids.values())
    finally:
        await app.close()


async def test_upgrade_to_0013_counts_the_last_hours_done_jobs_and_keeps_attempts_by_day(
    database_url: str, db: asyncpg.Connection, schema: str
) -> None:
    await set_up_to_migration(db, schema, 12)
    for finished in ("10 minutes", "2 hours", "3 days"):
        await db.execute(
            f"""INSERT INTO {schema}.jobs (task_name, queue, args, max_attempts, state,
                    finished_at)
                VALUES ('up.grade', 'default', '{{}}', 1, 'done',
                        now() - interval '{finished}')"""
        )
    app = Soniq(database_url, schema=schema)
    try:
        await app.setup()
        assert [(q.queue, q.done_last_hour) for q in (await app.status()).queues] == [
            ("default", 1)
        ]
        days = await db.fetch(
            """SELECT p.relname, c.relname AS child FROM pg_inherits i
               JOIN pg_class p ON p.oid = i.inhparent JOIN pg_class c ON c.oid = i.inhrelid
               WHERE p.relnamespace = $1::regnamespace""",
            schema,
        )
        by_table: dict[str, set[str]] = {}
        for row in days:
            by_table.setdefault(row["relname"], set()).add(row["child"][-8:])
        history_days = by_table["job_history"]
        assert len(history_days) >= 10  # three days ago, yesterday to a week ahead
        for table in ("job_attempts", "job_done_counts", "job_done_minutes"):
            assert by_table[table] == history_days, table
    finally:
        await app.close()
