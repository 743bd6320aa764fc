"""The naming rules for tasks and queues, checked wherever a name enters Soniq."""

from __future__ import annotations

import re

from soniq.errors import InvalidNameError

_TASK_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
_QUEUE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")

MAX_NAME_LENGTH = 200
_MAX_SCHEMA_LENGTH = 48  # leaves room for the suffixes of index and channel names (63 bytes)


def check_task_name(name: object) -> str:
    """Return ``name`` if it is a dotted lowercase identifier such as ``billing.send_invoice``."""
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or not _TASK_NAME.fullmatch(name):
        raise InvalidNameError(
            f"invalid task name {name!r}: use dotted lowercase identifiers such as "
            f"'billing.send_invoice' (letters, digits and '_', each part starting with a "
            f"letter, at most {MAX_NAME_LENGTH} characters)"
        )
    return name


def check_queue_name(queue: object) -> str:
    """Return ``queue`` if it is a valid queue name such as ``billing`` or ``emails.bulk``."""
    if (
        not isinstance(queue, str)
        or len(queue) > MAX_NAME_LENGTH
        or not _QUEUE_NAME.fullmatch(queue)
    ):
        raise InvalidNameError(
            f"invalid queue name {queue!r}: use lowercase letters, digits, '_', '.' and '-', "
            f"starting with a letter or digit, at most {MAX_NAME_LENGTH} characters"
        )
    return queue


def check_schema_name(schema: object) -> str:
    """Return ``schema`` if it is a plain lowercase PostgreSQL identifier safe to put in SQL."""
    if (
        not isinstance(schema, str)
        or len(schema) > _MAX_SCHEMA_LENGTH
        or not _SCHEMA_NAME.fullmatch(schema)
    ):
        raise InvalidNameError(
            f"invalid schema name {schema!r}: use a lowercase identifier (letters, digits "
            f"and '_', not starting with a digit, at most {_MAX_SCHEMA_LENGTH} characters)"
        )
    return schema
