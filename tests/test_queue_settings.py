"""Queue settings (app.configure_queue, app.queue_settings): stored in the database, checked
on the way in, and obeyed by claims (here through app.drain(), which claims as a worker
does; tests/faults/test_steering.py runs real worker processes)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from soniq import ConfigurationError, InvalidNameError, QueueSettings, Soniq
from soniq.db.jobs import JobStore
from soniq.db.jobs.claims import EVERYTHING
from tests.helpers import wait_until


async def test_settings_round_trip_and_unset_keywords_stay(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    assert await app.queue_settings("billing") == QueueSettings("billing")
    first = await app.configure_queue(
        "billing", concurrency=5, rate_limit="100 / second", partition_by=["customer_id"]
    )
    assert first.concurrency == 5 and first.rate_limit == "100/s"
    assert first.partition_by == ("customer_id",) and not first.paused
    paused = await app.configure_queue("billing", paused=True)
    assert paused.concurrency == 5 and paused.rate_limit == "100/s" and paused.paused
    assert await app.queue_settings("billing") == paused
    row = await db.fetchrow(f"SELECT * FROM {schema}.queue_settings WHERE queue = 'billing'")
    assert row["rate_limit"] == 100 and row["rate_period"] == timedelta(seconds=1)
    assert row["partition_by"] == ["customer_id"] and row["paused"]
    assert [q.queue for q in await app.configured_queues()] == ["billing"]


async def test_a_queue_back_to_the_defaults_has_no_row(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    await app.configure_queue("mail", paused=True, rate_limit="10/min")
    assert (await app.queue_settings("mail")).rate_limit == "10/min"
    back = await app.configure_queue("mail", paused=False, rate_limit=None)
    assert back == QueueSettings("mail")
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.queue_settings") == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": 0}, "concurrency must be an integer from 1 to"),
        ({"concurrency": True}, "concurrency must be an integer"),
        ({"rate_limit": "fast"}, "rate_limit must look like '100/s'"),
        ({"rate_limit": "0/s"}, "rate_limit's count must be an integer"),
        ({"rate_limit": "5/fortnight"}, "rate_limit must look like"),
        ({"partition_by": "customer_id"}, "partition_by must be a list of args keys"),
        ({"partition_by": ["a-b"], "concurrency": 1}, "is not a plain args key"),
        ({"partition_by": ["a", "a"], "concurrency": 1}, "names a key twice"),
        (
            {"partition_by": ["customer_id"], "concurrency": None},
            "partition_by needs a concurrency or a rate_limit",
        ),
        ({"paused": "yes"}, "paused must be True or False"),
    ],
)
async def test_bad_settings_are_refused_whole(
    app: Soniq, db: asyncpg.Connection, schema: str, options: dict[str, object], message: str
) -> None:
    before = await app.configure_queue("billing", concurrency=3)
    with pytest.raises(ConfigurationError, match=message):
        await app.configure_queue("billing", **{"paused": True, **options})  # type: ignore[arg-type]
    assert await app.queue_settings("billing") == before


async def test_a_bad_queue_name_is_refused(app: Soniq) -> None:
    with pytest.raises(InvalidNameError):
        await app.configure_queue("Bad Name", paused=True)


async def test_a_paused_queue_is_not_claimed_and_resume_lets_it_run(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    ran: list[int] = []

    @app.job(name="steer.note", queue="billing")
    async def note(n: int) -> None:
        ran.append(n)

    await app.configure_queue("billing", paused=True)
    await app.enqueue_many("steer.note", [{"n": i} for i in range(3)])
    await app.enqueue("steer.note", {"n": 99}, queue="other")
    assert await app.drain() == 1 and ran == [99]
    assert (
        await db.fetchval(
            f"SELECT count(*) FROM {schema}.jobs WHERE queue = 'billing' AND state = 'queued'"
        )
        == 3
    )
    await app.configure_queue("billing", paused=False)
    assert await app.drain() == 3 and sorted(ran) == [0, 1, 2, 99]


async def test_drain_claims_limited_queues_within_their_limits(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    ran: list[int] = []

    @app.job(name="steer.note", queue="billing")
    async def note(n: int) -> None:
        ran.append(n)

    await app.configure_queue("billing", concurrency=2, rate_limit="3/h")
    await app.enqueue_many("steer.note", [{"n": i} for i in range(5)])
    # three starts fit in the hour's rate; the other two wait, their attempts unspent
    assert await app.drain() == 3 and ran == [0, 1, 2]
    waiting = await db.fetch(
        f"SELECT attempts FROM {schema}.jobs WHERE state = 'queued' ORDER BY id"
    )
    assert [r["attempts"] for r in waiting] == [0, 0]
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.queue_starts") == 3


async def test_pause_returns_only_after_the_claims_under_way_have_ended(
    app: Soniq, db: asyncpg.Connection, schema: str, database_url: str
) -> None:
    await app.enqueue("steer.note", {"n": 1}, queue="billing")
    claimer = await asyncpg.connect(database_url)
    try:
        # A claim under way: it waits for a lock on job_lanes that this transaction holds.
        blocker = db.transaction()
        await blocker.start()
        await db.execute(f"LOCK TABLE {schema}.job_lanes IN ACCESS EXCLUSIVE MODE")
        claim = asyncio.ensure_future(
            JobStore(schema).claims.claim(
                claimer, limit=10, queues=None, max_attempts_by_task={}, version_by_task={},
                lease=timedelta(seconds=30), worker_id="test:1:claim", window=EVERYTHING,
            )
        )  # fmt: skip
        await wait_until(
            lambda: db.fetchval(
                "SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND starts_with(query, $1)",
                f"/* soniq claim {schema} */",
            )
        )
        pause = asyncio.ensure_future(app.configure_queue("billing", paused=True))
        await asyncio.sleep(0.5)
        assert not pause.done()  # the claim that began before it has not ended
        await blocker.rollback()
        assert (await pause).paused
        assert await claim == []  # it read the settings after all: nothing of billing
    finally:
        await claimer.close()
    assert await db.fetchval(f"SELECT state FROM {schema}.jobs") == "queued"
