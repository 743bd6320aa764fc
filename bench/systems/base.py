"""The interface every system adapter implements, so one set of scenarios drives them all."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import asyncpg

# Stops a worker; returns how many handler calls it made when its handlers run in another
# process (None: they called bench.probe.PROBE in this one).
StopWorker = Callable[[], Awaitable[int | None]]
StartWorker = Callable[[], Awaitable[StopWorker]]


@dataclass(frozen=True)
class Drain:
    """One drain configuration: a scenario key, the worker's concurrency and its options."""

    scenario: str
    concurrency: int
    label: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Variant:
    """One way of running a system (e.g. Soniq with and without an args model)."""

    key: str
    label: str
    scenarios: tuple[str, ...]  # the non-drain scenarios this variant runs
    drains: tuple[Drain, ...]


class System(ABC):
    """A job queue under test, living in its own scratch database at ``url``."""

    name: ClassVar[str]
    packages: ClassVar[tuple[str, ...]]  # distributions whose versions the report lists
    slow: ClassVar[bool] = False  # runs a few hundred jobs/s: drains use the small size
    # Its handlers run in other processes: a drain waits on the database, not on PROBE.
    external_workers: ClassVar[bool] = False

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this system cannot run here (checked, and made ready, before it is used)."""
        return None

    @classmethod
    def versions(cls) -> dict[str, str]:
        """Versions of what runs it beyond Python distributions (those are ``packages``)."""
        return {}

    def __init__(self, url: str) -> None:
        self.url = url
        self._db: asyncpg.Connection | None = None

    @property
    def db(self) -> asyncpg.Connection:
        """A plain connection for counting and resetting, separate from the system's own."""
        assert self._db is not None, "open() the system first"
        return self._db

    def without_model(self, variant: str) -> tuple[str, Drain] | None:
        """For the validation-cost scenario: the variant that runs the same handler with no
        args model, and the drain setting to compare at. None: the system has no such pair."""
        return None

    async def open(self, *, install: bool) -> None:
        """Connect; with ``install``, create the system's tables in the empty database."""
        self._db = await asyncpg.connect(self.url, timeout=10)
        await self._open(install=install)

    async def close(self) -> None:
        await self._close()
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def count(self, sql: str) -> int:
        return int(await self.db.fetchval(sql))

    async def analyze(self) -> None:
        """Refresh planner statistics after a bulk load, as autovacuum would have."""
        for table in self.tables():
            await self.db.execute(f"ANALYZE {table}")

    @abstractmethod
    def variants(self) -> list[Variant]: ...

    @abstractmethod
    def tables(self) -> list[str]:
        """The system's tables, emptied by :meth:`reset`."""

    @abstractmethod
    def channels(self) -> list[str]:
        """The LISTEN channels an enqueue notifies to wake a worker."""

    @abstractmethod
    async def _open(self, *, install: bool) -> None: ...

    @abstractmethod
    async def _close(self) -> None: ...

    async def reset(self) -> None:
        """Empty every table, so each scenario starts from the same state."""
        await self.db.execute(f"TRUNCATE {', '.join(self.tables())} RESTART IDENTITY CASCADE")

    @abstractmethod
    async def enqueue_one(self, variant: str, args: dict[str, Any]) -> None: ...

    @abstractmethod
    async def enqueue_many(self, variant: str, args_list: list[dict[str, Any]]) -> None: ...

    @abstractmethod
    async def start_worker(self, variant: str, drain: Drain) -> StopWorker:
        """Start a worker; the returned coroutine function stops it."""

    async def prepare_worker(self, variant: str, drain: Drain) -> StartWorker:
        """Do what must precede a worker's timed start (e.g. start its processes); the
        returned coroutine function starts it. By default there is nothing to do first."""

        async def start() -> StopWorker:
            return await self.start_worker(variant, drain)

        return start

    async def dispatch_seconds(self, variant: str, calls: int) -> float | None:
        """Seconds this process takes to hand ``calls`` stored jobs of ``variant`` to their
        handler, one after the other, with no database involved (None: cannot tell)."""
        return None

    async def last_finished(self) -> datetime | None:
        """When the database recorded the latest successful job (its own clock), or None
        when the system keeps no such time."""
        return None

    @abstractmethod
    async def stored(self) -> int:
        """Jobs in the queue, in any state (to check that enqueues were written)."""

    @abstractmethod
    async def finished(self) -> int:
        """Jobs recorded as successfully run."""

    @abstractmethod
    async def unfinished(self) -> int:
        """Jobs not yet recorded as finished (queued or running)."""
