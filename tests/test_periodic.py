"""Periodic jobs: enqueued by ordinary workers, once per tick however many run."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from pydantic import BaseModel

from soniq import RegistrationError, Soniq, task_ref
from soniq.cron import Cron
from soniq.job import NewJob
from soniq.periodic import Schedule, ScheduleSpec
from tests.helpers import count_jobs, start_worker, stop_worker, wait_until

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")


class ReportArgs(BaseModel):
    region: str


REPORT = task_ref(name="reports.send", args_model=ReportArgs)


def _schedule(every: timedelta, catch_up: int) -> Schedule:
    job = NewJob("t", "default", "{}", 0, 1, None, None, None, None, None)
    return Schedule("t", job, None, every, ZoneInfo("UTC"), catch_up)


def test_due_ticks_on_time_and_catch_up() -> None:
    minute = timedelta(minutes=1)
    now = datetime(2026, 5, 1, 12, 0, 3, tzinfo=UTC)
    on_time = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    last_before = on_time - minute
    # the usual round: the tick that just came
    assert _schedule(minute, 1).due_ticks(last_before, now) == [on_time]
    # already enqueued (by another worker): nothing
    assert _schedule(minute, 1).due_ticks(on_time, now) == []
    # after an hour down: the current tick and at most catch_up missed ones
    hour_ago = on_time - timedelta(hours=1)
    assert _schedule(minute, 1).due_ticks(hour_ago, now) == [on_time - minute, on_time]
    assert _schedule(minute, 0).due_ticks(hour_ago, now) == [on_time]
    assert _schedule(minute, 3).due_ticks(hour_ago, now) == [
        on_time - 3 * minute,
        on_time - 2 * minute,
        on_time - minute,
        on_time,
    ]
    # late by more than ON_TIME: the latest tick is a missed one too
    late = on_time + timedelta(seconds=30)
    assert _schedule(minute, 1).due_ticks(hour_ago, late) == [on_time]
    assert _schedule(minute, 0).due_ticks(hour_ago, late) == []
    # a schedule never enqueued before starts now
    assert _schedule(minute, 5).due_ticks(None, now) == [on_time]
    assert _schedule(minute, 5).due_ticks(None, late) == []


def test_cron_catch_up_looks_back_far_enough() -> None:
    job = NewJob("t", "default", "{}", 0, 1, None, None, None, None, None)
    monthly = Schedule("m", job, Cron("0 0 1 * *"), None, ZoneInfo("UTC"), 1)
    now = datetime(2026, 5, 20, tzinfo=UTC)
    assert monthly.due_ticks(datetime(2026, 1, 1, tzinfo=UTC), now) == [
        datetime(2026, 5, 1, tzinfo=UTC)
    ]


async def test_three_workers_enqueue_each_tick_exactly_once(
    database_url: str, db: asyncpg.Connection, schema: str
) -> None:
    apps = [Soniq(database_url, schema=schema) for _ in range(3)]
    await apps[0].setup()
    for app in apps:

        @app.periodic(every=timedelta(milliseconds=200))
        @app.job(name="heartbeat.tick")
        async def tick() -> None:
            pass

    workers = [start_worker(app) for app in apps]
    try:
        await wait_until(lambda: count_jobs(db, schema, "state = 'done'"), timeout=20)
        await wait_until(lambda: _at_least(db, schema, 8), timeout=20)
    finally:
        for worker in workers:
            await stop_worker(worker)
        for app in apps:
            await app.close()
    rows = await db.fetch(f"SELECT scheduled_at FROM {schema}.jobs ORDER BY scheduled_at")
    ticks = [row["scheduled_at"] for row in rows]
    assert len(ticks) == len(set(ticks))  # never twice for one tick
    step = timedelta(milliseconds=200)
    assert all(later - earlier == step for earlier, later in itertools.pairwise(ticks))
    assert all((t - datetime(1970, 1, 1, tzinfo=UTC)) % step == timedelta(0) for t in ticks)
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.periodic_schedules") == 1


async def _at_least(db: asyncpg.Connection, schema: str, count: int) -> bool:
    return await count_jobs(db, schema) >= count


async def test_downtime_is_caught_up_once_not_flooded(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.periodic(cron="0 3 * * *", timezone="Europe/Berlin", catch_up=2)
    @app.job(name="nightly.task")
    async def nightly() -> None:
        pass

    key = app._schedules.all[0].key
    ten_days_ago = datetime.now(UTC) - timedelta(days=10)
    await db.execute(
        f"INSERT INTO {schema}.periodic_schedules (key, last_tick) VALUES ($1, $2)",
        key,
        ten_days_ago,
    )
    worker = start_worker(app)
    try:
        await wait_until(lambda: _at_least(db, schema, 2))
        # the scheduler round that enqueued them is over once last_tick moved
        await wait_until(
            lambda: db.fetchval(
                f"SELECT last_tick > $1 FROM {schema}.periodic_schedules", ten_days_ago
            )
        )
    finally:
        await stop_worker(worker)
    rows = await db.fetch(f"SELECT scheduled_at FROM {schema}.jobs ORDER BY scheduled_at")
    latest = Cron("0 3 * * *").next_after(datetime.now(UTC) - timedelta(days=1), BERLIN)
    previous = Cron("0 3 * * *").next_after(latest - timedelta(days=1, hours=1), BERLIN)
    assert [row["scheduled_at"] for row in rows] == [previous, latest]
    assert latest.astimezone(BERLIN).hour == 3
    assert await db.fetchval(f"SELECT last_tick FROM {schema}.periodic_schedules") == latest


async def test_task_ref_with_fixed_args(app: Soniq, db: asyncpg.Connection, schema: str) -> None:
    app.periodic(REPORT, args={"region": "eu"}, every=timedelta(milliseconds=200), queue="reports")
    seen: list[str] = []

    @app.job(REPORT)
    async def send(region: str) -> None:
        seen.append(region)

    worker = start_worker(app)
    try:
        await wait_until(lambda: count_jobs(db, schema, "state = 'done'"))
    finally:
        await stop_worker(worker)
    row = await db.fetchrow(f"SELECT task_name, queue, args::text FROM {schema}.jobs LIMIT 1")
    assert (row["task_name"], row["queue"], json.loads(row["args"])) == (
        "reports.send",
        "reports",
        {"region": "eu"},
    )
    assert seen and set(seen) == {"eu"}


def test_every_takes_seconds_as_delay_does() -> None:
    spec = ScheduleSpec.check(None, 60, "UTC", None, None, None, 1)
    assert spec.every == timedelta(seconds=60)
    assert spec.describe() == "every 0:01:00"
    with pytest.raises(RegistrationError, match="number of seconds"):
        ScheduleSpec.check(None, "60", "UTC", None, None, None, 1)  # type: ignore[arg-type]


def test_registration_errors(app: Soniq) -> None:
    @app.job(name="some.task")
    async def some() -> None:
        pass

    async def unregistered() -> None:
        pass

    with pytest.raises(RegistrationError, match="exactly one"):
        app.periodic(cron="* * * * *", every=timedelta(minutes=1))
    with pytest.raises(RegistrationError, match="exactly one"):
        app.periodic()
    with pytest.raises(RegistrationError, match="5 fields"):
        app.periodic(cron="* * *")
    with pytest.raises(RegistrationError, match="day-of-month"):
        app.periodic(cron="0 0 30 2 *")
    with pytest.raises(RegistrationError, match="positive timedelta"):
        app.periodic(every=timedelta(0))
    with pytest.raises(RegistrationError, match="time zone"):
        app.periodic(cron="* * * * *", timezone="Mars/Olympus")
    with pytest.raises(RegistrationError, match="catch_up"):
        app.periodic(cron="* * * * *", catch_up=-1)
    with pytest.raises(RegistrationError, match=r"stacked above @app\.job"):
        app.periodic(cron="* * * * *")(unregistered)
    app.periodic(cron="* * * * *")(some)
    with pytest.raises(RegistrationError, match="already registered"):
        app.periodic(cron="* * * * *")(some)
