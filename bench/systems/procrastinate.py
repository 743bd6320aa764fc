"""procrastinate under test: an ``App`` on a ``PsycopgConnector``, ``defer_async`` and
``batch_defer_async``, and ``run_worker_async`` with its ``concurrency`` setting."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any

from procrastinate import App, PsycopgConnector

from bench.config import BULK, DRAIN_CONCURRENCIES, LATENCY, RSS, SINGLE, drain_scenario
from bench.probe import handle
from bench.systems.base import Drain, StopWorker, System, Variant

TASK = "noop"
STOP_TIMEOUT = 30.0


class ProcrastinateSystem(System):
    name = "procrastinate"
    packages = ("procrastinate", "psycopg", "psycopg-pool")
    slow = True

    def __init__(self, url: str) -> None:
        super().__init__(url)
        # Its worker logs every job at INFO; keep the benchmark's output to the table.
        logging.getLogger("procrastinate").setLevel(logging.WARNING)
        self.app = App(connector=PsycopgConnector(conninfo=url))

        @self.app.task(name=TASK)
        async def noop(**kwargs: Any) -> None:
            await handle(**kwargs)

        self.task = noop

    def variants(self) -> list[Variant]:
        drains = tuple(Drain(drain_scenario(c), c, f"c{c}") for c in DRAIN_CONCURRENCIES)
        return [Variant("procrastinate", "procrastinate", (SINGLE, BULK, LATENCY, RSS), drains)]

    def tables(self) -> list[str]:
        return ["procrastinate_jobs", "procrastinate_events", "procrastinate_workers"]

    def channels(self) -> list[str]:
        return ["procrastinate_any_queue_v1"]

    async def _open(self, *, install: bool) -> None:
        await self.app.open_async()
        if install:
            await self.app.schema_manager.apply_schema_async()

    async def _close(self) -> None:
        await self.app.close_async()

    async def enqueue_one(self, variant: str, args: dict[str, Any]) -> None:
        await self.task.defer_async(**args)

    async def enqueue_many(self, variant: str, args_list: list[dict[str, Any]]) -> None:
        await self.task.batch_defer_async(*args_list)

    async def start_worker(self, variant: str, drain: Drain) -> StopWorker:
        task = asyncio.ensure_future(
            self.app.run_worker_async(
                concurrency=drain.concurrency, install_signal_handlers=False, wait=True
            )
        )

        async def stop() -> None:
            task.cancel()  # procrastinate turns this into a graceful stop
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, STOP_TIMEOUT)

        await asyncio.sleep(0)
        return stop

    async def stored(self) -> int:
        return await self.count("SELECT count(*) FROM procrastinate_jobs")

    async def finished(self) -> int:
        return await self.count(
            "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
        )

    async def last_finished(self) -> datetime | None:
        value: datetime | None = await self.db.fetchval(
            "SELECT max(at) FROM procrastinate_events WHERE type = 'succeeded'"
        )
        return value

    async def unfinished(self) -> int:
        return await self.count(
            "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
        )
