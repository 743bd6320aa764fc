"""Fencing: a worker that was frozen past its lease (SIGSTOP) and comes back cannot
overwrite the result of the worker that took its job over. Its outcome write carries its old
claim token, which no longer owns the job, so the write is discarded; it logs that and keeps
working."""

from __future__ import annotations

import signal

import asyncpg
import pytest

from soniq import Soniq
from tests.fault_support import Workers, worker_pid_of
from tests.helpers import wait_until

LEASE = "1"
# Long enough that the second run is still going when the first worker, thawed, has tried
# to write its outcome, however slow the machine is.
JOB_SECONDS = 8.0
DISCARDED = "discarded, this worker no longer owns the job"


@pytest.mark.faults
@pytest.mark.parametrize("resume", ["while_new_owner_runs", "after_new_owner_finished"])
async def test_worker_frozen_past_its_lease_is_fenced_out_and_the_new_owners_result_stands(
    resume: str,
    app: Soniq,
    db: asyncpg.Connection,
    schema: str,
    side_effects: str,
    workers: Workers,
) -> None:
    job_id = await app.enqueue("fault.sleep", {"seconds": JOB_SECONDS})
    first = workers.start("--concurrency", "1", "--lease-seconds", LEASE)

    async def started_by(pid: int) -> bool:
        return bool(
            await db.fetchval(
                f"SELECT count(*) FROM {side_effects} WHERE pid = $1 AND phase = 'start'", pid
            )
        )

    await wait_until(lambda: started_by(first.pid), timeout=20)
    first.signal(signal.SIGSTOP)  # frozen mid-run: no heartbeats, no outcome
    second = workers.start("--concurrency", "1", "--lease-seconds", LEASE)

    # The second worker's rescuer takes the job back once the lease runs out, and claims it.
    await wait_until(lambda: started_by(second.pid), timeout=20)
    if resume == "after_new_owner_finished":
        await wait_until(
            lambda: db.fetchval(f"SELECT state = 'done' FROM {schema}.jobs WHERE id = $1", job_id)
        )
    before = await db.fetchrow(f"SELECT * FROM {schema}.jobs WHERE id = $1", job_id)
    assert worker_pid_of(before["worker_id"]) == second.pid
    assert before["attempts"] == 2

    first.signal(signal.SIGCONT)
    # The first run's body finishes (its side effect cannot be undone) and its worker tries to
    # record "done" under its old token: that write is refused and reported.
    await wait_until(
        lambda: db.fetchval(
            f"SELECT count(*) FROM {side_effects} WHERE pid = $1 AND phase = 'end'", first.pid
        ),
        timeout=20,
    )

    async def reported() -> bool:  # the log only tells us when to look at the row again
        return DISCARDED in first.output()

    await wait_until(reported, timeout=20)

    after_fenced_write = await db.fetchrow(f"SELECT * FROM {schema}.jobs WHERE id = $1", job_id)
    if resume == "while_new_owner_runs":
        # Unfenced, this write would have marked the job done while the second run was
        # still going; instead the row still belongs to the second worker's claim.
        assert after_fenced_write["state"] == "running"
        assert after_fenced_write["claim_token"] == before["claim_token"]
        assert after_fenced_write["finished_at"] is None
        await wait_until(
            lambda: db.fetchval(f"SELECT state = 'done' FROM {schema}.jobs WHERE id = $1", job_id)
        )
    else:
        assert dict(after_fenced_write) == dict(before)

    final = await db.fetchrow(f"SELECT * FROM {schema}.jobs WHERE id = $1", job_id)
    assert final["state"] == "done"
    assert worker_pid_of(final["worker_id"]) == second.pid
    assert final["attempts"] == 2
    assert final["error_reason"] is None

    # Both bodies ran (at-least-once); the order shows whose result is recorded.
    order = [
        (r["pid"], r["phase"])
        for r in await db.fetch(f"SELECT pid, phase FROM {side_effects} ORDER BY seq")
    ]
    if resume == "while_new_owner_runs":
        assert order == [
            (first.pid, "start"),
            (second.pid, "start"),
            (first.pid, "end"),
            (second.pid, "end"),
        ]
    else:
        assert order == [
            (first.pid, "start"),
            (second.pid, "start"),
            (second.pid, "end"),
            (first.pid, "end"),
        ]

    # The fenced-out worker moves on: with the other worker gone it runs the next job.
    second.signal(signal.SIGTERM)
    assert second.wait(30) == 0, second.output()
    next_id = await app.enqueue("fault.sleep", {"seconds": 0})
    await wait_until(
        lambda: db.fetchval(f"SELECT state = 'done' FROM {schema}.jobs WHERE id = $1", next_id)
    )
    row = await db.fetchrow(f"SELECT worker_id FROM {schema}.jobs WHERE id = $1", next_id)
    assert worker_pid_of(row["worker_id"]) == first.pid
    first.signal(signal.SIGTERM)
    assert first.wait(30) == 0, first.output()
