"""One benchmark run: scratch databases, every scenario for every system, round-robin.

Within each repeat, scenarios go in a fixed order and, for each scenario, the systems take
turns in an order rotated by the repeat number; single enqueue and latency alternate
systems even within the scenario (:mod:`bench.interleaved`). Slow phases of a noisy machine
then hit every system alike, and the ratios hold better than the absolute numbers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import interleaved, report
from bench.config import BULK, LATENCY, LIMIT_COPY, LIMIT_DRAIN, RSS, SINGLE, VALIDATION, Sizes
from bench.database import ScratchDatabases, server_facts
from bench.limits import LIMITS
from bench.scenarios import ONE_AT_A_TIME, Measurement, drain
from bench.systems import Drain, System, load


@dataclass(frozen=True)
class RunConfig:
    database_url: str
    systems: list[str]
    sizes: Sizes
    smoke: bool
    json_path: Path


@dataclass(frozen=True)
class Step:
    system: System
    variant: str
    scenario: str
    drain: Drain | None


def _plan(systems: list[System]) -> list[list[Step]]:
    """Steps grouped by scenario, in the order scenarios run."""
    groups: dict[str, list[Step]] = {SINGLE: [], BULK: []}
    for system in systems:
        for variant in system.variants():
            for spec in variant.drains:
                groups.setdefault(spec.scenario, []).append(
                    Step(system, variant.key, spec.scenario, spec)
                )
    groups.update({LATENCY: [], RSS: [], VALIDATION: [], LIMIT_DRAIN: [], LIMIT_COPY: []})
    for system in systems:
        for variant in system.variants():
            for scenario in variant.scenarios:
                groups[scenario].append(Step(system, variant.key, scenario, None))
    return [steps for steps in groups.values() if steps]


def _rotated(steps: list[Step], by: int) -> list[Step]:
    if not steps:
        return steps
    by %= len(steps)
    return steps[by:] + steps[:by]


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _describe(m: Measurement) -> str:
    if m.error:
        return f"ERROR {m.error.splitlines()[0][:200]}"
    shown = ", ".join(f"{k}={v:,.0f}" if v >= 100 else f"{k}={v:.2f}" for k, v in m.metrics.items())
    return f"{shown}{'' if m.verified else '  NOT VERIFIED'}"


async def _run_step(step: Step, sizes: Sizes, repeat: int) -> Measurement:
    m = Measurement(step.system.name, step.variant, step.scenario, repeat)
    sizes = sizes.for_system(step.system.slow)
    started = time.perf_counter()
    try:
        if step.drain is not None:
            await drain(step.system, step.variant, step.drain, sizes, m)
        else:
            await (ONE_AT_A_TIME | LIMITS)[step.scenario](step.system, step.variant, sizes, m)
    except Exception as exc:  # one broken scenario must not lose the others' numbers
        m.error = f"{type(exc).__name__}: {exc}"
    m.seconds = time.perf_counter() - started
    return m


async def _run_interleaved(steps: list[Step], sizes: Sizes, repeat: int) -> list[Measurement]:
    """Single enqueue or latency for every system at once, the systems taking turns."""
    lanes = [
        interleaved.Lane(
            s.system, s.variant, Measurement(s.system.name, s.variant, s.scenario, repeat)
        )
        for s in steps
    ]
    run = interleaved.enqueue_single if steps[0].scenario == SINGLE else interleaved.latency
    started = time.perf_counter()
    try:
        await run(lanes, sizes)
    except Exception as exc:  # a failure outside any one system's calls
        for lane in lanes:
            if not lane.failed:
                lane.fail(exc)
    share = (time.perf_counter() - started) / len(lanes)
    for lane in lanes:
        lane.m.seconds = lane.m.seconds or share
    return [lane.m for lane in lanes]


async def run(config: RunConfig) -> int:
    """Run everything, print the table, write the JSON; 0 when every job was verified.

    SIGTERM cancels the run like Ctrl-C does, so the scratch databases are still dropped
    (and no worker under test installs its own SIGTERM handler).
    """
    main = asyncio.current_task()
    if main is not None and threading.current_thread() is threading.main_thread():
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    started_at = datetime.now(timezone.utc)
    clock = time.perf_counter()
    adapters: dict[str, type[System]] = {}
    skipped: dict[str, str] = {}
    for name in config.systems:
        adapter = load(name)
        if isinstance(adapter, str):
            skipped[name] = adapter
            _log(f"skipping {name}: {adapter}")
        else:
            adapters[name] = adapter

    databases = ScratchDatabases(config.database_url)
    systems: list[System] = []
    measurements: list[Measurement] = []
    postgres = await server_facts(config.database_url)
    packages = sorted({p for a in adapters.values() for p in a.packages} - {"soniq"})
    facts = report.machine(postgres, packages)
    for adapter in adapters.values():
        facts["packages"].update(adapter.versions())
    try:
        for name, adapter in adapters.items():
            system = adapter(await databases.create(name))
            await system.open(install=True)
            systems.append(system)
        plan = _plan(systems)
        for repeat in range(config.sizes.repeats):
            for group in plan:
                steps = _rotated(group, repeat)
                if group[0].scenario in (SINGLE, LATENCY):
                    done = await _run_interleaved(steps, config.sizes, repeat)
                else:
                    done = [await _run_step(step, config.sizes, repeat) for step in steps]
                for m in done:
                    measurements.append(m)
                    _log(f"[{repeat + 1}/{config.sizes.repeats}] {m.variant:<15} "
                         f"{m.scenario:<15} {_describe(m)}")  # fmt: skip
    finally:
        for system in systems:
            await system.close()
        await databases.drop_all()

    results = report.medians(measurements)
    labels = {v.key: v.label for s in systems for v in s.variants()}
    found = report.with_spread(
        report.targets(results),
        [
            report.targets(report.medians([m for m in measurements if m.repeat == r]))
            for r in range(config.sizes.repeats)
        ],
    )
    ok = all(m.verified and m.error is None for m in measurements)
    facts["load_average_at_end"] = list(os.getloadavg())
    payload: dict[str, Any] = {
        "benchmark": "soniq",
        "smoke": config.smoke,
        "started_at": started_at.isoformat(),
        "duration_s": round(time.perf_counter() - clock, 1),
        "machine": facts,
        "sizes": asdict(config.sizes),
        "systems": {
            **{
                s.name: {"status": "ran", "variants": [v.key for v in s.variants()]}
                for s in systems
            },
            **{name: {"status": "skipped", "reason": why} for name, why in skipped.items()},
        },
        "results": results,
        "targets": [asdict(t) for t in found],
        # target -> the number judged (ratio, rate or percentage), and per repeat
        "ratios": {t.name: {"value": t.measured, "per_repeat": t.per_repeat} for t in found},
        "all_jobs_verified": ok,
    }
    report.write_json(config.json_path, payload, measurements)
    print(report.table(results, labels, found))
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    print(f"\n{facts['cpu']}, {facts['cores']} cores, {facts['ram_gb']} GB RAM; "
          f"PostgreSQL {postgres['server_version']}, {facts['python']}; "
          f"{payload['duration_s']} s; JSON: {config.json_path}")  # fmt: skip
    if not ok:
        print("SOME RUNS FAILED VERIFICATION (see the JSON's measurements)", file=sys.stderr)
    return 0 if ok else 1
