"""Writing attempt outcomes in batches: whatever finished while the last write was in
flight goes out in the next single statement."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg

from soniq.db.connection import CONNECTION_ERRORS
from soniq.db.jobs import JobStore, Outcome

logger = logging.getLogger("soniq.worker")

MAX_BATCH = 1000


class Completer:
    """Buffers outcomes and flushes them; a failed flush is kept and retried with backoff."""

    def __init__(
        self,
        store: JobStore,
        pool: asyncpg.Pool,
        *,
        on_written: Callable[[list[Outcome], set[int]], None],
    ) -> None:
        self._store = store
        self._pool = pool
        self._on_written = on_written
        self._buffer: list[Outcome] = []
        self._pending = asyncio.Event()
        self._closing = False

    def add(self, outcome: Outcome) -> None:
        self._buffer.append(outcome)
        self._pending.set()

    async def run(self) -> None:
        """Flush until :meth:`close`; returns once the buffer is empty after closing."""
        failures = 0
        while True:
            await self._pending.wait()
            self._pending.clear()
            while self._buffer:
                batch, self._buffer = self._buffer[:MAX_BATCH], self._buffer[MAX_BATCH:]
                try:
                    owned = await self._store.record_outcomes(self._pool, batch)
                except CONNECTION_ERRORS as exc:
                    self._buffer[:0] = batch
                    failures += 1
                    delay = min(5.0, 0.1 * 2**failures)
                    logger.warning(
                        "could not record %d job outcome(s) (%s); retrying in %.1fs",
                        len(batch),
                        type(exc).__name__,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                failures = 0
                self._on_written(batch, owned)
            if self._closing:
                return

    def close(self) -> None:
        """Ask :meth:`run` to finish once everything buffered is written."""
        self._closing = True
        self._pending.set()
