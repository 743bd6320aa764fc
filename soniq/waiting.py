"""Waiting: on an event without losing a cancellation, and before trying the database again."""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; True if it was set.

    Not ``asyncio.wait_for``: before Python 3.12 it swallows a cancellation that arrives as
    the awaited event completes, so a cancelled worker could go on running.
    """
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()
    return event.is_set()


def backoff(failures: int, *, base: float = 0.2, cap: float = 10.0) -> float:
    """Seconds to wait after ``failures`` failed tries in a row: doubling from ``base``,
    at most ``cap``."""
    return min(cap, base * 2.0**failures)
