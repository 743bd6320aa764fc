"""Fleets on many hosts: four worker "hosts", each its own network namespace with its own
link to the test's own PostgreSQL cluster (topology in tests/fleet_support.py), and each
worker process 1 of its own PID namespace, so all four share host name and pid.

- They drain one queue together: every job done exactly once, under four distinct worker
  ids, each host running a share.
- A host cut off (its link down) while it runs jobs loses them to the others within
  lease + lease/3 of the cut, measured on the database clock, and they finish there.
- When its link comes back, its late outcomes are fenced out, and it claims new jobs.
- The fleet rides out a real stop and start of its database server (what a failover looks
  like to clients): enqueue fails clearly meanwhile, every job ends done exactly once.

Facts come from the database: job rows (read in one place, :func:`job_rows`) and the
``side_effects`` rows fault_app's handlers write, whose ``host`` column is the address the
handler's connection came from (``inet_client_addr()``), i.e. which host ran the body.
Logs only tell the test when to look again. The ``app`` and ``db`` fixtures here replace
the shared ones: they point at the fleet's cluster, not the shared test server.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from bench.fleet import FleetConfig, drain_once
from soniq import DatabaseUnavailableError, Job, Soniq
from tests.fault_support import FAULT_APP
from tests.fleet_support import (
    Fleet,
    FleetUnavailable,
    Host,
    HostWorker,
    fleet_unavailable,
    host_env,
)
from tests.helpers import drop_schema, new_schema_name, wait_until

HOSTS = 4
LEASE = 2.0
# A rescue comes at most one lease after the victim's last heartbeat (which was at or
# before the cut) plus one rescue interval; the claim that follows is woken by the
# rescue's NOTIFY. The margin is for a loaded 2-core machine.
RESCUE_BUDGET = LEASE + LEASE / 3 + 1.0
JOB_SECONDS = 5.0  # long enough that the victim is cut off mid-run
DISCARDED = "discarded, this worker no longer owns the job"
RECONNECTED = "reconnected to PostgreSQL; listening again"


async def job_rows(app: Soniq) -> dict[int, Job]:
    """Every job of the schema, by id: the one place this module reads jobs. It goes
    through the public API, so a redesign of the jobs table changes nothing here."""
    return {job.id: job for job in await app.list_jobs(limit=None)}


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    reason = fleet_unavailable()
    if reason is not None:
        pytest.skip(reason)
    try:
        with Fleet(HOSTS) as built:
            yield built
    except FleetUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
async def fleet_schema(fleet: Fleet) -> AsyncIterator[str]:
    schema = new_schema_name()
    yield schema
    await drop_schema(fleet.database_url, schema)


@pytest.fixture
async def app(fleet: Fleet, fleet_schema: str) -> AsyncIterator[Soniq]:
    soniq = Soniq(fleet.database_url, schema=fleet_schema)
    await soniq.setup()
    yield soniq
    await soniq.close()


@pytest.fixture
async def db(fleet: Fleet, app: Soniq, fleet_schema: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection from the root namespace (never cut), with the side-effects table made."""
    conn = await asyncpg.connect(fleet.database_url)
    await conn.execute(
        f"""CREATE TABLE {fleet_schema}.side_effects (
                seq    bigserial PRIMARY KEY,
                job_id bigint NOT NULL,
                pid    integer NOT NULL,
                phase  text NOT NULL,
                at     timestamptz NOT NULL DEFAULT clock_timestamp(),
                host   inet NOT NULL DEFAULT inet_client_addr())"""
    )
    yield conn
    await conn.close()


class Hosts:
    """Starts fault_app workers on the fleet's hosts; the test's teardown kills what is
    left and brings every link back up."""

    def __init__(self, fleet: Fleet, schema: str, logs: Path) -> None:
        self.fleet = fleet
        self.env = host_env(fleet, schema)
        self.logs = logs
        self.started: list[HostWorker] = []

    def start(self, host: Host, *args: str) -> HostWorker:
        log = self.logs / f"{host.name}-{len(self.started)}.log"
        worker = self.fleet.start_worker(host, FAULT_APP, args, env=self.env, log=log)
        self.started.append(worker)
        return worker

    def outputs(self) -> str:
        return "\n".join(f"--- {w.host.name} ---\n{w.output()}" for w in self.started)


@pytest.fixture
def hosts(fleet: Fleet, fleet_schema: str, tmp_path: Path) -> Iterator[Hosts]:
    started = Hosts(fleet, fleet_schema, tmp_path)
    yield started
    for worker in started.started:
        worker.kill()
    for host in fleet.hosts:
        fleet.restore(host)


