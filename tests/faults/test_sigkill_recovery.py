"""At-least-once with short recovery: a worker SIGKILLed in the middle of its jobs loses
nothing. Its leases stop being renewed, the other worker's rescuer takes the jobs back once
they expire, and they run again there, all within the lease time plus a margin."""

from __future__ import annotations

import signal
import time

import asyncpg
import pytest

from soniq import Soniq
from tests.fault_support import Workers, worker_pid_of
from tests.helpers import wait_until

JOBS = 100
JOB_SECONDS = 1.0
LEASE = 2.0
# Lease expiry, then at most one rescue interval (lease/3) before the rescuer sees it,
# then one more run of the job, plus slack for a busy 2-core CI machine.
RECOVERY_BUDGET = LEASE + LEASE / 3 + JOB_SECONDS + 3.0


@pytest.mark.faults
async def test_sigkilled_workers_jobs_are_rescued_and_completed_by_the_other_worker_in_time(
    app: Soniq,
    db: asyncpg.Connection,
    schema: str,
    side_effects: str,
    workers: Workers,
) -> None:
    await app.enqueue_many("fault.sleep", [{"seconds": JOB_SECONDS}] * JOBS)
    options = ["--concurrency", str(JOBS // 2), "--lease-seconds", str(LEASE)]
    victim = workers.start(*options)
    survivor = workers.start(*options)

    # Both workers are in the middle of their share of the 100 jobs.
    async def all_running_on_both() -> bool:
        row = await db.fetchrow(
            f"""SELECT count(*) FILTER (WHERE pid = $1) AS victim,
                       count(*) FILTER (WHERE pid = $2) AS survivor
                FROM {side_effects} WHERE phase = 'start'""",
            victim.pid,
            survivor.pid,
        )
        return row["victim"] + row["survivor"] == JOBS and row["victim"] > 0

    await wait_until(all_running_on_both, timeout=30, interval=0.05)
    victim.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    assert victim.wait(10) == -signal.SIGKILL

    await wait_until(
        lambda: db.fetchval(f"SELECT count(*) = $1 FROM {schema}.jobs WHERE state = 'done'", JOBS),
        timeout=RECOVERY_BUDGET + 10,
        interval=0.05,
    )
    recovered_in = time.monotonic() - killed_at
    assert recovered_in <= RECOVERY_BUDGET, workers.outputs()

    # The jobs the victim had started but never finished ran again, to the end, on the
    # survivor; they spent one attempt per claim.
    interrupted = {
        r["job_id"]
        for r in await db.fetch(
            f"""SELECT job_id FROM {side_effects} s WHERE pid = $1 AND phase = 'start'
                AND NOT EXISTS (SELECT 1 FROM {side_effects} e WHERE e.job_id = s.job_id
                                AND e.pid = $1 AND e.phase = 'end')""",
            victim.pid,
        )
    }
    assert interrupted, "the victim should have been killed mid-run"
    rerun = await db.fetch(
        f"""SELECT j.id, j.attempts, j.worker_id,
                   count(*) FILTER (WHERE s.phase = 'end' AND s.pid = $2) AS survivor_ends
            FROM {schema}.jobs j JOIN {side_effects} s ON s.job_id = j.id
            WHERE j.id = ANY($1::bigint[]) GROUP BY j.id, j.attempts, j.worker_id""",
        list(interrupted),
        survivor.pid,
    )
    assert len(rerun) == len(interrupted)
    for row in rerun:
        assert row["survivor_ends"] == 1, row
        assert row["attempts"] == 2, row
        assert worker_pid_of(row["worker_id"]) == survivor.pid, row

    # Every job completed exactly once: one 'end' per job, none left behind.
    ends = await db.fetchrow(
        f"""SELECT count(*) AS ends, count(DISTINCT job_id) AS jobs
            FROM {side_effects} WHERE phase = 'end'"""
    )
    assert ends["ends"] == JOBS and ends["jobs"] == JOBS
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.jobs WHERE state <> 'done'") == 0

    survivor.signal(signal.SIGTERM)
    assert survivor.wait(30) == 0, survivor.output()
