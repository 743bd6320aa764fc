"""Writing attempt outcomes in batches: whatever finished while the last write was in
flight goes out in the next single statement."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg

from soniq.db.connection import CONNECTION_ERRORS, pooled
from soniq.db.jobs import JobStore
from soniq.job import Outcome
from soniq.waiting import backoff
from soniq.worker.service import Service

logger = logging.getLogger("soniq.worker")

MAX_BATCH = 1000


class Completer(Service):
    """Buffers outcomes and flushes them; a failed flush is kept and retried with backoff.

    An outcome the database refuses for another reason than the connection is written on
    its own, so it cannot hold back the others; if it still fails it is given up
    (``on_unrecorded``), and the job goes back to the queue when its lease runs out.
    """

    def __init__(
        self,
        store: JobStore,
        pool: asyncpg.Pool,
        *,
        on_written: Callable[[list[Outcome], set[int]], None],
        on_unrecorded: Callable[[Outcome], None],
    ) -> None:
        self._store = store
        self._pool = pool
        self._on_written = on_written
        self._on_unrecorded = on_unrecorded
        self._buffer: list[Outcome] = []
        self._pending = asyncio.Event()
        self._closing = False

    def add(self, outcome: Outcome) -> None:
        self._buffer.append(outcome)
        self._pending.set()

    async def run(self) -> None:
        """Flush until :meth:`stop`; returns once the buffer is empty after stopping."""
        failures = 0
        one_by_one = 0  # how many of the next outcomes to write singly
        while True:
            await self._pending.wait()
            self._pending.clear()
            while self._buffer:
                size = 1 if one_by_one else MAX_BATCH
                batch, self._buffer = self._buffer[:size], self._buffer[size:]
                try:
                    async with pooled(self._pool) as conn:
                        owned = await self._store.outcomes.record(conn, batch)
                except CONNECTION_ERRORS as exc:
                    self._buffer[:0] = batch
                    failures += 1
                    delay = backoff(failures, base=0.1, cap=5.0)
                    logger.warning(
                        "could not record %d job outcome(s) (%s); retrying in %.1fs",
                        len(batch),
                        type(exc).__name__,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                except Exception:
                    if len(batch) > 1:
                        logger.warning(
                            "could not record %d job outcomes together; writing them one by one",
                            len(batch),
                            exc_info=True,
                        )
                        self._buffer[:0] = batch
                        one_by_one = len(batch)
                        continue
                    outcome = batch[0]
                    logger.exception(
                        "job %d: cannot record its outcome %r; it returns to the queue when "
                        "its lease runs out",
                        outcome.job_id,
                        outcome.state,
                    )
                    one_by_one = max(0, one_by_one - 1)
                    self._on_unrecorded(outcome)
                    continue
                failures = 0
                one_by_one = max(0, one_by_one - len(batch))
                self._on_written(batch, owned)
            if self._closing:
                return

    def stop(self) -> None:
        """Ask :meth:`run` to finish once everything buffered is written."""
        self._closing = True
        self._pending.set()
