"""Reaching PostgreSQL: an app's pool, dedicated connections, and driver errors translated
into Soniq errors that never show a password."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import asyncpg

from soniq.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    PermissionDeniedError,
    SchemaNotReadyError,
    SoniqError,
)
from soniq.settings import Settings, resolve_database_url
from soniq.urls import EMBEDDED, redact, without_password

T = TypeVar("T")

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


def describe_connection_error(url: str, exc: BaseException) -> str:
    """One line saying which database could not be reached and why, without the password."""
    detail = redact(str(exc), url) or type(exc).__name__
    return f"cannot reach PostgreSQL at {without_password(url)}: {detail}"


@contextmanager
def translate_errors(url: str, schema: str) -> Iterator[None]:
    """Turn driver exceptions raised inside the block into the matching :class:`SoniqError`."""
    try:
        yield
    except SoniqError:
        raise
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError) as exc:
        raise SchemaNotReadyError(
            f"the Soniq schema {schema!r} is missing or incomplete in {without_password(url)}: "
            "run `soniq setup` or `await app.setup()` first"
        ) from exc
    except asyncpg.UndefinedFunctionError as exc:
        raise SchemaNotReadyError(
            f"the Soniq schema {schema!r} in {without_password(url)} is older than this code "
            f"({exc}): run `soniq setup` or `await app.setup()`"
        ) from exc
    except asyncpg.InsufficientPrivilegeError as exc:
        raise PermissionDeniedError(
            f"{redact(str(exc), url)} at {without_password(url)}: this role lacks the "
            "privilege; `soniq setup --grant-producer/--grant-worker/--grant-viewer ROLE` "
            "gives each role what it needs (docs/security.md)"
        ) from exc
    except asyncpg.InvalidCatalogNameError as exc:
        raise ConfigurationError(
            f"{redact(str(exc), url)}: create the database or fix the URL {without_password(url)}"
        ) from exc
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        raise ConfigurationError(
            f"PostgreSQL refused the login for {without_password(url)}: {redact(str(exc), url)}"
        ) from exc
    except CONNECTION_ERRORS as exc:
        raise DatabaseUnavailableError(describe_connection_error(url, exc)) from exc


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset that sends nothing. asyncpg's default (``RESET ALL; UNLISTEN *; ...``) is a
    second round trip on every pooled statement; Soniq never changes session state on pool
    connections (asyncpg still rolls back a forgotten transaction), and connections lent to
    users through ``Soniq.connection()`` get the full reset there."""


async def create_pool(
    url: str, schema: str, *, max_size: int, transaction_pooling: bool
) -> asyncpg.Pool:
    """Open a pool, failing fast with a clear error when the server cannot be reached.

    Behind a pooler in transaction mode (PgBouncer before 1.21, or without
    ``max_prepared_statements``) consecutive statements may reach different server
    sessions, so asyncpg's cache of named prepared statements is turned off. JIT is off on
    a direct connection: Soniq's statements are short, and a claim whose estimate passed
    ``jit_above_cost`` spent 60 ms compiling to run in 1 ms (a pooler takes no session
    settings; there, estimates are kept low instead, see migration 0009).
    """
    with translate_errors(url, schema):
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=max_size,
                timeout=10,
                server_settings={"application_name": "soniq"}
                if transaction_pooling
                else {"application_name": "soniq", "jit": "off"},
                reset=_keep_session,
                statement_cache_size=0 if transaction_pooling else 100,
            )
        except ValueError as exc:  # asyncpg's complaint about a malformed DSN
            raise ConfigurationError(
                f"invalid database URL {without_password(url)!r}: {redact(str(exc), url)}"
            ) from exc
    assert pool is not None
    return pool


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


class Database:
    """One app's way to PostgreSQL: a pool opened on first use (starting the embedded server
    first when the URL is ``embedded``), dedicated connections, and error translation."""

    def __init__(self, settings: Settings) -> None:
        # None until first needed (then $SONIQ_DATABASE_URL); once the embedded server
        # starts, that server's URL.
        self._url = settings.database_url
        self.schema = settings.schema
        self._pool_size = settings.pool_size
        self._listen_url = settings.listen_url
        self._transaction_pooling = settings.transaction_pooling
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    @property
    def url(self) -> str:
        """The database URL, read from the environment now if the app was given none."""
        if self._url is None:
            self._url = resolve_database_url(None)
        return self._url

    async def pool(self) -> asyncpg.Pool:
        """The pool, opened now if it is not open yet."""
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is None:
                if self.url == EMBEDDED:
                    from soniq import embedded

                    self._url = await asyncio.to_thread(embedded.start)
                self._pool = await create_pool(
                    self.url,
                    self.schema,
                    max_size=self._pool_size,
                    transaction_pooling=self._transaction_pooling,
                )
        return self._pool

    async def run(self, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """``operation`` on a pooled connection, with errors translated."""
        pool = await self.pool()
        with self.errors():
            async with pooled(pool) as conn:
                return await operation(conn)

    def errors(self) -> contextlib.AbstractContextManager[None]:
        """A block in which driver errors become the matching :class:`SoniqError`."""
        return translate_errors(self.url, self.schema)

    @property
    def can_listen(self) -> bool:
        """Whether LISTEN works: a session of its own on the server. Through a pooler in
        transaction mode it needs a direct ``listen_url``; without one, Soniq polls."""
        return self._listen_url is not None or not self._transaction_pooling

    async def listen(self) -> asyncpg.Connection:
        """A dedicated connection outside the pool, for LISTEN (to ``listen_url`` when one
        is set), errors translated."""
        await self.pool()  # the embedded server, if any, must be up to know its URL
        url = self._listen_url or self.url
        with translate_errors(url, self.schema):
            return await asyncpg.connect(
                url, timeout=10, server_settings={"application_name": "soniq-listener"}
            )

    @contextlib.asynccontextmanager
    async def lend(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for the caller's own use, fully reset when given back."""
        pool = await self.pool()
        with self.errors():
            conn = await pool.acquire()
        try:
            yield conn
        finally:
            # The pool skips asyncpg's session reset for speed; a lent connection may have
            # been changed (SET, LISTEN), so it gets the full reset back here.
            with contextlib.suppress(Exception):
                await conn.reset()
            await pool.release(conn)

    async def close(self) -> None:
        """Close the pool; the next :meth:`pool` opens a new one."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
