"""The steering half of the ``Soniq`` facade: queue settings (pause, concurrency, rate
limits, partitions), stored in the database for every worker at once."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from soniq.db.connection import Database
from soniq.db.queues import QueueStore
from soniq.names import check_queue_name
from soniq.queues import QueueSettings, Unchanged, updated


class Steering:
    """What :class:`soniq.Soniq` offers to steer queues."""

    _database: Database
    schema: str

    @property
    def _queue_store(self) -> QueueStore:
        return QueueStore(self.schema)

    async def configure_queue(
        self,
        queue: str,
        *,
        paused: bool | Unchanged = ...,
        concurrency: int | Unchanged | None = ...,
        rate_limit: str | Unchanged | None = ...,
        partition_by: Sequence[str] | Unchanged | None = ...,
    ) -> QueueSettings:
        """Change how ``queue`` is steered, for every worker at once; a setting not passed
        stays as it is, ``None`` removes it. Returns the queue's settings.

        ``paused=True``: once this returns no worker starts a new job of the queue (running
        ones finish); ``paused=False`` wakes the workers, which claim its waiting jobs at
        once. ``concurrency=N``: at most N of its jobs run at once across all workers, or
        per partition with ``partition_by=["customer_id"]`` (per distinct value of those
        args keys). ``rate_limit="100/s"`` (or ``/min``, ``/h``, ``/d``): at most that many
        starts in any period of that length, per partition likewise; jobs over a limit
        wait, without spending an attempt. See docs/runtime.md, "Steering queues"."""
        check_queue_name(queue)

        async def change(conn: asyncpg.Connection) -> QueueSettings:
            async with conn.transaction():
                current = await self._queue_store.get(conn, queue, lock=True)
                wanted = updated(
                    current,
                    paused=paused,
                    concurrency=concurrency,
                    rate_limit=rate_limit,
                    partition_by=partition_by,
                )
                saved = await self._queue_store.save(conn, wanted)
            if current.updated_at is None and saved.updated_at is not None:
                # the plain claim served it until now: let the claims under way finish
                await self._queue_store.wait_for_claims_under_way(conn)
            return saved

        return await self._database.run(change)

    async def queue_settings(self, queue: str) -> QueueSettings:
        """How ``queue`` is steered (the defaults when it has no settings)."""
        check_queue_name(queue)
        return await self._database.run(lambda conn: self._queue_store.get(conn, queue))

    async def configured_queues(self) -> list[QueueSettings]:
        """Every queue that has settings, by name."""
        return await self._database.run(self._queue_store.all)
