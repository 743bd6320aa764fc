"""The dead-letter queue (list, replay, purge) and job inspection with get_job."""

from __future__ import annotations

import asyncio
from datetime import datetime

import asyncpg
import pytest

from soniq import JobError, JobNotFoundError, JobState, Soniq
from tests.helpers import count_jobs, job_row, start_worker, stop_worker, wait_state


async def _dead_one_by_one(
    app: Soniq, db: asyncpg.Connection, schema: str, jobs: list[tuple[str, str]]
) -> list[int]:
    """Enqueue (task, queue) pairs no handler exists for, letting each die before the next,
    so every job has its own finished_at. Returns their ids in the order they died."""
    worker = start_worker(app)
    ids = []
    try:
        for task, queue in jobs:
            job_id = await app.enqueue(task, {"task": task, "queue": queue}, queue=queue)
            await wait_state(db, schema, job_id, "dead")
            ids.append(job_id)
    finally:
        await stop_worker(worker)
    return ids


async def test_list_returns_dead_jobs_most_recent_first_with_filters(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    ids = await _dead_one_by_one(
        app,
        db,
        schema,
        [("mail.send", "q1"), ("mail.send", "q2"), ("sms.send", "q1"), ("sms.send", "q2")],
    )
    alive = await app.enqueue("mail.send", {}, queue="q1")  # queued: never listed
    m1, m2, s1, s2 = ids

    assert [j.id for j in await app.dead_letter.list()] == [s2, s1, m2, m1]
    assert [j.id for j in await app.dead_letter.list(task_name="mail.send")] == [m2, m1]
    assert [j.id for j in await app.dead_letter.list(queue="q1")] == [s1, m1]
    assert [j.id for j in await app.dead_letter.list(task_name="sms.send", queue="q2")] == [s2]
    assert await app.dead_letter.list(task_name="none.such") == []
    assert [j.id for j in await app.dead_letter.list(limit=2)] == [s2, s1]

    listed = await app.dead_letter.list()
    assert alive not in [j.id for j in listed]
    assert all(j.state is JobState.DEAD for j in listed)
    finished = [j.finished_at for j in listed]
    assert all(f is not None for f in finished)
    assert finished == sorted(finished, reverse=True)  # type: ignore[type-var]
    first = listed[-1]
    assert (first.task_name, first.queue, first.args) == (
        "mail.send",
        "q1",
        {"task": "mail.send", "queue": "q1"},
    )
    assert first.error is not None and first.error.reason == "Job not registered"


async def test_replay_from_another_instance_without_handlers_requeues_and_then_runs(
    database_url: str, app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    (job_id,) = await _dead_one_by_one(app, db, schema, [("mail.send", "default")])
    other = Soniq(database_url, schema=schema)  # an operator's tool: no handlers at all
    try:
        assert await other.dead_letter.replay(job_id) == [job_id]
    finally:
        await other.close()
    row = await job_row(db, schema, job_id)
    assert (row["state"], row["attempts"], row["finished_at"]) == ("queued", 0, None)
    assert (row["claim_token"], row["worker_id"], row["started_at"]) == (None, None, None)

    received: list[dict[str, str]] = []
    done = asyncio.Event()

    @app.job(name="mail.send")
    async def send(task: str, queue: str) -> None:
        received.append({"task": task, "queue": queue})
        done.set()

    worker = start_worker(app)
    await asyncio.wait_for(done.wait(), 20)
    row = await wait_state(db, schema, job_id, "done")
    await stop_worker(worker)
    assert received == [{"task": "mail.send", "queue": "default"}]
    assert row["attempts"] == 1


async def test_replay_touches_only_dead_jobs(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    (dead,) = await _dead_one_by_one(app, db, schema, [("mail.send", "default")])
    queued = await app.enqueue("mail.send", {}, delay=3600)
    before = await job_row(db, schema, queued)
    assert await app.dead_letter.replay([queued, dead, 999_999]) == [dead]
    after = await job_row(db, schema, queued)
    assert (after["state"], after["scheduled_at"]) == ("queued", before["scheduled_at"])
    assert await app.dead_letter.replay(dead) == []  # no longer dead


async def test_purge_given_ids_deletes_only_those_dead_jobs(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    a, b, c = await _dead_one_by_one(
        app, db, schema, [("x.one", "default"), ("x.two", "default"), ("x.three", "default")]
    )
    queued = await app.enqueue("x.one", {})
    assert await app.dead_letter.purge([a, c, queued]) == 2
    rows = await db.fetch(f"SELECT id, state FROM {schema}.jobs ORDER BY id")
    assert [(r["id"], r["state"]) for r in rows] == [(b, "dead"), (queued, "queued")]
    assert await app.dead_letter.purge([a]) == 0


async def test_purge_without_ids_deletes_every_dead_job_only(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    await _dead_one_by_one(app, db, schema, [("x.one", "default"), ("x.two", "other")])
    queued = await app.enqueue("x.one", {})
    assert await app.dead_letter.purge() == 2
    assert await count_jobs(db, schema, "state = 'dead'") == 0
    assert await count_jobs(db, schema, "id = $1", queued) == 1
    assert await app.dead_letter.purge() == 0


async def test_get_job_returns_every_recorded_field(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="billing.charge", retries=1)
    async def charge(order_id: str, amount: int) -> None:
        raise RuntimeError(f"card declined for {order_id}")

    job_id = await app.enqueue(
        "billing.charge",
        {"order_id": "o7", "amount": 12},
        queue="billing",
        priority=3,
        dedup_key="charge-o7",
    )
    queued = await app.get_job(job_id)
    assert (queued.id, queued.task_name, queued.queue, queued.args) == (
        job_id,
        "billing.charge",
        "billing",
        {"order_id": "o7", "amount": 12},
    )
    assert (queued.state, queued.attempts, queued.max_attempts, queued.priority) == (
        JobState.QUEUED,
        0,
        2,
        3,
    )
    assert (queued.started_at, queued.finished_at, queued.error) == (None, None, None)
    assert queued.dedup_key == "charge-o7"
    assert isinstance(queued.enqueued_at, datetime) and queued.enqueued_at.tzinfo is not None
    assert queued.scheduled_at == queued.enqueued_at

    worker = start_worker(app, poll=0.01)
    row = await wait_state(db, schema, job_id, "dead")
    await stop_worker(worker)
    dead = await app.get_job(job_id)
    assert dead.state is JobState.DEAD
    assert dead.attempts == 2
    assert isinstance(dead.error, JobError)
    assert dead.error.reason == "exception"
    assert "card declined for o7" in dead.error.message
    assert isinstance(dead.error.detail, str) and "Traceback" in dead.error.detail
    assert (dead.started_at, dead.finished_at) == (row["started_at"], row["finished_at"])
    assert dead.finished_at is not None and dead.started_at is not None
    assert dead.enqueued_at <= dead.started_at <= dead.finished_at
    assert dead.worker_id == row["worker_id"] and dead.worker_id


async def test_get_job_of_missing_id_raises_job_not_found(app: Soniq) -> None:
    with pytest.raises(JobNotFoundError) as info:
        await app.get_job(424242)
    assert info.value.job_id == 424242
    assert "424242" in str(info.value)


async def test_replay_leaves_dead_a_job_whose_dedup_key_a_live_job_holds(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    worker = start_worker(app)  # no handlers: every job dies
    dead = await app.enqueue("sync.account", {"n": 1}, dedup_key="acct-1")
    await wait_state(db, schema, dead, "dead")
    await stop_worker(worker)
    live = await app.enqueue("sync.account", {"n": 2}, dedup_key="acct-1")
    assert live != dead

    assert await app.dead_letter.replay(dead) == []
    states = await db.fetch(f"SELECT id, state FROM {schema}.jobs ORDER BY id")
    assert [(r["id"], r["state"]) for r in states] == [(dead, "dead"), (live, "queued")]

    # once the key is free again, the replay goes through
    assert await app.cancel(live) is True
    assert await app.dead_letter.replay(dead) == [dead]


async def test_replay_of_dead_jobs_sharing_a_dedup_key_requeues_only_the_latest(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    worker = start_worker(app)
    first = await app.enqueue("sync.account", {"n": 1}, dedup_key="acct-1")
    await wait_state(db, schema, first, "dead")
    second = await app.enqueue("sync.account", {"n": 2}, dedup_key="acct-1")
    await wait_state(db, schema, second, "dead")
    other = await app.enqueue("sync.account", {"n": 3})
    await wait_state(db, schema, other, "dead")
    await stop_worker(worker)

    assert sorted(await app.dead_letter.replay([first, second, other])) == [second, other]
    assert await count_jobs(db, schema, "id = $1 AND state = 'dead'", first) == 1
