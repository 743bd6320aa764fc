"""``python -m bench pressure``: Soniq at a steady rate while the database is under stress.

The run makes its own PostgreSQL cluster (``pg_createcluster``, ``max_connections=400``)
and drops it at the end, also after an error or Ctrl-C; it needs root. Each scenario gets a
fresh database, ``soniq worker`` processes (their own role, so they can be told apart) and a
producer in this process enqueuing no-op jobs at a steady rate, through four phases:

    warm-up -> clean (steady rate) -> stress (steady rate + the scenario) -> recovery

Scenarios (the stress phase of each; the shape follows the public PostgreSQL job-queue
harness's phase types idle-in-tx, active-readers, high-load, pg-backend-kill and
pool-exhaustion):

- ``idle_in_tx``: one ``BEGIN; SELECT txid_current()`` sits idle (pins the xmin horizon);
- ``rr_readers``: 4 REPEATABLE READ connections scan the ``jobs`` view in a loop, each
  transaction open 1-5 s, overlapping;
- ``overload``: the producer at 1.5x the rate; how long the excess takes to drain after;
- ``terminate``: ``pg_terminate_backend`` of every worker backend once a second;
- ``idle_conns``: 300 idle connections held open.

Per second and per phase: jobs enqueued and completed, pickup latency (``started_at -
enqueued_at`` of each done job, database clock), queue depth, dead tuples and sizes of the
hot tables, what active backends wait on; then whether every job ended done exactly once,
and the goals, PASS or FAIL. Prints a table per scenario, writes JSON and one PNG per
scenario. Speed is judged only here, never by tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import psutil  # type: ignore[import-untyped, unused-ignore]

from bench.database import server_facts
from bench.pressure import analysis, plot, report
from bench.pressure.analysis import Phase
from bench.pressure.cluster import Cluster, ClusterUnavailable, cluster_unavailable
from bench.pressure.load import Producer, Workers, worker_env
from bench.pressure.samplers import Sampler
from bench.pressure.stress import STRESSORS, StressContext
from bench.pressure.task import TASK, register
from bench.probe import make_args
from bench.report import machine
from soniq import Soniq
from soniq.db.jobs import JobStore
from soniq.db.jobs.claims import CLAIM_WINDOW, EVERYTHING

logger = logging.getLogger("bench.pressure")

SCHEMA = "soniq"
WORKER_USER = "pressure_worker"
PEAK_JOBS = 20_000  # jobs drained to measure the peak for --rate auto


@dataclass(frozen=True)
class PressureConfig:
    scenarios: list[str]
    rate: float | None  # None: half the measured drain peak
    warmup: float
    clean: float
    stress: float
    recovery: float
    workers: int
    concurrency: int
    lease_seconds: float
    single: bool
    tick: float
    in_flight: int
    overload: float
    readers: int
    reader_hold: tuple[float, float]
    idle_connections: int
    tuple_every: float
    port: int
    server_settings: dict[str, str]
    json_path: Path
    smoke: bool

    @property
    def recover_window(self) -> int:
        """Seconds a recovery stretch must look clean for (see analysis.recovered_after)."""
        return 1 if self.smoke else 5


def parse_args(argv: list[str]) -> PressureConfig:
    parser = argparse.ArgumentParser(
        prog="python -m bench pressure",
        description="Soniq at a steady rate through warm-up, clean, stress and recovery "
        "phases, on a PostgreSQL cluster made for the run (needs root).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(STRESSORS),
        help=f"comma-separated, of: {', '.join(STRESSORS)}",
    )
    parser.add_argument(
        "--rate", default="800", help="jobs/s offered, or 'auto': half of a quick drain peak"
    )
    parser.add_argument("--warmup", type=float, default=15, help="seconds")
    parser.add_argument("--clean", type=float, default=60, help="seconds")
    parser.add_argument(
        "--stress", type=float, default=120, help="seconds (600 for the 10-minute idle_in_tx goal)"
    )
    parser.add_argument("--recovery", type=float, default=60, help="seconds")
    parser.add_argument("--workers", type=int, default=2, help="soniq worker processes")
    parser.add_argument("--concurrency", type=int, default=20, help="of each worker")
    parser.add_argument("--lease-seconds", type=float, default=30.0, help="workers' lease")
    parser.add_argument(
        "--producer",
        choices=["batch", "single"],
        default="batch",
        help="batch: one enqueue_many per tick; single: one enqueue per job",
    )
    parser.add_argument("--tick-ms", type=float, default=10.0, help="producer tick")
    parser.add_argument(
        "--in-flight", type=int, default=8, help="producer sends at once (and its pool size)"
    )
    parser.add_argument("--overload", type=float, default=1.5, help="overload rate multiplier")
    parser.add_argument("--readers", type=int, default=4, help="rr_readers connections")
    parser.add_argument(
        "--reader-hold", default="1-5", help="seconds each reader transaction stays open, LOW-HIGH"
    )
    parser.add_argument("--idle-conns", type=int, default=300, help="idle_conns connections")
    parser.add_argument(
        "--tuple-every", type=float, default=1.0, help="seconds between pgstattuple samples"
    )
    parser.add_argument("--port", type=int, default=5493, help="the run's cluster port")
    parser.add_argument(
        "--server-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="postgresql.conf setting of the run's cluster",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=Path("bench-pressure.json"),
        help="results; PNGs and logs go beside it",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="seconds-long phases at a low rate (CI)"
    )
    args = parser.parse_args(argv)

    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in scenarios if s not in STRESSORS]
    if not scenarios or unknown:
        parser.error(f"--scenarios: unknown {unknown}; choose from {', '.join(STRESSORS)}")
    try:
        rate = None if args.rate == "auto" else float(args.rate)
        low, high = (float(x) for x in args.reader_hold.split("-", 1))
    except ValueError:
        parser.error("--rate takes a number or 'auto'; --reader-hold takes LOW-HIGH seconds")
    if (rate is not None and rate <= 0) or not 0 < low <= high:
        parser.error("--rate must be positive and --reader-hold 0 < LOW <= HIGH")
    settings = dict(item.split("=", 1) for item in args.server_setting if "=" in item)
    if len(settings) != len(args.server_setting):
        parser.error("--server-setting takes NAME=VALUE")
    config = PressureConfig(
        scenarios=scenarios,
        rate=rate,
        warmup=args.warmup,
        clean=args.clean,
        stress=args.stress,
        recovery=args.recovery,
        workers=args.workers,
        concurrency=args.concurrency,
        lease_seconds=args.lease_seconds,
        single=args.producer == "single",
        tick=args.tick_ms / 1000,
        in_flight=args.in_flight,
        overload=args.overload,
        readers=args.readers,
        reader_hold=(low, high),
        idle_connections=args.idle_conns,
        tuple_every=args.tuple_every,
        port=args.port,
        server_settings=settings,
        json_path=args.json,
        smoke=args.smoke,
    )
    if args.smoke:  # seconds-long phases; explicit flags other than these still apply
        config = replace(
            config,
            rate=rate if args.rate != "800" else 100.0,
            warmup=1,
            clean=1,
            stress=1.5,
            recovery=1,
            workers=1,
            concurrency=10,
            lease_seconds=2.0,
            reader_hold=(0.2, 0.5),
            idle_connections=20,
            tuple_every=1.0,
        )
    durations = (config.warmup, config.clean, config.stress, config.recovery)
    if min(durations) <= 0 or config.workers < 1 or config.concurrency < 1:
        parser.error("phase durations, --workers and --concurrency must be positive")
    return config


async def _now(conn: asyncpg.Connection) -> float:
    return float(await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8"))


async def _fresh_database(cluster: Cluster, name: str) -> None:
    """``name``, empty, owned by the workers' role, with pgstattuple, Soniq's schema set up."""
    conn = await asyncpg.connect(cluster.url(), timeout=30)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}" OWNER {WORKER_USER}')
    finally:
        await conn.close()
    conn = await asyncpg.connect(cluster.url(name), timeout=30)
    try:
        await conn.execute("CREATE EXTENSION pgstattuple")
    finally:
        await conn.close()
    app = Soniq(cluster.url(name, WORKER_USER), schema=SCHEMA)
    try:
        await app.setup()
    finally:
        await app.close()


async def _drop_database(cluster: Cluster, name: str) -> None:
    conn = await asyncpg.connect(cluster.url(), timeout=30)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _until(probe: Any, *, timeout: float, what: str, workers: Workers) -> None:
    deadline = time.monotonic() + timeout
    while not await probe():
        workers.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.25)


def _workers(config: PressureConfig, cluster: Cluster, database: str, logs: Path) -> Workers:
    return Workers(
        config.workers,
        concurrency=config.concurrency,
        lease_seconds=config.lease_seconds,
        env=worker_env(cluster.url(database, WORKER_USER), SCHEMA),
        logs=logs,
    )


async def measure_peak(cluster: Cluster, config: PressureConfig, logs: Path) -> float:
    """Jobs/s of the workers draining a queue filled before they start (first claim to last
    outcome, database clock): what ``--rate auto`` takes half of."""
    jobs = 1_000 if config.smoke else PEAK_JOBS
    database = "pressure_peak"
    await _fresh_database(cluster, database)
    app = register(Soniq(cluster.url(database), schema=SCHEMA))
    workers = _workers(config, cluster, database, logs / "peak")
    try:
        for first in range(0, jobs, 5_000):
            await app.enqueue_many(
                TASK, [make_args(n) for n in range(first, min(jobs, first + 5_000))]
            )
        workers.start()

        async def drained() -> bool:
            return sum(q.done_last_hour for q in (await app.status()).queues) >= jobs

        await _until(drained, timeout=300, what="the peak drain", workers=workers)
        async with app.connection() as conn:
            window = await conn.fetchval(
                f"SELECT extract(epoch FROM max(finished_at) - min(started_at))::float8 "
                f"FROM {SCHEMA}.job_history"
            )
        workers.stop()
    finally:
        workers.kill()
        await app.close()
        await _drop_database(cluster, database)
    return float(jobs / window)


async def _explain_claim(
    conn: asyncpg.Connection, config: PressureConfig, window: timedelta
) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the workers' claim statement over ``window`` (the
    recent claim's, or the full look's), rolled back: the jobs it locked go back to the
    queue at once."""
    statement = JobStore(SCHEMA).claims._claim_any
    args = statement.args(
        {
            "limit": config.concurrency,
            "registered_tasks": [TASK],
            "registered_max_attempts": [3],
            "lease": timedelta(seconds=config.lease_seconds),
            "worker_id": "pressure-explain",
            "versioned_tasks": [],
            "versions": [],
            "window": window,
        }
    )
    transaction = conn.transaction()
    await transaction.start()
    try:
        rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {statement.sql}", *args)
    finally:
        await transaction.rollback()
    return "\n".join(row[0] for row in rows)


