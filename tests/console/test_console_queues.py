"""The console's Queues page: queue settings shown, pause and resume under ``can``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx

from soniq import Soniq


def _client(web: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://console")


async def test_queues_are_shown_and_paused_or_resumed_as_can_allows(console_app: Soniq) -> None:
    await console_app.configure_queue("billing", concurrency=3, rate_limit="10/min")
    asked: list[str] = []

    def can(request: Any, action: str, job: Mapping[str, Any] | None) -> bool:
        asked.append(action)
        return action == "pause"

    async with _client(console_app.console(can=can)) as client:
        page = await client.get("/queues")
        assert page.status_code == 200
        assert "billing" in page.text and "10/min" in page.text and ">3<" in page.text
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None  # the pause forms are shown
        forged = await client.post("/queues/pause", data={"csrf": "x", "queue": "billing"})
        assert forged.status_code == 403
        assert not (await console_app.queue_settings("billing")).paused
        paused = await client.post("/queues/pause", data={"csrf": token[1], "queue": "billing"})
        assert paused.status_code == 303
        assert (await console_app.queue_settings("billing")).paused
        refused = await client.post("/queues/resume", data={"csrf": token[1], "queue": "billing"})
        assert refused.status_code == 403
        bad = await client.post("/queues/pause", data={"csrf": token[1], "queue": "Bad Name"})
        assert bad.status_code == 403 and "queue name" in bad.text
    settings = await console_app.queue_settings("billing")
    assert settings.paused and settings.concurrency == 3
    assert asked.count("resume") >= 1 and asked.count("pause") >= 3


async def test_read_only_console_shows_no_queue_forms_and_refuses_posts(
    console_app: Soniq,
) -> None:
    await console_app.configure_queue("billing", paused=True)
    async with _client(console_app.console()) as client:
        page = await client.get("/queues")
        assert "paused" in page.text and 'name="csrf"' not in page.text
        token = client.cookies.get("soniq_console_csrf")
        refused = await client.post("/queues/resume", data={"csrf": token, "queue": "billing"})
        assert refused.status_code == 403
    assert (await console_app.queue_settings("billing")).paused


async def test_limits_are_changed_from_the_queues_page_as_can_allows(console_app: Soniq) -> None:
    await console_app.configure_queue("billing", concurrency=3, rate_limit="10/min")
    allowed = {"set"}

    def can(request: Any, action: str, job: Mapping[str, Any] | None) -> bool:
        return action in allowed

    async with _client(console_app.console(can=can)) as client:
        page = await client.get("/queues")
        assert 'name="concurrency"' in page.text and 'value="10/min"' in page.text
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None

        async def post(**fields: str) -> httpx.Response:
            form = {"csrf": token[1], "queue": "billing", **fields}
            return await client.post("/queues/set", data=form)

        changed = await post(concurrency="7", rate_limit="5/s")
        assert changed.status_code == 303
        settings = await console_app.queue_settings("billing")
        assert (settings.concurrency, settings.rate_limit) == (7, "5/s")
        # Bad values are refused with the reason, and nothing changes.
        many = await post(concurrency="many", rate_limit="")
        assert many.status_code == 403 and "concurrency &#39;many&#39; is not a whole" in many.text
        fast = await post(concurrency="7", rate_limit="5 per second")
        assert fast.status_code == 403 and "rate_limit must look like" in fast.text
        settings = await console_app.queue_settings("billing")
        assert (settings.concurrency, settings.rate_limit) == (7, "5/s")
        # An empty field removes that limit.
        assert (await post(concurrency="", rate_limit="2/s")).status_code == 303
        settings = await console_app.queue_settings("billing")
        assert (settings.concurrency, settings.rate_limit) == (None, "2/s")
        # Without "set", no limits form is shown and a post is refused.
        allowed.clear()
        assert 'name="concurrency"' not in (await client.get("/queues")).text
        assert (await post(concurrency="1")).status_code == 403
    assert (await console_app.queue_settings("billing")).concurrency is None
