"""Waiting on an event with a timeout, without losing a cancellation."""

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
