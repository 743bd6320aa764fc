"""A consumer app for the fault-injection tests (tests/faults/).

Every handler run leaves rows in ``<schema>.side_effects`` (created by the test) through a
connection pool of its own, so tests can tell from the database how often, and in which
process, each job body ran:

- ``phase='start'`` when the handler begins, ``phase='end'`` when it returns;
- ``pid`` is the worker process, ``seq`` the order the rows were written.

The side-effect pool connects to ``FAULT_SIDE_EFFECTS_URL`` when set (so a test can cut
Soniq's own connections without touching the handler's), else to ``SONIQ_DATABASE_URL``.
``FAULT_TRANSACTION_POOLING=1`` and ``FAULT_LISTEN_URL`` configure the app for a URL that
goes through PgBouncer.
"""

from __future__ import annotations

import asyncio
import os
import time

import asyncpg

from soniq import JobContext, Soniq

# Tests that run workers through PgBouncer set these (see tests/test_pgbouncer.py).
app = Soniq(
    transaction_pooling=os.environ.get("FAULT_TRANSACTION_POOLING") == "1",
    listen_url=os.environ.get("FAULT_LISTEN_URL"),
)
_schema = app.schema
_pool: asyncpg.Pool | None = None
_pool_lock = asyncio.Lock()


async def _side_effects() -> asyncpg.Pool:
    global _pool
    async with _pool_lock:
        if _pool is None:
            url = os.environ.get("FAULT_SIDE_EFFECTS_URL") or os.environ["SONIQ_DATABASE_URL"]
            _pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    return _pool


async def _record(job_id: int, phase: str) -> None:
    pool = await _side_effects()
    await pool.execute(
        f"INSERT INTO {_schema}.side_effects (job_id, pid, phase) VALUES ($1, $2, $3)",
        job_id,
        os.getpid(),
        phase,
    )


@app.job(name="fault.count")
async def count(n: int, ctx: JobContext) -> None:
    """One row per run: the body of the job is the insert."""
    await _record(ctx.job_id, "end")


@app.job(name="fault.sleep")
async def sleep(seconds: float, ctx: JobContext) -> None:
    """Records its start, sleeps, records its end."""
    await _record(ctx.job_id, "start")
    await asyncio.sleep(seconds)
    await _record(ctx.job_id, "end")


@app.job(name="fault.sleep_sync")
def sleep_sync(seconds: float, ctx: JobContext) -> None:
    """A blocking handler (runs in a worker thread): start row, time.sleep, end row."""
    asyncio.run(_record_once(ctx.job_id, "start"))
    time.sleep(seconds)
    asyncio.run(_record_once(ctx.job_id, "end"))


async def _record_once(job_id: int, phase: str) -> None:
    url = os.environ.get("FAULT_SIDE_EFFECTS_URL") or os.environ["SONIQ_DATABASE_URL"]
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            f"INSERT INTO {_schema}.side_effects (job_id, pid, phase) VALUES ($1, $2, $3)",
            job_id,
            os.getpid(),
            phase,
        )
    finally:
        await conn.close()


@app.job(name="fault.exit", retries=2)
async def hard_exit(ctx: JobContext) -> None:
    """A poison job: kills the whole worker process, on every attempt."""
    await _record(ctx.job_id, "start")
    os._exit(1)


@app.job(name="fault.timeout", retries=1, timeout=0.3)
async def too_slow(ctx: JobContext) -> None:
    """Always overruns its 0.3 s timeout; the end row must never appear."""
    await _record(ctx.job_id, "start")
    await asyncio.sleep(30)
    await _record(ctx.job_id, "end")


@app.job(name="fault.sleep_sync_limited", retries=0, timeout=0.5)
def sleep_sync_limited(seconds: float, ctx: JobContext) -> None:
    """A blocking handler with a 0.5 s timeout: a thread cannot be cancelled, so an overrun
    keeps running after its attempt has failed."""
    sleep_sync(seconds, ctx)


class _Custom(BaseException):
    """A BaseException of the handler's own, not an Exception."""


_RAISABLE: dict[str, type[BaseException]] = {
    "SystemExit": SystemExit,
    "KeyboardInterrupt": KeyboardInterrupt,
    "GeneratorExit": GeneratorExit,
    "custom": _Custom,
}


@app.job(name="fault.raise_base", retries=0)
async def raise_base(kind: str, ctx: JobContext) -> None:
    """Raises a BaseException that is not an Exception, from an async handler."""
    await _record(ctx.job_id, "start")
    raise _RAISABLE[kind](f"raised by job {ctx.job_id}")


@app.job(name="fault.raise_base_sync", retries=0)
def raise_base_sync(kind: str, ctx: JobContext) -> None:
    """The same from a blocking handler, which runs in a thread."""
    asyncio.run(_record_once(ctx.job_id, "start"))
    raise _RAISABLE[kind](f"raised by job {ctx.job_id}")


@app.job(name="fault.raise_base_limited", retries=0, timeout=10)
async def raise_base_limited(kind: str, ctx: JobContext) -> None:
    """The same from an async handler with a timeout, which runs in a task of its own."""
    await _record(ctx.job_id, "start")
    raise _RAISABLE[kind](f"raised by job {ctx.job_id}")


@app.job(name="fault.customer")
async def customer(customer_id: int, seconds: float, ctx: JobContext) -> None:
    """fault.sleep for one customer: the tests of partitioned limits read the customer from
    the job's args."""
    await _record(ctx.job_id, "start")
    await asyncio.sleep(seconds)
    await _record(ctx.job_id, "end")