async def run_scenario(
    cluster: Cluster, config: PressureConfig, name: str, rate: float, logs: Path
) -> dict[str, Any]:
    database = f"pressure_{name}"
    await _fresh_database(cluster, database)
    url = cluster.url(database)
    producer_app = register(Soniq(url, schema=SCHEMA, pool_size=config.in_flight))
    workers = _workers(config, cluster, database, logs / name)
    sampler = Sampler(url, SCHEMA, WORKER_USER, tuple_every=config.tuple_every)
    clock = await asyncpg.connect(
        url, timeout=30, server_settings={"application_name": "pressure-clock"}
    )
    try:
        workers.start()

        async def registered() -> bool:
            return len((await producer_app.status()).workers) == config.workers

        await _until(registered, timeout=120, what="workers to register", workers=workers)
        producer = Producer(
            producer_app, rate, tick=config.tick, in_flight=config.in_flight, single=config.single
        )
        context = StressContext(
            url=url,
            schema=SCHEMA,
            worker_user=WORKER_USER,
            producer=producer,
            rate=rate,
            overload=config.overload,
            readers=config.readers,
            reader_hold=config.reader_hold,
            idle_connections=config.idle_connections,
        )
        facts: dict[str, Any] = {}
        plans: dict[str, str] = {}
        phases: list[Phase] = []
        await sampler.start()
        runner = asyncio.create_task(producer.run())

        async def hold(phase: str, seconds: float) -> None:
            """Sleep through the phase, explaining the claims half-way (clean and stress)."""
            await _sleep_watching(seconds / 2, workers, runner)
            if phase in ("clean", "stress"):
                plans[phase] = await _explain_claim(clock, config, CLAIM_WINDOW)
                plans[f"{phase}_full_look"] = await _explain_claim(clock, config, EVERYTHING)
            await _sleep_watching(seconds / 2, workers, runner)

        for phase, seconds in (
            ("warmup", config.warmup),
            ("clean", config.clean),
            ("stress", config.stress),
            ("recovery", config.recovery),
        ):
            start, cpu = await _now(clock), psutil.cpu_times()
            print(f"  {name}: {phase} ({seconds:.0f}s)", flush=True)
            if phase == "stress":
                async with STRESSORS[name](context, facts):
                    await hold(phase, seconds)
            else:
                await hold(phase, seconds)
            offered = rate * config.overload if phase == "stress" and name == "overload" else rate
            end, busy = await _now(clock), _busy_percent(cpu, psutil.cpu_times())
            phases.append(Phase(phase, start, end, offered, busy))
        await producer.stop(runner)
        await sampler.stop()

        async def settled() -> bool:
            return not await clock.fetchval(
                f"SELECT EXISTS (SELECT FROM {SCHEMA}.job_live) "
                f"OR EXISTS (SELECT FROM {SCHEMA}.job_scheduled)"
            )

        settle_started = time.monotonic()
        try:
            await _until(
                settled,
                timeout=config.lease_seconds + 60,
                what="the queue to empty",
                workers=workers,
            )
        except RuntimeError as exc:
            logger.warning("%s: %s; counting what is done", name, exc)
        settle_s = time.monotonic() - settle_started
        exit_codes = workers.stop()
        return await _report(
            clock,
            config,
            name,
            rate,
            phases,
            sampler,
            producer,
            facts,
            plans,
            settle_s,
            exit_codes,
            logs / name,
        )
    finally:
        await sampler.stop()
        workers.kill()
        await producer_app.close()
        await clock.close()
        await _drop_database(cluster, database)


