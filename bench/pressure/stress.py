"""What hurts the database during a stress phase. Each stressor is an async context manager:
entered when the stress phase starts, exited when it ends, writing what it did (a held
xid, transactions, terminations...) into the ``facts`` dict it is given."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from bench.pressure.load import Producer

Facts = dict[str, Any]


@dataclass(frozen=True)
class StressContext:
    """What a stressor may use."""

    url: str  # the run's database, as the superuser
    schema: str
    worker_user: str  # the role the workers connect as
    producer: Producer
    rate: float  # the steady rate of the clean phase
    overload: float  # the rate multiplier of the overload stressor
    readers: int
    reader_hold: tuple[float, float]  # seconds each reader transaction stays open
    idle_connections: int


Stressor = Callable[[StressContext, Facts], AbstractAsyncContextManager[None]]


async def _connect(url: str, name: str) -> asyncpg.Connection:
    return await asyncpg.connect(url, timeout=30, server_settings={"application_name": name})


@asynccontextmanager
async def idle_in_tx(ctx: StressContext, facts: Facts) -> AsyncIterator[None]:
    """One transaction that took an xid (``BEGIN; SELECT txid_current()``) and then sits
    idle: it pins the xmin horizon, so VACUUM removes no row version deleted meanwhile."""
    conn = await _connect(ctx.url, "pressure-idle-in-tx")
    try:
        await conn.execute("BEGIN")
        facts["xid"] = int(await conn.fetchval("SELECT txid_current()"))
        yield
    finally:
        await conn.close()  # ends the transaction


@asynccontextmanager
async def rr_readers(ctx: StressContext, facts: Facts) -> AsyncIterator[None]:
    """``readers`` connections, each running REPEATABLE READ transactions back to back, each
    held open for a random ``reader_hold`` seconds while it scans the ``jobs`` view (all
    four lifecycle tables) every 100 ms; started staggered, so they overlap."""
    facts.update(transactions=0, scans=0, scan_seconds=0.0)
    conns = [await _connect(ctx.url, "pressure-reader") for _ in range(ctx.readers)]
    query = f"SELECT count(*), max(enqueued_at) FROM {ctx.schema}.jobs"
    loop = asyncio.get_running_loop()

    async def read(conn: asyncpg.Connection, stagger: float) -> None:
        await asyncio.sleep(stagger)
        while True:
            hold = random.uniform(*ctx.reader_hold)
            async with conn.transaction(isolation="repeatable_read"):
                began = loop.time()
                while True:
                    scan = loop.time()
                    await conn.fetchrow(query)
                    facts["scans"] += 1
                    facts["scan_seconds"] += loop.time() - scan
                    if loop.time() - began >= hold:
                        break
                    await asyncio.sleep(0.1)
            facts["transactions"] += 1

    mean_hold = sum(ctx.reader_hold) / 2
    tasks = [
        asyncio.create_task(read(conn, n * mean_hold / len(conns))) for n, conn in enumerate(conns)
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for conn in conns:
            conn.terminate()  # a transaction cut off mid-statement: the server rolls it back


@asynccontextmanager
async def overload(ctx: StressContext, facts: Facts) -> AsyncIterator[None]:
    """The producer at ``overload`` times the clean rate."""
    facts["offered_rate"] = ctx.rate * ctx.overload
    ctx.producer.set_rate(ctx.rate * ctx.overload)
    try:
        yield
    finally:
        ctx.producer.set_rate(ctx.rate)


@asynccontextmanager
async def terminate(ctx: StressContext, facts: Facts) -> AsyncIterator[None]:
    """Once a second, ``pg_terminate_backend`` of every backend of the workers' role: their
    pooled connections and their LISTEN connection, busy or idle."""
    facts.update(rounds=0, terminated=0)
    conn = await _connect(ctx.url, "pressure-terminator")
    query = """SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
               WHERE usename = $1 AND datname = current_database()"""

    async def kill() -> None:
        loop = asyncio.get_running_loop()
        next_round = loop.time()
        while True:
            facts["terminated"] += int(await conn.fetchval(query, ctx.worker_user))
            facts["rounds"] += 1
            next_round += 1.0
            await asyncio.sleep(max(0.0, next_round - loop.time()))

    task = asyncio.create_task(kill())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await conn.close()


@asynccontextmanager
async def idle_conns(ctx: StressContext, facts: Facts) -> AsyncIterator[None]:
    """``idle_connections`` connections to the run's database, opened 25 at a time and held
    idle for the whole phase."""
    opening = asyncio.Semaphore(25)
    errors: list[str] = []

    async def open_one() -> asyncpg.Connection | None:
        async with opening:
            try:
                return await _connect(ctx.url, "pressure-idle")
            except (OSError, asyncpg.PostgresError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return None

    opened = await asyncio.gather(*(open_one() for _ in range(ctx.idle_connections)))
    conns = [c for c in opened if c is not None]
    facts.update(opened=len(conns), failed=len(errors), first_error=errors[0] if errors else None)
    try:
        yield
    finally:
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)


STRESSORS: dict[str, Stressor] = {
    "idle_in_tx": idle_in_tx,
    "rr_readers": rr_readers,
    "overload": overload,
    "terminate": terminate,
    "idle_conns": idle_conns,
}
