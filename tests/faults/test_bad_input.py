"""Bounded, checked input: random and hostile args, task names, queue names and dedup keys
given to ``enqueue`` either fail with a clear SoniqError and write nothing, or produce a job
whose args round-trip exactly (what the worker reads back is what the producer passed).
Names are validated and everything reaching SQL is a bound parameter or a checked
identifier, so no input can change a statement.

Property tests (hypothesis) on one app and schema per test, driven by one event loop.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from soniq import InvalidNameError, Soniq, SoniqError
from tests.helpers import drop_schema, new_schema_name

MAX_ARGS_BYTES = 4096  # small, so that the size limit is hit often

SETTINGS = settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- strategies ------------------------------------------------------------------------

HOSTILE_TEXT = [
    "",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\u2028\u2029",
    "\ufeff",
    "'; DROP TABLE jobs; --",
    '"); SELECT pg_sleep(10); --',
    "$1",
    "\\u0000",
    "\\",
    '"',
    "💥" * 50,
]
any_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=40),  # surrogates and NUL too
    st.sampled_from(HOSTILE_TEXT),
)
numbers = st.one_of(
    st.integers(),
    st.sampled_from([2**63, -(2**63) - 1, 10**30, -(10**400), 10**4000]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 5e-324, 1.7976931348623157e308, 1e16, 0.1]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, any_text, st.binary(max_size=8))
hashables = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), any_text)


def _values(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(any_text, children, max_size=4),
        st.dictionaries(hashables, children, max_size=3),  # non-str keys
        st.tuples(children, children),
        st.frozensets(hashables, max_size=3),
        st.sets(st.integers(), max_size=3),
    )


values = st.recursive(scalars, _values, max_leaves=12)


def _nest(depth: int) -> Any:
    value: Any = "bottom"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


deep = st.integers(min_value=150, max_value=400).map(_nest)
big = st.integers(min_value=MAX_ARGS_BYTES - 64, max_value=MAX_ARGS_BYTES + 64).map(
    lambda n: {"s": "x" * (n - len('{"s":""}'))}
)
args_strategy = st.one_of(
    st.dictionaries(any_text, st.one_of(values, deep), max_size=5),
    big,
    values,  # not a dict at all, sometimes
    st.none(),
)
task_names = st.one_of(
    st.just("free.form"),
    st.from_regex(r"[a-z][a-z0-9_]{0,8}(\.[a-z][a-z0-9_]{0,8}){0,2}", fullmatch=True),
    any_text,
)
queue_names = st.one_of(
    st.none(),
    st.from_regex(r"[a-z0-9][a-z0-9_.\-]{0,12}", fullmatch=True),
    any_text,
)
dedup_keys = st.one_of(st.none(), st.sampled_from(["k1", "k2", "k 3"]), any_text)


def same(a: Any, b: Any) -> bool:
    """Strict equality: same types (bool is not int, int is not float), the same float
    bits (-0.0 is not 0.0), dict keys in the same order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack(">d", a) == struct.pack(">d", b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# -- harness ---------------------------------------------------------------------------


@dataclass
class Harness:
    loop: asyncio.AbstractEventLoop
    app: Soniq
    db: asyncpg.Connection
    schema: str

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def count(self) -> int:
        return int(self.run(self.db.fetchval(f"SELECT count(*) FROM {self.schema}.jobs")))


@pytest.fixture
def harness(database_url: str) -> Iterator[Harness]:
    """One app on one fresh schema, and the one event loop every example runs on."""
    schema = new_schema_name()
    loop = asyncio.new_event_loop()
    app = Soniq(database_url, schema=schema, max_args_bytes=MAX_ARGS_BYTES)
    try:
        loop.run_until_complete(app.setup())
        db = loop.run_until_complete(asyncpg.connect(database_url))
        try:
            yield Harness(loop, app, db, schema)
        finally:
            loop.run_until_complete(db.close())
    finally:
        loop.run_until_complete(app.close())
        loop.run_until_complete(drop_schema(database_url, schema))
        loop.close()


def _enqueue(h: Harness, *args: Any, **kwargs: Any) -> int | SoniqError:
    """The job id, or the SoniqError raised (anything else fails the test)."""
    try:
        return int(h.run(h.app.enqueue(*args, **kwargs)))
    except SoniqError as exc:
        assert str(exc), "a clear message"
        return exc


# -- properties ------------------------------------------------------------------------


class Checker:
    """The property for one enqueue call: refused with nothing written, or stored exactly."""

    def __init__(self, harness: Harness) -> None:
        self.h = harness
        self.live_keys: dict[str, int] = {}  # no worker runs here: every job stays queued

    def __call__(self, task: Any, args: Any, queue: Any, dedup_key: Any) -> None:
        h = self.h
        before = h.count()
        result = _enqueue(h, task, args, queue=queue, dedup_key=dedup_key)
        after = h.count()
        event(type(result).__name__)
        if isinstance(result, SoniqError):
            assert after == before, f"refused ({result!r}) but a row was written"
            return
        if dedup_key is not None and dedup_key in self.live_keys:
            assert result == self.live_keys[dedup_key], "a live dedup_key returns its job"
            assert after == before
            return
        assert after == before + 1
        if dedup_key is not None:
            self.live_keys[dedup_key] = result
        expected = {} if args is None else args
        job = h.run(h.app.get_job(result))
        assert same(job.args, expected), (job.args, expected)
        row = h.run(
            h.db.fetchrow(
                f"SELECT args::text AS args, task_name, queue, dedup_key, state "
                f"FROM {h.schema}.jobs WHERE id = $1",
                result,
            )
        )
        assert same(json.loads(row["args"]), expected)
        assert row["task_name"] == task
        assert row["queue"] == (queue if queue is not None else "default")
        assert row["dedup_key"] == dedup_key
        assert row["state"] == "queued"


@pytest.mark.faults
def test_hostile_args_are_refused_with_nothing_written_or_round_trip_exactly(
    harness: Harness,
) -> None:
    checker = Checker(harness)

    @SETTINGS
    @given(args=args_strategy)
    def check(args: Any) -> None:
        checker("free.form", args, None, None)

    check()


@pytest.mark.faults
def test_hostile_names_queues_and_dedup_keys_are_refused_or_stored_verbatim(
    harness: Harness,
) -> None:
    checker = Checker(harness)

    @SETTINGS
    @given(
        task=task_names,
        args=st.one_of(st.none(), st.fixed_dictionaries({"n": st.integers(0, 9)})),
        queue=queue_names,
        dedup_key=dedup_keys,
    )
    def check(task: Any, args: Any, queue: Any, dedup_key: Any) -> None:
        checker(task, args, queue, dedup_key)

    check()
    # Nothing hostile reached a statement as SQL text: the table holds exactly the rows
    # that were accepted.
    accepted = harness.run(harness.db.fetchval(f"SELECT count(*) FROM {harness.schema}.jobs"))
    assert accepted >= len(checker.live_keys)


@pytest.mark.faults
def test_args_through_a_model_field_typed_any_round_trip_exactly_or_are_refused(
    harness: Harness,
) -> None:
    """With a registered model the stored args are the validated model's JSON; for a field
    typed ``Any`` that is the value given, so the worker must read back exactly that (or
    the enqueue must be refused). A value JSON cannot hold (NaN, a tuple, a set, int keys)
    must not be silently replaced by something else."""

    @harness.app.job(name="typed.any")
    async def typed_any(payload: Any) -> None:
        del payload

    @SETTINGS
    @given(payload=st.one_of(values, deep))
    def check(payload: Any) -> None:
        before = harness.count()
        result = _enqueue(harness, "typed.any", {"payload": payload})
        if isinstance(result, SoniqError):
            assert harness.count() == before
            return
        job = harness.run(harness.app.get_job(result))
        assert same(job.args, {"payload": payload}), (job.args, payload)

    check()


_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,47}")


