"""The ``Soniq`` facade: the public signatures, each wired to the part that does the work."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import (
    AsyncIterator,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Literal, TypeAlias

import asyncpg

from soniq import tracing
from soniq.backoff import Backoff
from soniq.connections import call_sync
from soniq.db.connection import Database
from soniq.db.grants import RoleKind, grant_statements
from soniq.db.jobs import JobStore
from soniq.db.migrate import check_current, migrate, migration_script
from soniq.dead_letter import DeadLetterQueue
from soniq.enqueue import Enqueuer
from soniq.errors import ConfigurationError, EnqueueError
from soniq.inspection import Inspection
from soniq.installed import UnknownTasks
from soniq.job import JobId
from soniq.metrics import Metrics
from soniq.periodic import Schedules
from soniq.registration import Registration
from soniq.registry import Registry
from soniq.settings import (
    Settings,
    WorkerSettings,
    configured_database_url,
    queue_names,
    resolve_schema,
)
from soniq.task_ref import ArgsT, TaskRef
from soniq.worker.drain import drain
from soniq.worker.worker import Worker

logger = logging.getLogger("soniq")

# What enqueue takes: a task ref (args checked against its model), a name, or a handler.
Target: TypeAlias = TaskRef[ArgsT] | str | Callable[..., Any]
Args: TypeAlias = ArgsT | Mapping[str, Any]


class Soniq(Registration, Inspection):
    """A Soniq app: enqueue jobs, register handlers, run workers, inspect jobs.

    Producer and consumer are roles, not classes: a producer only enqueues, a consumer also
    registers handlers with :meth:`job` and calls :meth:`run_worker`. Nothing connects
    until the first operation, but every option is checked at once (into ``app.settings``):
    the URL (else ``SONIQ_DATABASE_URL``; ``"embedded"`` runs a local server; when neither
    is set yet, the variable is read at the first operation, which raises
    :class:`ConfigurationError` if it is still missing, so a module-level app can be
    imported before its environment is configured), the schema
    (else ``SONIQ_SCHEMA``, else ``soniq``), retries and their backoff, the largest args,
    how long done (and, if set, dead) jobs are kept, the pool size, and for a URL through
    PgBouncer in transaction mode ``transaction_pooling=True`` with a direct ``listen_url``
    (without one, workers and ``get_result`` poll; see docs/deployment.md).

    Enqueue by bare task name uses the installed contract packages (their ``soniq.contracts``
    entry points): a known name is validated by its model and goes to its default queue. A
    name that neither they nor this app's handlers know is, by ``unknown_tasks``, enqueued
    with an :class:`UnknownTaskWarning` naming the closest known name (``"warn"``, only when
    some contract package is installed), refused with :class:`UnknownTaskError`
    (``"refuse"``), or enqueued silently (``"allow"``).
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        schema: str | None = None,
        default_retries: int = 3,
        retry_backoff: timedelta = timedelta(seconds=1),
        retry_backoff_max: timedelta = timedelta(minutes=10),
        max_args_bytes: int = 1024 * 1024,
        done_retention: timedelta = timedelta(days=7),
        dead_retention: timedelta | None = None,
        pool_size: int = 10,
        listen_url: str | None = None,
        transaction_pooling: bool = False,
        unknown_tasks: UnknownTasks = "warn",
    ) -> None:
        self.settings = Settings(
            configured_database_url(database_url),
            resolve_schema(schema),
            default_retries=default_retries,
            retry_backoff=retry_backoff,
            retry_backoff_max=retry_backoff_max,
            max_args_bytes=max_args_bytes,
            done_retention=done_retention,
            dead_retention=dead_retention,
            pool_size=pool_size,
            listen_url=listen_url,
            transaction_pooling=transaction_pooling,
            unknown_tasks=unknown_tasks,
        )
        self.schema = self.settings.schema
        self._database = Database(self.settings)
        self._store = JobStore(self.schema)
        self._registry = Registry()
        self._retry_policy = Backoff(retry_backoff, retry_backoff_max)
        self._enqueuer = Enqueuer(self.settings, self._database, self._store, self._registry)
        self._schedules = Schedules(self._enqueuer)
        self._worker: Worker | None = None
        self._metrics: Metrics | None = None
        self.dead_letter = DeadLetterQueue(self._store, self._database)

    async def setup(self, *, grants: Iterable[tuple[RoleKind, str]] = ()) -> list[int]:
        """Create or upgrade the Soniq schema (safe to run from many processes at once),
        then give each ``(kind, role)`` of ``grants`` its privileges: ``kind`` is
        ``"producer"``, ``"worker"``, ``"viewer"`` or ``"viewer-without-args"`` (see
        docs/security.md). Returns the versions of the migrations this call applied."""
        then = grant_statements(self.schema, grants)
        applied = await self._database.run(lambda conn: migrate(conn, self.schema, then=then))
        if applied:
            logger.info("schema %s: applied migrations %s", self.schema, applied)
        return applied

    async def setup_script(self, *, grants: Iterable[tuple[RoleKind, str]] = ()) -> str:
        """The SQL :meth:`setup` would run now, as one script to review and run by hand."""
        then = grant_statements(self.schema, grants)
        return await self._database.run(lambda conn: migration_script(conn, self.schema, then))

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection from Soniq's pool, e.g. to enqueue inside your own transaction::

        async with app.connection() as conn, conn.transaction():
            await conn.execute("INSERT INTO orders ...")
            await app.enqueue(SEND_INVOICE, args=..., connection=conn)
        """
        async with self._database.lend() as conn:
            yield conn

    async def close(self) -> None:
        """Close the pool and the metrics server; the app reconnects if used again."""
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = self._enqueuer.metrics = None
        await self._database.close()

    async def __aenter__(self) -> Soniq:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def enqueue(
        self,
        target: Target[ArgsT],
        args: Args[ArgsT] | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        scheduled_at: datetime | None = None,
        delay: timedelta | float | None = None,
        dedup_key: str | None = None,
        on_conflict: Literal["return", "raise"] = "return",
        connection: object | None = None,
        after: Sequence[int] | None = None,
    ) -> JobId:
        """Validate and store one job; returns its id (a :class:`JobId`, an ``int``).

        ``target`` is a task name, a :class:`TaskRef` (whose args model the type checker
        then holds ``args`` to) or a registered function. With ``connection=`` (an asyncpg
        connection, an SQLAlchemy ``AsyncSession`` or ``AsyncConnection``, or a psycopg
        ``AsyncConnection``) the job is written in the caller's transaction: it exists only
        if that transaction commits, and workers are woken at commit. With ``dedup_key`` a
        second enqueue while the first job is queued, scheduled or running writes nothing
        and returns the first job's id, whose ``created`` is False; with
        ``on_conflict="raise"`` it raises :class:`DuplicateJobError` instead. With
        ``after=[job_id, ...]`` the job runs only once all of those jobs are done; if one
        ends dead or cancelled, it is cancelled.
        """
        raise_on_conflict = self._raise_on(on_conflict)
        # Called here, not through a helper: an UnknownTaskWarning points at the caller's line.
        job = self._enqueuer.prepare(
            target,
            args,
            queue=queue,
            priority=priority,
            scheduled_at=scheduled_at,
            delay=delay,
            dedup_key=dedup_key,
            trace_context=tracing.inject(),
            after=after,
        )
        return await self._enqueuer.enqueue(job, connection, raise_on_conflict=raise_on_conflict)

    def enqueue_sync(
        self,
        target: Target[ArgsT],
        args: Args[ArgsT] | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        scheduled_at: datetime | None = None,
        delay: timedelta | float | None = None,
        dedup_key: str | None = None,
        on_conflict: Literal["return", "raise"] = "return",
        connection: object | None = None,
        after: Sequence[int] | None = None,
    ) -> JobId:
        """:meth:`enqueue` for synchronous code (Django, Flask, scripts), with the same
        checks and SQL. On ``connection=`` (an SQLAlchemy ``Session`` or ``Connection``, or
        a DB-API connection: psycopg, psycopg2, Django's) in the caller's transaction;
        without one on a psycopg connection of its own, committed at once."""
        raise_on_conflict = self._raise_on(on_conflict)
        # Called here, not through a helper: an UnknownTaskWarning points at the caller's line.
        job = self._enqueuer.prepare(
            target,
            args,
            queue=queue,
            priority=priority,
            scheduled_at=scheduled_at,
            delay=delay,
            dedup_key=dedup_key,
            trace_context=tracing.inject(),
            after=after,
        )
        return call_sync(
            lambda db: self._enqueuer.enqueue(job, db, raise_on_conflict=raise_on_conflict),
            connection,
            lambda: self._database.url,
        )

    def _raise_on(self, on_conflict: str) -> bool:
        if on_conflict not in ("return", "raise"):
            raise EnqueueError(f"on_conflict must be 'return' or 'raise', got {on_conflict!r}")
        return on_conflict == "raise"

    async def enqueue_many(
        self,
        target: Target[ArgsT],
        args_list: Sequence[Args[ArgsT]],
        *,
        queue: str | None = None,
        priority: int | None = None,
        scheduled_at: datetime | None = None,
        delay: timedelta | float | None = None,
        connection: object | None = None,
        after: Sequence[int] | None = None,
    ) -> list[int]:
        """Validate and store many jobs of one task, all or nothing: one bad item writes
        nothing and the error names its index. Items go in chunks inside one transaction
        (or the caller's, on ``connection=`` as for :meth:`enqueue`); returns ids in input
        order. ``after`` as for :meth:`enqueue`, for every job."""
        return await self._enqueuer.enqueue_many(
            target,
            list(args_list),
            queue=queue,
            priority=priority,
            scheduled_at=scheduled_at,
            delay=delay,
            trace_context=tracing.inject(),
            connection=connection,
            after=after,
        )

    def enqueue_many_sync(
        self,
        target: Target[ArgsT],
        args_list: Sequence[Args[ArgsT]],
        *,
        queue: str | None = None,
        priority: int | None = None,
        scheduled_at: datetime | None = None,
        delay: timedelta | float | None = None,
        connection: object | None = None,
        after: Sequence[int] | None = None,
    ) -> list[int]:
        """:meth:`enqueue_many` for synchronous code, on ``connection=`` as for
        :meth:`enqueue_sync`: every item is checked before the first is written."""
        items = list(args_list)
        trace_context = tracing.inject()
        return call_sync(
            lambda db: self._enqueuer.enqueue_many(
                target,
                items,
                queue=queue,
                priority=priority,
                scheduled_at=scheduled_at,
                delay=delay,
                trace_context=trace_context,
                connection=db,
                after=after,
            ),
            connection,
            lambda: self._database.url,
        )

    def validate_args(self, target: Target[ArgsT], args: Args[ArgsT]) -> dict[str, Any]:
        """The args as :meth:`enqueue` would store them (validated through the task's model,
        defaults filled in, as JSON), storing nothing; raises what enqueue would, e.g. to
        answer an HTTP request with 422 before any transaction starts."""
        job = self._enqueuer.prepare(target, args, queue=None, priority=None, trace_context=None)
        stored: dict[str, Any] = json.loads(job.args_json)
        return stored

    async def run_worker(
        self,
        queues: Sequence[str] | str | None = None,
        *,
        concurrency: int = 10,
        lease: timedelta = timedelta(seconds=30),
        poll_interval: timedelta = timedelta(seconds=1),
        shutdown_timeout: timedelta = timedelta(seconds=30),
    ) -> None:
        """Run this app's handlers on jobs from ``queues`` (all queues when None) until
        :meth:`stop` is called, SIGTERM/SIGINT arrives, or the calling task is cancelled.

        On stop or the first signal the worker claims nothing new and lets running jobs
        finish for up to ``shutdown_timeout``; then, as on cancellation or a second signal,
        it cancels them and releases them to the queue without spending an attempt.
        A job whose worker dies is taken back by any other worker once its ``lease``
        expires. Signal handlers are only installed when nothing else handles SIGTERM.
        """
        if self._worker is not None:
            raise ConfigurationError("this app is already running a worker")
        config = WorkerSettings.of(
            queues,
            concurrency=concurrency,
            lease=lease,
            poll_interval=poll_interval,
            shutdown_timeout=shutdown_timeout,
        )
        await self._database.run(lambda conn: check_current(conn, self.schema))
        self._worker = Worker(
            database=self._database,
            pool=await self._database.pool(),
            store=self._store,
            registry=self._registry,
            config=config,
            app_settings=self.settings,
            retry_policy=self._retry_policy,
            schedules=self._schedules.all,
            metrics=self._metrics,
        )
        try:
            await self._worker.run()
        finally:
            self._worker = None

    def serve_metrics(self, port: int = 9100, host: str = "127.0.0.1") -> int:
        """Count this app's enqueues and its worker's jobs from now on, and serve them in
        the Prometheus text format at ``http://host:port/metrics`` (port 0: any free port);
        returns the bound port. Needs the ``metrics`` extra; :meth:`close` stops the server.
        """
        if self._metrics is not None:
            raise ConfigurationError("this app already serves metrics")
        if self._worker is not None:
            raise ConfigurationError("call serve_metrics() before run_worker()")
        metrics = Metrics()
        bound = metrics.serve(port, host)
        self._metrics = self._enqueuer.metrics = metrics
        return bound

    async def stop(self) -> None:
        """Ask the running worker to shut down gracefully (see :meth:`run_worker`); returns
        once it claims no more jobs, while its running jobs may still be finishing."""
        if self._worker is not None:
            self._worker.stop()
            await self._worker.claims_stopped()

    async def drain(self, queues: Sequence[str] | str | None = None) -> int:
        """Run every due job of ``queues`` (all queues when None) in this process, one at a
        time, until none is due; returns how many attempts ran. Meant for tests.

        Each job goes through the worker's own path: claimed with a lease (priority, then
        age; contract versions this app cannot run are left alone), upcast and validated,
        run through the middleware, and its outcome (done, retry with backoff, dead) written.
        Jobs that handlers enqueue meanwhile run too; a retry runs again only if its backoff
        has passed before the drain ends. A task this app has no handler for is
        dead-lettered. ``app.cancel()`` does not reach a job while it runs.
        """
        names = queue_names(queues)
        return await drain(
            self._database, self._store, self._registry, policy=self._retry_policy, queues=names
        )
