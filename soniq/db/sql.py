"""Statements as named templates: written beside the method that runs them, formatted once
per schema, and bound by parameter name.

A template names its parameters (``:job_id``) and its schema (``{schema}``)::

    class JobReads(Statements):
        _get = Statement("SELECT ... FROM {schema}.jobs WHERE id = :job_id")

        async def get(self, db: Queryable, job_id: int) -> Job | None:
            row = await self._get.fetchrow(db, job_id=job_id)

On first use on a store, the template becomes that store's SQL (``{schema}`` replaced by the
store's checked schema name; ``:name`` by asyncpg's ``$n``), and the result is kept on the
store, so later calls cost one attribute lookup. ``::type`` casts are not parameters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeAlias, overload

import asyncpg


class Driver(Protocol):
    """A caller's connection of another driver (SQLAlchemy, psycopg), adapted by
    soniq/connections.py to the part of asyncpg's interface that statements use."""

    async def fetch(self, sql: str, *args: Any) -> list[Mapping[str, Any]]: ...

    async def fetchrow(self, sql: str, *args: Any) -> Mapping[str, Any] | None: ...

    async def fetchval(self, sql: str, *args: Any) -> Any: ...

    async def execute(self, sql: str, *args: Any) -> str: ...


# What a statement runs on: a pool, or a caller's connection (possibly in their transaction).
Queryable: TypeAlias = "asyncpg.Connection | asyncpg.Pool | Driver"

_NUMBERED = re.compile(r"\$(\d+)")


def pyformat(sql: str, args: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """A bound statement's SQL and positional values for DB-API drivers (psycopg, psycopg2):
    ``$n`` becomes ``%(pn)s``, and a literal ``%`` is doubled."""
    text = _NUMBERED.sub(lambda match: f"%(p{match[1]})s", sql.replace("%", "%%"))
    return text, {f"p{number}": value for number, value in enumerate(args, 1)}


_PARAMETER = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


class Statements:
    """A group of statements on one schema's tables (a checked identifier)."""

    def __init__(self, schema: str) -> None:
        self.schema = schema


class Statement:
    """One SQL template with named parameters; see the module docstring."""

    def __init__(self, template: str) -> None:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match[1] not in names:
                names.append(match[1])
            return f"${names.index(match[1]) + 1}"

        self.template = _PARAMETER.sub(number, template)
        self.params = tuple(names)
        self._attribute = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._attribute = name

    @overload
    def __get__(self, store: None, owner: type) -> Statement: ...

    @overload
    def __get__(self, store: Statements, owner: type) -> BoundStatement: ...

    def __get__(self, store: Statements | None, owner: type) -> Statement | BoundStatement:
        if store is None:
            return self
        bound = self.bind(store.schema)
        store.__dict__[self._attribute] = bound  # shadows this descriptor from now on
        return bound

    def bind(self, schema: str) -> BoundStatement:
        """This statement's SQL for ``schema``."""
        return BoundStatement(self.template.replace("{schema}", schema), self.params)


class BoundStatement:
    """A statement's SQL for one schema, run with its parameters given by name."""

    __slots__ = ("params", "sql")

    def __init__(self, sql: str, params: tuple[str, ...]) -> None:
        self.sql = sql
        self.params = params

    def args(self, values: dict[str, Any]) -> list[Any]:
        """The positional parameters, in ``$n`` order, from ``values`` by name."""
        if len(values) != len(self.params) or not values.keys() <= set(self.params):
            raise TypeError(
                f"statement takes {sorted(self.params)}, got {sorted(values)}: {self.sql[:80]}"
            )
        return [values[name] for name in self.params]

    async def fetch(self, db: Queryable, **values: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await db.fetch(self.sql, *self.args(values))
        return rows

    async def fetchrow(self, db: Queryable, **values: Any) -> Mapping[str, Any] | None:
        row: Mapping[str, Any] | None = await db.fetchrow(self.sql, *self.args(values))
        return row

    async def fetchval(self, db: Queryable, **values: Any) -> Any:
        return await db.fetchval(self.sql, *self.args(values))

    async def execute(self, db: Queryable, **values: Any) -> str:
        status: str = await db.execute(self.sql, *self.args(values))
        return status
