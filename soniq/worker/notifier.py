"""The worker's LISTEN connection: wakes the claim loop when a job is enqueued, passes on
requests to cancel running jobs, and keeps listening across database restarts. Polling
(and, for cancellation, the heartbeat) covers anything a notification misses."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

import asyncpg

from soniq.db.connection import Database
from soniq.waiting import backoff, wait_event
from soniq.worker.service import Service

logger = logging.getLogger("soniq.worker")

_PING_EVERY = 10.0


class Notifier(Service):
    """Listens on the jobs and cancel channels of one schema for one worker."""

    def __init__(
        self,
        database: Database,
        channel: str,
        *,
        queues: Collection[str] | None,
        wake: Callable[[], None],
        cancel_channel: str,
        on_cancel: Callable[[int], None],
    ) -> None:
        self._database = database
        self._channel = channel
        self._queues = None if queues is None else frozenset(queues)
        self._wake = wake
        self._cancel_channel = cancel_channel
        self._on_cancel = on_cancel

    def _on_notify(self, _conn: object, _pid: int, _channel: str, queue: str) -> None:
        if self._queues is None or queue in self._queues:
            self._wake()

    def _on_cancel_notify(self, _conn: object, _pid: int, _channel: str, job_id: str) -> None:
        if job_id.isdigit():  # anyone may NOTIFY: the payload is only a hint to check
            self._on_cancel(int(job_id))

    async def run(self) -> None:
        """Listen until cancelled, reconnecting with backoff whenever the connection drops."""
        failures = 0
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await self._database.listen()
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(self._cancel_channel, self._on_cancel_notify)
                await conn.add_listener(self._channel, self._on_notify)
                if failures:
                    logger.info("reconnected to PostgreSQL; listening again")
                failures = 0
                self._wake()  # notifications sent while we were away are lost: look now
                while not await wait_event(lost, _PING_EVERY):
                    await conn.execute("SELECT 1", timeout=_PING_EVERY)
                failures += 1  # so that coming back is reported, and retried with backoff
                logger.warning("lost the LISTEN connection (closed by the server); reconnecting")
            except Exception as exc:  # connection refused, killed backend, server restart
                failures += 1
                delay = backoff(failures)
                logger.warning(
                    "lost the LISTEN connection (%s: %s); reconnecting in %.1fs",
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
            finally:
                if conn is not None and not conn.is_closed():
                    conn.terminate()
