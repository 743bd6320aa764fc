"""Periodic schedules: registering them on an app, when each is due, and which ticks a
worker enqueues."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from soniq.checks import duration, whole_number
from soniq.cron import Cron
from soniq.enqueue import Enqueuer
from soniq.errors import RegistrationError
from soniq.job import NewJob
from soniq.registry import F, Registry

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# A tick handled within this long of its time is on time, not a missed one.
ON_TIME = timedelta(seconds=10)
# How far back missed cron ticks are looked for, widening until enough are found.
_LOOKBACK = (timedelta(hours=1), timedelta(days=1), timedelta(days=32), timedelta(days=367))


@dataclass(frozen=True)
class Schedule:
    """One periodic job: a cron expression in a zone, or a fixed interval from the epoch."""

    key: str
    job: NewJob
    cron: Cron | None
    every: timedelta | None
    zone: ZoneInfo
    catch_up: int

    def next_after(self, after: datetime) -> datetime:
        """The first tick strictly after ``after``."""
        if self.cron is not None:
            return self.cron.next_after(after, self.zone)
        assert self.every is not None
        return _EPOCH + ((after - _EPOCH) // self.every + 1) * self.every

    def due_ticks(self, last: datetime | None, now: datetime) -> list[datetime]:
        """The ticks to enqueue now, oldest first, given the last one enqueued: the tick
        that just came (if within ON_TIME), and at most ``catch_up`` earlier missed ones.
        A schedule never enqueued before starts now: nothing is caught up."""
        floor = now - ON_TIME if last is None else last
        wanted = self.catch_up + 1
        lookbacks = _LOOKBACK if self.every is None else ((wanted + 1) * self.every,)
        for lookback in lookbacks:
            ticks: deque[datetime] = deque(maxlen=wanted)
            tick = self.next_after(max(floor, now - lookback))
            while tick <= now:
                ticks.append(tick)
                tick = self.next_after(tick)
            if len(ticks) == wanted or floor >= now - lookback:
                break
        on_time = [t for t in list(ticks)[-1:] if now - t <= ON_TIME]
        if last is None:
            return on_time
        missed = [t for t in ticks if t not in on_time]
        return missed[len(missed) - self.catch_up :] + on_time if self.catch_up else on_time


@dataclass(frozen=True)
class ScheduleSpec:
    """When and with what a periodic task is enqueued, as ``app.periodic`` was given it."""

    cron: Cron | None
    every: timedelta | None
    timezone: str
    zone: ZoneInfo
    args: Mapping[str, Any] | BaseModel | None
    queue: str | None
    priority: int | None
    catch_up: int

    @classmethod
    def check(
        cls,
        cron: str | None,
        every: timedelta | float | None,
        timezone: str,
        args: Mapping[str, Any] | BaseModel | None,
        queue: str | None,
        priority: int | None,
        catch_up: int,
    ) -> ScheduleSpec:
        """The spec, or :class:`RegistrationError` naming what is wrong with the timing
        (``every`` is a timedelta or a number of seconds, as ``delay=`` is)."""
        parsed, interval, zone = _check_timing(cron, every, timezone, catch_up)
        return cls(parsed, interval, timezone, zone, args, queue, priority, catch_up)

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron {self.cron.expression} {self.timezone}"
        return f"every {self.every}"


class Schedules:
    """The periodic schedules registered on one app; its workers' scheduler runs them."""

    def __init__(self, enqueuer: Enqueuer) -> None:
        self._enqueuer = enqueuer
        self.all: list[Schedule] = []

    def decorator(self, registry: Registry, spec: ScheduleSpec) -> Callable[[F], F]:
        """What ``@app.periodic(...)`` returns: schedules the registered job it decorates."""

        def decorate(handler: F) -> F:
            if registry.for_handler(handler) is None:
                raise RegistrationError(
                    "@app.periodic must be stacked above @app.job (it schedules a registered "
                    f"job; {getattr(handler, '__qualname__', handler)!r} is not one)"
                )
            self.add(handler, spec)
            return handler

        return decorate

    def add(self, task: object, spec: ScheduleSpec) -> None:
        """Schedule ``task`` (a TaskRef or a registered handler); its args are validated
        now, so a bad schedule fails at registration, not at its first tick."""
        job = self._enqueuer.prepare(
            task,
            spec.args,
            queue=spec.queue,
            priority=spec.priority,
            trace_context=None,  # a schedule is not part of the registering code's trace
        )
        key = f"{job.task_name} {spec.describe()} {job.args_json}"
        if any(s.key == key for s in self.all):
            raise RegistrationError(f"periodic {key!r} is already registered")
        self.all.append(Schedule(key, job, spec.cron, spec.every, spec.zone, spec.catch_up))


def _check_timing(
    cron: str | None, every: timedelta | float | None, zone_name: str, catch_up: int
) -> tuple[Cron | None, timedelta | None, ZoneInfo]:
    """The parsed cron expression (None for ``every``), the interval (None for ``cron``)
    and time zone of a schedule, or :class:`RegistrationError` naming what is wrong."""
    if (cron is None) == (every is None):
        raise RegistrationError("@app.periodic needs exactly one of cron=... or every=...")
    parsed: Cron | None = None
    if cron is not None:
        try:
            parsed = Cron(cron)
        except ValueError as exc:
            raise RegistrationError(str(exc)) from None
    interval = None
    if every is not None:
        interval = duration(every, "every=", seconds=True, error=RegistrationError)
    try:
        zone = ZoneInfo(zone_name)
    except (ValueError, LookupError):
        raise RegistrationError(f"unknown time zone {zone_name!r}") from None
    whole_number(catch_up, "catch_up", minimum=0, error=RegistrationError)
    return parsed, interval, zone
