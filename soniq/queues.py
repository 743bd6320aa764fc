"""Queue settings (``app.configure_queue``, ``soniq queues``): the value type, and the
checks that turn what a caller passed into what the database stores.

A queue's settings live in the database (``queue_settings``, migration 0014), so they hold
for every worker at once and change while workers run; docs/runtime.md, "Steering queues".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import EllipsisType
from typing import TypeVar

from soniq.checks import whole_number
from soniq.errors import ConfigurationError

_RATE = re.compile(r"\s*(\d+)\s*/\s*([a-z]+)\s*")
_PERIODS = {
    "s": timedelta(seconds=1),
    "sec": timedelta(seconds=1),
    "second": timedelta(seconds=1),
    "min": timedelta(minutes=1),
    "minute": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "hour": timedelta(hours=1),
    "d": timedelta(days=1),
    "day": timedelta(days=1),
}
_UNIT_OF = {timedelta(seconds=1): "s", timedelta(minutes=1): "min", timedelta(hours=1): "h"}
_UNIT_OF[timedelta(days=1)] = "d"
_ARGS_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_MAX = 2**31 - 1  # the columns are integers

T = TypeVar("T")
# What configure_queue leaves as it is: a keyword not passed.
Unchanged = EllipsisType


@dataclass(frozen=True)
class QueueSettings:
    """How a queue is steered; a queue nobody configured has the defaults (nothing set).

    ``concurrency`` caps the jobs running at once, per distinct value of the args keys
    ``partition_by`` when it is set, else for the whole queue; ``rate_limit`` (``"100/s"``)
    caps the job starts in any period of that length, per partition likewise."""

    queue: str
    paused: bool = False
    concurrency: int | None = None
    rate_limit: str | None = None
    partition_by: tuple[str, ...] = ()
    updated_at: datetime | None = None  # None: never configured

    @property
    def limited(self) -> bool:
        """Whether claims of this queue go through the limited path."""
        return self.concurrency is not None or self.rate_limit is not None


def parse_rate(rate: str) -> tuple[int, timedelta]:
    """``"100/s"`` -> (100, 1 s); units ``s``, ``min``, ``h``, ``d`` (or spelled out)."""
    match = _RATE.fullmatch(rate.lower()) if isinstance(rate, str) else None
    unit = match[2] if match else ""
    if unit not in _PERIODS and unit.endswith("s"):
        unit = unit[:-1]  # plurals: "minutes"
    if match is None or unit not in _PERIODS:
        raise ConfigurationError(
            f"rate_limit must look like '100/s', '1000/min', '50/h' or '10/d', got {rate!r}"
        )
    count = whole_number(int(match[1]), "rate_limit's count", minimum=1, maximum=_MAX)
    return count, _PERIODS[unit]


def format_rate(count: int, period: timedelta) -> str:
    """The canonical text of a stored rate: (100, 1 s) -> ``"100/s"``."""
    unit = _UNIT_OF.get(period)
    return f"{count}/{unit}" if unit else f"{count}/{period.total_seconds():g}s"


def check_partition_by(keys: Sequence[str] | None) -> tuple[str, ...]:
    """The args keys to partition by, checked: plain names, no repeats."""
    if keys is None:
        return ()
    if isinstance(keys, str):
        raise ConfigurationError(
            f"partition_by must be a list of args keys, e.g. [{keys!r}], not a string"
        )
    checked = tuple(keys)
    for key in checked:
        if not isinstance(key, str) or not _ARGS_KEY.fullmatch(key):
            raise ConfigurationError(
                f"partition_by key {key!r} is not a plain args key (letters, digits and '_')"
            )
    if len(set(checked)) != len(checked):
        raise ConfigurationError(f"partition_by names a key twice: {list(checked)}")
    return checked


def updated(
    current: QueueSettings,
    *,
    paused: bool | Unchanged,
    concurrency: int | Unchanged | None,
    rate_limit: str | Unchanged | None,
    partition_by: Sequence[str] | Unchanged | None,
) -> QueueSettings:
    """``current`` with the given settings changed (``...``: left as it is), checked."""

    def given(value: T | Unchanged, old: T) -> T:
        return old if isinstance(value, EllipsisType) else value

    new_paused = given(paused, current.paused)
    if not isinstance(new_paused, bool):
        raise ConfigurationError(f"paused must be True or False, got {new_paused!r}")
    new_concurrency = given(concurrency, current.concurrency)
    if new_concurrency is not None:
        whole_number(new_concurrency, "concurrency", minimum=1, maximum=_MAX)
    new_rate = given(rate_limit, current.rate_limit)
    if new_rate is not None:
        new_rate = format_rate(*parse_rate(new_rate))
    keys = given(partition_by, current.partition_by)
    new_keys = check_partition_by(keys)
    if new_keys and new_concurrency is None and new_rate is None:
        raise ConfigurationError(
            "partition_by needs a concurrency or a rate_limit to apply per partition; "
            "set one of them too, or pass partition_by=None"
        )
    return QueueSettings(
        current.queue, new_paused, new_concurrency, new_rate, new_keys, current.updated_at
    )
