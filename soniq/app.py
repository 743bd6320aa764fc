"""The ``Soniq`` facade: one class for producers and consumers; it only wires parts together."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar, overload

import asyncpg
from pydantic import BaseModel

from soniq import tracing
from soniq.checks import whole_number
from soniq.contracts import ContractsReport, check_waiting_jobs
from soniq.db.connection import Database
from soniq.db.jobs import JobStore
from soniq.db.migrate import check_current, migrate
from soniq.db.workers import WorkerStore
from soniq.dead_letter import DeadLetterQueue
from soniq.enqueue import Enqueuer
from soniq.errors import (
    ConfigurationError,
    JobNotFoundError,
    RegistrationError,
)
from soniq.job import Job, JobState
from soniq.metrics import Metrics
from soniq.periodic import Schedules, ScheduleSpec
from soniq.registry import Middleware, Registry, Upcaster, build_spec
from soniq.results import wait_for_result
from soniq.settings import (
    Settings,
    WorkerSettings,
    queue_names,
    resolve_database_url,
    resolve_schema,
)
from soniq.status import Status
from soniq.task_ref import ArgsT, TaskRef
from soniq.worker.attempt import RetryPolicy
from soniq.worker.drain import drain
from soniq.worker.worker import Worker

logger = logging.getLogger("soniq")

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=BaseModel)


class Soniq:
    """A Soniq app: enqueue jobs, register handlers, run workers, inspect jobs.

    Producer and consumer are roles, not classes: a producer only enqueues, a consumer also
    registers handlers with :meth:`job` and calls :meth:`run_worker`. Nothing connects
    until the first operation.
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
    ) -> None:
        self.settings = Settings(
            resolve_database_url(database_url),
            resolve_schema(schema),
            default_retries=default_retries,
            retry_backoff=retry_backoff,
            retry_backoff_max=retry_backoff_max,
            max_args_bytes=max_args_bytes,
            done_retention=done_retention,
            dead_retention=dead_retention,
            pool_size=pool_size,
        )
        self.schema = self.settings.schema
        self._database = Database(self.settings.database_url, self.schema, pool_size=pool_size)
        self._retry_policy = RetryPolicy(retry_backoff, retry_backoff_max)
        self._store = JobStore(self.schema)
        self._registry = Registry()
        self._worker: Worker | None = None
        self._metrics: Metrics | None = None
        self._enqueuer = Enqueuer(self.settings, self._database, self._store, self._registry)
        self._schedules = Schedules(self._enqueuer)
        self.dead_letter = DeadLetterQueue(self._store, self._database)

    # -- connection ---------------------------------------------------------------------

    async def setup(self) -> None:
        """Create or upgrade the Soniq schema (safe to run from many processes at once)."""
        pool = await self._database.pool()
        with self._database.errors():
            async with pool.acquire() as conn:
                applied = await migrate(conn, self.schema)
        if applied:
            logger.info("schema %s: applied migrations %s", self.schema, applied)

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
        """Close the connection pool and the metrics server. The app can be used again; it
        reconnects."""
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

    # -- registration -------------------------------------------------------------------

    def job(
        self,
        ref: TaskRef[Any] | None = None,
        /,
        *,
        name: str | None = None,
        validate: type[BaseModel] | None = None,
        queue: str | None = None,
        retries: int | None = None,
        timeout: timedelta | float | None = None,
        priority: int | None = None,
        result: type[BaseModel] | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated function as the handler of a task.

        ``@app.job(name="billing.send")`` or ``@app.job(SEND_INVOICE)`` (name, model and queue
        from the ref). The handler receives the validated args as keyword arguments, and a
        :class:`~soniq.JobContext` if it declares a parameter annotated with it. Its return
        value is stored as the job's result (JSON; validated against ``result`` if given).
        """
        if ref is not None:
            if not isinstance(ref, TaskRef):
                raise RegistrationError(
                    "@app.job() takes a TaskRef positionally or name=...; "
                    f"got {ref!r} (did you mean @app.job(name={ref!r})?)"
                )
            if name is not None and name != ref.name:
                raise RegistrationError(f"@app.job({ref.name!r}) got a different name={name!r}")
            name = ref.name
            validate = validate or ref.args_model
            queue = queue or ref.default_queue
        if name is None:
            raise RegistrationError("@app.job needs a task name: @app.job(name='billing.send')")
        task_name = name

        def register(handler: F) -> F:
            spec = build_spec(
                handler,
                name=task_name,
                validate=validate,
                queue=queue,
                retries=self.settings.default_retries if retries is None else retries,
                timeout=timeout,
                priority=priority,
                ref=ref,
                result_model=result,
            )
            self._registry.add(spec)
            return handler

        return register

    def upcaster(
        self, ref: TaskRef[Any], /, *, from_version: int
    ) -> Callable[[Upcaster], Upcaster]:
        """Register a function turning version ``from_version`` args of ``ref``'s task into
        version ``from_version + 1`` args (a dict in, a dict out).

        At dispatch, a job written against an older contract version passes through the
        chain of upcasters up to the version this worker runs, then through validation::

            @app.upcaster(SEND_INVOICE, from_version=1)
            def add_currency(args: dict) -> dict:
                return {**args, "currency": "EUR"}
        """
        if not isinstance(ref, TaskRef) or ref.version is None:
            raise RegistrationError(
                "@app.upcaster() needs a versioned TaskRef (from a generated contract package "
                "or task_ref(..., version=N))"
            )
        whole_number(
            from_version,
            f"@app.upcaster({ref.name!r}) of a version {ref.version} ref: from_version",
            minimum=1,
            maximum=ref.version - 1,
            error=RegistrationError,
        )

        def register(upcaster: Upcaster) -> Upcaster:
            if not callable(upcaster):
                raise RegistrationError(f"@app.upcaster({ref.name!r}) must decorate a function")
            self._registry.add_upcaster(ref.name, from_version, upcaster)
            return upcaster

        return register

    def middleware(self, middleware: Middleware) -> Middleware:
        """Register ``async def mw(ctx: JobContext, call_next) -> Any`` around every job this
        app's workers run; the first registered is outermost. ``await call_next()`` runs the
        rest of the chain and the handler and returns its result; an exception escaping the
        middleware fails the attempt like one from the handler."""
        if not callable(middleware):
            raise RegistrationError("@app.middleware must decorate an async function")
        self._registry.middleware.append(middleware)
        return middleware

    @overload
    def periodic(
        self,
        target: TaskRef[Any],
        /,
        *,
        cron: str | None = None,
        every: timedelta | None = None,
        timezone: str = "UTC",
        args: Mapping[str, Any] | BaseModel | None = None,
        queue: str | None = None,
        priority: int | None = None,
        catch_up: int = 1,
    ) -> None: ...

    @overload
    def periodic(
        self,
        target: None = None,
        /,
        *,
        cron: str | None = None,
        every: timedelta | None = None,
        timezone: str = "UTC",
        args: Mapping[str, Any] | BaseModel | None = None,
        queue: str | None = None,
        priority: int | None = None,
        catch_up: int = 1,
    ) -> Callable[[F], F]: ...

    def periodic(
        self,
        target: TaskRef[Any] | None = None,
        /,
        *,
        cron: str | None = None,
        every: timedelta | None = None,
        timezone: str = "UTC",
        args: Mapping[str, Any] | BaseModel | None = None,
        queue: str | None = None,
        priority: int | None = None,
        catch_up: int = 1,
    ) -> Callable[[F], F] | None:
        """Enqueue a task on a schedule, from inside this app's workers.

        Stacked above ``@app.job``: ``@app.periodic(cron="*/5 * * * *",
        timezone="Europe/Berlin")`` or ``@app.periodic(every=timedelta(minutes=5))``; or
        for a task ref with fixed args: ``app.periodic(SEND_REPORT, args={...}, cron=...)``.
        Each tick is enqueued exactly once however many workers run. After downtime, at
        most ``catch_up`` missed ticks are enqueued (the most recent ones; 0: none).
        """
        spec = ScheduleSpec.check(cron, every, timezone, args, queue, priority, catch_up)
        if target is not None:
            if not isinstance(target, TaskRef):
                raise RegistrationError(
                    "app.periodic() takes a TaskRef positionally, or decorates a registered job"
                )
            self._schedules.add(target, spec)
            return None

        def decorate(handler: F) -> F:
            if self._registry.for_handler(handler) is None:
                raise RegistrationError(
                    "@app.periodic must be stacked above @app.job (it schedules a registered "
                    f"job; {getattr(handler, '__qualname__', handler)!r} is not one)"
                )
            self._schedules.add(handler, spec)
            return handler

        return decorate

    # -- enqueue ------------------------------------------------------------------------

    @overload
    async def enqueue(
        self,
        target: TaskRef[ArgsT],
        args: ArgsT | Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        scheduled_at: datetime | None = None,
        delay: timedelta | float | None = None,
        dedup_key: str | None = None,
        connection: asyncpg.Connection | None = None,
    ) -> int: ...

    @overload
    async def enqueue(
        self,
        target: str | Callable[..., Any],
        args: Mapping[str, Any] | BaseModel | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        scheduled_at: datetime | None = None,
        delay: timedelta | float | None = None,
        dedup_key: str | None = None,
        connection: asyncpg.Connection | None = None,
    ) -> int: ...

    async def enqueue(
        self,
        target: TaskRef[Any] | str | Callable[..., Any],
        args: Mapping[str, Any] | BaseModel | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        scheduled_at: datetime | None = None,
        delay: timedelta | float | None = None,
        dedup_key: str | None = None,
        connection: asyncpg.Connection | None = None,
    ) -> int:
        """Validate and store one job; returns its id.

        ``target`` is a task name, a :class:`TaskRef` or a registered function. With
        ``connection=`` the job is written in the caller's transaction: it exists only if
        that transaction commits, and workers are woken at commit. With ``dedup_key`` a
        second enqueue while the first job is queued or running returns the first job's id.
        """
        job = self._enqueuer.prepare(
            target,
            args,
            queue=queue,
            priority=priority,
            scheduled_at=scheduled_at,
            delay=delay,
            dedup_key=dedup_key,
            trace_context=tracing.inject(),
        )
        return await self._enqueuer.enqueue(job, connection)

    @overload
    async def enqueue_many(
        self,
        target: TaskRef[ArgsT],
        args_list: Sequence[ArgsT | Mapping[str, Any]],
        *,
        queue: str | None = None,
        priority: int | None = None,
        scheduled_at: datetime | None = None,
        delay: timedelta | float | None = None,
        connection: asyncpg.Connection | None = None,
    ) -> list[int]: ...

    @overload
    async def enqueue_many(
        self,
        target: str | Callable[..., Any],
        args_list: Sequence[Mapping[str, Any] | BaseModel],
        *,
        queue: str | None = None,
        priority: int | None = None,
        scheduled_at: datetime | None = None,
        delay: timedelta | float | None = None,
        connection: asyncpg.Connection | None = None,
    ) -> list[int]: ...

    async def enqueue_many(
        self,
        target: TaskRef[Any] | str | Callable[..., Any],
        args_list: Sequence[Any],
        *,
        queue: str | None = None,
        priority: int | None = None,
        scheduled_at: datetime | None = None,
        delay: timedelta | float | None = None,
        connection: asyncpg.Connection | None = None,
    ) -> list[int]:
        """Validate and store many jobs of one task, all or nothing: one bad item writes
        nothing and the error names its index. Items go in chunks inside one transaction;
        returns ids in input order."""
        return await self._enqueuer.enqueue_many(
            target,
            list(args_list),
            queue=queue,
            priority=priority,
            scheduled_at=scheduled_at,
            delay=delay,
            trace_context=tracing.inject(),
            connection=connection,
        )

    def validate_args(
        self, target: TaskRef[Any] | str | Callable[..., Any], args: Mapping[str, Any] | BaseModel
    ) -> dict[str, Any]:
        """The args as :meth:`enqueue` would store them (validated through the task's model,
        defaults filled in, as JSON), without storing anything; raises the same
        :class:`EnqueueError` subclasses, e.g. to answer an HTTP request with 422 before
        any transaction starts."""
        job = self._enqueuer.prepare(target, args, queue=None, priority=None, trace_context=None)
        stored: dict[str, Any] = json.loads(job.args_json)
        return stored

    # -- inspection ---------------------------------------------------------------------

    async def get_job(self, job_id: int) -> Job:
        """The job with this id; raises :class:`JobNotFoundError` if there is none."""
        pool = await self._database.pool()
        with self._database.errors():
            job = await self._store.reads.get(pool, job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    async def list_jobs(
        self,
        *,
        state: JobState | str | None = None,
        queue: str | None = None,
        task_name: str | None = None,
        limit: int | None = 100,
    ) -> list[Job]:
        """Jobs matching every given filter, newest first (at most ``limit``; None: all)."""
        state_value = None if state is None else JobState(state).value
        if limit is not None:
            whole_number(limit, "limit", minimum=1)
        pool = await self._database.pool()
        with self._database.errors():
            return await self._store.reads.list_jobs(
                pool, state=state_value, queue=queue, task_name=task_name, limit=limit
            )

    @overload
    async def get_result(self, job_id: int, *, timeout: timedelta | float) -> Any: ...

    @overload
    async def get_result(self, job_id: int, *, timeout: timedelta | float, model: type[M]) -> M: ...

    async def get_result(
        self,
        job_id: int,
        *,
        timeout: timedelta | float,
        model: type[BaseModel] | None = None,
    ) -> Any:
        """Wait for the job to finish and return its handler's return value (parsed JSON, or
        an instance of ``model``). Raises :class:`JobFailedError` if the job is dead-lettered
        or cancelled, :class:`ResultTimeoutError` if it has not finished within ``timeout``,
        and :class:`JobNotFoundError` if it does not exist (or was pruned)."""
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        return await wait_for_result(
            self._database, self._store, job_id, seconds=seconds, model=model
        )

    async def cancel(self, job_id: int) -> bool:
        """Cancel a job: a queued job becomes ``cancelled`` at once; a running one is asked to
        stop (its worker cancels the handler within about a second, and the job ends
        ``cancelled``, not retried). False when the job is already finished or missing."""
        pool = await self._database.pool()
        with self._database.errors():
            return await self._store.actions.cancel(pool, job_id) is not None

    async def status(self) -> Status:
        """Per-queue counts, live workers, and jobs waiting for a newer consumer."""
        pool = await self._database.pool()
        with self._database.errors():
            return Status(
                queues=await self._store.reads.queue_stats(pool),
                workers=await WorkerStore(self.schema).live(pool),
                waiting_for_newer_consumer=await self._store.reads.waiting_for_newer_consumer(pool),
            )

    async def check_contracts(self, refs: Iterable[TaskRef[Any]] | None = None) -> ContractsReport:
        """Test every queued, scheduled and dead job of these tasks (default: the tasks this
        app registered from refs) as a worker of this app would: upcasters, then validation."""
        if refs is None:
            refs = self._registry.refs()
        refs = list(refs)
        upcasters = {ref.name: self._registry.upcasters(ref.name) for ref in refs}
        async with self.connection() as conn:
            with self._database.errors():
                return await check_waiting_jobs(conn, self._store.reads, refs, upcasters)

    # -- worker -------------------------------------------------------------------------

    async def run_worker(
        self,
        queues: Sequence[str] | None = None,
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
        pool = await self._database.pool()
        with self._database.errors():
            async with pool.acquire() as conn:
                await check_current(conn, self.schema)
        worker = Worker(
            database=self._database,
            pool=pool,
            store=self._store,
            registry=self._registry,
            config=config,
            app_settings=self.settings,
            retry_policy=self._retry_policy,
            schedules=self._schedules.all,
            metrics=self._metrics,
        )
        self._worker = worker
        try:
            await worker.run()
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
        time, until no due job is left; returns how many attempts ran. Meant for tests.

        Each job is claimed with a lease exactly as a worker claims it (priority, then age;
        contract versions this app cannot run are left alone), its args are upcast and
        validated, the handler runs through the app's middleware, and the outcome (done,
        retry with backoff, dead) is written as a worker writes it. Jobs that handlers
        enqueue meanwhile run too; a retry runs again only if its backoff has passed before
        the drain ends. A job of a task this app has no handler for is dead-lettered, as a
        worker of this app would do. ``app.cancel()`` does not reach a job while it runs.
        """
        return await drain(
            self._database,
            self._store,
            self._registry,
            policy=self._retry_policy,
            queues=queue_names(queues),
        )
