"""The scenarios that run one system at a time, written once against :class:`System`.

Each fills a :class:`Measurement` whose counts come from the database afterwards, so a fast
number from jobs that were never written or never ran cannot pass as a result.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from bench.config import BULK, RSS, RSS_CONCURRENCY, VALIDATION, Sizes
from bench.probe import PROBE, make_args
from bench.systems import Drain, System

REPO = Path(__file__).resolve().parent.parent
_CHUNK = 5000  # untimed pre-loads go in chunks of this many jobs
WARMUP = 5  # untimed operations before a timed scenario
_STALL = 15.0  # seconds without a handler starting before a drain gives up


@dataclass
class Measurement:
    """One scenario run by one system variant in one repeat."""

    system: str
    variant: str
    scenario: str
    repeat: int
    metrics: dict[str, float] = field(default_factory=dict)
    jobs_enqueued: int = 0
    jobs_ran: int | None = None  # None for enqueue-only scenarios
    verified: bool = False
    error: str | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


async def until(probe: Callable[[], Awaitable[bool]], timeout: float, every: float) -> bool:
    deadline = time.perf_counter() + timeout
    while not await probe():
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(every)
    return True


async def all_finished(system: System, timeout: float) -> bool:
    async def done() -> bool:
        return await system.unfinished() == 0

    return await until(done, timeout, 0.005)


async def _preload(system: System, variant: str, jobs: int) -> None:
    for start in range(0, jobs, _CHUNK):
        await system.enqueue_many(
            variant, [make_args(i) for i in range(start, min(jobs, start + _CHUNK))]
        )
    await system.analyze()


@asynccontextmanager
async def listening(system: System) -> AsyncIterator[list[int]]:
    """A bystander LISTENing on the system's wake-up channels, as an idle worker would be:
    every enqueue then pays for a delivered notification. Yields a one-item counter."""
    received = [0]

    def on_notify(*_: object) -> None:
        received[0] += 1

    conn = await asyncpg.connect(system.url, timeout=10)
    try:
        for channel in system.channels():
            await conn.add_listener(channel, on_notify)
        yield received
    finally:
        await conn.close()


async def enqueue_bulk(system: System, variant: str, sizes: Sizes, m: Measurement) -> None:
    """One ``enqueue_many``-style call of ``bulk_jobs`` jobs, args validated as usual."""
    await system.reset()
    await system.enqueue_many(variant, [make_args(i) for i in range(100)])  # warm-up
    before = await system.stored()
    args = [make_args(i) for i in range(sizes.bulk_jobs)]
    async with listening(system):
        started = time.perf_counter()
        await system.enqueue_many(variant, args)
        elapsed = time.perf_counter() - started
    m.metrics["jobs_per_s"] = len(args) / elapsed
    m.jobs_enqueued = len(args)
    m.verified = await system.stored() - before == len(args)


async def drain(system: System, variant: str, spec: Drain, sizes: Sizes, m: Measurement) -> None:
    """Queue N jobs, start a worker, and time until the database shows all N finished."""
    jobs = sizes.drain_jobs
    await system.reset()
    await _preload(system, variant, jobs)
    m.jobs_enqueued = await system.unfinished()
    PROBE.arm(jobs)
    started, cpu_started = time.perf_counter(), time.process_time()
    stop = await system.start_worker(variant, spec)
    try:
        ran_all = await PROBE.wait_while_progressing(_STALL)
        handlers_done = time.perf_counter()
        recorded = ran_all and await all_finished(system, 30.0)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    finally:
        await stop()
    m.jobs_ran = await system.finished()
    m.extra.update(handler_calls=PROBE.count, concurrency=spec.concurrency, label=spec.label)
    if not recorded:
        m.error = f"{PROBE.count} of {jobs} jobs ran, then none for {_STALL:.0f}s"
        return
    m.metrics["jobs_per_s"] = jobs / elapsed
    m.metrics["handlers_per_s"] = jobs / (handlers_done - started)
    # CPU time of this process (the worker's side) per job: steadier than wall-clock
    # throughput on a shared machine, and what validation at dispatch adds to.
    m.metrics["cpu_us_per_job"] = cpu / jobs * 1e6
    m.verified = m.jobs_enqueued == jobs == m.jobs_ran == PROBE.count


async def worker_rss(system: System, variant: str, sizes: Sizes, m: Measurement) -> None:
    """A worker *process* at concurrency 200 drains sleeping jobs; peak resident memory."""
    jobs = sizes.rss_jobs
    await system.reset()
    await _preload(system, variant, jobs)
    m.jobs_enqueued = await system.unfinished()
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.worker_process", system.name,
        "--database-url", system.url, "--variant", variant,
        "--concurrency", str(RSS_CONCURRENCY), "--jobs", str(jobs),
        "--sleep", str(sizes.rss_job_seconds),
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    output = asyncio.ensure_future(child.communicate())
    sampled = await _sample_rss(child.pid, output)
    out, err = await output
    m.jobs_ran = await system.finished()
    if child.returncode != 0:
        m.error = f"worker process exited {child.returncode}: {err.decode()[-2000:]}"
        return
    report = json.loads(out.decode().strip().splitlines()[-1])
    peak = max(sampled, report["maxrss_bytes"])
    m.metrics["rss_mb"] = peak / 2**20
    m.extra.update(sampled_peak_mb=sampled / 2**20, maxrss_mb=report["maxrss_bytes"] / 2**20)
    m.extra.update(concurrency=RSS_CONCURRENCY, seconds_in_child=report["seconds"])
    m.verified = m.jobs_enqueued == jobs == m.jobs_ran == report["ran"]


async def _sample_rss(pid: int, exited: asyncio.Future[Any]) -> int:
    """Peak RSS of process ``pid`` sampled every 10 ms until ``exited`` (0 without psutil)."""
    try:
        import psutil  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        await asyncio.wait([exited])
        return 0
    peak = 0
    try:
        proc = psutil.Process(pid)
        while not exited.done():
            peak = max(peak, proc.memory_info().rss)
            await asyncio.sleep(0.01)
    except psutil.Error:  # exited between two samples
        await asyncio.wait([exited])
    return peak


async def validation_cost(system: System, variant: str, sizes: Sizes, m: Measurement) -> None:
    """The same drain with and without an args model, back to back in the order model, none,
    none, model: each side runs first once and second once, so neither gains from going
    after the other. Wall-clock and CPU costs are from the sums of each side's two drains."""
    pair = system.without_model(variant)
    if pair is None:
        m.error = f"{variant} has no variant without a model"
        return
    unvalidated, spec = pair
    seconds = {variant: 0.0, unvalidated: 0.0}
    cpu = dict.fromkeys(seconds, 0.0)
    for key in (variant, unvalidated, unvalidated, variant):
        run = Measurement(system.name, key, spec.scenario, m.repeat)
        await drain(system, key, spec, sizes, run)
        if run.error or not run.verified:
            m.error = f"{key}: {run.error or 'counts in the database did not match'}"
            return
        seconds[key] += sizes.drain_jobs / run.metrics["jobs_per_s"]
        cpu[key] += run.metrics["cpu_us_per_job"]
        m.jobs_enqueued += run.jobs_enqueued
        m.jobs_ran = (m.jobs_ran or 0) + (run.jobs_ran or 0)
    m.metrics["with_model_per_s"] = 2 * sizes.drain_jobs / seconds[variant]
    m.metrics["without_model_per_s"] = 2 * sizes.drain_jobs / seconds[unvalidated]
    m.metrics["cost_pct"] = 100 * (1 - seconds[unvalidated] / seconds[variant])
    m.metrics["cpu_cost_pct"] = 100 * (1 - cpu[unvalidated] / cpu[variant])
    m.extra.update(concurrency=spec.concurrency, label=spec.label)
    m.verified = True


ONE_AT_A_TIME = {BULK: enqueue_bulk, RSS: worker_rss, VALIDATION: validation_cost}
