"""A consumer app for multi-process tests: every handler run leaves one row in
``<schema>.side_effects``, so tests can count how often each job body really ran."""

from __future__ import annotations

import os

import asyncpg

from soniq import JobContext, Soniq

app = Soniq()
_schema = app.schema
_pool: asyncpg.Pool | None = None


async def _side_effects() -> asyncpg.Pool:
    global _pool
    if _pool is None:
        _pool = await asyncpg.create_pool(os.environ["SONIQ_DATABASE_URL"], min_size=1, max_size=4)
    return _pool


@app.job(name="test.count")
async def count(n: int, ctx: JobContext) -> None:
    pool = await _side_effects()
    await pool.execute(
        f"INSERT INTO {_schema}.side_effects (job_id, worker_pid) VALUES ($1, $2)",
        ctx.job_id,
        os.getpid(),
    )
