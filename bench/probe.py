"""What every benchmark handler calls: counts runs, stamps start times, signals completion.

Handlers of all systems call :data:`PROBE` so the harness measures the same thing for each.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import BaseModel, Field


class BenchArgs(BaseModel):
    """The args every benchmark job carries; Soniq validates them at enqueue and dispatch."""

    n: int = Field(ge=0)
    email: str
    amount: float
    tags: list[str]


def make_args(n: int) -> dict[str, Any]:
    """The args of job number ``n``, as a producer would pass them."""
    return {"n": n, "email": f"user{n}@example.com", "amount": n * 0.5, "tags": ["bench", "noop"]}


class Probe:
    """Counts handler calls; :meth:`wait` returns once ``target`` calls have happened."""

    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.started_at = 0.0  # perf_counter of the latest handler start
        self.sleep = 0.0  # seconds each handler sleeps (the RSS scenario fills slots)
        self._reached: asyncio.Event | None = None

    def arm(self, target: int, *, sleep: float = 0.0) -> None:
        self.count = 0
        self.target = target
        self.sleep = sleep
        self._reached = asyncio.Event()

    def hit(self) -> None:
        self.started_at = time.perf_counter()
        self.count += 1
        if self.count >= self.target and self._reached is not None:
            self._reached.set()

    async def wait(self, timeout: float) -> bool:
        """True when the target was reached within ``timeout`` seconds."""
        assert self._reached is not None, "arm() the probe first"
        try:
            await asyncio.wait_for(self._reached.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def wait_while_progressing(self, stall: float) -> bool:
        """True when the target is reached; False once no handler started for ``stall``
        seconds (a broken worker fails its scenario quickly instead of holding the run)."""
        seen, changed = self.count, time.perf_counter()
        while not await self.wait(min(0.5, stall)):
            if self.count != seen:
                seen, changed = self.count, time.perf_counter()
            elif time.perf_counter() - changed > stall:
                return False
        return True


PROBE = Probe()


async def handle(**_: Any) -> None:
    """The benchmark job: record that it started, optionally sleep, return."""
    PROBE.hit()
    if PROBE.sleep:
        await asyncio.sleep(PROBE.sleep)
