"""A worker's row in ``<schema>.workers``: written at start, beaten while alive, removed
at stop, so ``soniq status`` can list live workers and the contract versions they run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from datetime import timedelta

import asyncpg

from soniq.db.connection import CONNECTION_ERRORS
from soniq.db.workers import WorkerStore
from soniq.registry import Registry
from soniq.worker.service import Service

logger = logging.getLogger("soniq.worker")


class Presence(Service):
    """This worker's row in the workers table, kept fresh while it runs."""

    def __init__(
        self,
        store: WorkerStore,
        pool: asyncpg.Pool,
        *,
        worker_id: str,
        registry: Registry,
        queues: tuple[str, ...] | None,
        concurrency: int,
        lease: timedelta,
    ) -> None:
        self._store = store
        self._pool = pool
        self._worker_id = worker_id
        self._registry = registry
        self._queues = queues
        self._concurrency = concurrency
        self._lease = lease

    async def _register(self) -> None:
        await self._store.register(
            self._pool,
            worker_id=self._worker_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            queues=self._queues,
            tasks={
                name: spec.version
                for name in self._registry.names()
                if (spec := self._registry.get(name)) is not None
            },
            concurrency=self._concurrency,
            lease_seconds=self._lease.total_seconds(),
        )

    async def run(self) -> None:
        """Register, then beat every third of the lease until cancelled; the row is removed
        on the way out. Registering again after an outage restores a pruned row."""
        interval = self._lease.total_seconds() / 3
        try:
            while True:
                try:
                    await self._register()
                    await self._store.remove_stale(self._pool)
                except CONNECTION_ERRORS as exc:
                    logger.debug("worker heartbeat skipped (%s)", type(exc).__name__)
                await asyncio.sleep(interval)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._store.remove(self._pool, self._worker_id), 5)
