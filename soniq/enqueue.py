"""The write path: an enqueue call becomes a validated, encoded row, then is stored (one job
with its dedup key, or many in pipelined chunks, all or nothing) by the enqueue functions
of migration 0010."""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from pydantic import BaseModel

from soniq.checks import BIGINT, INT32, duration, whole_number
from soniq.connections import adapt
from soniq.db.connection import Database, pooled
from soniq.db.jobs import JobStore
from soniq.db.sql import Queryable
from soniq.encoding import encode_args, encode_many
from soniq.errors import DuplicateJobError, EnqueueError, UnknownTaskError
from soniq.installed import InstalledContracts, UnknownTasks, UnknownTaskWarning
from soniq.job import JobId, NewJob
from soniq.metrics import Metrics
from soniq.names import check_queue_name, check_task_name
from soniq.registry import DEFAULT_QUEUE, Registry
from soniq.settings import Settings
from soniq.task_ref import TaskRef

# In bytes of UTF-8: the unique index on live keys holds at most 2,704 bytes per entry.
MAX_DEDUP_KEY_BYTES = 1000


@dataclass(frozen=True)
class Target:
    """What an enqueue target (name, TaskRef or registered function) resolves to."""

    name: str
    model: type[BaseModel] | None
    queue: str
    priority: int
    max_attempts: int
    contract_version: int | None
    contract_fingerprint: str | None


def resolve_target(
    target: object,
    registry: Registry,
    *,
    default_retries: int,
    installed: InstalledContracts | None = None,
    unknown_tasks: UnknownTasks = "allow",
) -> Target:
    """Find the name, model and defaults for ``target``.

    A bare name without a handler here is looked up in the ``installed`` contract packages
    and enqueued as their ref. A name neither knows is, by ``unknown_tasks``: enqueued as
    it is (``allow``); enqueued with a warning when some contract package is installed
    (``warn``: without any, bare names are a producer's only way); or refused (``refuse``).

    Queue precedence: the ref's ``default_queue``, then the locally registered job's queue,
    then ``"default"`` (an explicit ``queue=`` overrides all of them later).
    """
    ref: TaskRef[Any] | None = None
    if isinstance(target, TaskRef):
        ref = target
        spec = registry.get(target.name)
    elif isinstance(target, str):
        check_task_name(target)
        spec = registry.get(target)
        if spec is None and installed is not None:
            ref = installed.get(target)
            if ref is None and (
                unknown_tasks == "refuse" or (unknown_tasks == "warn" and installed.refs())
            ):
                why = installed.unknown(target, registry.names())
                if unknown_tasks == "refuse":
                    raise UnknownTaskError(f"{why}; nothing written", task_name=target)
                # stacklevel: the caller of app.enqueue()
                warnings.warn(f"{why}; enqueued anyway", UnknownTaskWarning, stacklevel=5)
    elif callable(target):
        spec = registry.for_handler(target)
        if spec is None:
            raise UnknownTaskError(
                f"{getattr(target, '__qualname__', target)!r} is not a registered job: "
                "decorate it with @app.job(name=...) on this app, or enqueue by task name"
            )
    else:
        raise EnqueueError(
            f"cannot enqueue {target!r}: pass a task name, a TaskRef, or a registered function"
        )

    name = ref.name if ref is not None else spec.name if spec is not None else str(target)
    model = ref.args_model if ref is not None else spec.args_model if spec is not None else None
    queue = (
        (ref.default_queue if ref is not None else None)
        or (spec.queue if spec is not None else None)
        or DEFAULT_QUEUE
    )
    return Target(
        name=name,
        model=model,
        queue=queue,
        priority=spec.priority if spec is not None and spec.priority is not None else 0,
        max_attempts=spec.max_attempts if spec is not None else default_retries + 1,
        contract_version=ref.version if ref is not None else None,
        contract_fingerprint=ref.fingerprint if ref is not None else None,
    )


# Later than this is a mistake (a unit mix-up), and past what timestamps can hold anyway.
MAX_DELAY = timedelta(days=365 * 1000)


def _due(
    scheduled_at: datetime | None, delay: timedelta | float | None
) -> tuple[datetime | None, timedelta | None]:
    """When the job is due: at ``scheduled_at``, or ``delay`` after the insert by the
    database's clock (a producer's clock may be off); neither means now."""
    if scheduled_at is not None and delay is not None:
        raise EnqueueError("pass either scheduled_at or delay, not both")
    if scheduled_at is not None:
        if not isinstance(scheduled_at, datetime) or scheduled_at.tzinfo is None:
            raise EnqueueError(
                "scheduled_at must be a timezone-aware datetime, "
                "e.g. datetime.now(timezone.utc) + timedelta(minutes=5)"
            )
        return scheduled_at, None
    if delay is not None:
        delay = duration(delay, "delay", seconds=True, positive=False, error=EnqueueError)
        if delay > MAX_DELAY:
            raise EnqueueError(f"delay must be at most 1,000 years, got {delay!r}")
        return None, delay
    return None, None


