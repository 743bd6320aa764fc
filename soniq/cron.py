"""A small five-field cron expression, evaluated in a time zone.

``minute hour day-of-month month day-of-week``; each field is ``*`` or a comma-separated
list of numbers and ``a-b`` ranges, each optionally ``/step`` (``a/step`` runs from ``a`` to
the field's maximum). Day of week is 0-6 from Sunday (7 is Sunday too). When both day
fields are restricted, either matching is enough, as in every cron.

Daylight saving time: a wall time that does not exist (the clock jumps forward over it)
fires once, shifted forward by the gap (02:30 becomes 03:30 in Europe/Berlin); a wall time
that happens twice (the clock falls back) fires at its first occurrence, and again at the
second only when the hour field is ``*`` (so ``*/5 * * * *`` keeps running every five
minutes while ``30 2 * * *`` runs once that day).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12))
# No real shift between wall time and UTC exceeds this, in any zone.
_MAX_SHIFT = timedelta(hours=3)
_MAX_DAYS = 366 * 8  # long enough for any satisfiable expression (29 Feb on a Monday)


def _parse_field(text: str, name: str, low: int, high: int) -> tuple[frozenset[int], bool]:
    """The values a field allows, and whether it was ``*``."""
    values: set[int] = set()
    for item in text.split(","):
        spec, _, step_text = item.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if spec == "*":
                start, end = low, high
            elif "-" in spec:
                first, _, last = spec.partition("-")
                start, end = int(first), int(last)
            else:
                start = int(spec)
                end = high if step_text else start
        except ValueError:
            raise ValueError(
                f"cron {name} field {text!r}: {item!r} is not a number, range or *"
            ) from None
        if step < 1 or not (low <= start <= end <= high):
            raise ValueError(
                f"cron {name} field {text!r}: {item!r} is outside {low}-{high} or has a bad step"
            )
        values.update(range(start, end + 1, step))
    return frozenset(values), text == "*"


def _steady(zone: ZoneInfo, instant: datetime) -> bool:
    """Whether the zone's offset does not change within _MAX_SHIFT of ``instant``."""
    return (instant - _MAX_SHIFT).astimezone(zone).utcoffset() == (instant + _MAX_SHIFT).astimezone(
        zone
    ).utcoffset()


class Cron:
    """A parsed cron expression; :meth:`next_after` finds its next tick in a time zone."""

    def __init__(self, expression: str) -> None:
        fields = expression.split()
        if len(fields) != 5:
            raise ValueError(
                f"cron expression {expression!r} needs 5 fields "
                "(minute hour day-of-month month day-of-week)"
            )
        self.expression = expression
        parsed = [_parse_field(text, *spec) for text, spec in zip(fields, _FIELDS, strict=False)]
        (self._minutes, _), (self._hours, self._any_hour), (self._days, any_day) = parsed[:3]
        self._months = parsed[3][0]
        weekdays, any_weekday = _parse_field(fields[4], "day of week", 0, 7)
        self._weekdays = frozenset(d % 7 for d in weekdays)
        # both restricted: either may match; one restricted: it alone decides
        self._either_day = not any_day and not any_weekday
        self._any_day, self._any_weekday = any_day, any_weekday
        self._sorted_hours = sorted(self._hours)
        self._sorted_minutes = sorted(self._minutes)

    def __repr__(self) -> str:
        return f"Cron({self.expression!r})"

    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self._months:
            return False
        in_month = day.day in self._days
        in_week = (day.weekday() + 1) % 7 in self._weekdays
        if self._either_day:
            return in_month or in_week
        return in_month and in_week

    def _wall_times(self, start: datetime) -> Iterator[datetime]:
        """Matching naive wall times from ``start`` (inclusive), in order."""
        day = start.replace(hour=0, minute=0)
        for _ in range(_MAX_DAYS):
            if self._day_matches(day):
                for hour in self._sorted_hours:
                    if day < start and hour < start.hour:
                        continue
                    for minute in self._sorted_minutes:
                        wall = day.replace(hour=hour, minute=minute)
                        if wall >= start:
                            yield wall
            day += timedelta(days=1)
        raise ValueError(f"cron expression {self.expression!r} never fires")

    def _instants(self, wall: datetime, zone: ZoneInfo) -> list[datetime]:
        first = wall.replace(tzinfo=zone, fold=0).astimezone(timezone.utc)
        second = wall.replace(tzinfo=zone, fold=1).astimezone(timezone.utc)
        if first < second and self._any_hour:  # a repeated wall time
            return [first, second]
        # a normal one, a repeated one (first occurrence), or a skipped one (fold=0 maps it
        # past the gap)
        return [first]

    def next_after(self, after: datetime, zone: ZoneInfo) -> datetime:
        """The first instant (UTC) strictly after ``after`` at which this expression fires."""
        after = after.astimezone(timezone.utc)
        local = after.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
        # The usual case: no offset change near by, so wall order is instant order.
        for wall in self._wall_times(local):
            first = wall.replace(tzinfo=zone).astimezone(timezone.utc)
            if first > after:
                if _steady(zone, after) and _steady(zone, first):
                    return first
                break
        best: datetime | None = None
        best_wall: datetime | None = None
        # Wall order and instant order differ by at most _MAX_SHIFT around a transition.
        for wall in self._wall_times(local - _MAX_SHIFT):
            if best_wall is not None and wall > best_wall + 2 * _MAX_SHIFT:
                break
            for instant in self._instants(wall, zone):
                if instant > after and (best is None or instant < best):
                    best, best_wall = instant, wall
        assert best is not None
        return best
