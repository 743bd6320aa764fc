"""Jobs that wait for other jobs (``enqueue(..., after=[...])``): claimable only once every
parent is done; a parent that ends dead or cancelled cancels its children, and theirs, with
a reason naming the parent. Run through app.drain(), which claims and records as a worker
does (tests/faults/test_steering.py runs a chain on real worker processes)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from soniq import Discard, EnqueueError, Soniq
from soniq.db.jobs import JobStore
from soniq.db.jobs.claims import EVERYTHING
from soniq.job import Outcome
from tests.helpers import wait_until


def _register(app: Soniq, ran: list[str]) -> None:
    @app.job(name="dep.step")
    async def step(name: str) -> None:
        ran.append(name)

    @app.job(name="dep.fail", retries=0)
    async def fail(name: str) -> None:
        ran.append(name)
        raise Discard("no")


async def _state(db: asyncpg.Connection, schema: str, job_id: int) -> tuple[str, str | None]:
    row = await db.fetchrow(f"SELECT state, error_message FROM {schema}.jobs WHERE id = $1", job_id)
    return row["state"], row["error_message"]


async def test_a_chain_runs_in_order_and_waits_unclaimable(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    ran: list[str] = []
    _register(app, ran)
    c_first = await app.enqueue("dep.step", {"name": "x"})  # no parent: runs at any time
    a = await app.enqueue("dep.step", {"name": "a"})
    b = await app.enqueue("dep.step", {"name": "b"}, after=[a])
    c = await app.enqueue("dep.step", {"name": "c"}, after=[b, c_first])
    waiting = await db.fetch(f"SELECT id FROM {schema}.job_waiting ORDER BY id")
    assert [r["id"] for r in waiting] == [b, c]
    assert (await app.get_job(b)).state.value == "queued"
    assert await app.drain() == 4
    assert ran.index("a") < ran.index("b") < ran.index("c") and ran.index("x") < ran.index("c")
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.job_dependencies") == 0
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.jobs WHERE state = 'done'") == 4


async def test_a_dead_parent_cancels_its_descendants_naming_each_parent(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    ran: list[str] = []
    _register(app, ran)
    a = await app.enqueue("dep.fail", {"name": "a"})
    b = await app.enqueue("dep.step", {"name": "b"}, after=[a])
    c = await app.enqueue("dep.step", {"name": "c"}, after=[b])
    other = await app.enqueue("dep.step", {"name": "other"})
    assert await app.drain() == 2 and sorted(ran) == ["a", "other"]
    assert await _state(db, schema, b) == ("cancelled", f"parent job {a} ended dead")
    assert await _state(db, schema, c) == ("cancelled", f"parent job {b} ended cancelled")
    assert (await _state(db, schema, other))[0] == "done"
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.job_waiting") == 0


async def test_parents_that_already_ended_settle_the_child_at_enqueue(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    ran: list[str] = []
    _register(app, ran)
    done = await app.enqueue("dep.step", {"name": "done"})
    dead = await app.enqueue("dep.fail", {"name": "dead"})
    await app.drain()
    runs = await app.enqueue("dep.step", {"name": "runs"}, after=[done])
    assert (await _state(db, schema, runs))[0] == "queued"
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.job_waiting") == 0
    doomed = await app.enqueue("dep.step", {"name": "doomed"}, after=[done, dead])
    assert await _state(db, schema, doomed) == ("cancelled", f"parent job {dead} ended dead")
    assert await app.drain() == 1 and ran[-1] == "runs"


async def test_a_batch_callback_is_a_job_after_the_whole_batch(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    ran: list[str] = []
    _register(app, ran)
    batch = await app.enqueue_many("dep.step", [{"name": f"item{i}"} for i in range(5)])
    callback = await app.enqueue("dep.step", {"name": "callback"}, after=batch)
    followers = await app.enqueue_many(
        "dep.step", [{"name": "f1"}, {"name": "f2"}], after=[callback]
    )
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.job_dependencies") == 5 + 2
    assert await app.drain() == 8
    assert ran[5] == "callback" and sorted(ran[:5]) == [f"item{i}" for i in range(5)]
    assert sorted(ran[6:]) == ["f1", "f2"]
    states = await db.fetch(
        f"SELECT state FROM {schema}.jobs WHERE id = ANY($1::bigint[])", followers
    )
    assert [r["state"] for r in states] == ["done", "done"]


async def test_cancelling_a_waiting_job_cancels_the_jobs_after_it(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    ran: list[str] = []
    _register(app, ran)
    a = await app.enqueue("dep.step", {"name": "a"})
    b = await app.enqueue("dep.step", {"name": "b"}, after=[a])
    c = await app.enqueue("dep.step", {"name": "c"}, after=[b])
    assert await app.cancel(b)
    assert await _state(db, schema, c) == ("cancelled", f"parent job {b} ended cancelled")
    assert await app.drain() == 1 and ran == ["a"]


async def test_status_counts_the_jobs_waiting_for_parents_per_queue(app: Soniq) -> None:
    ran: list[str] = []
    _register(app, ran)
    a = await app.enqueue("dep.step", {"name": "a"})
    b = await app.enqueue("dep.step", {"name": "b"}, queue="reports", after=[a])
    await app.enqueue("dep.step", {"name": "c"}, queue="reports", after=[b])
    counts = {q.queue: (q.queued, q.waiting) for q in (await app.status()).queues}
    assert counts == {"default": (1, 0), "reports": (0, 2)}
    assert await app.drain(queues=["default"]) == 1
    counts = {q.queue: (q.queued, q.waiting) for q in (await app.status()).queues}
    assert counts["reports"] == (1, 1)


@pytest.mark.parametrize(
    ("after", "message"),
    [
        ([10**12], "after names job 1000000000000, and there is no job with that id"),
        ([0], "each job id of after must be an integer from 1"),
        ("12", "after must be a list of job ids"),
        ([True], "each job id of after must be an integer"),
    ],
)
async def test_bad_parents_are_refused_and_nothing_is_written(
    app: Soniq, db: asyncpg.Connection, schema: str, after: object, message: str
) -> None:
    _register(app, [])
    with pytest.raises(EnqueueError, match=message):
        await app.enqueue("dep.step", {"name": "x"}, after=after)  # type: ignore[arg-type]
    with pytest.raises(EnqueueError, match=message):
        await app.enqueue_many("dep.step", [{"name": "y"}], after=after)  # type: ignore[arg-type]
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.jobs") == 0


async def test_a_child_committed_after_its_parent_ended_is_settled_at_its_commit(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    ran: list[str] = []
    _register(app, ran)
    a = await app.enqueue("dep.step", {"name": "a"})
    # The parent's outcome cannot see a dependency that is not committed yet; the child's
    # commit settles it.
    async with app.connection() as conn, conn.transaction():
        b = await app.enqueue("dep.step", {"name": "b"}, after=[a], connection=conn)
        await app.drain()  # runs a, on another connection
        assert ran == ["a"]
        assert await db.fetchval(f"SELECT count(*) FROM {schema}.job_waiting") == 0
    assert (await _state(db, schema, b))[0] == "queued"
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.job_waiting") == 0
    assert await app.drain() == 1 and ran == ["a", "b"]


async def test_a_parent_ending_while_its_child_commits_waits_for_the_commit(
    app: Soniq, db: asyncpg.Connection, schema: str, database_url: str
) -> None:
    _register(app, [])
    store = JobStore(schema)
    a = await app.enqueue("dep.step", {"name": "a"})
    [claimed] = await store.claims.claim(
        db, limit=1, queues=None, max_attempts_by_task={}, version_by_task={},
        lease=timedelta(seconds=30), worker_id="test:1:w", window=EVERYTHING,
    )  # fmt: skip
    assert claimed.id == a
    async with app.connection() as conn:
        tx = conn.transaction()
        await tx.start()
        b = await app.enqueue("dep.step", {"name": "b"}, after=[a], connection=conn)
        # what commit runs: the dependency's trigger locks the running parent to the commit
        await conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
        recorder = await asyncpg.connect(database_url)
        try:
            written = asyncio.ensure_future(
                store.outcomes.record(recorder, [Outcome(claimed.claim, "done")])
            )
            await wait_until(
                lambda: db.fetchval(
                    "SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database()"
                )
            )
            await tx.commit()
            assert await written == {a}
        finally:
            await recorder.close()
    # a's outcome, having waited for b's commit, saw b's dependency and released b
    assert await db.fetchval(f"SELECT state FROM {schema}.job_live WHERE id = $1", b) == "queued"
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.job_dependencies") == 0
