"""Output shared by the commands: timestamps, JSON, tables and ages."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from soniq.terminal import echo, printable


def timestamp(moment: datetime) -> str:
    """How every command prints a point in time, in text and in --json alike: ISO 8601, in
    UTC, to the second (``2026-12-03T14:05:09+00:00``)."""
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        return timestamp(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def to_json(value: Any) -> str:
    """``value`` as indented JSON, its timestamps as :func:`timestamp` prints them."""
    return json.dumps(value, indent=2, default=_json_value)


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def table(headers: list[str], rows: list[list[str]]) -> None:
    """Columns padded to their widest cell; cells are escaped before they are measured."""
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
