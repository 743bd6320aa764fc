"""Database URLs, connection pools, and translating driver errors into Soniq errors."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import asyncpg

from soniq.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    SchemaNotReadyError,
    SoniqError,
)

DATABASE_URL_ENV = "SONIQ_DATABASE_URL"
EMBEDDED = "embedded"

# Errors that mean "the connection is gone or never came up": the operation may be retried
# on a new connection once the database is back.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    # Raised by asyncpg's pool when it resets a connection that died in the middle of a
    # statement ("cannot switch to state ...; another operation is in progress"); the pool
    # discards that connection, so a retry gets a fresh one.
    asyncpg.InternalClientError,
)

_PASSWORD_IN_URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+.\-]*://[^:/@\s]*):[^@\s]*@", re.I)
_PASSWORD_PARAM = re.compile(r"(?P<key>password=)[^&\s]*", re.I)


def redact(text: str) -> str:
    """Hide any password written in a URL (``user:secret@`` or ``password=secret``)."""
    text = _PASSWORD_IN_URL.sub(r"\g<scheme>:***@", text)
    return _PASSWORD_PARAM.sub(r"\g<key>***", text)


def resolve_database_url(database_url: str | None) -> str:
    """The URL given, else ``SONIQ_DATABASE_URL``; a clear error when neither is set."""
    url = database_url if database_url is not None else os.environ.get(DATABASE_URL_ENV)
    if not url:
        raise ConfigurationError(
            "no database configured: pass Soniq(database_url='postgresql://user@host/db'), "
            f"or set {DATABASE_URL_ENV}; use database_url='embedded' to run a local PostgreSQL "
            "inside this environment (pip install 'soniq[embedded]')"
        )
    if url != EMBEDDED and not url.startswith(("postgresql://", "postgres://")):
        raise ConfigurationError(
            f"database URL {redact(url)!r} is not a PostgreSQL URL: it must start with "
            "'postgresql://' (or be the word 'embedded')"
        )
    return url


def describe_connection_error(url: str, exc: BaseException) -> str:
    """One line saying which database could not be reached and why, without the password."""
    detail = redact(str(exc)) or type(exc).__name__
    return f"cannot reach PostgreSQL at {redact(url)}: {detail}"


@contextmanager
def translate_errors(url: str, schema: str) -> Iterator[None]:
    """Turn driver exceptions raised inside the block into the matching :class:`SoniqError`."""
    try:
        yield
    except SoniqError:
        raise
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError) as exc:
        raise SchemaNotReadyError(
            f"the Soniq schema {schema!r} is missing or incomplete in {redact(url)}: "
            "run `soniq setup` or `await app.setup()` first"
        ) from exc
    except asyncpg.InvalidCatalogNameError as exc:
        raise ConfigurationError(
            f"{redact(str(exc))}: create the database or fix the URL {redact(url)}"
        ) from exc
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        raise ConfigurationError(
            f"PostgreSQL refused the login for {redact(url)}: {redact(str(exc))}"
        ) from exc
    except CONNECTION_ERRORS as exc:
        raise DatabaseUnavailableError(describe_connection_error(url, exc)) from exc


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset that sends nothing. asyncpg's default (``RESET ALL; UNLISTEN *; ...``) is a
    second round trip on every pooled statement; Soniq never changes session state on pool
    connections (asyncpg still rolls back a forgotten transaction), and connections lent to
    users through ``Soniq.connection()`` get the full reset there."""


async def create_pool(url: str, schema: str, *, max_size: int) -> asyncpg.Pool:
    """Open a pool, failing fast with a clear error when the server cannot be reached."""
    with translate_errors(url, schema):
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=max_size,
                timeout=10,
                server_settings={"application_name": "soniq"},
                reset=_keep_session,
            )
        except ValueError as exc:  # asyncpg's complaint about a malformed DSN
            raise ConfigurationError(
                f"invalid database URL {redact(url)!r}: {redact(str(exc))}"
            ) from exc
    assert pool is not None
    return pool


async def connect(url: str, schema: str) -> asyncpg.Connection:
    """One dedicated connection (the worker's LISTEN connection), errors translated."""
    with translate_errors(url, schema):
        return await asyncpg.connect(
            url, timeout=10, server_settings={"application_name": "soniq-listener"}
        )


@contextlib.asynccontextmanager
async def pooled(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection from ``pool`` that is given back without ever raising.

    ``pool.fetch()`` and its siblings release the connection as part of the call, and when
    the connection dies right after the statement (a killed backend, a server restart) the
    release fails and its error replaces the statement's result, although the statement
    was committed: a claim or an outcome write that happened would look as if it had not,
    and a lost claim spends an attempt and waits out a lease. Releasing here keeps the
    result; the pool has already thrown the broken connection away.
    """
    conn = await pool.acquire()
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            await pool.release(conn)
