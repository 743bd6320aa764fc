"""Least privilege: ``soniq setup --grant-*`` gives a producer, a worker and a viewer role
what each needs and nothing more. Each role connects for real, does its whole job, and is
refused every operation outside it with the tables unchanged."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from soniq import JobContext, PermissionDeniedError, Soniq
from soniq.db.jobs import JobStore
from tests.helpers import stop_worker, wait_until
from tests.test_cli import assert_clean_failure, soniq_cli

PASSWORD = "role-test-pw"


def url_as(database_url: str, role: str) -> str:
    """``database_url`` logging in as ``role``."""
    parts = urlsplit(database_url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{role}:{PASSWORD}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass
class Roles:
    producer: str
    worker: str
    viewer: str
    viewer_without_args: str
    urls: dict[str, str]


@pytest.fixture
async def roles(
    database_url: str, schema: str, python: str, subprocess_env: dict[str, str]
) -> AsyncIterator[Roles]:
    if not database_url.startswith("postgres"):
        pytest.skip("needs a server that accepts new roles")
    suffix = secrets.token_hex(4)
    names = {kind: f"soniq_test_{kind}_{suffix}" for kind in ("p", "w", "v", "vna")}
    owner = await asyncpg.connect(database_url)
    try:
        for name in names.values():
            await owner.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{PASSWORD}'")
        result = soniq_cli(
            python,
            subprocess_env,
            "setup",
            "--grant-producer",
            names["p"],
            "--grant-worker",
            names["w"],
            "--grant-viewer",
            names["v"],
            "--grant-viewer-without-args",
            names["vna"],
        )
        assert result.returncode == 0, result.stderr
        assert f"granted worker privileges to {names['w']}" in result.stdout
        yield Roles(
            names["p"],
            names["w"],
            names["v"],
            names["vna"],
            {name: url_as(database_url, name) for name in names.values()},
        )
    finally:
        await owner.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        for name in names.values():
            await owner.execute(f"DROP OWNED BY {name}")
            await owner.execute(f"DROP ROLE {name}")
        await owner.close()


async def _snapshot(db: asyncpg.Connection, schema: str) -> list[Any]:
    """Every job as the owner sees it."""
    return await db.fetch(
        f"SELECT id, state, attempts, args::text, result::text FROM {schema}.jobs ORDER BY id"
    )


async def _refused(
    url: str, db: asyncpg.Connection, schema: str, statements: list[str]
) -> list[str]:
    """The statements that were NOT refused for lack of privilege (each in its own
    transaction), checking that the jobs did not change."""
    before = await _snapshot(db, schema)
    allowed = []
    conn = await asyncpg.connect(url)
    try:
        for sql in statements:
            try:
                await conn.execute(sql)
            except asyncpg.InsufficientPrivilegeError:
                continue
            allowed.append(sql)
    finally:
        await conn.close()
    assert await _snapshot(db, schema) == before
    return allowed


async def test_producer_enqueues_every_way_and_may_do_nothing_else(
    roles: Roles, app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    producer = Soniq(roles.urls[roles.producer], schema=schema)
    try:
        first = await producer.enqueue("billing.charge", args={"n": 1}, queue="billing")
        keyed = await producer.enqueue("billing.charge", args={"n": 2}, dedup_key="k1")
        again = await producer.enqueue("billing.charge", args={"n": 3}, dedup_key="k1")
        later = await producer.enqueue("billing.charge", args={"n": 4}, delay=3600)
        many = await producer.enqueue_many("billing.charge", [{"n": i} for i in range(100)])
        child = await producer.enqueue("billing.charge", {"n": 7}, after=[first])
        children = await producer.enqueue_many("billing.charge", [{"n": 8}] * 2, after=[child])
        async with producer.connection() as conn:
            async with conn.transaction():
                committed = await producer.enqueue("billing.charge", {"n": 5}, connection=conn)
            with pytest.raises(RuntimeError):
                async with conn.transaction():
                    await producer.enqueue("billing.charge", {"n": 6}, connection=conn)
                    raise RuntimeError("roll back")
        # Reading anything back is not a producer's business, and says so.
        with pytest.raises(PermissionDeniedError, match="lacks the privilege"):
            await producer.get_job(first)
    finally:
        await producer.close()

    assert keyed == again
    states = dict(await db.fetch(f"SELECT id, state FROM {schema}.jobs"))
    assert len(states) == 1 + 1 + 1 + 100 + 1 + 1 + 2
    assert {states[i] for i in [first, keyed, later, committed, *many]} == {"queued"}
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.job_scheduled") == 1
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.job_waiting") == 3
    assert {states[i] for i in [child, *children]} == {"queued"}

    table = f"{schema}.job_live"
    allowed = await _refused(
        roles.urls[roles.producer],
        db,
        schema,
        [
            f"SELECT args FROM {schema}.jobs",
            f"SELECT * FROM {table}",
            f"SELECT result FROM {schema}.job_history",
            f"SELECT dedup_key FROM {schema}.job_dedup",
            f"UPDATE {table} SET state = 'running'",
            f"DELETE FROM {table}",
            f"TRUNCATE {schema}.job_live_0",
            f"""INSERT INTO {schema}.jobs (task_name, queue, args, state, max_attempts)
                VALUES ('billing.charge', 'default', '{{}}', 'done', 1)""",
            f"""INSERT INTO {schema}.job_history (id, task_name, queue, args, state, priority,
                    attempts, max_attempts, scheduled_at, enqueued_at, finished_at)
                VALUES (-1, 'x', 'q', '{{}}', 'done', 0, 1, 1, now(), now(), now())""",
            f"CREATE TABLE {schema}.mine (id int)",
            f"SELECT {schema}.drop_history_before(now() + interval '1 day')",
            f"SELECT {schema}.add_history_days(current_date, 1)",
            # moving jobs to wait, or settling them, is for the enqueue functions and workers
            f"SELECT {schema}.wait_for_parents(ARRAY[1::bigint], ARRAY[2::bigint])",
            f"SELECT {schema}.settle_children(NULL)",
        ],
    )
    assert allowed == []


async def test_worker_drains_retries_dead_letters_ticks_and_cancels_with_its_role_alone(
    roles: Roles, app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    worker = Soniq(
        roles.urls[roles.worker],
        schema=schema,
        retry_backoff=timedelta(milliseconds=50),
        retry_backoff_max=timedelta(milliseconds=100),
    )
    started: asyncio.Event = asyncio.Event()

    @worker.job(name="work.ok")
    async def ok(n: int) -> int:
        return n

    @worker.job(name="work.flaky", retries=2)
    async def flaky(n: int, ctx: JobContext) -> None:
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")

    @worker.job(name="work.broken", retries=0)
    async def broken() -> None:
        raise RuntimeError("always")

    @worker.job(name="work.endless")
    async def endless() -> None:
        started.set()
        await asyncio.sleep(3600)

    @worker.periodic(every=timedelta(milliseconds=200))
    @worker.job(name="work.tick")
    async def tick() -> None:
        pass

    producer = Soniq(roles.urls[roles.producer], schema=schema)
    await producer.enqueue_many("work.ok", [{"n": i} for i in range(1000)])
    await producer.enqueue_many("work.flaky", [{"n": i} for i in range(10)])
    await producer.enqueue_many("work.broken", [{}] * 5)
    endless_id = await producer.enqueue("work.endless", {})
    await producer.close()

    running = asyncio.create_task(worker.run_worker(poll_interval=timedelta(milliseconds=50)))
    try:
        await asyncio.wait_for(started.wait(), 20)
        assert await worker.cancel(endless_id)

        async def finished() -> bool:
            counts = dict(
                await db.fetch(f"SELECT state, count(*) FROM {schema}.jobs GROUP BY state")
            )
            return (
                counts.get("dead") == 5
                and counts.get("cancelled") == 1
                and (
                    await db.fetchval(
                        f"""SELECT count(*) FROM {schema}.jobs
                        WHERE state = 'done' AND task_name IN ('work.ok', 'work.flaky')"""
                    )
                    == 1010
                )
            )

        await wait_until(finished, timeout=60)
        await wait_until(
            lambda: db.fetchval(
                f"SELECT count(*) >= 2 FROM {schema}.jobs WHERE task_name = 'work.tick'"
                " AND state = 'done'"
            )
        )
    finally:
        await stop_worker(running)
        await worker.close()
    assert (
        await db.fetchval(
            f"SELECT count(*) FROM {schema}.jobs WHERE task_name = 'work.flaky' AND attempts = 2"
        )
        == 10
    )

    # Maintenance with the worker's privileges: retention drops an old day of history,
    # tomorrow's days are added, and the recycler empties a drained ring partition.
    await db.execute(
        f"""INSERT INTO {schema}.jobs (task_name, queue, args, state, max_attempts, finished_at)
            VALUES ('work.ok', 'default', '{{}}', 'done', 1, now() - interval '30 days')"""
    )
    slot = await db.fetchval(f"SELECT {schema}.live_slot()")
    stale = f"{schema}.job_live_{(slot + 2) % 4}"
    await db.execute(
        f"""INSERT INTO {stale} (slot, id, task_name, queue, args, state, priority,
                max_attempts, scheduled_at, enqueued_at)
            VALUES ({(slot + 2) % 4}, -1, 'x', 'q', '{{}}', 'queued', 0, 1, now(), now())"""
    )
    await db.execute(f"DELETE FROM {stale}")
    store = JobStore(schema)
    conn = await asyncpg.connect(roles.urls[roles.worker])
    try:
        assert await store.maintenance.prune_finished(conn, older_than=timedelta(days=7)) >= 1
        await store.maintenance.add_history_days(conn, days=12)
        recycled = await store.maintenance.recycle(conn)
    finally:
        await conn.close()
    assert recycled.truncated >= 1 and not recycled.blocked
    assert await db.fetchval("SELECT pg_relation_size($1::regclass)", stale) == 0
    assert not await db.fetchval(
        f"SELECT count(*) FROM {schema}.job_history WHERE finished_at < now() - interval '8 days'"
    )
    assert await db.fetchval(
        "SELECT to_regclass($1) IS NOT NULL",
        f"{schema}.job_history_"
        + (await db.fetchval("SELECT to_char(now() + interval '9 days', 'YYYYMMDD')")),
    )

    outside = f"public.soniq_outside_{secrets.token_hex(4)}"
    await db.execute(f"CREATE TABLE {outside} (secret text)")
    try:
        allowed = await _refused(
            roles.urls[roles.worker],
            db,
            schema,
            [
                f"CREATE TABLE {schema}.mine (id int)",
                f"DROP TABLE {schema}.job_dead",
                f"ALTER TABLE {schema}.job_dead ADD COLUMN x int",
                f"CREATE INDEX ON {schema}.job_dead (queue)",
                f"INSERT INTO {schema}.schema_migrations (version, name, checksum) "
                "VALUES (9999, 'x', 'x')",
                f"SELECT * FROM {outside}",
            ],
        )
    finally:
        await db.execute(f"DROP TABLE {outside}")
    assert allowed == []


async def test_viewers_read_what_the_cli_shows_and_change_nothing(
    roles: Roles,
    app: Soniq,
    db: asyncpg.Connection,
    schema: str,
    python: str,
    subprocess_env: dict[str, str],
) -> None:
    job_id = await app.enqueue("billing.charge", args={"card": "4242"}, queue="billing")

    @app.job(name="billing.fail", retries=0)
    async def fail() -> None:
        raise RuntimeError("declined")

    dead_id = await app.enqueue("billing.fail", {})
    await app.drain()
    assert (await app.get_job(dead_id)).state.value == "dead"

    viewer_env = {**subprocess_env, "SONIQ_DATABASE_URL": roles.urls[roles.viewer]}
    for command in (
        ["status"],
        ["jobs", "list"],
        ["jobs", "show", str(job_id)],
        ["dead-letter", "list"],
    ):
        result = soniq_cli(python, viewer_env, *command)
        assert result.returncode == 0, (command, result.stderr)
    shown = soniq_cli(python, viewer_env, "jobs", "show", str(job_id), "--json")
    assert '"4242"' in shown.stdout

    before = await _snapshot(db, schema)
    assert_clean_failure(
        soniq_cli(python, viewer_env, "cancel", str(job_id)), "lacks the privilege"
    )
    assert_clean_failure(
        soniq_cli(python, viewer_env, "dead-letter", "replay", str(dead_id)), "lacks the privilege"
    )
    assert await _snapshot(db, schema) == before
    allowed = await _refused(
        roles.urls[roles.viewer],
        db,
        schema,
        [
            f"UPDATE {schema}.job_live SET priority = 9",
            f"DELETE FROM {schema}.job_dead",
            f"SELECT {schema}.enqueue('billing.charge', '{{}}')",
            f"CREATE TABLE {schema}.mine (id int)",
        ],
    )
    assert allowed == []

    # Without args: the job data columns are refused, everything else reads.
    blind_env = {**subprocess_env, "SONIQ_DATABASE_URL": roles.urls[roles.viewer_without_args]}
    assert soniq_cli(python, blind_env, "status").returncode == 0
    conn = await asyncpg.connect(roles.urls[roles.viewer_without_args])
    try:
        assert (
            await conn.fetchval(
                f"SELECT count(*) FROM (SELECT id, state, error_message FROM {schema}.jobs) j"
            )
            == 2
        )
        for column, table in (
            ("args", "jobs"),
            ("result", "jobs"),
            ("args", "job_live"),
            ("error_detail", "job_dead"),
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch(f"SELECT {column} FROM {schema}.{table}")
    finally:
        await conn.close()


async def test_print_sql_writes_nothing_and_its_script_sets_up_the_schema_and_grants(
    database_url: str,
    schema: str,
    db: asyncpg.Connection,
    python: str,
    subprocess_env: dict[str, str],
) -> None:
    if not database_url.startswith("postgres"):
        pytest.skip("needs a server that accepts new roles")
    role = f"soniq_test_print_{secrets.token_hex(4)}"
    await db.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
    try:
        result = soniq_cli(python, subprocess_env, "setup", "--print-sql", "--grant-producer", role)
        assert result.returncode == 0, result.stderr
        assert not await db.fetchval("SELECT to_regnamespace($1) IS NOT NULL", schema)
        assert result.stdout.startswith("BEGIN;") and result.stdout.rstrip().endswith("COMMIT;")
        psql = subprocess.run(
            ["psql", database_url, "-v", "ON_ERROR_STOP=1", "-q"],
            input=result.stdout,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert psql.returncode == 0, psql.stderr
        producer = Soniq(url_as(database_url, role), schema=schema)
        try:
            job_id = await producer.enqueue("billing.charge", {"n": 1})
        finally:
            await producer.close()
        assert (
            await db.fetchval(f"SELECT state FROM {schema}.jobs WHERE id = $1", job_id) == "queued"
        )
        again = soniq_cli(python, subprocess_env, "setup", "--print-sql")
        assert f"INSERT INTO {schema}.schema_migrations" not in again.stdout  # all applied
    finally:
        await db.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await db.execute(f"DROP OWNED BY {role}")
        await db.execute(f"DROP ROLE {role}")


async def test_unknown_or_malformed_role_is_one_clear_error(
    python: str, subprocess_env: dict[str, str], db: asyncpg.Connection, schema: str
) -> None:
    missing = soniq_cli(python, subprocess_env, "setup", "--grant-worker", "no_such_role_x1")
    assert_clean_failure(missing, "no_such_role_x1")
    # nothing half-written: the grant failed, so the migrations rolled back with it
    assert not await db.fetchval("SELECT to_regnamespace($1) IS NOT NULL", schema)
    bad = soniq_cli(python, subprocess_env, "setup", "--grant-viewer", 'x"; DROP TABLE y; --')
    assert_clean_failure(bad, "invalid role name")
