"""Listing jobs with filters: ``app.list_jobs`` and ``soniq jobs list``."""

from __future__ import annotations

import asyncio
import itertools
import json

import asyncpg

from soniq import JobState, Soniq
from tests.helpers import start_worker, stop_worker
from tests.test_cli import soniq_cli


async def _three_jobs(app: Soniq) -> tuple[int, int, int]:
    first = await app.enqueue("mail.send", {"to": "a"}, queue="mail")
    second = await app.enqueue("mail.send", {"to": "b"}, queue="mail")
    third = await app.enqueue("sms.send", {"to": "c"}, queue="sms")
    assert await app.cancel(second)
    return first, second, third


async def test_list_jobs_filters_and_orders_newest_first(app: Soniq) -> None:
    first, second, third = await _three_jobs(app)
    assert [j.id for j in await app.list_jobs()] == [third, second, first]
    assert [j.id for j in await app.list_jobs(queue="mail")] == [second, first]
    assert [j.id for j in await app.list_jobs(task_name="mail.send", state="queued")] == [first]
    assert [j.id for j in await app.list_jobs(state=JobState.CANCELLED)] == [second]
    assert [j.id for j in await app.list_jobs(limit=1)] == [third]


async def test_cli_jobs_list_table_and_json(
    app: Soniq, python: str, subprocess_env: dict[str, str]
) -> None:
    first, second, third = await _three_jobs(app)
    table = await asyncio.to_thread(soniq_cli, python, subprocess_env, "jobs", "list")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "TASK", "QUEUE", "STATE", "ATTEMPTS", "ENQUEUED", "ERROR"]
    assert [line.split()[0] for line in lines[1:]] == [str(third), str(second), str(first)]
    assert "cancelled" in lines[2]

    as_json = await asyncio.to_thread(
        soniq_cli,
        python,
        subprocess_env,
        "jobs",
        "list",
        "--queue",
        "mail",
        "--state",
        "queued",
        "--json",
    )
    assert as_json.returncode == 0, as_json.stderr
    listed = json.loads(as_json.stdout)
    assert [(j["id"], j["state"], j["args"]) for j in listed] == [(first, "queued", {"to": "a"})]

    empty = await asyncio.to_thread(
        soniq_cli, python, subprocess_env, "jobs", "list", "--task", "nothing.here"
    )
    assert (empty.returncode, empty.stdout.strip()) == (0, "no jobs")
    bad = await asyncio.to_thread(
        soniq_cli, python, subprocess_env, "jobs", "list", "--state", "sleeping"
    )
    assert bad.returncode == 2


async def test_cli_jobs_show_prints_the_result(
    app: Soniq, python: str, subprocess_env: dict[str, str]
) -> None:
    @app.job(name="answer.task")
    async def answer() -> dict[str, int]:
        return {"answer": 42}

    job_id = await app.enqueue("answer.task")
    worker = start_worker(app)
    try:
        assert await app.get_result(job_id, timeout=20) == {"answer": 42}
    finally:
        await stop_worker(worker)
    shown = await asyncio.to_thread(soniq_cli, python, subprocess_env, "jobs", "show", str(job_id))
    assert shown.returncode == 0, shown.stderr
    assert '  result     {"answer": 42}' in shown.stdout
    as_json = await asyncio.to_thread(
        soniq_cli, python, subprocess_env, "jobs", "show", str(job_id), "--json"
    )
    assert json.loads(as_json.stdout)["result"] == {"answer": 42}


async def test_list_jobs_returns_what_a_plain_query_of_the_jobs_view_returns(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    # Jobs in every table and state, over two queues and two tasks, ids interleaved.
    await db.execute(
        f"""INSERT INTO {schema}.jobs (task_name, queue, args, state, max_attempts, attempts,
                scheduled_at, finished_at, claim_token)
            SELECT CASE WHEN i % 3 = 0 THEN 'a.task' ELSE 'b.task' END,
                   CASE WHEN i % 2 = 0 THEN 'q1' ELSE 'q2' END, '{{}}',
                   (ARRAY['queued', 'queued', 'running', 'dead', 'done', 'cancelled'])[i % 6 + 1],
                   3, 1,
                   CASE WHEN i % 6 = 1 THEN now() + interval '1 hour' ELSE now() END,
                   CASE WHEN i % 6 >= 3 THEN now() END,
                   CASE WHEN i % 6 = 2 THEN gen_random_uuid() END
            FROM generate_series(1, 120) AS i"""
    )
    states: list[str | None] = [None, "queued", "running", "dead", "done", "cancelled"]
    for state, queue, task, limit in itertools.product(
        states, [None, "q1", "q2"], [None, "a.task", "b.task"], [None, 7]
    ):
        expected = await db.fetch(
            f"""SELECT id FROM {schema}.jobs
                WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR queue = $2)
                  AND ($3::text IS NULL OR task_name = $3)
                ORDER BY id DESC LIMIT $4""",
            state,
            queue,
            task,
            limit,
        )
        found = await app.list_jobs(state=state, queue=queue, task_name=task, limit=limit)
        assert [job.id for job in found] == [r["id"] for r in expected], (state, queue, task)
        assert all(job.state.value == state for job in found if state is not None)
    everything = await app.list_jobs(limit=None)
    assert len(everything) == 120
    assert everything == [await app.get_job(job.id) for job in everything]  # every column
