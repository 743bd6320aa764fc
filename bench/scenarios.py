"""The scenarios that run one system at a time, written once against :class:`System`.

Each fills a :class:`Measurement` whose counts come from the database afterwards, so a fast
number from jobs that were never written or never ran cannot pass as a result.
"""

from __future__ import annotations

import asyncio
import contextlib
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

from bench import contract_validation
from bench.config import BULK, RSS, RSS_CONCURRENCY, VALIDATION, Sizes
from bench.probe import PROBE, make_args
from bench.systems import Drain, System

REPO = Path(__file__).resolve().parent.parent
_CHUNK = 5000  # untimed pre-loads go in chunks of this many jobs
WARMUP = 5  # untimed operations before a timed scenario
_STALL = 15.0  # seconds without a handler starting before a drain gives up

try:
    import psutil as _psutil  # type: ignore[import-untyped, unused-ignore]
except ImportError:  # the CPU figures are then left out
    _psutil = None


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


async def preload(system: System, variant: str, jobs: int) -> None:
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
    """Queue N jobs, start a worker, and time until the database shows all N finished.

    The time is on the database's clock, from just before the worker starts to the latest
    success it recorded, for every system that records that time; else (and as
    ``wall_jobs_per_s`` for all) on this process's clock to when all N were seen finished.
    """
    jobs = sizes.drain_jobs
    await system.reset()
    await preload(system, variant, jobs)
    m.jobs_enqueued = await system.unfinished()
    start = await system.prepare_worker(variant, spec)
    PROBE.arm(jobs)
    cpu = CpuMeter(system)
    await cpu.begin()
    db_started = await system.db.fetchval("SELECT clock_timestamp()")
    started = time.perf_counter()
    stop = await start()
    waits = WaitSampler(system.url, sizes.wait_sample_every)
    try:
        await waits.start()
        if system.external_workers:
            ran_all = await _drained(system, _STALL)
        else:
            ran_all = await PROBE.wait_while_progressing(_STALL)
        handlers_done = time.perf_counter()
        recorded = ran_all and await all_finished(system, 30.0)
        elapsed = time.perf_counter() - started
        used = await cpu.end()
        last = await system.last_finished()
    finally:
        await waits.stop()
        calls = await stop()
    handler_calls = PROBE.count if calls is None else calls
    m.jobs_ran = await system.finished()
    m.extra.update(handler_calls=handler_calls, concurrency=spec.concurrency, label=spec.label)
    if waits.samples:
        m.extra["waits"] = waits.summary()
    if not recorded:
        m.error = f"{handler_calls} of {jobs} jobs ran, then none for {_STALL:.0f}s"
        return
    db_seconds = (last - db_started).total_seconds() if last is not None else 0.0
    m.metrics["jobs_per_s"] = jobs / (db_seconds if db_seconds > 0 else elapsed)
    m.metrics["wall_jobs_per_s"] = jobs / elapsed
    if not system.external_workers:
        m.metrics["handlers_per_s"] = jobs / (handlers_done - started)
    # CPU per job of the worker (this process, or the worker processes) and of the
    # database's backends: steadier than throughput on a shared machine, and they say
    # which side a drain is limited by.
    m.metrics.update({f"{side}_cpu_us_per_job": s / jobs * 1e6 for side, s in used.items()})
    if "worker" in used:
        m.metrics["cpu_us_per_job"] = used["worker"] / jobs * 1e6
    m.verified = m.jobs_enqueued == jobs == m.jobs_ran == handler_calls


async def _drained(system: System, stall: float) -> bool:
    """For workers in other processes: True once no job is left unfinished; False once the
    count stayed the same for ``stall`` seconds."""
    seen, changed = await system.unfinished(), time.perf_counter()
    while seen:
        await asyncio.sleep(0.1)  # the time comes from the database, not from this poll
        left = await system.unfinished()
        if left != seen:
            seen, changed = left, time.perf_counter()
        elif time.perf_counter() - changed > stall:
            return False
    return True


