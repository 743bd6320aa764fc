"""Cron expressions for periodic jobs, evaluated by the cronsim library in a time zone.

Five fields, ``minute hour day-of-month month day-of-week``, with what cron allows in them:
lists, ranges, steps, month and day names (``JAN``, ``mon-fri``), ``L`` for a month's last
day; or one of the macros ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily``
(``@midnight``) and ``@hourly``. When both day fields are restricted, either matching is
enough, as in every cron.

Daylight saving time, as Debian's cron does it: a wall time that does not exist (the clock
jumps forward over it) fires once, at the end of the gap (02:30 in Europe/Berlin on the
spring-forward day fires at 03:00); a wall time that happens twice (the clock falls back)
fires at its first occurrence, and again at the second only when the hour field is ``*``
(so ``*/5 * * * *`` keeps running every five minutes while ``30 2 * * *`` runs once).
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

# cronsim reads five fields only (and a sixth for seconds, which schedules do not have).
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class Cron:
    """A checked cron expression; :meth:`next_after` finds its next tick in a time zone."""

    def __init__(self, expression: str) -> None:
        fields = MACROS.get(expression.strip().lower(), expression)
        if len(fields.split()) != 5:
            raise ValueError(
                f"cron expression {expression!r} needs 5 fields (minute hour day-of-month "
                f"month day-of-week) or a macro ({', '.join(MACROS)})"
            )
        try:
            # Parsing checks every field, and refuses a day that no month has (31 February).
            CronSim(fields, datetime(2000, 1, 1, tzinfo=timezone.utc))
        except CronSimError as exc:
            raise ValueError(f"cron expression {expression!r}: {exc}") from None
        self.expression = expression
        self._fields = fields

    def __repr__(self) -> str:
        return f"Cron({self.expression!r})"

    def next_after(self, after: datetime, zone: ZoneInfo) -> datetime:
        """The first instant (UTC) strictly after ``after`` at which this expression fires."""
        tick = next(CronSim(self._fields, after.astimezone(zone)))
        return tick.astimezone(timezone.utc)
