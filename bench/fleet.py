"""``python -m bench fleet``: how the drain rate grows with the number of worker hosts.

The hosts are those of the fleet test (tests/fleet_support.py): network namespaces, each on
its own veth link to a PostgreSQL cluster made for this run, one ``soniq worker`` process
per host, each with the same ``--concurrency``. For each host count: all workers start and
register on an empty queue, then ``--jobs`` no-op jobs are enqueued in one transaction; the
drain time runs from the first claim to the last outcome, both on the database clock.

Beside the rate, three figures show where the bottleneck is: the CPU time each worker
process and the whole PostgreSQL cluster used during the drain, how busy the machine was
(other users of it included), and what Soniq's active backends were doing, sampled from
``pg_stat_activity`` (running on CPU, or waiting: for the WAL to reach the disk, for a
lock...). ``--server-setting synchronous_commit=off`` shows the curve without the wait for
the disk at each commit. Needs root (see ``fleet_unavailable``). Prints the curve and
writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
import psutil  # type: ignore[import-untyped, unused-ignore]

from bench.database import server_facts
from bench.probe import make_args
from bench.report import machine
from soniq import Soniq
from tests.fleet_support import Fleet, FleetUnavailable, HostWorker, fleet_unavailable, host_env

APP = "bench.fleet_app:app"
TASK = "fleet.noop"  # its task (importing the app here would need SONIQ_DATABASE_URL)


@dataclass(frozen=True)
class FleetConfig:
    hosts: list[int]
    jobs: int
    concurrency: int
    repeats: int
    json_path: Path
    server_settings: dict[str, str]


@dataclass(frozen=True)
class FleetRun:
    """One drain by ``hosts`` worker processes."""

    hosts: int
    repeat: int
    jobs: int
    drain_seconds: float  # first claim to last outcome, database clock
    jobs_per_s: float
    worker_cpu_seconds: list[float]  # per worker process, over the drain
    postgres_cpu_seconds: float  # every process of the cluster, over the drain
    machine_busy_percent: float  # all cores, over the drain (other users included)
    # What Soniq's active backends were doing, sampled every 20 ms: "CPU" (running) or
    # their wait event ("IO:WALSync": waiting for a commit to reach the disk, ...); shares
    # of all samples, largest first.
    backend_waits: dict[str, float]
    load_average_before: list[float]


def parse_args(argv: list[str]) -> FleetConfig:
    parser = argparse.ArgumentParser(
        prog="python -m bench fleet",
        description="Drain rate of 1, 2, 4... worker hosts on one PostgreSQL (needs root).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--hosts", default="1,2,4", help="host counts")
    parser.add_argument("--jobs", type=int, default=50_000, help="jobs per drain")
    parser.add_argument(
        "--concurrency", type=int, default=50, help="concurrency of each host's worker"
    )
    parser.add_argument("--repeats", type=int, default=3, help="drains per host count")
    parser.add_argument(
        "--json", type=Path, default=Path("bench-results-fleet.json"), help="where to write results"
    )
    parser.add_argument(
        "--server-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="postgresql.conf setting of the fleet's cluster, e.g. synchronous_commit=off",
    )
    args = parser.parse_args(argv)
    settings = dict(item.split("=", 1) for item in args.server_setting if "=" in item)
    if len(settings) != len(args.server_setting):
        parser.error("--server-setting takes NAME=VALUE")
    try:
        hosts = sorted({int(h) for h in args.hosts.split(",") if h.strip()})
    except ValueError:
        parser.error("--hosts takes comma-separated whole numbers")
    if not hosts or hosts[0] < 1 or hosts[-1] > 32:
        parser.error("--hosts must name host counts from 1 to 32")
    for name in ("jobs", "concurrency", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return FleetConfig(hosts, args.jobs, args.concurrency, args.repeats, args.json, settings)


class CpuMeter:
    """CPU seconds used by given processes, by a process tree, and by the whole machine."""

    def __init__(self, workers: list[HostWorker], postmaster: int) -> None:
        self._workers = [psutil.Process(w.pid) for w in workers]
        self._postmaster = psutil.Process(postmaster)

    def sample(self) -> tuple[list[float], dict[int, float], Any]:
        workers = [_cpu(p) for p in self._workers]
        cluster = {p.pid: _cpu(p) for p in [self._postmaster, *self._postmaster.children()]}
        return workers, cluster, psutil.cpu_times()

    @staticmethod
    def spent(
        before: tuple[list[float], dict[int, float], Any],
        after: tuple[list[float], dict[int, float], Any],
    ) -> tuple[list[float], float, float]:
        workers = [b - a for a, b in zip(before[0], after[0], strict=True)]
        # A backend started during the drain counts from zero.
        cluster = sum(t - before[1].get(pid, 0.0) for pid, t in after[1].items())
        total_before, total_after = sum(before[2]), sum(after[2])
        idle = (after[2].idle + after[2].iowait) - (before[2].idle + before[2].iowait)
        elapsed = total_after - total_before
        busy = 100.0 * (elapsed - idle) / elapsed if elapsed > 0 else 0.0
        return workers, cluster, busy


class BackendSampler:
    """Samples what the cluster's Soniq backends are doing while a drain runs."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._counts: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> BackendSampler:
        conn = await asyncpg.connect(self._url)
        self._task = asyncio.create_task(self._sample(conn))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _sample(self, conn: asyncpg.Connection) -> None:
        try:
            while True:
                for row in await conn.fetch(
                    """SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS doing
                       FROM pg_stat_activity
                       WHERE application_name = 'soniq' AND state = 'active'"""
                ):
                    self._counts[row["doing"]] += 1
                await asyncio.sleep(0.02)
        finally:
            await conn.close()

    def shares(self) -> dict[str, float]:
        total = sum(self._counts.values()) or 1
        return {k: round(n / total, 3) for k, n in self._counts.most_common(6)}


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


