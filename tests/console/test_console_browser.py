"""The console in a real browser: live updates, filters, contract descriptions, permissions,
CSRF, replaying a dead letter, and hostile job data rendered inert."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import pytest

from soniq import Soniq
from tests.console.conftest import CHARGE, screenshot
from tests.helpers import start_worker, stop_worker, wait_until

expect = pytest.importorskip("playwright.async_api").expect

HOSTILE_IMG = "<img src=x onerror=window.pwned=1>"
HOSTILE_SCRIPT = "<script>window.pwned=1</script>"


async def test_overview_shows_a_new_job_appear_then_finish_without_a_reload(
    console_app: Soniq, console: Any, page: Any
) -> None:
    with console() as url:
        await page.goto(url + "/")
        await expect(page.locator("#live-status")).to_have_class("live")
        await page.evaluate("window.notReloaded = true")
        await console_app.enqueue(CHARGE, {"customer": "acme", "amount_cents": 500})
        queued = page.locator('tr[data-queue="billing"] [data-count="queued"]')
        await expect(queued).to_have_text("1", timeout=10_000)
        assert await console_app.drain() == 1
        await expect(page.locator('tr[data-queue="billing"]')).to_have_count(0, timeout=10_000)
        await expect(page.locator('[data-stat="done-hour"]')).to_have_text("1")
        assert await page.evaluate("window.notReloaded") is True


async def test_jobs_are_filtered_by_an_args_value(
    console_app: Soniq, console: Any, page: Any
) -> None:
    acme = await console_app.enqueue(CHARGE, {"customer": "acme", "amount_cents": 1})
    globex = await console_app.enqueue(CHARGE, {"customer": "globex", "amount_cents": 2})
    await console_app.drain()
    with console() as url:
        await page.goto(url + "/jobs")
        await expect(page.locator("tr[data-job]")).to_have_count(2)
        await page.fill('input[name="args"]', '{"customer": "globex"}')
        await page.click('button:has-text("Filter")')
        await expect(page.locator("tr[data-job]")).to_have_count(1)
        await expect(page.locator(f'tr[data-job="{globex}"]')).to_be_visible()
        assert "args=" in page.url
        await screenshot(page, "jobs")
        # bookmarkable: the same URL gives the same list
        await page.goto(page.url)
        await expect(page.locator(f'tr[data-job="{acme}"]')).to_have_count(0)
        await page.goto(url + '/jobs?args={"customer": 1')
        await expect(page.locator(".problem")).to_contain_text("JSON object")


async def test_a_job_shows_its_contract_field_descriptions(
    console_app: Soniq, console: Any, page: Any
) -> None:
    job_id = await console_app.enqueue(CHARGE, {"customer": "acme", "amount_cents": 700})
    with console() as url:
        await page.goto(f"{url}/jobs/{job_id}")
        row = page.locator('tr[data-field="amount_cents"]')
        await expect(row.locator(".description")).to_have_text(
            "What to charge, in cents; never negative."
        )
        await expect(row).to_contain_text("700")
        await expect(page.locator('tr[data-field="customer"] .description')).to_have_text(
            "The customer billed, by account slug."
        )
        await expect(page.locator('[data-match="fingerprint"]')).to_have_text("fingerprint matches")
        await expect(page.locator(".contract")).to_contain_text("v2")
        await screenshot(page, "job")


async def _dead_job(app: Soniq, failing: set[str], customer: str = "initech") -> int:
    failing.add(customer)
    job_id = await app.enqueue(CHARGE, {"customer": customer, "amount_cents": 9})
    await app.drain()
    assert (await app.get_job(job_id)).state.value == "dead"
    return job_id


async def test_read_only_shows_no_actions_and_refuses_a_forged_post(
    console_app: Soniq, console: Any, page: Any, failing: set[str], db: asyncpg.Connection
) -> None:
    job_id = await _dead_job(console_app, failing)
    with console() as url:
        await page.goto(f"{url}/jobs/{job_id}")
        await expect(page.locator("h1")).to_contain_text("dead")
        await expect(page.locator("main button")).to_have_count(0)
        await page.goto(url + "/dead")
        await expect(page.locator(f'tr[data-job="{job_id}"]')).to_be_visible()
        await expect(page.locator("main button, main input[type=checkbox]")).to_have_count(0)
        for path, form in (
            ("/dead/replay", {"id": str(job_id), "scope": "selected"}),
            ("/dead/purge", {"scope": "all", "confirmed": "yes"}),
            (f"/jobs/{job_id}/retry", {}),
        ):
            response = await page.request.post(url + path, form=form)
            assert response.status == 403, path
    with console(allow_actions=True) as url:
        # allowed, but without the page's CSRF token: refused as well
        response = await page.request.post(
            url + "/dead/replay", form={"id": str(job_id), "scope": "selected"}
        )
        assert response.status == 403
    assert (await console_app.get_job(job_id)).state.value == "dead"
    assert (await console_app.get_job(job_id)).attempts == 1


async def test_a_dead_letter_is_replayed_from_the_page_and_runs(
    console_app: Soniq, console: Any, page: Any, failing: set[str]
) -> None:
    job_id = await _dead_job(console_app, failing)
    other = await _dead_job(console_app, failing, "umbrella")
    with console(allow_actions=True) as url:
        await page.goto(url + "/dead")
        await page.click('tr[data-group^="billing.charge/"] a')
        await expect(page.locator("h2").nth(0)).to_contain_text("billing.charge")
        await screenshot(page, "dead-letters")
        await page.check(f'tr[data-job="{job_id}"] input[type=checkbox]')
        await page.click('button:has-text("Replay selected")')
        await expect(page.locator(".notice")).to_contain_text("replay:1")
        assert await console_app.drain() == 1
        await page.goto(f"{url}/jobs/{job_id}")
        await expect(page.locator("h1 .state")).to_have_text("done")
        # everything matching, after a confirmation that shows the count
        await page.goto(url + "/dead")
        await page.click('button:has-text("Replay all")')
        await expect(page.locator("h1")).to_have_text("Replay 1 dead letter(s)?")
        await page.click('button:has-text("Yes, replay 1")')
        await expect(page.locator(".notice")).to_contain_text("replay:1")
        assert await console_app.drain() == 1
        assert (await console_app.get_job(other)).state.value == "done"


async def test_hostile_job_data_is_shown_as_text_and_never_runs(
    console_app: Soniq, console: Any, page: Any, failing: set[str]
) -> None:
    hostile = f"{HOSTILE_IMG}{HOSTILE_SCRIPT}\x1b[31m"
    failing.add(hostile)
    job_id = await console_app.enqueue(
        CHARGE, {"customer": hostile, "amount_cents": 1, "note": HOSTILE_SCRIPT}
    )
    await console_app.drain()
    with console(allow_actions=True) as url:
        for path in ("/", "/jobs", f"/jobs/{job_id}", "/dead", "/contracts"):
            await page.goto(url + path)
            await page.wait_for_load_state("load")
            assert await page.evaluate("window.pwned") is None, path
            assert await page.locator("main img").count() == 0, path
        await page.goto(f"{url}/jobs/{job_id}")
        text = await page.locator("main").inner_text()
        assert HOSTILE_IMG in text and HOSTILE_SCRIPT in text
        assert "\\x1b[31m" in text  # a terminal escape is shown, not sent
        assert re.search(r"card declined for .*<script>", text)
        await page.goto(f"{url}/jobs?state=dead")
        assert HOSTILE_IMG in await page.locator("main").inner_text()
        assert await page.evaluate("window.pwned") is None


async def _has_worker(app: Soniq) -> bool:
    return bool((await app.status()).workers)


async def test_every_page_renders_for_the_screenshots(
    console_app: Soniq, console: Any, page: Any, failing: set[str]
) -> None:
    await _dead_job(console_app, failing)
    for amount in range(12):
        await console_app.enqueue(CHARGE, {"customer": "acme", "amount_cents": amount})
    await console_app.drain()
    await console_app.enqueue(CHARGE, {"customer": "acme", "amount_cents": 5})
    worker = start_worker(console_app, queues=["other"])  # alive, and leaves the job queued
    await wait_until(lambda: _has_worker(console_app))
    with console() as url:
        await page.goto(url + "/workers")
        await expect(page.locator("tr[data-worker]")).to_have_count(1)
        await expect(page.locator("tr[data-worker]")).to_contain_text("billing.charge v2")
        await page.goto(url + "/periodic")
        await expect(page.locator("main tbody tr").first).to_contain_text("cron 0 3 * * *")
        for path, name in (
            ("/", "overview"),
            ("/workers", "workers"),
            ("/periodic", "periodic"),
            ("/contracts", "contracts"),
        ):
            await page.goto(url + path)
            await expect(page.locator("h1")).to_be_visible()
            await screenshot(page, name)
        await page.goto(url + "/contracts")
        await expect(page.locator('section[data-task="billing.charge"]')).to_contain_text(
            "registered v2"
        )
    await stop_worker(worker)
