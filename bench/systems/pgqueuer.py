"""pgqueuer under test: ``Queries.enqueue`` (lists for bulk) and a ``QueueManager`` on its own
asyncpg connection. pgqueuer has no concurrency setting of its own (it runs every job it
dequeued); its knob is ``batch_size``, so drain at concurrency C uses batch C, and one more
drain uses batch 500, its best configuration on the issue's machine."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from pgqueuer import AsyncpgDriver, Queries, QueueManager
from pgqueuer.models import Job

from bench.config import BULK, DRAIN_CONCURRENCIES, LATENCY, RSS, SINGLE, drain_scenario
from bench.probe import handle
from bench.systems.base import Drain, StopWorker, System, Variant

ENTRYPOINT = "noop"
BEST_BATCH = 500
STOP_TIMEOUT = 30.0


def _payload(args: dict[str, Any]) -> bytes:
    return json.dumps(args, separators=(",", ":")).encode()


class PgqueuerSystem(System):
    name = "pgqueuer"
    packages = ("pgqueuer", "asyncpg")

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._producer: asyncpg.Connection | None = None
        self._queries: Queries | None = None

    def variants(self) -> list[Variant]:
        drains = [
            Drain(drain_scenario(c), c, f"batch {c}", {"batch_size": c})
            for c in DRAIN_CONCURRENCIES
        ]
        best = Drain(
            f"drain_b{BEST_BATCH}", BEST_BATCH, f"batch {BEST_BATCH}", {"batch_size": BEST_BATCH}
        )
        drains.append(best)
        return [Variant("pgqueuer", "pgqueuer", (SINGLE, BULK, LATENCY, RSS), tuple(drains))]

    def tables(self) -> list[str]:
        return ["pgqueuer", "pgqueuer_log", "pgqueuer_statistics"]

    def channels(self) -> list[str]:
        return ["ch_pgqueuer"]

    @property
    def queries(self) -> Queries:
        assert self._queries is not None
        return self._queries

    async def _open(self, *, install: bool) -> None:
        self._producer = await asyncpg.connect(self.url, timeout=10)
        self._queries = Queries(AsyncpgDriver(self._producer))
        if install:
            await self._queries.install()

    async def _close(self) -> None:
        if self._producer is not None:
            await self._producer.close()
            self._producer = None

    async def enqueue_one(self, variant: str, args: dict[str, Any]) -> None:
        await self.queries.enqueue(ENTRYPOINT, _payload(args))

    async def enqueue_many(self, variant: str, args_list: list[dict[str, Any]]) -> None:
        count = len(args_list)
        await self.queries.enqueue(
            [ENTRYPOINT] * count, [_payload(a) for a in args_list], [0] * count
        )

    async def start_worker(self, variant: str, drain: Drain) -> StopWorker:
        conn = await asyncpg.connect(self.url, timeout=10)
        manager = QueueManager(Queries(AsyncpgDriver(conn)))

        @manager.entrypoint(ENTRYPOINT)
        async def noop(job: Job) -> None:
            await handle()

        if drain.scenario == RSS:  # a real cap on jobs in flight; pgqueuer needs cap >= 2 x batch
            batch_size, limit = max(1, drain.concurrency // 2), drain.concurrency
        else:  # batch C, and as many in flight as were dequeued (pgqueuer's default)
            batch_size, limit = int(drain.options.get("batch_size", drain.concurrency)), None
        task = asyncio.ensure_future(
            manager.run(
                batch_size=batch_size,
                max_concurrent_tasks=limit,
                # The periodic log folding would only start after 24-36 s; off, so it can
                # never fold this run's log rows away before they are counted.
                log_aggregation_interval=timedelta(0),
            )
        )

        async def stop() -> None:
            manager.shutdown.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT)
            except asyncio.TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            finally:
                await conn.close()

        await asyncio.sleep(0)
        return stop

    async def stored(self) -> int:
        return await self.count("SELECT count(*) FROM pgqueuer")

    async def finished(self) -> int:
        return await self.count("SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'")

    async def last_finished(self) -> datetime | None:
        value: datetime | None = await self.db.fetchval(
            "SELECT max(created) FROM pgqueuer_log WHERE status = 'successful'"
        )
        return value

    async def unfinished(self) -> int:
        # pgqueuer deletes a finished job from its queue table as it logs the outcome.
        return await self.count("SELECT count(*) FROM pgqueuer")
