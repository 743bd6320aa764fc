"""Soniq under test: tasks with a pydantic args model (validated at enqueue and dispatch) and,
for the validation-cost ratio, the same no-op with no model of its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

from bench.config import (
    BULK,
    DRAIN_CONCURRENCIES,
    LATENCY,
    LIMIT_COPY,
    LIMIT_DRAIN,
    RSS,
    SINGLE,
    STEERED_CONCURRENCY,
    STEERED_LIMITED,
    STEERED_PARTITIONED,
    STEERED_RATE,
    STEERED_RATE_PER_S,
    VALIDATION,
    drain_scenario,
)
from bench.probe import BenchArgs, handle, make_args
from bench.systems.base import Drain, StartWorker, StopWorker, System, Variant
from soniq import Soniq
from soniq.backoff import Backoff
from soniq.job import ClaimedJob
from soniq.registry import JobSpec, build_spec
from soniq.worker.attempt import run_attempt

SCHEMA = "soniq"
BEST_CONCURRENCY = 500
MODEL_TASK = "bench.noop"
RAW_TASK = "bench.raw"
STOP_TIMEOUT = 30.0
_TASKS = {"soniq": MODEL_TASK, "soniq-nomodel": RAW_TASK}


def _drain(concurrency: int) -> Drain:
    return Drain(drain_scenario(concurrency), concurrency, f"c{concurrency}")


# The default queue's settings (app.configure_queue) during each steered drain.
_STEERED = {
    STEERED_LIMITED: {"concurrency": 10 * STEERED_CONCURRENCY},
    STEERED_PARTITIONED: {"concurrency": 1, "partition_by": ["n"]},
    STEERED_RATE: {"rate_limit": f"{STEERED_RATE_PER_S}/s"},
}


class SoniqSystem(System):
    name = "soniq"
    packages = ("soniq", "asyncpg", "pydantic")

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.app = Soniq(url, schema=SCHEMA)

        @self.app.job(name=MODEL_TASK, validate=BenchArgs)
        async def noop(**kwargs: Any) -> None:
            await handle(**kwargs)

        @self.app.job(name=RAW_TASK)
        async def raw(**kwargs: Any) -> None:
            await handle(**kwargs)

        # The same specs @app.job built, for timing the dispatch path on its own.
        def spec(variant: str, handler: Any, model: type[BenchArgs] | None) -> JobSpec:
            return build_spec(
                handler, name=_TASKS[variant], validate=model, queue=None,
                retries=self.app.settings.default_retries, timeout=None, priority=None,
                ref=None,
            )  # fmt: skip

        self._specs = {
            "soniq": spec("soniq", noop, BenchArgs),
            "soniq-nomodel": spec("soniq-nomodel", raw, None),
        }

    def variants(self) -> list[Variant]:
        # BEST_CONCURRENCY mirrors pgqueuer's batch 500: each system's best setting.
        drains = tuple(_drain(c) for c in (*DRAIN_CONCURRENCIES, BEST_CONCURRENCY)) + tuple(
            Drain(name, STEERED_CONCURRENCY, name, {"queue": settings})
            for name, settings in _STEERED.items()
        )
        scenarios = (SINGLE, BULK, LATENCY, RSS, VALIDATION, LIMIT_DRAIN, LIMIT_COPY)
        return [Variant("soniq", "soniq", scenarios, drains)]

    def without_model(self, variant: str) -> tuple[str, Drain]:
        return "soniq-nomodel", _drain(BEST_CONCURRENCY)

    def tables(self) -> list[str]:
        names = ("job_live", "job_scheduled", "job_dead", "job_history", "job_dedup")
        names += ("queue_settings", "queue_starts")
        return [f"{SCHEMA}.{name}" for name in names]

    def channels(self) -> list[str]:
        return [f"{SCHEMA}.jobs"]

    async def _open(self, *, install: bool) -> None:
        if install:
            await self.app.setup()

    async def _close(self) -> None:
        await self.app.close()

    async def enqueue_one(self, variant: str, args: dict[str, Any]) -> None:
        await self.app.enqueue(_TASKS[variant], args)

    async def enqueue_many(self, variant: str, args_list: list[dict[str, Any]]) -> None:
        await self.app.enqueue_many(_TASKS[variant], args_list)

    async def prepare_worker(self, variant: str, drain: Drain) -> StartWorker:
        if "queue" in drain.options:
            await self.app.configure_queue("default", **drain.options["queue"])
        return await super().prepare_worker(variant, drain)

    async def start_worker(self, variant: str, drain: Drain) -> StopWorker:
        task = asyncio.ensure_future(self.app.run_worker(concurrency=drain.concurrency))

        async def stop() -> None:
            await self.app.stop()
            try:
                await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT)
            except asyncio.TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        await asyncio.sleep(0)  # let the worker begin before the caller's clock matters
        return stop

    async def dispatch_seconds(self, variant: str, calls: int) -> float | None:
        spec = self._specs[variant]
        job = ClaimedJob(
            id=1, slot=0, task_name=spec.name, queue="default",
            args_json=json.dumps(make_args(1), separators=(",", ":")), attempts=1,
            max_attempts=spec.max_attempts, enqueued_at=datetime.now(timezone.utc),
            claim_token=uuid.uuid4(), contract_version=None, queue_wait=0.0, trace_context=None,
        )  # fmt: skip
        policy = Backoff(timedelta(seconds=1), timedelta(seconds=1))
        with ThreadPoolExecutor(1) as threads:
            started = time.perf_counter()
            for _ in range(calls):
                await run_attempt(
                    job, spec, policy=policy, threads=threads, upcasters={}, traced=False
                )
            return time.perf_counter() - started

    async def stored(self) -> int:
        return await self.count(f"SELECT count(*) FROM {SCHEMA}.jobs")

    async def finished(self) -> int:
        return await self.count(f"SELECT count(*) FROM {SCHEMA}.jobs WHERE state = 'done'")

    async def last_finished(self) -> datetime | None:
        value: datetime | None = await self.db.fetchval(
            f"SELECT max(finished_at) FROM {SCHEMA}.job_history WHERE state = 'done'"
        )
        return value

    async def unfinished(self) -> int:
        return await self.count(
            f"SELECT count(*) FROM {SCHEMA}.jobs WHERE state IN ('queued', 'running')"
        )