class WaitSampler:
    """Samples ``pg_stat_activity`` for the system's database every ``every`` seconds on a
    connection of its own (off when ``every`` is 0): what the backends are doing."""

    def __init__(self, url: str, every: float) -> None:
        self.url = url
        self.every = every
        self.samples = 0
        self.seen: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.every > 0:
            conn = await asyncpg.connect(self.url, timeout=10)
            self._task = asyncio.ensure_future(self._sample(conn))

    async def _sample(self, conn: asyncpg.Connection) -> None:
        try:
            while True:
                rows = await conn.fetch(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                self.samples += 1
                for row in rows:
                    doing = f"{row['wait_event_type']}:{row['wait_event']}"
                    key = f"{row['state']} {doing if row['wait_event'] else 'on CPU'}"
                    self.seen[key] = self.seen.get(key, 0) + 1
                await asyncio.sleep(self.every)
        finally:
            await conn.close()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def summary(self) -> dict[str, Any]:
        """Per state and wait event: the average number of backends in it (largest first)."""
        average = {k: round(v / self.samples, 3) for k, v in self.seen.items()}
        ordered = dict(sorted(average.items(), key=lambda kv: -kv[1]))
        return {"samples": self.samples, "backends": ordered}


class CpuMeter:
    """CPU seconds used between :meth:`begin` and :meth:`end` by the worker (this process
    when the system runs its worker here, else this process's children) and by the
    database backends serving the system's scratch database, except the harness's own
    connection. Needs psutil and a server on this machine; otherwise reports nothing."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.worker = 0.0
        self.backends: dict[int, float] = {}

    def _worker_seconds(self) -> float:
        if not self.system.external_workers:
            return time.process_time()
        if _psutil is None:
            return 0.0
        total = 0.0
        for child in _psutil.Process().children(recursive=True):
            with contextlib.suppress(_psutil.Error):
                times = child.cpu_times()
                total += times.user + times.system
        return total

    async def _backend_seconds(self) -> dict[int, float]:
        if _psutil is None:
            return {}
        pids = await self.system.db.fetch(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        seconds = {}
        for row in pids:
            with contextlib.suppress(_psutil.Error):
                proc = _psutil.Process(row["pid"])
                if "postgres" not in proc.name():  # the server is elsewhere: not its pid
                    return {}
                times = proc.cpu_times()
                seconds[row["pid"]] = times.user + times.system
        return seconds

    async def begin(self) -> None:
        self.worker = self._worker_seconds()
        self.backends = await self._backend_seconds()

    async def end(self) -> dict[str, float]:
        used = {}
        if _psutil is not None or not self.system.external_workers:
            used["worker"] = self._worker_seconds() - self.worker
        backends = await self._backend_seconds()
        if backends:
            used["db"] = sum(s - self.backends.get(pid, 0.0) for pid, s in backends.items())
        return used


async def worker_rss(system: System, variant: str, sizes: Sizes, m: Measurement) -> None:
    """A worker *process* at concurrency 200 drains sleeping jobs; peak resident memory."""
    jobs = sizes.rss_jobs
    await system.reset()
    await preload(system, variant, jobs)
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
    if _psutil is None:
        await asyncio.wait([exited])
        return 0
    peak = 0
    try:
        proc = _psutil.Process(pid)
        while not exited.done():
            peak = max(peak, proc.memory_info().rss)
            await asyncio.sleep(0.01)
    except _psutil.Error:  # exited between two samples
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
    all_cpu = 0.0  # worker and database CPU per job of the drains with a model
    for key in (variant, unvalidated, unvalidated, variant):
        run = Measurement(system.name, key, spec.scenario, m.repeat)
        await drain(system, key, spec, sizes, run)
        if run.error or not run.verified:
            m.error = f"{key}: {run.error or 'counts in the database did not match'}"
            return
        seconds[key] += sizes.drain_jobs / run.metrics["jobs_per_s"]
        cpu[key] += run.metrics["cpu_us_per_job"]
        if key == variant:
            all_cpu += run.metrics["cpu_us_per_job"] + run.metrics.get("db_cpu_us_per_job", 0.0)
        m.jobs_enqueued += run.jobs_enqueued
        m.jobs_ran = (m.jobs_ran or 0) + (run.jobs_ran or 0)
    m.metrics["with_model_per_s"] = 2 * sizes.drain_jobs / seconds[variant]
    m.metrics["without_model_per_s"] = 2 * sizes.drain_jobs / seconds[unvalidated]
    m.metrics["cost_pct"] = 100 * (1 - seconds[unvalidated] / seconds[variant])
    m.metrics["cpu_cost_pct"] = 100 * (1 - cpu[unvalidated] / cpu[variant])
    # The drains' difference is within this machine's noise; the dispatch path alone,
    # timed without the database (best of alternating rounds), gives what validating
    # adds per job, and its share of all the CPU a job costs (worker and database).
    rounds: dict[str, list[float]] = {variant: [], unvalidated: []}
    for _ in range(_DISPATCH_ROUNDS):
        for key in rounds:
            took = await system.dispatch_seconds(key, _DISPATCH_CALLS)
            if took is not None:
                rounds[key].append(took / _DISPATCH_CALLS * 1e6)
    if rounds[variant] and rounds[unvalidated]:
        added = min(rounds[variant]) - min(rounds[unvalidated])
        m.metrics["dispatch_us_with_model"] = min(rounds[variant])
        m.metrics["dispatch_us_without_model"] = min(rounds[unvalidated])
        m.metrics["validation_share_of_job_cpu_pct"] = 100 * added / (all_cpu / 2)
    # A union-heavy contract's generated model (rules checked as data) against a plain one.
    m.metrics.update(contract_validation.measure())
    m.extra.update(concurrency=spec.concurrency, label=spec.label)
    m.verified = True


_DISPATCH_ROUNDS = 7
_DISPATCH_CALLS = 2000


ONE_AT_A_TIME = {BULK: enqueue_bulk, RSS: worker_rss, VALIDATION: validation_cost}
