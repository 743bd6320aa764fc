"""How long a failed attempt waits before the next: the app's default, or a task's own
(``@app.job(..., backoff=...)``)."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from soniq.checks import duration
from soniq.errors import RegistrationError

logger = logging.getLogger("soniq.worker")

# A task's own backoff: attempt number (1 for the first failure) -> delay.
BackoffFunction = Callable[[int], "timedelta | float"]


class Delays(Protocol):
    """What the worker asks after a failed attempt."""

    def delay(self, attempt: int) -> float: ...


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: after attempt n the job waits ``min(cap, base * 2**(n-1))``,
    or with ``jitter`` (the default) a random time between half and all of that, so jobs
    that failed together do not all come back together. ``base`` and ``cap`` are
    timedeltas or seconds."""

    base: timedelta | float = timedelta(seconds=1)
    cap: timedelta | float = timedelta(minutes=10)
    jitter: bool = True

    def __post_init__(self) -> None:
        for field in ("base", "cap"):
            value = duration(
                getattr(self, field), f"Backoff {field}", seconds=True, error=RegistrationError
            )
            object.__setattr__(self, field, value)
        if not isinstance(self.jitter, bool):
            raise RegistrationError("Backoff jitter must be True or False")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt``."""
        base, cap = _seconds(self.base), _seconds(self.cap)
        ceiling = min(cap, base * 2.0 ** min(attempt - 1, 1000))  # 2.0**1024 overflows
        if not self.jitter:
            return ceiling
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def _seconds(value: timedelta | float) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


@dataclass(frozen=True)
class TaskBackoff:
    """A task's own backoff function; when it raises or returns something other than a
    delay of zero or more, that is logged and the app's backoff decides instead."""

    function: BackoffFunction
    fallback: Backoff

    def delay(self, attempt: int) -> float:
        try:
            value = self.function(attempt)
            seconds = value.total_seconds() if isinstance(value, timedelta) else value
            if (
                isinstance(seconds, (int, float))
                and not isinstance(seconds, bool)
                and math.isfinite(seconds)
                and seconds >= 0
            ):
                return float(seconds)
            problem = f"returned {value!r}, not a timedelta or seconds >= 0"
        except Exception as exc:
            problem = f"raised {type(exc).__name__}: {exc}"
        logger.warning("backoff function %r %s; using the app's backoff", self.function, problem)
        return self.fallback.delay(attempt)


def check_backoff(backoff: object, what: str) -> Backoff | BackoffFunction | None:
    """``backoff=`` of ``@app.job``: None, a :class:`Backoff`, or a function of the attempt."""
    if backoff is None or isinstance(backoff, Backoff):
        return backoff
    if callable(backoff):
        function: BackoffFunction = backoff
        return function
    raise RegistrationError(
        f"{what}: backoff= must be a soniq.Backoff or a function of the attempt number "
        f"returning a timedelta or seconds, got {backoff!r}"
    )


def for_task(backoff: Backoff | BackoffFunction | None, app_backoff: Backoff) -> Delays:
    """The delays of a task registered with ``backoff`` (None: the app's)."""
    if backoff is None:
        return app_backoff
    if isinstance(backoff, Backoff):
        return backoff
    return TaskBackoff(backoff, app_backoff)
