"""Workers prune old done and cancelled jobs, and old dead letters only when asked to."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg

from soniq import Soniq
from tests.helpers import start_worker, stop_worker, wait_until


async def _insert_finished(db: asyncpg.Connection, schema: str, state: str, age: timedelta) -> int:
    job_id: int = await db.fetchval(
        f"INSERT INTO {schema}.jobs (task_name, queue, args, state, max_attempts, finished_at) "
        f"VALUES ('x.old', 'default', '{{}}', $1, 1, now() - $2::interval) RETURNING id",
        state,
        age,
    )
    return job_id


async def _ids(db: asyncpg.Connection, schema: str) -> set[int]:
    return {r["id"] for r in await db.fetch(f"SELECT id FROM {schema}.jobs")}


async def test_workers_prune_old_done_and_cancelled_jobs_and_keep_dead_letters_by_default(
    database_url: str, schema: str, db: asyncpg.Connection
) -> None:
    app = Soniq(database_url, schema=schema, done_retention=timedelta(days=1))
    await app.setup()
    old_done = await _insert_finished(db, schema, "done", timedelta(days=2))
    old_cancelled = await _insert_finished(db, schema, "cancelled", timedelta(days=2))
    recent_done = await _insert_finished(db, schema, "done", timedelta(hours=1))
    old_dead = await _insert_finished(db, schema, "dead", timedelta(days=400))

    worker = asyncio.create_task(app.run_worker(lease=timedelta(seconds=0.3)))
    await wait_until(lambda: _pruned(db, schema, {old_done, old_cancelled}))
    await stop_worker(worker)
    await app.close()
    assert await _ids(db, schema) == {recent_done, old_dead}


async def test_dead_retention_prunes_only_old_dead_letters(
    database_url: str, schema: str, db: asyncpg.Connection
) -> None:
    app = Soniq(database_url, schema=schema, dead_retention=timedelta(days=30))
    await app.setup()
    old_dead = await _insert_finished(db, schema, "dead", timedelta(days=31))
    recent_dead = await _insert_finished(db, schema, "dead", timedelta(days=29))

    worker = asyncio.create_task(app.run_worker(lease=timedelta(seconds=0.3)))
    await wait_until(lambda: _pruned(db, schema, {old_dead}))
    await stop_worker(worker)
    await app.close()
    assert await _ids(db, schema) == {recent_dead}


async def _pruned(db: asyncpg.Connection, schema: str, gone: set[int]) -> bool:
    return not (await _ids(db, schema)) & gone


async def test_heartbeats_go_on_while_retention_waits_for_a_lock(
    database_url: str, schema: str, db: asyncpg.Connection
) -> None:
    app = Soniq(database_url, schema=schema, dead_retention=timedelta(days=30))
    release = asyncio.Event()

    @app.job(name="slow.task")
    async def slow() -> None:
        await release.wait()

    await app.setup()
    old_dead = await _insert_finished(db, schema, "dead", timedelta(days=31))
    job_id = await app.enqueue("slow.task")
    holder = await asyncpg.connect(database_url)
    try:
        async with holder.transaction():
            # retention's DELETE of old dead letters now waits until this transaction ends
            await holder.execute(
                f"SELECT id FROM {schema}.job_dead WHERE id = $1 FOR UPDATE", old_dead
            )
            worker = start_worker(app, lease=timedelta(seconds=0.3))
            await wait_until(lambda: _retention_waits(db, holder))
            leases = [await _lease(db, schema, job_id)]
            for _ in range(3):
                leases.append(await wait_until(lambda: _lease_after(db, schema, job_id, leases)))
            assert await _retention_waits(db, holder)  # still blocked all along
        release.set()
        await wait_until(lambda: _pruned(db, schema, {old_dead}))
        await stop_worker(worker)
    finally:
        await holder.close()
        await app.close()


async def _retention_waits(db: asyncpg.Connection, holder: asyncpg.Connection) -> bool:
    """Whether a DELETE of dead letters waits for ``holder``'s transaction."""
    return bool(
        await db.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE $1 = ANY(pg_blocking_pids(pid)) AND query LIKE '%DELETE FROM %job_dead%'""",
            holder.get_server_pid(),
        )
    )


async def _lease(db: asyncpg.Connection, schema: str, job_id: int) -> Any:
    return await db.fetchval(
        f"SELECT lease_expires_at FROM {schema}.job_live WHERE id = $1 AND state = 'running'",
        job_id,
    )


async def _lease_after(db: asyncpg.Connection, schema: str, job_id: int, seen: list[Any]) -> Any:
    lease = await _lease(db, schema, job_id)
    return lease if lease is not None and (seen[-1] is None or lease > seen[-1]) else None
