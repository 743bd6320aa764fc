"""Configuration, resolved from arguments and the environment and checked once, in one place:
the app's :class:`Settings` and a worker's :class:`WorkerSettings`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from soniq.checks import duration, whole_number
from soniq.errors import ConfigurationError
from soniq.installed import UNKNOWN_TASKS, UnknownTasks
from soniq.names import check_queue_name, check_schema_name
from soniq.urls import EMBEDDED, without_password

DATABASE_URL_ENV = "SONIQ_DATABASE_URL"
SCHEMA_ENV = "SONIQ_SCHEMA"
DEFAULT_SCHEMA = "soniq"


def resolve_database_url(database_url: str | None) -> str:
    """The URL given, else ``SONIQ_DATABASE_URL``; a clear error when neither is set."""
    url = database_url if database_url is not None else os.environ.get(DATABASE_URL_ENV)
    if not url:
        raise ConfigurationError(
            "no database configured: pass Soniq(database_url='postgresql://user@host/db'), "
            f"or set {DATABASE_URL_ENV}; use database_url='embedded' to run a local PostgreSQL "
            "inside this environment (pip install 'soniq-jobs[embedded]')"
        )
    if url != EMBEDDED and not url.startswith(("postgresql://", "postgres://")):
        raise ConfigurationError(
            f"database URL {without_password(url)!r} is not a PostgreSQL URL: it must start with "
            "'postgresql://' (or be the word 'embedded')"
        )
    if url != EMBEDDED:
        try:
            urlsplit(url).port  # noqa: B018  (reading it checks it)
        except ValueError as exc:
            raise ConfigurationError(
                f"database URL {without_password(url)!r} is malformed ({exc}): write it as "
                "postgresql://user:password@host:port/database, with a port up to 65535 and "
                "special characters in the password percent-encoded"
            ) from None
    return url


def configured_database_url(database_url: str | None) -> str | None:
    """The URL given, else ``SONIQ_DATABASE_URL``, checked; None when neither is set yet:
    :func:`resolve_database_url` then reads the environment again at first use, so an app
    can be created at import time, before its configuration exists."""
    if database_url is None and not os.environ.get(DATABASE_URL_ENV):
        return None
    return resolve_database_url(database_url)


def resolve_schema(schema: str | None) -> str:
    """The schema given, else ``SONIQ_SCHEMA``, else ``soniq``; checked as an identifier.
    An explicit ``""`` is refused rather than replaced by the default."""
    if schema is None:
        schema = os.environ.get(SCHEMA_ENV) or DEFAULT_SCHEMA
    return check_schema_name(schema)


def queue_names(queues: Sequence[str] | str | None) -> tuple[str, ...] | None:
    """Checked queue names from one name or a list of them; None stays None (every queue)."""
    if queues is None:
        return None
    return tuple(check_queue_name(q) for q in ([queues] if isinstance(queues, str) else queues))


@dataclass(frozen=True)
class Settings:
    """What a :class:`~soniq.Soniq` app was configured with (see its docstring); checked
    when created, so every part of the app can trust it."""

    database_url: str | None  # None: $SONIQ_DATABASE_URL, read when first needed
    schema: str
    default_retries: int = 3
    retry_backoff: timedelta = timedelta(seconds=1)
    retry_backoff_max: timedelta = timedelta(minutes=10)
    max_args_bytes: int = 1024 * 1024
    done_retention: timedelta = timedelta(days=7)
    dead_retention: timedelta | None = None  # None: dead letters stay until purged
    pool_size: int = 10
    # A direct URL for LISTEN when database_url goes through a transaction-mode pooler.
    listen_url: str | None = None
    # database_url reaches PostgreSQL through a pooler in transaction mode (PgBouncer):
    # no prepared-statement cache, and LISTEN only through listen_url (else polling).
    transaction_pooling: bool = False
    # A bare task name no installed contract package and no handler knows: see Soniq.
    unknown_tasks: UnknownTasks = "warn"

    def __post_init__(self) -> None:
        if self.database_url is not None:
            resolve_database_url(self.database_url)
        if self.listen_url is not None:
            if self.listen_url == EMBEDDED:
                raise ConfigurationError("listen_url must be a postgresql:// URL")
            resolve_database_url(self.listen_url)
        if not isinstance(self.transaction_pooling, bool):
            raise ConfigurationError("transaction_pooling must be True or False")
        check_schema_name(self.schema)
        whole_number(self.default_retries, "default_retries", minimum=0)
        duration(self.retry_backoff, "retry_backoff")
        duration(self.retry_backoff_max, "retry_backoff_max")
        whole_number(self.max_args_bytes, "max_args_bytes", minimum=2)
        duration(self.done_retention, "done_retention")
        if self.dead_retention is not None:
            duration(self.dead_retention, "dead_retention")
        whole_number(self.pool_size, "pool_size", minimum=1)
        if self.unknown_tasks not in UNKNOWN_TASKS:
            raise ConfigurationError(
                f"unknown_tasks must be one of {', '.join(map(repr, UNKNOWN_TASKS))}, "
                f"got {self.unknown_tasks!r}"
            )


@dataclass(frozen=True)
class WorkerSettings:
    """How one worker runs (see :meth:`soniq.Soniq.run_worker`); checked when created.
    ``queues`` is None for every queue."""

    queues: tuple[str, ...] | None = None
    concurrency: int = 10
    lease: timedelta = timedelta(seconds=30)
    poll_interval: timedelta = timedelta(seconds=1)
    shutdown_timeout: timedelta = timedelta(seconds=30)

    @classmethod
    def of(
        cls,
        queues: Sequence[str] | str | None,
        *,
        concurrency: int,
        lease: timedelta,
        poll_interval: timedelta,
        shutdown_timeout: timedelta,
    ) -> WorkerSettings:
        """Settings from ``run_worker``'s arguments, where queues may be one name or a list."""
        names = None
        if queues is not None:
            names = tuple(
                check_queue_name(q) for q in ([queues] if isinstance(queues, str) else queues)
            )
            if not names:
                raise ConfigurationError("queues=[] names no queue: pass None for all queues")
        return cls(names, concurrency, lease, poll_interval, shutdown_timeout)

    def __post_init__(self) -> None:
        whole_number(self.concurrency, "concurrency", minimum=1)
        duration(self.lease, "lease")
        duration(self.poll_interval, "poll_interval")
        duration(self.shutdown_timeout, "shutdown_timeout", positive=False)