def _busy_percent(before: Any, after: Any) -> float:
    """Share of all cores' time between two ``psutil.cpu_times()`` spent not idle."""
    elapsed = sum(after) - sum(before)
    idle = (after.idle + after.iowait) - (before.idle + before.iowait)
    return round(100.0 * (elapsed - idle) / elapsed, 1) if elapsed > 0 else 0.0


async def _sleep_watching(seconds: float, workers: Workers, producer: asyncio.Task[None]) -> None:
    """Sleep, failing fast if a worker process died or the producer stopped."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(left, 0.5))
        workers.check_alive()
        if producer.done():
            producer.result()  # raises what stopped it
            raise RuntimeError("the producer stopped")


async def _report(
    conn: asyncpg.Connection,
    config: PressureConfig,
    name: str,
    rate: float,
    phases: list[Phase],
    sampler: Sampler,
    producer: Producer,
    facts: dict[str, Any],
    plans: dict[str, str],
    settle_s: float,
    exit_codes: list[int | None],
    logs: Path,
) -> dict[str, Any]:
    by_name = {p.name: p for p in phases}
    summaries = {
        p.name: await analysis.phase_summary(conn, SCHEMA, p, sampler, rate_sla=0.02)
        for p in phases
    }
    series = await analysis.per_second(conn, SCHEMA, phases[0].start, phases[-1].end)
    accounts = await analysis.accounting(conn, SCHEMA, producer.ids)
    stress, recovery, clean = by_name["stress"], by_name["recovery"], summaries["clean"]
    drain_s = analysis.drain_seconds(
        sampler, stress, recovery.end, analysis.depth_threshold(clean, rate)
    )
    recovered_s = analysis.recovered_after(
        series, sampler, clean, stress, recovery, config.recover_window, rate
    )
    sizes = analysis.hot_sizes(sampler)
    size_ratio = analysis.hot_size_ratio(sizes, by_name["clean"], recovery)
    size_back_s = analysis.size_back_after(sizes, by_name["clean"], stress, recovery)
    return {
        "scenario": name,
        "rate": rate,
        "phases": list(summaries.values()),
        "goals": analysis.goals(name, summaries, accounts, drain_s, recovered_s, size_back_s),
        "accounting": {**accounts, "enqueue_failed": producer.failed},
        "drain_seconds": drain_s,
        "recovered_after_s": recovered_s,
        "hot_size_back_after_s": size_back_s,
        # largest over recovery's last ring turn / largest in the clean phase
        "hot_size_ratio": size_ratio,
        "stress_facts": facts,
        "producer_most_owed": producer.most_owed,
        "settle_seconds": round(settle_s, 1),
        "worker_exit_codes": exit_codes,
        "sampler_errors": dict(sampler.errors),
        "claim_plans": plans,
        "series": report.series(series, sampler),
        "logs": str(logs),
    }


async def run(cluster: Cluster, config: PressureConfig, logs: Path) -> int:
    conn = await asyncpg.connect(cluster.url(), timeout=30)
    try:
        # pg_read_all_stats: Soniq's recycler reads other sessions' transaction ages, which
        # pg_stat_activity shows a plain role only for its own sessions.
        await conn.execute(f"CREATE ROLE {WORKER_USER} LOGIN IN ROLE pg_read_all_stats")
    finally:
        await conn.close()
    postgres = await server_facts(cluster.url())
    peak = None
    if config.rate is None:
        peak = await measure_peak(cluster, config, logs)
        print(f"drain peak {peak:.0f} jobs/s: running at half, {peak / 2:.0f} jobs/s", flush=True)
    rate = config.rate if config.rate is not None else peak / 2  # type: ignore[operator]
    reports = {}
    for name in config.scenarios:
        result = await run_scenario(cluster, config, name, rate, logs)
        png = config.json_path.with_name(f"{config.json_path.stem}-{name}.png")
        plot.draw(png, name, result)
        result["plot"] = str(png)
        reports[name] = result
        print(report.table(result), flush=True)
        print(f"plot: {png}", flush=True)
    payload = {
        "benchmark": "pressure",
        "smoke": config.smoke,
        "config": {**asdict(config), "json_path": str(config.json_path)},
        "rate": rate,
        "drain_peak_per_s": peak,
        "scenarios": reports,
        "all_goals_pass": all(g["pass"] for r in reports.values() for g in r["goals"]),
        "machine": machine(postgres, ["asyncpg", "pydantic"]),
    }
    config.json_path.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {config.json_path}; logs in {logs}")
    return 0


def _interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = parse_args(argv)
    reason = cluster_unavailable()
    if reason is not None:
        print(f"bench pressure: {reason}", file=sys.stderr)
        return 2
    logs = config.json_path.with_name(f"{config.json_path.stem}-logs")
    signal.signal(signal.SIGTERM, _interrupt)  # cleaned up as after Ctrl-C
    try:
        with Cluster(config.port, config.server_settings, keep_log=logs / "postgresql.log") as c:
            return asyncio.run(run(c, config, logs))
    except ClusterUnavailable as exc:
        print(f"bench pressure: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the run's cluster was dropped", file=sys.stderr)
        return 130