def _is_unicode(text: str) -> bool:
    """False when ``text`` holds a lone surrogate, which PostgreSQL text cannot store."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def build_job(
    target: Target,
    args_json: str,
    *,
    queue: str | None,
    priority: int | None,
    scheduled_at: datetime | None,
    delay: timedelta | float | None,
    dedup_key: str | None,
    trace_context: str | None,
    after: Sequence[int] | None = None,
) -> NewJob:
    """Combine a resolved target, encoded args and per-call options into a row to insert."""
    if priority is not None:
        whole_number(
            priority, "priority", minimum=INT32.start, maximum=INT32.stop - 1, error=EnqueueError
        )
    if dedup_key is not None and (
        not isinstance(dedup_key, str)
        or not dedup_key
        or "\x00" in dedup_key
        or not _is_unicode(dedup_key)
        or len(dedup_key.encode()) > MAX_DEDUP_KEY_BYTES
    ):
        raise EnqueueError(
            f"dedup_key must be a non-empty string of at most {MAX_DEDUP_KEY_BYTES} bytes of "
            "UTF-8 without NUL or lone surrogates (hash longer keys)"
        )
    due_at, due_after = _due(scheduled_at, delay)
    return NewJob(
        task_name=target.name,
        queue=check_queue_name(queue) if queue is not None else target.queue,
        args_json=args_json,
        priority=target.priority if priority is None else priority,
        max_attempts=target.max_attempts,
        scheduled_at=due_at,
        delay=due_after,
        dedup_key=dedup_key,
        contract_version=target.contract_version,
        contract_fingerprint=target.contract_fingerprint,
        trace_context=trace_context,
        after=_parents(after),
    )


def _parents(after: Sequence[int] | None) -> tuple[int, ...]:
    """The ids of ``after=``, checked: whole numbers that can be job ids, at most
    :data:`MAX_PARENTS` of them, each once."""
    if after is None:
        return ()
    if isinstance(after, (str, bytes)) or not isinstance(after, Sequence):
        raise EnqueueError(f"after must be a list of job ids, got {after!r}")
    if len(after) > MAX_PARENTS:
        raise EnqueueError(f"after names {len(after)} jobs, more than {MAX_PARENTS}")
    for parent in after:
        whole_number(
            parent, "each job id of after", minimum=1, maximum=BIGINT.stop - 1, error=EnqueueError
        )
    return tuple(dict.fromkeys(after))


@contextlib.contextmanager
def _parents_exist() -> Iterator[None]:
    """A job of ``after=`` that does not exist, as the enqueue function reports it, becomes
    an :class:`EnqueueError` (nothing was written)."""
    try:
        yield
    except asyncpg.ForeignKeyViolationError as exc:
        raise EnqueueError(str(exc)) from exc


MAX_PARENTS = 1000
_BULK_CHUNK = 1000


class Enqueuer:
    """The write path: resolves a target, encodes its args and stores the row, for
    ``app.enqueue``, ``app.enqueue_many`` and the jobs of periodic schedules."""

    def __init__(
        self, settings: Settings, database: Database, store: JobStore, registry: Registry
    ) -> None:
        self._settings = settings
        self._database = database
        self._store = store
        self._registry = registry
        self._installed = InstalledContracts()
        self.metrics: Metrics | None = None  # set while the app serves metrics

    def resolve(self, target: object) -> Target:
        return resolve_target(
            target,
            self._registry,
            default_retries=self._settings.default_retries,
            installed=self._installed,
            unknown_tasks=self._settings.unknown_tasks,
        )

    def prepare(
        self,
        target: object,
        args: object,
        *,
        queue: str | None,
        priority: int | None,
        scheduled_at: datetime | None = None,
        delay: timedelta | float | None = None,
        dedup_key: str | None = None,
        trace_context: str | None,
        after: Sequence[int] | None = None,
    ) -> NewJob:
        """The validated, encoded row for one job of ``target``; nothing is written."""
        resolved = self.resolve(target)
        args_json = encode_args(resolved, args, max_bytes=self._settings.max_args_bytes)
        return build_job(
            resolved,
            args_json,
            queue=queue,
            priority=priority,
            scheduled_at=scheduled_at,
            delay=delay,
            dedup_key=dedup_key,
            trace_context=trace_context,
            after=after,
        )

    async def enqueue(
        self, job: NewJob, connection: object | None, *, raise_on_conflict: bool
    ) -> JobId:
        """Store ``job`` (on ``connection`` when given, in the caller's transaction; see
        soniq/connections.py for the kinds); with a ``dedup_key`` a live job holds, store
        nothing and return that job's id (or, with ``raise_on_conflict``, raise
        :class:`DuplicateJobError`)."""
        db = adapt(connection) if connection is not None else await self._database.pool()
        # Another driver's errors are its own, and with its connection no URL need be set.
        native = isinstance(db, asyncpg.Connection | asyncpg.Pool)
        with self._database.errors() if native else contextlib.nullcontext(), _parents_exist():
            job_id, created = await self._store.writes.insert(
                db, job, max_args_bytes=self._settings.max_args_bytes
            )
        if not created:
            if raise_on_conflict:
                assert job.dedup_key is not None
                raise DuplicateJobError(
                    task_name=job.task_name, dedup_key=job.dedup_key, job_id=job_id
                )
        elif self.metrics is not None:
            self.metrics.enqueued(job.task_name, job.queue)
        return JobId(job_id, created)

    async def enqueue_many(
        self,
        target: object,
        items: list[Any],
        *,
        queue: str | None,
        priority: int | None,
        scheduled_at: datetime | None,
        delay: timedelta | float | None,
        trace_context: str | None,
        connection: object | None,
        after: Sequence[int] | None = None,
    ) -> list[int]:
        """Store one job of ``target`` per args item, all or nothing."""
        resolved = self.resolve(target)
        template = build_job(
            resolved,
            "{}",
            queue=queue,
            priority=priority,
            scheduled_at=scheduled_at,
            delay=delay,
            dedup_key=None,
            trace_context=trace_context,
            after=after,
        )
        if not items:
            return []
        db = adapt(connection) if connection is not None else None
        if isinstance(db, asyncpg.Connection):
            ids = await self._insert_many(db, resolved, template, items)
        elif db is not None:
            ids = await self._insert_many_on(db, resolved, template, items)
        else:
            pool = await self._database.pool()
            with self._database.errors():
                async with pooled(pool) as conn:
                    ids = await self._insert_many(conn, resolved, template, items)
        if self.metrics is not None:
            self.metrics.enqueued(template.task_name, template.queue, len(ids))
        return ids

    async def _insert_many_on(
        self, db: Queryable, resolved: Target, template: NewJob, items: list[Any]
    ) -> list[int]:
        """On another driver's connection, in the caller's transaction: every item encoded
        (so a bad one writes nothing), then the chunks inserted one after another; an insert
        that fails aborts the caller's transaction. Never suspends on a synchronous one."""
        limit = self._settings.max_args_bytes
        chunks = [
            encode_many(resolved, items[start : start + _BULK_CHUNK], max_bytes=limit, start=start)
            for start in range(0, len(items), _BULK_CHUNK)
        ]
        ids: list[int] = []
        for chunk in chunks:
            ids += await self._store.writes.insert_many(db, template, chunk, max_args_bytes=limit)
        return ids

    async def _insert_many(
        self, conn: asyncpg.Connection, resolved: Target, template: NewJob, items: list[Any]
    ) -> list[int]:
        """Encode chunk k+1 while the server inserts chunk k, all in one transaction (a
        savepoint inside the caller's): a bad item anywhere rolls everything back, so the
        result is all or nothing, as if every item had been validated first."""
        ids: list[int] = []
        inserting: asyncio.Future[list[int]] | None = None
        with self._database.errors(), _parents_exist():
            async with conn.transaction():
                try:
                    for start in range(0, len(items), _BULK_CHUNK):
                        chunk = encode_many(
                            resolved,
                            items[start : start + _BULK_CHUNK],
                            max_bytes=self._settings.max_args_bytes,
                            start=start,
                        )
                        if inserting is not None:
                            ids += await inserting
                        inserting = asyncio.ensure_future(
                            self._store.writes.insert_many(
                                conn, template, chunk, max_args_bytes=self._settings.max_args_bytes
                            )
                        )
                        await asyncio.sleep(0)  # let it send the statement before we encode on
                    assert inserting is not None
                    ids += await inserting
                except BaseException:
                    if inserting is not None and not inserting.done():
                        # the connection must be idle before the transaction can roll back
                        await asyncio.gather(inserting, return_exceptions=True)
                    raise
        return ids
