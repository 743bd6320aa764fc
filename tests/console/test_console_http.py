"""The console over plain HTTP (no browser): permissions per action, CSRF, hide_args,
basic auth, and the ``soniq console`` command's checks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx

from soniq import Soniq
from soniq.console import BasicAuth
from soniq.console.pages import COUNT_CAP, SAMPLE
from tests.console.conftest import CHARGE
from tests.helpers import REPO, wait_until


def _client(web: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://console")


async def _token(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None, "the page has no action form"
    assert client.cookies.get("soniq_console_csrf") == found[1]
    return found[1]


async def test_can_decides_each_action_and_the_token_must_match_the_cookie(
    console_app: Soniq,
) -> None:
    asked: list[tuple[str, Any]] = []

    def can(request: Any, action: str, job: Mapping[str, Any] | None) -> bool:
        asked.append((action, None if job is None else job["id"]))
        return action == "cancel"

    job_id = await console_app.enqueue(CHARGE, {"customer": "acme", "amount_cents": 1})
    async with _client(console_app.console(can=can)) as client:
        token = await _token(client, f"/jobs/{job_id}")
        wrong = await client.post(f"/jobs/{job_id}/cancel", data={"csrf": token + "x"})
        assert wrong.status_code == 403
        assert (await console_app.get_job(job_id)).state.value == "queued"
        refused = await client.post(f"/jobs/{job_id}/retry", data={"csrf": token})
        assert refused.status_code == 403
        done = await client.post(f"/jobs/{job_id}/cancel", data={"csrf": token})
        assert done.status_code == 303
    assert (await console_app.get_job(job_id)).state.value == "cancelled"
    assert ("cancel", job_id) in asked and ("retry", job_id) in asked


async def test_hide_args_redacts_args_and_results(console_app: Soniq) -> None:
    job_id = await console_app.enqueue(CHARGE, {"customer": "secret-co", "amount_cents": 77})
    await console_app.drain()
    web = console_app.console(hide_args=lambda task: task == "billing.charge")
    async with _client(web) as client:
        for path in ("/jobs", f"/jobs/{job_id}"):
            page = await client.get(path)
            assert "secret-co" not in page.text and "redacted" in page.text, path
            assert '"charged"' not in page.text


async def test_basic_auth_guards_every_path() -> None:
    async def ok(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("reached without credentials")

    guarded = BasicAuth(ok, "ops:s3cret")
    async with _client(guarded) as client:
        for path in ("/", "/jobs", "/events", "/static/console.js"):
            response = await client.get(path)
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Basic")
        assert (await client.get("/", auth=("ops", "wrong"))).status_code == 401


async def test_basic_auth_lets_the_right_credentials_through(console_app: Soniq) -> None:
    async with _client(BasicAuth(console_app.console(), "ops:s3cret")) as client:
        assert (await client.get("/", auth=("ops", "s3cret"))).status_code == 200


def test_the_command_refuses_malformed_credentials_before_serving(
    database_url: str, schema: str
) -> None:
    env = dict(os.environ, SONIQ_CONSOLE_AUTH="no-colon", PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "soniq", "console", "--database-url", database_url,
         "--schema", schema, "--port", "0"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "SONIQ_CONSOLE_AUTH must be user:password" in done.stderr


def test_the_command_warns_when_bound_beyond_loopback_without_auth(
    database_url: str, schema: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SONIQ_CONSOLE_AUTH"}
    env["PYTHONPATH"] = str(REPO)
    process = subprocess.Popen(
        [sys.executable, "-m", "soniq", "console", "--database-url", database_url,
         "--schema", schema, "--host", "0.0.0.0", "--port", "0"],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        assert "without authentication" in first
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


async def test_job_pages_follow_each_other_newest_first_without_gaps(
    console_app: Soniq, db: Any, schema: str
) -> None:
    await db.execute(
        f"""INSERT INTO {schema}.jobs (task_name, queue, args, max_attempts, state, finished_at)
            SELECT 'billing.charge', 'billing', json_build_object('i', i), 1,
                   CASE WHEN i % 3 = 0 THEN 'dead' ELSE 'done' END, now()
            FROM generate_series(1, 130) AS i"""
    )
    seen: list[int] = []
    async with _client(console_app.console()) as client:
        path: str | None = "/jobs?task=billing.charge"
        while path is not None:
            page = await client.get(path)
            ids = [int(i) for i in re.findall(r'<tr data-job="(\d+)"', page.text)]
            assert len(ids) <= 50
            seen += ids
            older = re.search(r'<a rel="next" href="([^"]+)"', page.text)
            path = older[1].replace("&amp;", "&") if older else None
        dead = await client.get("/jobs?state=dead")
        assert len(re.findall(r'data-state="dead"', dead.text)) == 43
    expected = [r["id"] for r in await db.fetch(f"SELECT id FROM {schema}.jobs ORDER BY id DESC")]
    assert seen == expected


async def test_a_rare_args_filter_walks_id_windows_until_it_finds_the_match(
    console_app: Soniq, db: Any, schema: str
) -> None:
    await db.execute(f"SELECT {schema}.add_history_days(current_date, 1)")
    await db.execute(
        f"""INSERT INTO {schema}.job_history (id, task_name, queue, args, state, priority,
                attempts, max_attempts, scheduled_at, enqueued_at, finished_at)
            SELECT nextval('{schema}.job_ids'), 'billing.charge', 'billing',
                   json_build_object('i', i), 'done', 0, 1, 1, now(), now(), now()
            FROM generate_series(1, 12000) AS i"""
    )
    found: list[int] = []
    requests = 0
    async with _client(console_app.console()) as client:
        path: str | None = "/jobs?" + urlencode({"args": json.dumps({"i": 3})})
        while path is not None:
            requests += 1
            page = await client.get(path)
            found += [int(i) for i in re.findall(r'<tr data-job="(\d+)"', page.text)]
            older = re.search(r'<a rel="next" href="([^"]+)"', page.text)
            path = older[1].replace("&amp;", "&") if older else None
    expected = await db.fetchval(f"SELECT id FROM {schema}.job_history WHERE args->>'i' = '3'")
    assert found == [expected]
    assert requests <= 3


async def test_a_job_page_shows_every_failed_attempt_with_its_traceback_and_claim(
    console_app: Soniq,
) -> None:
    @console_app.job(name="reports.flaky", retries=2)
    async def flaky(n: int) -> None:
        raise ValueError(f"<b>bad</b> input {n}")

    job_id = await console_app.enqueue("reports.flaky", {"n": 5})

    async def dead() -> bool:
        await console_app.drain()
        return (await console_app.get_job(job_id)).state.value == "dead"

    await wait_until(dead)
    async with _client(console_app.console()) as client:
        page = (await client.get(f"/jobs/{job_id}")).text
    assert re.findall(r'data-attempt="(\d+)"', page) == ["1", "2", "3"]
    # each attempt's message, and its traceback's last line, escaped
    assert page.count("&lt;b&gt;bad&lt;/b&gt; input 5") == 6 and "<b>bad</b>" not in page
    assert page.count('<pre class="traceback">Traceback') == 3
    for n in (1, 2, 3):
        assert f"<th>Claim {n}</th>" in page and f"<th>Attempt {n} failed</th>" in page
    assert page.count("<th>Claim") == 3  # the last claim is the third attempt's, not a fourth
    assert "retried" in page and "dead-lettered" in page
    async with _client(console_app.console(hide_args=True)) as client:
        hidden = (await client.get(f"/jobs/{job_id}")).text
    assert 'data-attempt="3"' in hidden and "Traceback" not in hidden


async def test_counts_past_the_cap_are_marked_as_lower_bounds_and_groups_as_a_sample(
    console_app: Soniq, database_url: str, schema: str
) -> None:
    db = await asyncpg.connect(database_url)
    try:
        await db.execute(f"INSERT INTO {schema}.job_lanes VALUES ('bulk', 0)")
        await db.execute(
            f"""INSERT INTO {schema}.job_dead (id, task_name, queue, args, priority, attempts,
                    max_attempts, scheduled_at, enqueued_at, finished_at, error_reason)
                SELECT nextval('{schema}.job_ids'), 'bulk.task', 'bulk', '{{}}', 0, 1, 1,
                       now(), now(), now(), 'exception'
                FROM generate_series(1, $1)""",
            COUNT_CAP + 1,
        )
    finally:
        await db.close()
    async with _client(console_app.console()) as client:
        overview = (await client.get("/")).text
        dead = (await client.get("/dead")).text
    assert re.search(r'data-count="dead"><a [^>]*>≥ ' + str(COUNT_CAP) + "<", overview)
    assert 'data-note="capped"' in overview
    assert 'data-note="sampled"' in dead and f'<td class="num">{SAMPLE}</td>' in dead
