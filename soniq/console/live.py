"""Live updates: one LISTEN connection per console, fanned out to every open page as
server-sent events.

A page is told only *that* something changed (debounced), never what: it then fetches its
own fragments again, through the same escaping as a full page load.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from soniq.db.connection import Database
from soniq.db.jobs import JobStore

logger = logging.getLogger("soniq.console")

DEBOUNCE_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0


class LiveFeed:
    """Counts notifications on ``<schema>.jobs`` and ``<schema>.results`` while anyone is
    subscribed; the LISTEN connection opens with the first subscriber and closes with the
    last."""

    def __init__(self, database: Database, store: JobStore) -> None:
        self._database = database
        self._channels = (store.channel, store.results_channel)
        self._changed = asyncio.Condition()
        self._version = 0
        self._subscribers = 0
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()

    @property
    def available(self) -> bool:
        """False behind PgBouncer in transaction mode without a ``listen_url``: pages poll."""
        return self._database.can_listen

    def _notified(self, *_: Any) -> None:
        asyncio.get_running_loop().create_task(self._bump())

    async def _bump(self) -> None:
        async with self._changed:
            self._version += 1
            self._changed.notify_all()

    def _lost(self, *_: Any) -> None:
        logger.warning("console: the LISTEN connection was lost; pages fall back to polling")
        self._conn = None
        asyncio.get_running_loop().create_task(self._bump())

    async def _start(self) -> None:
        async with self._lock:
            if self._conn is not None:
                return
            conn = await self._database.listen()
            try:
                for channel in self._channels:
                    await conn.add_listener(channel, self._notified)
            except BaseException:  # cancelled too: never leave the connection open
                conn.terminate()
                raise
            conn.add_termination_listener(self._lost)
            self._conn = conn

    async def _stop(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.remove_termination_listener(self._lost)
                try:
                    await conn.close(timeout=2)
                except Exception:
                    conn.terminate()
                except asyncio.CancelledError:  # a server shutting down cancels the stream
                    conn.terminate()
                    raise

    async def _wait_past(self, seen: int) -> None:
        """Until the version moves past ``seen``, or ``KEEPALIVE_SECONDS``."""
        async with self._changed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._version != seen), KEEPALIVE_SECONDS
                )

    async def events(self) -> AsyncIterator[str]:
        """Server-sent events for one page: ``refresh`` at most every ``DEBOUNCE_SECONDS``
        after a change, a comment every ``KEEPALIVE_SECONDS``; ends if LISTEN is lost, so
        the browser reconnects (and polls meanwhile)."""
        self._subscribers += 1
        try:
            await self._start()
            seen = self._version
            yield "retry: 3000\n\n"
            while self._conn is not None:
                await self._wait_past(seen)
                if self._version == seen:
                    yield ": keepalive\n\n"
                    continue
                await asyncio.sleep(DEBOUNCE_SECONDS)  # one refresh for a burst of changes
                seen = self._version
                yield f"event: refresh\ndata: {seen}\n\n"
        finally:
            self._subscribers -= 1
            if self._subscribers == 0:
                await self._stop()
