"""Database URLs shown without their password, parsed with ``urllib.parse`` (which splits
the user information at the last ``@``, so a password may itself contain ``@``)."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

EMBEDDED = "embedded"
HIDDEN = "***"

# Only to find where URLs stand in free text (a driver's error message); each one found
# is then taken apart by the parser.
_URL_IN_TEXT = re.compile(r"postgres(?:ql)?://[^\s'\"]+", re.IGNORECASE)
_PASSWORD_SETTING = re.compile(r"(password\s*=\s*)(?:'[^']*'|\S+)", re.IGNORECASE)


def without_password(url: str) -> str:
    """``url`` with any password (in the user information or a ``password=`` query
    parameter) replaced by ``***``; a URL that cannot be parsed is not shown at all."""
    try:
        parts = urlsplit(url)
        has_password = parts.password is not None
    except ValueError:
        return "<unreadable URL>"
    netloc = parts.netloc
    if has_password:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:{HIDDEN}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        hidden = [(k, HIDDEN if k.lower() == "password" else v) for k, v in pairs]
        query = urlencode(hidden, safe="*", quote_via=quote)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def redact(text: str, url: str | None = None) -> str:
    """``text`` with the passwords it may contain hidden: in ``url`` where the text
    quotes it whole (which finding URLs by pattern could cut short at a space in the
    password), in any other URL written in it, and in ``password=...`` settings."""
    if url is not None:
        text = text.replace(url, without_password(url))
    text = _URL_IN_TEXT.sub(lambda match: without_password(match[0]), text)
    return _PASSWORD_SETTING.sub(lambda match: match[1] + HIDDEN, text)
