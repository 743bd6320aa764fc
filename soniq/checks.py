"""The value checks every option goes through, written once: whole numbers and durations."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TypeGuard

from soniq.errors import ConfigurationError, SoniqError
from soniq.job import JobState

INT32 = range(-(2**31), 2**31)


def is_whole_number(value: object) -> TypeGuard[int]:
    """An ``int`` that is not a ``bool`` (``True`` is an int to Python, never to us)."""
    return isinstance(value, int) and not isinstance(value, bool)


def whole_number(
    value: object,
    what: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    error: type[SoniqError] = ConfigurationError,
) -> int:
    """``value`` if it is a whole number within the bounds; else ``error`` naming ``what``."""
    if (
        is_whole_number(value)
        and (minimum is None or value >= minimum)
        and (maximum is None or value <= maximum)
    ):
        return value
    if minimum is not None and maximum is not None:
        bounds = f" from {minimum} to {maximum}"
    elif minimum is not None:
        bounds = f" >= {minimum}"
    elif maximum is not None:
        bounds = f" <= {maximum}"
    else:
        bounds = ""
    raise error(f"{what} must be an integer{bounds}, got {value!r}")


BIGINT = range(1, 2**63)  # job ids are bigint identities


def possible_job_ids(value: object) -> list[int]:
    """The job ids in ``value`` (one id or a sequence of them) that can exist; anything but
    whole numbers is a :class:`ConfigurationError`. An id beyond bigint names no job."""
    ids = [value] if is_whole_number(value) else value
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
        raise ConfigurationError(f"job ids must be integers, got {value!r}")
    checked = list(ids)
    if not all(is_whole_number(i) for i in checked):
        raise ConfigurationError(f"job ids must be integers, got {value!r}")
    return [i for i in checked if i in BIGINT]


def job_state(state: object) -> str:
    """``state``'s value, or a :class:`ConfigurationError` listing the states."""
    try:
        return JobState(state).value
    except ValueError:
        states = ", ".join(s.value for s in JobState)
        raise ConfigurationError(f"unknown job state {state!r}: one of {states}") from None


def duration(
    value: object,
    what: str,
    *,
    seconds: bool = False,
    positive: bool = True,
    error: type[SoniqError] = ConfigurationError,
) -> timedelta:
    """``value`` as a timedelta: a timedelta, or with ``seconds`` a finite number of seconds;
    with ``positive`` it must be above zero. Anything else is ``error`` naming ``what``."""
    kind = "a positive timedelta" if positive else "a timedelta"
    if seconds:
        kind += " or a number of seconds"
    if seconds and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise error(f"{what} must be {kind}, got {value!r}")
        try:
            value = timedelta(seconds=value)
        except OverflowError:
            raise error(f"{what} must be {kind} within timedelta's range, got {value!r}") from None
    if not isinstance(value, timedelta) or (positive and value <= timedelta(0)):
        raise error(f"{what} must be {kind}, got {value!r}")
    return value
