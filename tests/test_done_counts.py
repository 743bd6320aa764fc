""" "Done in the last hour" is summed from the completer's per-batch counts, written with
the outcomes they count."""

from __future__ import annotations

import uuid

import asyncpg

from soniq import Soniq
from soniq.db.jobs import JobStore
from soniq.job import Claim, Outcome
from tests.helpers import start_worker, stop_worker, wait_until


async def test_done_last_hour_counts_each_job_workers_finished_once_per_queue(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="count.me")
    async def count_me(n: int) -> None:
        return None

    for n in range(5):
        await app.enqueue("count.me", {"n": n}, queue="mail" if n < 3 else "sms")
    assert await app.drain() == 5
    # one row per queue per batch (drain writes one job per batch)
    rows = await db.fetch(
        f"SELECT queue, done, minute = date_trunc('minute', minute) AS whole "
        f"FROM {schema}.job_done_counts ORDER BY queue"
    )
    assert [(r["queue"], r["done"], r["whole"]) for r in rows] == [("mail", 1, True)] * 3 + [
        ("sms", 1, True)
    ] * 2
    # a count from an hour ago is left out of the last hour
    await db.execute(
        f"INSERT INTO {schema}.job_done_counts VALUES "
        f"(date_trunc('minute', now()) - interval '60 minutes', 'mail', 100)"
    )
    done = {q.queue: q.done_last_hour for q in (await app.status()).queues}
    assert done == {"mail": 3, "sms": 2}


async def test_fenced_out_successes_are_not_counted(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    await app.enqueue("count.me", {"n": 1})
    await db.execute(
        f"""UPDATE {schema}.job_live SET state = 'running', claim_token = gen_random_uuid(),
                attempts = 1, lease_expires_at = now() + interval '1 minute'"""
    )
    row = await db.fetchrow(f"SELECT id, slot FROM {schema}.job_live")
    stale = Claim(row["id"], row["slot"], uuid.uuid4())
    assert await JobStore(schema).outcomes.record(db, [Outcome(stale, "done")]) == set()
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.job_done_counts") == 0


async def test_minutes_that_are_over_are_summed_once_and_read_in_place_of_their_batches(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    store = JobStore(schema)
    # batches of the last ten minutes: 3 per minute and queue, of 2 jobs each
    await db.execute(
        f"""INSERT INTO {schema}.job_done_counts
            SELECT date_trunc('minute', now()) - m * interval '1 minute', q, 2
            FROM generate_series(0, 9) AS m, unnest(ARRAY['mail', 'sms']) AS q,
                 generate_series(1, 3)"""
    )
    before = {q.queue: q.done_last_hour for q in (await app.status()).queues}
    assert before == {"mail": 60, "sms": 60}
    # minutes 3 to 9 ago are over (two minutes' grace): one row per minute and queue
    assert await store.maintenance.sum_done_minutes(db) == 7 * 2
    assert await store.maintenance.sum_done_minutes(db) == 0  # already summed
    rows = await db.fetch(f"SELECT DISTINCT done FROM {schema}.job_done_minutes")
    assert [r["done"] for r in rows] == [6]
    # the summed minutes' batches are no longer read: a late one there is not counted
    await db.execute(
        f"""INSERT INTO {schema}.job_done_counts
            VALUES (date_trunc('minute', now()) - interval '5 minutes', 'mail', 1000)"""
    )
    after = {q.queue: q.done_last_hour for q in (await app.status()).queues}
    assert after == before
    chart = {t.minutes_ago: t.done for t in await store.browse.throughput(db)}
    assert chart == {m: 12 for m in range(10)}


async def test_a_running_worker_sums_the_minutes_that_are_over(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    await db.execute(
        f"""INSERT INTO {schema}.job_done_counts
            VALUES (date_trunc('minute', now()) - interval '5 minutes', 'mail', 4),
                   (date_trunc('minute', now()) - interval '5 minutes', 'mail', 3)"""
    )
    worker = start_worker(app)
    rows = await wait_until(lambda: db.fetch(f"SELECT queue, done FROM {schema}.job_done_minutes"))
    await stop_worker(worker)
    assert [(r["queue"], r["done"]) for r in rows] == [("mail", 7)]
