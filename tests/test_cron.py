"""Cron expressions and their ticks, including daylight saving time in Europe/Berlin."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from soniq.cron import Cron

BERLIN = ZoneInfo("Europe/Berlin")
UTC = ZoneInfo("UTC")


def ticks(expression: str, start: datetime, count: int, zone: ZoneInfo = BERLIN) -> list[str]:
    cron, out, at = Cron(expression), [], start
    for _ in range(count):
        at = cron.next_after(at, zone)
        out.append(at.astimezone(zone).isoformat())
    return out


def test_every_five_minutes_and_strictly_after() -> None:
    start = datetime(2026, 1, 5, 10, 5, tzinfo=BERLIN)
    assert ticks("*/5 * * * *", start, 3) == [
        "2026-01-05T10:10:00+01:00",
        "2026-01-05T10:15:00+01:00",
        "2026-01-05T10:20:00+01:00",
    ]
    assert ticks("*/5 * * * *", start - timedelta(seconds=1), 1) == ["2026-01-05T10:05:00+01:00"]


def test_lists_ranges_and_steps() -> None:
    start = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)  # a Monday
    assert ticks("0,30 9-10 * * *", start, 5, UTC) == [
        "2026-01-05T09:00:00+00:00",
        "2026-01-05T09:30:00+00:00",
        "2026-01-05T10:00:00+00:00",
        "2026-01-05T10:30:00+00:00",
        "2026-01-06T09:00:00+00:00",
    ]
    assert ticks("15 8-18/5 * * *", start, 3, UTC) == [
        "2026-01-05T08:15:00+00:00",
        "2026-01-05T13:15:00+00:00",
        "2026-01-05T18:15:00+00:00",
    ]
    assert ticks("10/20 0 * * *", start, 3, UTC) == [
        "2026-01-05T00:10:00+00:00",
        "2026-01-05T00:30:00+00:00",
        "2026-01-05T00:50:00+00:00",
    ]
    # Saturdays and Sundays (0 and 7 are both Sunday)
    assert ticks("0 12 * * 6,7", start, 3, UTC) == [
        "2026-01-10T12:00:00+00:00",
        "2026-01-11T12:00:00+00:00",
        "2026-01-17T12:00:00+00:00",
    ]
    assert ticks("0 0 1 */3 *", start, 2, UTC) == [
        "2026-04-01T00:00:00+00:00",
        "2026-07-01T00:00:00+00:00",
    ]


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    start = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)  # a Thursday
    # the 13th, or any Friday
    assert ticks("0 0 13 * 5", start, 3, UTC) == [
        "2026-01-02T00:00:00+00:00",
        "2026-01-09T00:00:00+00:00",
        "2026-01-13T00:00:00+00:00",
    ]


def test_leap_day() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert ticks("0 0 29 2 *", start, 1, UTC) == ["2028-02-29T00:00:00+00:00"]


@pytest.mark.parametrize(
    "expression",
    [
        "* * * *",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * * 13 *",
        "* * * * 8",
        "* * * * * *",
        "a * * * *",
        "*/0 * * * *",
        "5-1 * * * *",
        "-1 * * * *",
    ],
)
def test_invalid_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ValueError):
        Cron(expression)


def test_an_expression_that_never_fires_is_refused() -> None:
    with pytest.raises(ValueError, match="day-of-month"):
        Cron("0 0 31 2 *")


def test_names_and_macros() -> None:
    start = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # a Monday
    assert ticks("0 9 * JAN-MAR sat,sun", start, 2, UTC) == [
        "2026-01-10T09:00:00+00:00",
        "2026-01-11T09:00:00+00:00",
    ]
    assert ticks("@hourly", start, 2, UTC) == [
        "2026-01-05T11:00:00+00:00",
        "2026-01-05T12:00:00+00:00",
    ]
    assert ticks("@weekly", start, 1, UTC) == ["2026-01-11T00:00:00+00:00"]
    assert ticks("@yearly", start, 1, UTC) == ["2027-01-01T00:00:00+00:00"]
    with pytest.raises(ValueError, match="@hourly"):
        Cron("@fortnightly")


def test_spring_forward_gap_fires_once_at_the_end_of_the_gap() -> None:
    # 29 March 2026: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day
    start = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN)
    assert ticks("30 2 * * *", start, 3) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]
    # an hourly job skips nothing and runs nothing twice
    assert ticks("0 * * * *", datetime(2026, 3, 29, 0, 30, tzinfo=BERLIN), 3) == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T04:00:00+02:00",
    ]


def test_fall_back_overlap_fixed_hour_runs_once_wildcard_hour_keeps_its_pace() -> None:
    # 25 October 2026: 03:00 CEST falls back to 02:00 CET; 02:xx happens twice
    start = datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN)
    assert ticks("30 2 * * *", start, 2) == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]
    start = datetime(2026, 10, 25, 1, 45, tzinfo=BERLIN)
    assert ticks("*/30 * * * *", start, 5) == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]


def test_ticks_are_utc_instants_whatever_zone_the_input_is_in() -> None:
    after = datetime(2026, 7, 1, 9, 59, tzinfo=timezone(timedelta(hours=-4)))
    tick = Cron("0 16 * * *").next_after(after, BERLIN)
    assert tick.tzinfo is timezone.utc
    assert tick == datetime(2026, 7, 1, 14, 0, tzinfo=timezone.utc)
