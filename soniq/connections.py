"""The caller's own connections that jobs can be enqueued on, in the caller's transaction:
asyncpg's, SQLAlchemy's (async or not, over any PostgreSQL driver), psycopg's (3, async or
not) and any other DB-API connection with a cursor (psycopg2, Django's ``connection``).

Each is adapted to the few asyncpg methods the statements call (:class:`soniq.db.sql.Driver`),
so every producer runs the same validation, encoding and SQL functions. An adapter of a
synchronous connection never suspends: :func:`run_sync` runs the enqueue coroutine on it to
its end without an event loop, which is how ``app.enqueue_sync`` shares the async path.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import asyncpg

from soniq.db.sql import Driver, Queryable, pyformat
from soniq.errors import ConfigurationError, EnqueueError
from soniq.urls import EMBEDDED

T = TypeVar("T")
Rows = list[Mapping[str, Any]]


class _Adapter:
    """asyncpg's fetch/fetchrow/fetchval/execute over one query method, ``_run``."""

    async def _run(self, sql: str, args: tuple[Any, ...]) -> tuple[Rows, str]:
        raise NotImplementedError

    async def fetch(self, sql: str, *args: Any) -> Rows:
        return (await self._run(sql, args))[0]

    async def fetchrow(self, sql: str, *args: Any) -> Mapping[str, Any] | None:
        rows = (await self._run(sql, args))[0]
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else next(iter(row.values()))

    async def execute(self, sql: str, *args: Any) -> str:
        return (await self._run(sql, args))[1]


def _bind(paramstyle: str, sql: str, args: tuple[Any, ...]) -> tuple[str, Any]:
    """The statement in a driver's parameter style: asyncpg's own, or DB-API's named one."""
    if paramstyle == "numeric_dollar":
        return sql, args
    if paramstyle == "pyformat":
        return pyformat(sql, args)
    raise EnqueueError(f"cannot enqueue on a connection whose parameter style is {paramstyle!r}")


def _cursor_rows(description: Any, rows: list[Any]) -> Rows:
    names = [column[0] for column in description or ()]
    return [dict(zip(names, row, strict=True)) for row in rows]


class SQLAlchemyAsync(_Adapter):
    """An SQLAlchemy ``AsyncSession`` or ``AsyncConnection`` (asyncpg or psycopg driver): the
    statement runs in the session's transaction, begun by it if none is open."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def _run(self, sql: str, args: tuple[Any, ...]) -> tuple[Rows, str]:
        from sqlalchemy.ext.asyncio import AsyncSession

        connection = self._connection
        if isinstance(connection, AsyncSession):
            connection = await connection.connection()
        result = await connection.exec_driver_sql(*_bind(connection.dialect.paramstyle, sql, args))
        rows: Rows = [dict(row) for row in result.mappings()] if result.returns_rows else []
        return rows, ""


class SQLAlchemySync(_Adapter):
    """An SQLAlchemy ``Session`` or ``Connection``; never suspends."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def _run(self, sql: str, args: tuple[Any, ...]) -> tuple[Rows, str]:
        from sqlalchemy.orm import Session

        connection = self._connection
        if isinstance(connection, Session):
            connection = connection.connection()
        result = connection.exec_driver_sql(*_bind(connection.dialect.paramstyle, sql, args))
        rows: Rows = [dict(row) for row in result.mappings()] if result.returns_rows else []
        return rows, ""


class PsycopgAsync(_Adapter):
    """A psycopg 3 ``AsyncConnection``: in its transaction (open one with
    ``async with conn.transaction()``, or commit after; autocommit commits at once)."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def _run(self, sql: str, args: tuple[Any, ...]) -> tuple[Rows, str]:
        async with self._connection.cursor() as cursor:
            await cursor.execute(*pyformat(sql, args))
            rows = await cursor.fetchall() if cursor.description else []
            return _cursor_rows(cursor.description, rows), cursor.statusmessage or ""


class DBAPISync(_Adapter):
    """Any DB-API connection with ``cursor()`` and the ``pyformat`` parameter style: psycopg
    3's ``Connection``, psycopg2's, Django's ``connection``; never suspends."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def _run(self, sql: str, args: tuple[Any, ...]) -> tuple[Rows, str]:
        with self._connection.cursor() as cursor:
            cursor.execute(*pyformat(sql, args))
            rows = cursor.fetchall() if cursor.description else []
            return _cursor_rows(cursor.description, rows), getattr(cursor, "statusmessage", "")


def _from(connection: object, package: str) -> bool:
    return type(connection).__module__.split(".")[0] == package


def adapt(connection: object) -> Queryable:
    """What statements run on for ``connection=`` of an async enqueue."""
    if isinstance(connection, (asyncpg.Connection, _Adapter)):
        return connection
    if _from(connection, "sqlalchemy"):
        from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

        if isinstance(connection, (AsyncSession, AsyncConnection)):
            return SQLAlchemyAsync(connection)
    if _from(connection, "psycopg"):
        from psycopg import AsyncConnection as PsycopgConnection

        if isinstance(connection, PsycopgConnection):
            return PsycopgAsync(connection)
    raise EnqueueError(
        f"connection= takes an asyncpg connection, an SQLAlchemy AsyncSession or "
        f"AsyncConnection, or a psycopg AsyncConnection, got {type(connection).__name__} "
        "(synchronous connections go to app.enqueue_sync)"
    )


def adapt_sync(connection: object) -> Driver:
    """What statements run on for ``connection=`` of ``app.enqueue_sync``."""
    if _from(connection, "sqlalchemy"):
        from sqlalchemy.engine import Connection
        from sqlalchemy.orm import Session

        if isinstance(connection, (Session, Connection)):
            return SQLAlchemySync(connection)
    elif _from(connection, "psycopg"):
        from psycopg import Connection as PsycopgConnection

        if isinstance(connection, PsycopgConnection):
            return DBAPISync(connection)
    elif callable(getattr(connection, "cursor", None)) and not _from(connection, "asyncpg"):
        return DBAPISync(connection)
    raise EnqueueError(
        "connection= of enqueue_sync takes an SQLAlchemy Session or Connection, or a DB-API "
        f"connection (psycopg, psycopg2, Django's), got {type(connection).__name__} "
        "(async connections go to app.enqueue)"
    )


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends (its awaits all reach a synchronous
    adapter), run to its end without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as finished:
        result: T = finished.value
        return result
    coroutine.close()
    raise RuntimeError("an enqueue on a synchronous connection waited for an event loop")


def call_sync(
    operation: Callable[[Driver], Coroutine[Any, Any, T]],
    connection: object,
    url: Callable[[], str],
) -> T:
    """``operation`` on the caller's synchronous ``connection``, in their transaction; or,
    without one, on a psycopg connection of its own to ``url()``, committed at once."""
    if connection is not None:
        return run_sync(operation(adapt_sync(connection)))
    if url() == EMBEDDED:
        raise ConfigurationError(
            "enqueue_sync needs a PostgreSQL URL or a connection=; the embedded server's "
            "URL is known only to the async app that started it"
        )
    try:
        import psycopg
    except ImportError:
        raise ConfigurationError(
            "enqueue_sync without connection= needs psycopg: pip install 'soniq-jobs[psycopg]'"
        ) from None
    with psycopg.connect(url()) as own:  # commits when the block ends without an error
        return run_sync(operation(DBAPISync(own)))
