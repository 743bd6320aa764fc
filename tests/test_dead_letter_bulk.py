"""Bulk dead-letter operations: filters, batches and progress, in the API and the CLI."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg

from soniq import Soniq
from tests.helpers import count_jobs
from tests.test_cli import soniq_cli


async def _dead(
    app: Soniq, db: asyncpg.Connection, schema: str, task: str, queue: str, age: timedelta
) -> int:
    # as a worker leaves a dead letter, dead-lettered `age` ago
    job_id: int = await db.fetchval(
        f"INSERT INTO {schema}.jobs (task_name, queue, args, state, attempts, max_attempts, "
        "finished_at) VALUES ($1, $2, '{}', 'dead', 1, 1, now() - $3::interval) RETURNING id",
        task,
        queue,
        age,
    )
    return job_id


async def test_replay_all_and_purge_all_with_filters_report_progress(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    hour, day = timedelta(hours=1), timedelta(days=2)
    old_mail = [await _dead(app, db, schema, "mail.send", "mail", day) for _ in range(3)]
    new_mail = await _dead(app, db, schema, "mail.send", "mail", hour)
    old_sms = await _dead(app, db, schema, "sms.send", "sms", day)
    # enough jobs to span two batches of 1,000
    await db.execute(
        f"INSERT INTO {schema}.jobs (task_name, queue, args, state, attempts, max_attempts, "
        "finished_at) SELECT 'bulk.task', 'bulk', '{}', 'dead', 1, 1, now() - interval '3 days' "
        "FROM generate_series(1, 1500)"
    )
    seen: list[tuple[int, int]] = []
    replayed = await app.dead_letter.replay_all(
        task_name="mail.send",
        older_than=timedelta(days=1),
        progress=lambda d, t: seen.append((d, t)),
    )
    assert replayed == 3 and seen == [(3, 3)]
    rows = await db.fetch(f"SELECT id FROM {schema}.jobs WHERE state = 'queued' ORDER BY id")
    assert [r["id"] for r in rows] == old_mail
    assert await count_jobs(db, schema, "state = 'dead' AND id = ANY($1)", [new_mail, old_sms]) == 2

    seen.clear()
    purged = await app.dead_letter.purge_all(
        queue="bulk", progress=lambda d, t: seen.append((d, t))
    )
    assert purged == 1500 and seen == [(1000, 1500), (1500, 1500)]
    assert await count_jobs(db, schema, "queue = 'bulk'") == 0
    assert await app.dead_letter.purge_all(older_than=timedelta(days=1)) == 1  # old_sms
    assert await count_jobs(db, schema, "state = 'dead'") == 1  # new_mail


async def test_cli_bulk_replay_and_purge(
    app: Soniq,
    db: asyncpg.Connection,
    schema: str,
    python: str,
    subprocess_env: dict[str, str],
) -> None:
    day = timedelta(days=2)
    mail = await _dead(app, db, schema, "mail.send", "mail", day)
    sms = await _dead(app, db, schema, "sms.send", "sms", day)
    recent = await _dead(app, db, schema, "sms.send", "sms", timedelta(minutes=5))

    replay = await asyncio.to_thread(
        soniq_cli, python, subprocess_env, "dead-letter", "replay", "--all", "--task", "mail.send"
    )
    assert replay.returncode == 0, replay.stderr
    assert "replayed 1 job(s)" in replay.stdout and "replayed 1/1" in replay.stderr
    assert (await db.fetchval(f"SELECT state FROM {schema}.jobs WHERE id = $1", mail)) == "queued"

    purge = await asyncio.to_thread(
        soniq_cli,
        python,
        subprocess_env,
        "dead-letter",
        "purge",
        "--all",
        "--yes",
        "--older-than",
        "1d",
    )
    assert purge.returncode == 0, purge.stderr
    assert "purged 1 dead job(s)" in purge.stdout and "purged 1/1" in purge.stderr
    remaining = await db.fetch(f"SELECT id FROM {schema}.jobs WHERE state = 'dead'")
    assert [r["id"] for r in remaining] == [recent] and sms != recent

    for args in (
        ("dead-letter", "purge", "--task", "sms.send"),  # a filter without --all
        ("dead-letter", "replay"),  # nothing to act on
        ("dead-letter", "replay", str(recent), "--all"),
        ("dead-letter", "purge", "--all", "--older-than", "soon"),
    ):
        refused = await asyncio.to_thread(soniq_cli, python, subprocess_env, *args)
        assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
    assert await count_jobs(db, schema, "state = 'dead'") == 1