async def live_workers(app: Soniq, count: int) -> list[str]:
    """Wait until ``count`` workers are registered; returns their ids."""

    async def registered() -> list[str]:
        workers = (await app.status()).workers
        return [w.id for w in workers] if len(workers) == count else []

    return await wait_until(registered, timeout=60)


async def starts_by_host(db: asyncpg.Connection, schema: str) -> dict[str, set[int]]:
    """Which jobs' bodies each host address has started."""
    started: dict[str, set[int]] = defaultdict(set)
    for row in await db.fetch(
        f"SELECT host(host) AS host, job_id FROM {schema}.side_effects WHERE phase = 'start'"
    ):
        started[row["host"]].add(row["job_id"])
    return started


@pytest.mark.faults
async def test_four_hosts_sharing_host_name_and_pid_drain_each_job_once_under_distinct_ids(
    fleet: Fleet, app: Soniq, db: asyncpg.Connection, fleet_schema: str, hosts: Hosts
) -> None:
    jobs = 2000
    workers = [hosts.start(host, "--concurrency", "8") for host in fleet.hosts]
    worker_ids = await live_workers(app, HOSTS)
    records = (await app.status()).workers
    # Same host name, same pid (each is process 1 of its PID namespace); ids still differ:
    # four rows registered (two equal ids would have shared one row).
    assert {(r.hostname, r.pid) for r in records} == {(records[0].hostname, 1)}
    assert len(set(worker_ids)) == HOSTS

    await app.enqueue_many("fault.count", [{"n": i} for i in range(jobs)])

    async def all_done() -> bool:
        rows = await job_rows(app)
        return sum(job.state == "done" for job in rows.values()) == jobs

    await wait_until(all_done, timeout=60, interval=0.2)
    rows = await job_rows(app)
    assert all(job.attempts == 1 and job.error is None for job in rows.values())
    assert {job.worker_id for job in rows.values()} == set(worker_ids)

    # One run per job (fault.count writes one row per run), each on one of the hosts as pid 1.
    runs = await db.fetch(
        f"SELECT job_id, pid, host(host) AS host FROM {fleet_schema}.side_effects"
    )
    assert sorted(r["job_id"] for r in runs) == sorted(rows)
    assert {r["pid"] for r in runs} == {1}
    # Worker ids and hosts match one to one: the id recorded on a job is the id of the host
    # whose connection wrote the job's side effect.
    hosts_of_id: dict[str | None, set[str]] = defaultdict(set)
    for run in runs:
        hosts_of_id[rows[run["job_id"]].worker_id].add(run["host"])
    assert all(len(addresses) == 1 for addresses in hosts_of_id.values()), hosts_of_id
    assert {a for addresses in hosts_of_id.values() for a in addresses} == {
        host.address for host in fleet.hosts
    }
    share = Counter(run["host"] for run in runs)
    assert all(share[host.address] > 0 for host in fleet.hosts), share

    for worker in workers:
        worker.signal(signal.SIGTERM)
    assert [w.wait(30) for w in workers] == [0] * HOSTS, hosts.outputs()


async def cut_off_a_host_mid_run(
    fleet: Fleet, app: Soniq, db: asyncpg.Connection, schema: str, hosts: Hosts
) -> tuple[HostWorker, list[HostWorker], str, set[int], datetime]:
    """Four hosts (4 slots each) run 8 long jobs; the host running the most is cut off. The
    others have free slots enough to take its jobs over at once. Returns the victim, the
    others, the victim's worker id, its jobs, and the cut's time on the database clock."""
    options = ("--concurrency", "4", "--lease-seconds", str(LEASE))
    workers = [hosts.start(host, *options) for host in fleet.hosts]
    await live_workers(app, HOSTS)
    await app.enqueue_many("fault.sleep", [{"seconds": JOB_SECONDS}] * 8)

    async def all_started() -> dict[str, set[int]]:
        started = await starts_by_host(db, schema)
        return started if sum(map(len, started.values())) == 8 else {}

    started = await wait_until(all_started, timeout=30, interval=0.05)
    victim = next(
        w for w in workers if len(started[w.host.address]) == max(map(len, started.values()))
    )
    others = [w for w in workers if w is not victim]
    victim_jobs = started[victim.host.address]
    rows = await job_rows(app)
    [victim_id] = {rows[job_id].worker_id for job_id in victim_jobs}
    assert victim_id is not None

    cut_at: datetime = await db.fetchval("SELECT clock_timestamp()")
    fleet.cut(victim.host)
    return victim, others, victim_id, victim_jobs, cut_at


