"""The registration half of the ``Soniq`` facade: the decorators a consumer registers
handlers, upcasters, middleware and periodic schedules with."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, overload

from pydantic import BaseModel

from soniq.backoff import Backoff, BackoffFunction
from soniq.errors import RegistrationError
from soniq.periodic import Schedules, ScheduleSpec
from soniq.registry import F, Middleware, Registry, Upcaster
from soniq.settings import Settings
from soniq.task_ref import TaskRef


class Registration:
    """What :class:`soniq.Soniq` offers a consumer before it runs a worker."""

    settings: Settings
    _registry: Registry
    _schedules: Schedules

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
        backoff: Backoff | BackoffFunction | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated function as the handler of a task.

        ``@app.job(name="billing.send")`` or ``@app.job(SEND_INVOICE)`` (name, model and queue
        from the ref). The handler receives the validated args as keyword arguments, and a
        :class:`~soniq.JobContext` if it declares a parameter annotated with it. Its return
        value is stored as the job's result (JSON; validated against ``result`` if given).

        A failed attempt is retried ``retries`` times, each after the task's ``backoff``: a
        :class:`~soniq.Backoff` (exponential, with jitter by default) or a function of the
        attempt number returning a timedelta or seconds; by default the app's
        ``retry_backoff`` and ``retry_backoff_max``. The handler may also raise
        :class:`~soniq.Retry`, :class:`~soniq.Discard` or :class:`~soniq.Snooze`.
        """
        return self._registry.job_decorator(
            ref,
            name=name,
            validate=validate,
            queue=queue,
            retries=self.settings.default_retries if retries is None else retries,
            timeout=timeout,
            priority=priority,
            result=result,
            backoff=backoff,
        )

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
        return self._registry.upcaster_decorator(ref, from_version)

    def middleware(self, middleware: Middleware) -> Middleware:
        """Register ``async def mw(ctx: JobContext, call_next) -> Any`` around every job this
        app's workers run; the first registered is outermost. ``await call_next()`` runs the
        rest of the chain and the handler and returns its result; an exception escaping the
        middleware fails the attempt like one from the handler."""
        return self._registry.add_middleware(middleware)

    @overload
    def periodic(
        self,
        target: TaskRef[Any],
        /,
        *,
        cron: str | None = None,
        every: timedelta | float | None = None,
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
        every: timedelta | float | None = None,
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
        every: timedelta | float | None = None,
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
        if target is None:
            return self._schedules.decorator(self._registry, spec)
        if not isinstance(target, TaskRef):
            raise RegistrationError(
                "app.periodic() takes a TaskRef positionally, or decorates a registered job"
            )
        self._schedules.add(target, spec)
        return None