def _postmaster(fleet: Fleet) -> int:
    data = Path(f"/var/lib/postgresql/{fleet.version}/{fleet.cluster}/postmaster.pid")
    return int(data.read_text().split()[0])


async def drain_once(fleet: Fleet, config: FleetConfig, hosts: int, repeat: int) -> FleetRun:
    schema = f"fleet_{secrets.token_hex(4)}"
    app = Soniq(fleet.database_url, schema=schema)
    logs = Path(tempfile.mkdtemp(prefix="soniq-bench-fleet-"))
    workers: list[HostWorker] = []
    try:
        await app.setup()
        env = host_env(fleet, schema)
        options = ["--concurrency", str(config.concurrency), "--log-level", "WARNING"]
        workers = [
            fleet.start_worker(host, APP, options, env=env, log=logs / f"{host.name}.log")
            for host in fleet.hosts[:hosts]
        ]
        await _until(lambda: _registered(app, hosts), timeout=120, what="workers to register")
        meter = CpuMeter(workers, _postmaster(fleet))
        load = list(os.getloadavg())
        # One transaction: the jobs appear together at its commit, and the workers start.
        # Measuring from here leaves the inserts' cost out of the CPU figures.
        await app.enqueue_many(TASK, [make_args(n) for n in range(config.jobs)])
        before = meter.sample()
        async with BackendSampler(fleet.database_url) as backends:
            await _until(lambda: _drained(app, config.jobs), timeout=600, what="the drain")
        after = meter.sample()
        window = await _drain_window(app)
        worker_cpu, postgres_cpu, busy = CpuMeter.spent(before, after)
        for worker in workers:
            worker.signal(signal.SIGTERM)
        codes = [worker.wait(60) for worker in workers]
        if any(codes):
            raise RuntimeError(f"workers exited with {codes}; logs in {logs}")
        shutil.rmtree(logs)
        return FleetRun(
            hosts=hosts,
            repeat=repeat,
            jobs=config.jobs,
            drain_seconds=round(window, 3),
            jobs_per_s=round(config.jobs / window, 1),
            worker_cpu_seconds=[round(s, 2) for s in worker_cpu],
            postgres_cpu_seconds=round(postgres_cpu, 2),
            machine_busy_percent=round(busy, 1),
            backend_waits=backends.shares(),
            load_average_before=[round(x, 2) for x in load],
        )
    finally:
        for worker in workers:
            worker.kill()
        await app.close()
        conn = await asyncpg.connect(fleet.database_url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()


async def _registered(app: Soniq, count: int) -> bool:
    return len((await app.status()).workers) == count


async def _drained(app: Soniq, jobs: int) -> bool:
    return sum(q.done_last_hour for q in (await app.status()).queues) >= jobs


async def _drain_window(app: Soniq) -> float:
    """Seconds from the first claim to the last outcome, on the database clock."""
    jobs = await app.list_jobs(limit=None)
    first = min(job.started_at for job in jobs if job.started_at is not None)
    last = max(job.finished_at for job in jobs if job.finished_at is not None)
    return (last - first).total_seconds()


async def _until(probe: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await probe():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.25)


def curve(runs: list[FleetRun]) -> dict[int, float]:
    """Median jobs/s per host count."""
    by_hosts: dict[int, list[float]] = {}
    for run in runs:
        by_hosts.setdefault(run.hosts, []).append(run.jobs_per_s)
    return {hosts: round(statistics.median(rates), 1) for hosts, rates in by_hosts.items()}


def table(runs: list[FleetRun], config: FleetConfig, postgres: dict[str, str]) -> str:
    rates = curve(runs)
    base = rates[min(rates)]
    lines = [
        f"fleet drain: {config.jobs} jobs, concurrency {config.concurrency} per host, "
        f"{os.cpu_count()} cores, PostgreSQL {postgres.get('server_version', '?')} "
        f"(fsync {postgres.get('fsync')}, synchronous_commit "
        f"{postgres.get('synchronous_commit')})",
        f"{'hosts':>5} {'jobs/s':>7} {'x1':>5} {'worker cpu s':>18} {'pg cpu s':>8} "
        f"{'busy':>5} {'load':>5}  active backends were",
    ]
    for run in runs:
        each = " ".join(f"{s:.1f}" for s in run.worker_cpu_seconds)
        waits = ", ".join(f"{k} {v:.0%}" for k, v in list(run.backend_waits.items())[:3])
        lines.append(
            f"{run.hosts:>5} {run.jobs_per_s:>7.0f} {run.jobs_per_s / base:>5.2f} {each:>18} "
            f"{run.postgres_cpu_seconds:>8.1f} {run.machine_busy_percent:>4.0f}% "
            f"{run.load_average_before[0]:>5.1f}  {waits}"
        )
    lines.append(
        "x1: rate over the first host count's median; busy: all cores, other users "
        "included; load: 1-minute load average before the drain"
    )
    lines.append(
        "curve (median jobs/s): "
        + ", ".join(f"{h} host(s) {r:.0f} (x{r / base:.2f})" for h, r in rates.items())
    )
    return "\n".join(lines)


async def run(config: FleetConfig) -> int:
    reason = fleet_unavailable()
    if reason is not None:
        print(f"bench fleet: {reason}", file=sys.stderr)
        return 2
    runs: list[FleetRun] = []
    try:
        with Fleet(max(config.hosts), server_settings=config.server_settings) as fleet:
            postgres = await server_facts(fleet.database_url)
            for repeat in range(config.repeats):
                for hosts in config.hosts:
                    result = await drain_once(fleet, config, hosts, repeat)
                    print(f"  {hosts} host(s): {result.jobs_per_s:.0f} jobs/s", flush=True)
                    runs.append(result)
    except FleetUnavailable as exc:
        print(f"bench fleet: {exc}", file=sys.stderr)
        return 2
    print(table(runs, config, postgres))
    payload = {
        "benchmark": "fleet",
        "jobs": config.jobs,
        "concurrency_per_host": config.concurrency,
        "curve_jobs_per_s": {str(h): rate for h, rate in curve(runs).items()},
        "runs": [asdict(r) for r in runs],
        "machine": machine(postgres, ["asyncpg", "pydantic"]),
    }
    config.json_path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {config.json_path}")
    return 0


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(parse_args(argv)))
