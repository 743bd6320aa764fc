"""Text for a person's terminal. Job data, error messages and contract text are untrusted:
every character that is not printable (controls such as ESC, line and paragraph
separators, bidirectional overrides, zero-width marks) is shown as its escape, so output
cannot move the cursor, retitle the window, or split one line into several. JSON output is
left exact; it is escaped by the JSON encoder."""

from __future__ import annotations

import click


def printable(text: str) -> str:
    """``text`` with each non-printable character written as ``\\x1b``, ``\\u2028``, ..."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


def echo(text: str = "", *, err: bool = False) -> None:
    """Print one line of human-readable output, escaped."""
    click.echo(printable(text), err=err)