async def taken_over(app: Soniq, job_ids: set[int], victim_id: str) -> dict[int, Job]:
    """Wait until another worker has claimed each of ``job_ids`` again."""

    async def claimed_elsewhere() -> dict[int, Job]:
        rows = await job_rows(app)
        jobs = {job_id: rows[job_id] for job_id in job_ids}
        moved = all(job.attempts == 2 and job.worker_id not in (None, victim_id)
                    for job in jobs.values())  # fmt: skip
        return jobs if moved else {}

    return await wait_until(claimed_elsewhere, timeout=RESCUE_BUDGET + 20, interval=0.05)


@pytest.mark.faults
async def test_host_cut_off_loses_its_jobs_to_the_others_within_lease_and_a_third(
    fleet: Fleet, app: Soniq, db: asyncpg.Connection, fleet_schema: str, hosts: Hosts
) -> None:
    victim, others, victim_id, victim_jobs, cut_at = await cut_off_a_host_mid_run(
        fleet, app, db, fleet_schema, hosts
    )
    reclaimed = await taken_over(app, victim_jobs, victim_id)
    for job in reclaimed.values():
        assert job.started_at is not None
        assert job.started_at - cut_at <= timedelta(seconds=RESCUE_BUDGET), (
            f"job {job.id} claimed again {job.started_at - cut_at} after the cut"
        )
        # Taken back by a rescuer, from the victim.
        assert job.error is not None and job.error.reason == "worker lost", job
        assert victim_id in job.error.message

    async def all_done() -> dict[int, Job]:
        rows = await job_rows(app)
        return rows if all(job.state == "done" for job in rows.values()) else {}

    rows = await wait_until(all_done, timeout=JOB_SECONDS + 30)
    assert len(rows) == 8
    for job in rows.values():
        assert job.worker_id != victim_id
        assert job.attempts == (2 if job.id in victim_jobs else 1), job
        assert job.error is None

    # Each of the victim's jobs ran to its end elsewhere, once; the victim, cut off, never
    # reported an end (its side-effect write is stalled like everything else it sends).
    ends = await db.fetch(
        f"SELECT job_id, host(host) AS host FROM {fleet_schema}.side_effects WHERE phase = 'end'"
    )
    assert sorted(r["job_id"] for r in ends) == sorted(rows)
    assert victim.host.address not in {r["host"] for r in ends}

    for worker in others:
        worker.signal(signal.SIGTERM)
    assert [w.wait(30) for w in others] == [0] * len(others), hosts.outputs()


@pytest.mark.faults
async def test_host_back_from_a_cut_is_fenced_out_and_claims_new_jobs(
    fleet: Fleet, app: Soniq, db: asyncpg.Connection, fleet_schema: str, hosts: Hosts
) -> None:
    victim, others, victim_id, victim_jobs, _ = await cut_off_a_host_mid_run(
        fleet, app, db, fleet_schema, hosts
    )
    await taken_over(app, victim_jobs, victim_id)

    async def victims_jobs_done() -> dict[int, Job]:
        rows = await job_rows(app)
        jobs = {job_id: rows[job_id] for job_id in victim_jobs}
        return jobs if all(job.state == "done" for job in jobs.values()) else {}

    before = await wait_until(victims_jobs_done, timeout=JOB_SECONDS + 30)
    fleet.restore(victim.host)

    # The victim's runs had finished their bodies while it was cut off; now their end rows
    # and their "done" outcomes arrive. The outcomes carry the old claim tokens: discarded.
    async def ended_on_victim() -> bool:
        ended = await db.fetchval(
            f"""SELECT count(DISTINCT job_id) FROM {fleet_schema}.side_effects
                WHERE phase = 'end' AND host = $1::inet""",
            victim.host.address,
        )
        return bool(ended == len(victim_jobs))

    await wait_until(ended_on_victim, timeout=60)

    async def reported() -> bool:  # the log only tells us when to look at the rows again
        lines = [
            line for line in victim.output().splitlines() if f"outcome 'done' {DISCARDED}" in line
        ]
        return all(any(f"job {job_id} (" in line for line in lines) for job_id in victim_jobs)

    await wait_until(reported, timeout=60)
    after = await job_rows(app)
    for job_id, job in before.items():
        assert after[job_id] == job, "the late outcome changed nothing"
        assert job.worker_id != victim_id and job.attempts == 2
    assert sum(job.state == "done" for job in after.values()) == 8
    ends = Counter(
        r["job_id"]
        for r in await db.fetch(
            f"SELECT job_id FROM {fleet_schema}.side_effects WHERE phase = 'end'"
        )
    )
    assert {job_id: ends[job_id] for job_id in victim_jobs} == dict.fromkeys(victim_jobs, 2), (
        "both runs of a taken-over job reached their end (at least once), one is recorded"
    )

    # The victim claims again: with the others gone, it runs the next jobs.
    for worker in others:
        worker.signal(signal.SIGTERM)
    assert [w.wait(30) for w in others] == [0] * len(others), hosts.outputs()
    new_ids = set(await app.enqueue_many("fault.count", [{"n": i} for i in range(10)]))

    async def new_jobs_done() -> dict[int, Job]:
        rows = await job_rows(app)
        return rows if all(rows[job_id].state == "done" for job_id in new_ids) else {}

    rows = await wait_until(new_jobs_done, timeout=30)
    assert {rows[job_id].worker_id for job_id in new_ids} == {victim_id}
    victim.signal(signal.SIGTERM)
    assert victim.wait(30) == 0, victim.output()