@pytest.mark.faults
@settings(max_examples=200, deadline=None, database=None)
@given(schema=st.one_of(any_text, st.from_regex(_SCHEMA, fullmatch=True)))
def test_schema_names_are_checked_identifiers_before_any_sql(schema: str) -> None:
    """The schema is the one identifier put into SQL text; anything but a plain lowercase
    identifier is refused when the app is created."""
    try:
        app = Soniq("postgresql://nobody@127.0.0.1:1/none", schema=schema)
    except InvalidNameError:
        assert not _SCHEMA.fullmatch(schema)
    else:
        assert _SCHEMA.fullmatch(schema) and app.schema == schema


@pytest.mark.faults
def test_integer_too_long_to_write_as_text_is_refused(harness: Harness) -> None:
    # Python refuses int <-> str conversions past 4300 digits; the args cannot be JSON.
    result = _enqueue(harness, "free.form", {"n": 10**5000})
    assert isinstance(result, SoniqError)
    assert harness.count() == 0


@pytest.mark.faults
def test_same_is_strict() -> None:
    assert not same(1, 1.0) and not same(True, 1) and not same(0.0, -0.0)
    assert not same({"a": 1, "b": 2}, {"b": 2, "a": 1}) and not same([1], (1,))
    assert same({"a": [1, -0.0, "x"]}, {"a": [1, -0.0, "x"]})
    assert math.isnan(float("nan"))
