"""Small helpers for tests: waiting on database state instead of sleeping blindly."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_until(
    probe: Callable[[], Awaitable[T]], *, timeout: float = 20.0, interval: float = 0.02
) -> T:
    """Poll ``probe`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)


async def stop_worker(task: asyncio.Task[None]) -> None:
    """Cancel a run_worker task and wait for its clean shutdown."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