@pytest.mark.faults
async def test_fleet_rides_out_a_stop_and_start_of_its_database_server(
    fleet: Fleet, app: Soniq, db: asyncpg.Connection, fleet_schema: str, hosts: Hosts
) -> None:
    """What a failover looks like to clients, on a real server: every connection closes,
    the address refuses connections for longer than the lease, then a server with the same
    data answers there again."""
    jobs = 3000
    workers = [hosts.start(host, "--concurrency", "8", "--lease-seconds", str(LEASE))
               for host in fleet.hosts]  # fmt: skip
    await live_workers(app, HOSTS)
    await app.enqueue_many("fault.count", [{"n": i} for i in range(jobs)])

    async def done_count() -> int:
        return sum(job.state == "done" for job in (await job_rows(app)).values())

    await wait_until(lambda: _at_least(done_count, jobs // 4), timeout=60, interval=0.05)
    fleet.stop_server()
    try:
        with pytest.raises(DatabaseUnavailableError, match="cannot reach PostgreSQL"):
            await app.enqueue("fault.count", {"n": -1})  # an app connected before
        fresh = Soniq(fleet.database_url, schema=fleet_schema)
        with pytest.raises(DatabaseUnavailableError, match="cannot reach PostgreSQL"):
            await fresh.enqueue("fault.count", {"n": -2})
        await fresh.close()
        await asyncio.sleep(LEASE + 1)  # leases run out on the database clock meanwhile
        assert all(w.process.poll() is None for w in workers), hosts.outputs()
    finally:
        fleet.start_server()

    await app.enqueue("fault.count", {"n": -3})  # works again
    await wait_until(lambda: _at_least(done_count, jobs + 1), timeout=90, interval=0.2)
    rows = await job_rows(app)
    assert len(rows) == jobs + 1, "the refused enqueues wrote nothing"
    assert all(job.state == "done" for job in rows.values())
    check = await asyncpg.connect(fleet.database_url)  # the fixture's died with the server
    try:
        runs = Counter(
            r["job_id"]
            for r in await check.fetch(f"SELECT job_id FROM {fleet_schema}.side_effects")
        )
    finally:
        await check.close()
    assert set(runs) == set(rows), "every job's body ran"
    assert all(runs[job_id] <= job.attempts for job_id, job in rows.items()), (
        "no job ran more often than it was claimed"
    )

    # Every worker listens again, and they all stop cleanly.
    async def all_reconnected() -> bool:
        return all(RECONNECTED in w.output() for w in workers)

    await wait_until(all_reconnected, timeout=30)
    for worker in workers:
        worker.signal(signal.SIGTERM)
    assert [w.wait(30) for w in workers] == [0] * HOSTS, hosts.outputs()


async def _at_least(count: Callable[[], Awaitable[int]], n: int) -> bool:
    return await count() >= n


@pytest.mark.faults
async def test_bench_fleet_drain_runs_on_the_fleet(fleet: Fleet) -> None:
    """``python -m bench fleet`` measures with this module's fleet machinery; one small
    drain on two hosts keeps it working (speed is not asserted)."""
    config = FleetConfig([2], jobs=300, concurrency=10, repeats=1, json_path=Path("-"),
                         server_settings={})  # fmt: skip
    run = await drain_once(fleet, config, hosts=2, repeat=0)
    assert run.jobs == 300 and run.jobs_per_s > 0 and run.drain_seconds > 0
    assert len(run.worker_cpu_seconds) == 2 and run.postgres_cpu_seconds > 0
