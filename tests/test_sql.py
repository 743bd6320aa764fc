"""Named statement templates (``soniq.db.sql``): parameters by name, one schema per store."""

from __future__ import annotations

import asyncpg
import pytest

from soniq.db.sql import Statement, Statements


class Probe(Statements):
    _echo = Statement(
        "SELECT :b::int + :a::int AS sum, :a::text || '::' || :b::text AS text, "
        "'{schema}' AS schema"
    )

    async def echo(self, db: asyncpg.Connection, a: int, b: int) -> asyncpg.Record | None:
        return await self._echo.fetchrow(db, a=a, b=b)


def test_names_become_positions_in_first_use_order_and_casts_are_left_alone() -> None:
    statement = Probe._echo
    assert statement.params == ("b", "a")
    assert statement.template.startswith("SELECT $1::int + $2::int AS sum, $2::text || '::'")


def test_each_store_gets_the_sql_of_its_own_schema() -> None:
    assert "'one' AS schema" in Probe("one")._echo.sql
    assert "'two' AS schema" in Probe("two")._echo.sql


def test_a_missing_or_unknown_parameter_is_refused_before_anything_is_sent() -> None:
    bound = Probe("s")._echo
    with pytest.raises(TypeError, match=r"takes \['a', 'b'\], got \['a'\]"):
        bound.args({"a": 1})
    with pytest.raises(TypeError, match="got"):
        bound.args({"a": 1, "c": 2})


async def test_a_statement_runs_with_its_values_bound_by_name(db: asyncpg.Connection) -> None:
    row = await Probe("myschema").echo(db, a=2, b=40)
    assert row is not None
    assert (row["sum"], row["text"], row["schema"]) == (42, "2::40", "myschema")
