"""The SQL enqueue API (docs/sql-api.md), called as other languages call it: from ``psql``
and from a second driver (psycopg 3), with the checks the Python producer makes."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

import asyncpg
import psycopg
import pytest
from pydantic import BaseModel

from soniq import Soniq

pytestmark = pytest.mark.skipif(shutil.which("psql") is None, reason="needs psql")


def psql(url: str, sql: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["psql", url, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_psql_enqueues_one_many_delayed_and_deduplicated_jobs(
    app: Soniq, database_url: str, db: asyncpg.Connection, schema: str
) -> None:
    one = psql(
        database_url,
        f"""SELECT {schema}.enqueue('emails.send', '{{"to": "ada@example.com"}}',
                                    queue => 'mail', priority => 5)""",
    )
    assert one.returncode == 0, one.stderr
    job_id = int(one.stdout)
    row = await db.fetchrow(f"SELECT * FROM {schema}.jobs WHERE id = $1", job_id)
    assert (row["state"], row["queue"], row["priority"]) == ("queued", "mail", 5)
    assert json.loads(row["args"]) == {"to": "ada@example.com"}

    later = psql(
        database_url,
        f"SELECT {schema}.enqueue('emails.send', '{{}}', delay => interval '1 hour')",
    )
    wait = await db.fetchval(
        f"SELECT extract(epoch FROM scheduled_at - now()) FROM {schema}.job_scheduled "
        "WHERE id = $1",
        int(later.stdout),
    )
    assert 3590 < wait <= 3600

    many = psql(
        database_url,
        f"""SELECT {schema}.enqueue_many('emails.send',
                ARRAY['{{"n": 1}}', '{{"n": 2}}', '{{"n": 3}}']::json[], queue => 'mail')""",
    )
    ids = [int(i) for i in many.stdout.strip().strip("{}").split(",")]
    stored = await db.fetch(
        f"SELECT id, args::text FROM {schema}.jobs WHERE id = ANY($1) ORDER BY id", ids
    )
    assert [json.loads(r["args"])["n"] for r in stored] == [1, 2, 3] and ids == sorted(ids)

    keyed = [
        psql(database_url, f"SELECT {schema}.enqueue('emails.send', '{{}}', dedup_key => 'd1')")
        for _ in range(2)
    ]
    assert keyed[0].stdout == keyed[1].stdout
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.jobs") == 1 + 1 + 3 + 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("enqueue('Emails.Send', '{}')", "invalid task name"),
        ("enqueue('emails.send', '{}', queue => 'no spaces')", "invalid queue name"),
        ("enqueue('emails.send', '[1, 2]')", "args must be a JSON object, got array"),
        ("enqueue('emails.send', NULL)", "args must be a JSON object"),
        ("enqueue('emails.send', '{}', max_args_bytes => 1)", "more than the limit of 1"),
        ("enqueue('emails.send', '{}', dedup_key => '')", "dedup_key must be"),
        ("enqueue('emails.send', '{}', delay => '-1 s')", "delay must be between"),
        ("enqueue('emails.send', '{}', delay => '1 s', scheduled_at => now())", "not both"),
        ("enqueue('emails.send', '{}', max_attempts => 0)", "max_attempts must be at least 1"),
        ("enqueue_many('emails.send', ARRAY['{}', '3']::json[])", "args[2] must be a JSON object"),
    ],
)
async def test_bad_calls_from_psycopg_raise_one_clear_error_and_write_nothing(
    app: Soniq, database_url: str, db: asyncpg.Connection, schema: str, call: str, message: str
) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        with pytest.raises(psycopg.errors.DatabaseError) as raised:
            await conn.execute(f"SELECT {schema}.{call}")
    assert message in str(raised.value)
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.jobs") == 0
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.job_lanes") == 0


async def test_psycopg_enqueue_in_a_transaction_notifies_at_commit_and_rolls_back_cleanly(
    app: Soniq, database_url: str, db: asyncpg.Connection, schema: str
) -> None:
    woken: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(database_url)
    await listener.add_listener(f"{schema}.jobs", lambda *args: woken.put_nowait(args[3]))
    try:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            async with conn.transaction():
                cursor = await conn.execute(
                    f"SELECT {schema}.enqueue('orders.ship', %s::json, queue => 'orders')",
                    [json.dumps({"order": 7})],
                )
                row = await cursor.fetchone()
                assert row is not None
                await asyncio.sleep(0.2)
                assert woken.empty()  # not before commit
                assert await db.fetchval(f"SELECT count(*) FROM {schema}.jobs") == 0
            assert await asyncio.wait_for(woken.get(), 5) == "orders"
            with pytest.raises(RuntimeError):
                async with conn.transaction():
                    await conn.execute(f"SELECT {schema}.enqueue('orders.ship', '{{}}')")
                    raise RuntimeError("roll back")
    finally:
        await listener.close()
    assert [r["id"] for r in await db.fetch(f"SELECT id FROM {schema}.jobs")] == [row[0]]


class Ship(BaseModel):
    order: int


async def test_sql_enqueued_args_are_validated_at_dispatch(
    app: Soniq, database_url: str, db: asyncpg.Connection, schema: str
) -> None:
    shipped: list[int] = []

    @app.job(name="orders.ship", validate=Ship)
    async def ship(order: int) -> None:
        shipped.append(order)

    good = int(
        psql(database_url, f"SELECT {schema}.enqueue('orders.ship', '{{\"order\": 7}}')").stdout
    )
    bad = int(
        psql(database_url, f"SELECT {schema}.enqueue('orders.ship', '{{\"order\": \"x\"}}')").stdout
    )
    await app.drain()
    assert shipped == [7]
    assert (await app.get_job(good)).state.value == "done"
    dead = await app.get_job(bad)
    assert dead.state.value == "dead" and dead.error is not None
    assert dead.error.reason == "invalid arguments" and "order" in dead.error.message
