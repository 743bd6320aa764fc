"""The live ring's recycler: a drained partition is truncated, and the few jobs left in it
(a long-running job, a job released late) are moved out first, keeping their claims."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from soniq import Soniq
from soniq.db.jobs import JobStore
from soniq.job import Claim, Outcome


async def test_stragglers_move_to_the_current_partition_and_stay_claimable_and_owned(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    store = JobStore(schema)
    slot = await db.fetchval(f"SELECT {schema}.live_slot()")
    old = (slot + 2) % 4  # a slot no longer taking inserts, nor the one before the current
    # A running job and a queued one left behind in the old partition, plus many gone.
    await db.execute(
        f"""INSERT INTO {schema}.job_live_{old} (slot, id, task_name, queue, args, state,
                priority, max_attempts, scheduled_at, enqueued_at, attempts, claim_token,
                lease_expires_at, worker_id, started_at)
            VALUES ({old}, 1001, 'ring.job', 'default', '{{}}', 'running', 0, 3,
                    now() - interval '1 minute', now() - interval '1 minute', 1,
                    gen_random_uuid(), now() + interval '1 minute', 'host:1:a', now()),
                   ({old}, 1002, 'ring.job', 'default', '{{}}', 'queued', 0, 3,
                    now() - interval '1 minute', now() - interval '1 minute', 0,
                    NULL, NULL, NULL, NULL)"""
    )
    await db.execute(f"INSERT INTO {schema}.job_lanes VALUES ('default', 0) ON CONFLICT DO NOTHING")
    token = await db.fetchval(f"SELECT claim_token FROM {schema}.job_live WHERE id = 1001")

    recycled = await store.maintenance.recycle(db)

    assert (recycled.truncated, recycled.relocated, recycled.blocked) == (1, 2, ())
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.job_live_{old}") == 0
    assert (
        await db.fetchval("SELECT pg_relation_size($1::regclass)", f"{schema}.job_live_{old}") == 0
    )
    moved = await db.fetch(
        f"SELECT id, slot, state, claim_token FROM {schema}.job_live ORDER BY id"
    )
    # into the partition of the slot current when they moved (the clock may have ticked on)
    assert [(r["id"], r["state"]) for r in moved] == [(1001, "running"), (1002, "queued")]
    assert moved[0]["slot"] == moved[1]["slot"] in (slot, (slot + 1) % 4)
    assert moved[0]["claim_token"] == token
    # The queued one is due recently enough for the fast claim; the running one's owner
    # still records its outcome under its token.
    [claimed] = await store.claims.claim(
        db,
        limit=10,
        queues=["default"],
        max_attempts_by_task={},
        version_by_task={},
        lease=timedelta(seconds=30),
        worker_id="host:2:b",
    )
    assert claimed.id == 1002
    await store.outcomes.record(db, [Outcome(Claim(1001, old, token), "done")])
    assert await db.fetchval(f"SELECT state FROM {schema}.jobs WHERE id = 1001") == "done"
