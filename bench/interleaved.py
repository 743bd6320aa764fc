"""The scenarios whose ratios matter most on a noisy machine, run for all systems at once.

Single enqueue and idle latency measure one operation at a time, so a noisy neighbour that
lasts a second would skew whichever system happened to run then. Here the systems take
turns in short slices (enqueue) or sample by sample (latency), so they share the noise.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from bench.config import LATENCY, Sizes
from bench.probe import PROBE, make_args
from bench.scenarios import WARMUP, Measurement, listening, percentile, until
from bench.systems import Drain, System

SLICES = 8  # single enqueue: each system's time is cut into this many turns
_MAX_MISSES = 3  # latency samples that never started before a system is given up on


@dataclass
class Lane:
    """One system variant's share of an interleaved scenario."""

    system: System
    variant: str
    m: Measurement
    spent: float = 0.0
    done: int = 0
    samples: list[float] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.m.error is not None

    def fail(self, exc: BaseException) -> None:
        self.m.error = f"{type(exc).__name__}: {exc}"


def _turns(lanes: list[Lane], turn: int) -> list[Lane]:
    """The live lanes, in an order rotated by ``turn``."""
    live = [lane for lane in lanes if not lane.failed]
    if not live:
        return live
    turn %= len(live)
    return live[turn:] + live[:turn]


async def enqueue_single(lanes: list[Lane], sizes: Sizes) -> None:
    """Sequential ``enqueue`` calls, each awaited (jobs/s for one producer), the systems
    taking turns of ``single_seconds / SLICES``."""
    async with AsyncExitStack() as stack:
        notified: dict[int, list[int]] = {}
        before: dict[int, int] = {}
        for lane in lanes:
            try:
                await lane.system.reset()
                notified[id(lane)] = await stack.enter_async_context(listening(lane.system))
                for i in range(WARMUP):
                    await lane.system.enqueue_one(lane.variant, make_args(i))
                before[id(lane)] = await lane.system.stored()
            except Exception as exc:
                lane.fail(exc)
        args = [make_args(i) for i in range(sizes.single_jobs)]
        turn_seconds = sizes.single_seconds / SLICES
        for turn in range(SLICES):
            for lane in _turns(lanes, turn):
                started = time.perf_counter()
                try:
                    while lane.done < len(args):
                        await lane.system.enqueue_one(lane.variant, args[lane.done])
                        lane.done += 1
                        if time.perf_counter() - started > turn_seconds:
                            break
                except Exception as exc:
                    lane.fail(exc)
                lane.spent += time.perf_counter() - started
        await asyncio.sleep(0.05)  # let the last notifications arrive
        for lane in lanes:
            if lane.failed:
                continue
            lane.m.extra["notifications"] = notified[id(lane)][0]
            lane.m.metrics["jobs_per_s"] = lane.done / lane.spent
            lane.m.jobs_enqueued = lane.done
            stored = await lane.system.stored() - before[id(lane)]
            lane.m.verified = stored == lane.done
            lane.m.seconds = lane.spent


async def latency(lanes: list[Lane], sizes: Sizes) -> None:
    """Idle workers, one per system; enqueue one job, wait for its handler to start, pause,
    and move on to the next system."""
    stops = []
    try:
        for lane in lanes:
            try:
                await lane.system.reset()
                stops.append(
                    await lane.system.start_worker(lane.variant, Drain(LATENCY, 10, "c10"))
                )
            except Exception as exc:
                lane.fail(exc)
        await asyncio.sleep(0.5)  # a job enqueued before a worker LISTENs waits for a poll
        misses = {id(lane): 0 for lane in lanes}
        for i in range(WARMUP + sizes.latency_samples):
            for lane in _turns(lanes, i):
                if misses[id(lane)] >= _MAX_MISSES:
                    continue
                try:
                    PROBE.arm(1)
                    await lane.system.enqueue_one(lane.variant, make_args(i))
                    returned = time.perf_counter()
                    lane.done += 1
                    if not await PROBE.wait(5.0):
                        misses[id(lane)] += 1
                        continue
                    if i >= WARMUP:
                        lane.samples.append(PROBE.started_at - returned)
                    await asyncio.sleep(sizes.latency_gap)
                except Exception as exc:
                    lane.fail(exc)
        for lane in lanes:
            if not lane.failed:
                await _record_latency(lane, misses[id(lane)])
    finally:
        for stop in stops:
            await stop()


async def _record_latency(lane: Lane, missed: int) -> None:
    async def all_done() -> bool:
        return await lane.system.finished() >= lane.done

    await until(all_done, 10.0, 0.01)
    m = lane.m
    m.jobs_enqueued = lane.done
    m.jobs_ran = await lane.system.finished()
    m.extra["missed"] = missed
    if lane.samples:
        m.metrics["p50_ms"] = percentile(lane.samples, 50) * 1000
        m.metrics["p99_ms"] = percentile(lane.samples, 99) * 1000
        m.metrics["max_ms"] = max(lane.samples) * 1000
    m.verified = missed == 0 and m.jobs_ran == lane.done and bool(lane.samples)
