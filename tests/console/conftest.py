"""The console served by uvicorn on a free port, and Debian's Chromium driven by Playwright.

Tests skip when Chromium or Playwright is missing (scripts/test installs Chromium when it
can). Playwright's own browser download is never used: ``playwright install`` needs the
internet.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from soniq import Soniq, task_ref
from tests.helpers import REPO

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")

SCREENSHOTS = REPO / "docs" / "img"


class ChargeArgs(BaseModel):
    customer: str = Field(description="The customer billed, by account slug.")
    amount_cents: int = Field(description="What to charge, in cents; never negative.")
    note: str = Field("", description="Shown on the invoice line.")


CHARGE = task_ref(
    name="billing.charge",
    args_model=ChargeArgs,
    default_queue="billing",
    version=2,
    fingerprint="5f2c0a9e" * 8,
)


def register(app: Soniq, fail_first: set[str]) -> None:
    """The tasks both the test and the console's app know; ``billing.charge`` fails for a
    customer in ``fail_first`` (once: the customer is removed)."""

    @app.job(CHARGE, retries=0)
    async def charge(customer: str, amount_cents: int, note: str = "") -> dict[str, Any]:
        if customer in fail_first:
            fail_first.discard(customer)
            raise RuntimeError(f"card declined for {customer} <script>window.pwned=1</script>")
        return {"charged": amount_cents}

    app.periodic(CHARGE, cron="0 3 * * *", args={"customer": "nightly", "amount_cents": 0})


@pytest.fixture
def failing() -> set[str]:
    return set()


@pytest.fixture
async def console_app(database_url: str, schema: str, failing: set[str]) -> AsyncIterator[Soniq]:
    """The test's app: set up, with the console's tasks registered."""
    app = Soniq(database_url, schema=schema, retry_backoff=timedelta(milliseconds=50))
    register(app, failing)
    await app.setup()
    yield app
    await app.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(database_url: str, schema: str, **options: Any) -> Iterator[str]:
    """The console of a fresh app (its own pool, in uvicorn's loop) at the returned URL."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    app = Soniq(database_url, schema=schema)
    register(app, set())

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await app.close()

    web = Starlette(routes=[Mount("/", app.console(**options))], lifespan=lifespan)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            web,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=1,  # open event streams would hold it up
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the console did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def console(database_url: str, schema: str, console_app: Soniq) -> Callable[..., Any]:
    """``with console(allow_actions=True) as url:`` serves the console of the test schema."""
    return lambda **options: serving(database_url, schema, **options)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async_api = pytest.importorskip("playwright.async_api")
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    async with async_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox"]
        )
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    opened = await context.new_page()
    yield opened
    await context.close()


async def screenshot(page: Any, name: str) -> Path:
    """Save the page as docs/img/console-NAME.png (the docs show these)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"console-{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
