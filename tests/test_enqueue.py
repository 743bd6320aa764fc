"""Enqueue: validation, encoding, options and batch enqueue, checked against the jobs table."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from pydantic import BaseModel, ConfigDict, Field

from soniq import (
    ArgsNotJSONError,
    ArgsTooLargeError,
    EnqueueError,
    InvalidArgumentsError,
    InvalidNameError,
    Soniq,
    UnknownTaskError,
    task_ref,
)
from tests.helpers import count_jobs, job_row, start_worker, stop_worker, wait_state, wait_until


class InvoiceArgs(BaseModel):
    order_id: str
    amount: int
    email: str


class OtherArgs(BaseModel):
    order_id: str
    amount: int
    email: str


INVOICE = task_ref(name="billing.send_invoice", args_model=InvoiceArgs, default_queue="billing")
GOOD = {"order_id": "o1", "amount": 3, "email": "a@example.com"}
BAD = {"amount": "three"}  # order_id and email missing, amount not an int


def _failing_fields(exc: InvalidArgumentsError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.errors}


def _assert_names_every_field(exc: InvalidArgumentsError, task: str, fields: set[str]) -> None:
    assert exc.task_name == task
    assert task in str(exc)
    assert _failing_fields(exc) == fields
    for field in fields:
        assert field in str(exc)


# -- validation ------------------------------------------------------------------------


async def test_ref_model_valid_args_are_stored_as_the_model_dump(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    job_id = await app.enqueue(INVOICE, {"order_id": "o1", "amount": "3", "email": "a@x.io"})
    row = await job_row(db, schema, job_id)
    # "3" was coerced by the model: what is stored is the validated dump, not the input.
    assert json.loads(row["args_text"]) == {"order_id": "o1", "amount": 3, "email": "a@x.io"}
    assert (row["task_name"], row["state"]) == ("billing.send_invoice", "queued")


async def test_ref_model_invalid_args_name_every_field_and_write_nothing(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    with pytest.raises(InvalidArgumentsError) as info:
        await app.enqueue(INVOICE, BAD)
    _assert_names_every_field(info.value, "billing.send_invoice", {"order_id", "amount", "email"})
    assert await count_jobs(db, schema) == 0


async def test_registered_validate_model_invalid_args_name_every_field_and_write_nothing(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="billing.charge", validate=InvoiceArgs)
    async def charge(order_id: str, amount: int, email: str) -> None:
        return None

    with pytest.raises(InvalidArgumentsError) as info:
        await app.enqueue("billing.charge", BAD)
    _assert_names_every_field(info.value, "billing.charge", {"order_id", "amount", "email"})
    assert await count_jobs(db, schema) == 0


async def test_signature_derived_model_invalid_args_name_every_field_and_write_nothing(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="mail.send")
    async def send(to: str, retries_left: int, subject: str = "hi") -> None:
        return None

    with pytest.raises(InvalidArgumentsError) as info:
        await app.enqueue("mail.send", {"retries_left": "many", "unexpected": 1})
    # missing field, wrong type, and an argument the handler does not take
    _assert_names_every_field(info.value, "mail.send", {"to", "retries_left", "unexpected"})
    assert await count_jobs(db, schema) == 0


async def test_signature_derived_model_applies_defaults_and_coercion(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="mail.send")
    async def send(to: str, count: int, subject: str = "hi") -> None:
        return None

    job_id = await app.enqueue("mail.send", {"to": "a", "count": "2"})
    row = await job_row(db, schema, job_id)
    assert json.loads(row["args_text"]) == {"to": "a", "count": 2, "subject": "hi"}


async def test_args_may_be_the_model_instance(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    job_id = await app.enqueue(INVOICE, InvoiceArgs(**GOOD))
    row = await job_row(db, schema, job_id)
    assert json.loads(row["args_text"]) == GOOD


async def test_model_with_alias_is_stored_by_alias_and_runs(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    class Aliased(BaseModel):
        order_id: str = Field(alias="orderId")

    ref = task_ref(name="shop.aliased", args_model=Aliased)
    got: list[str] = []

    @app.job(ref)
    async def handle(order_id: str) -> None:
        got.append(order_id)

    first = await app.enqueue(ref, {"orderId": "a1"})
    second = await app.enqueue(ref, Aliased(orderId="a2"))
    assert json.loads((await job_row(db, schema, first))["args_text"]) == {"orderId": "a1"}
    assert json.loads((await job_row(db, schema, second))["args_text"]) == {"orderId": "a2"}
    worker = start_worker(app)
    await wait_state(db, schema, second, "done")
    await wait_state(db, schema, first, "done")
    await stop_worker(worker)
    assert sorted(got) == ["a1", "a2"]


async def test_instance_of_a_different_model_is_refused(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    with pytest.raises(EnqueueError) as info:
        await app.enqueue(INVOICE, OtherArgs(**GOOD))  # type: ignore[arg-type]
    assert not isinstance(info.value, InvalidArgumentsError)
    assert "InvoiceArgs" in str(info.value) and "OtherArgs" in str(info.value)
    assert await count_jobs(db, schema) == 0


async def test_non_mapping_args_are_refused(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    with pytest.raises(EnqueueError):
        await app.enqueue(INVOICE, ["o1", 3])  # type: ignore[arg-type]
    with pytest.raises(EnqueueError):
        await app.enqueue("free.form", ["o1", 3])  # type: ignore[arg-type]
    assert await count_jobs(db, schema) == 0


async def test_bare_name_without_local_model_is_stored_unvalidated(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    args = {"anything": [1, "x", None, {"nested": True}], "n": -2.5}
    job_id = await app.enqueue("remote.task", args)
    row = await job_row(db, schema, job_id)
    assert row["task_name"] == "remote.task"
    assert json.loads(row["args_text"]) == args
    no_args = await app.enqueue("remote.task")
    assert (await job_row(db, schema, no_args))["args_text"] == "{}"


# -- JSON encoding -----------------------------------------------------------------------


def _circular() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


def _deep(depth: int) -> dict[str, Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return {"deep": value}


NOT_JSON = {
    "set": {"tags": {"a", "b"}},
    "tuple": {"pair": (1, 2)},
    "bytes": {"blob": b"\x00\x01"},
    "datetime": {"at": datetime(2024, 1, 1, tzinfo=timezone.utc)},
    "nan": {"x": float("nan")},
    "infinity": {"x": float("inf")},
    "int_key": {"by_id": {1: "a"}},
    "lone_surrogate": {"text": "ok \ud800 broken"},
    "circular": _circular(),
    "too_deep": _deep(5000),
}


@pytest.mark.parametrize("args", list(NOT_JSON.values()), ids=list(NOT_JSON))
async def test_non_json_args_without_model_are_refused_and_nothing_written(
    app: Soniq, db: asyncpg.Connection, schema: str, args: dict[str, Any]
) -> None:
    with pytest.raises(ArgsNotJSONError) as info:
        await app.enqueue("free.form", args)
    assert info.value.task_name == "free.form"
    assert await count_jobs(db, schema) == 0


async def test_args_nested_deeper_than_a_worker_can_read_are_refused(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    # The args object is level 1; workers parse at most 200 levels.
    readable = await app.enqueue("free.form", _deep(199))
    with pytest.raises(ArgsNotJSONError, match="200"):
        await app.enqueue("free.form", _deep(200))
    assert await count_jobs(db, schema) == 1
    received: list[Any] = []

    @app.job(name="free.form")
    async def free(**kwargs: Any) -> None:
        received.append(kwargs)

    worker = start_worker(app)
    await wait_state(db, schema, readable, "done")
    await stop_worker(worker)
    assert received == [_deep(199)]


async def test_unvalidated_model_instance_is_refused_as_invalid_args(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    with pytest.raises(InvalidArgumentsError) as info:
        await app.enqueue(INVOICE, InvoiceArgs.model_construct(order_id="o1"))
    assert _failing_fields(info.value) == {"amount", "email"}
    assert await count_jobs(db, schema) == 0


class FloatArgs(BaseModel):
    x: float
    text: str = ""


@pytest.mark.parametrize(
    "args",
    [
        {"x": float("nan")},
        FloatArgs(x=float("inf")),
        {"x": 1.0, "text": "\udfff"},
        FloatArgs(x=1.0, text="\ud800"),
    ],
    ids=["nan_dict", "inf_instance", "surrogate_dict", "surrogate_instance"],
)
async def test_non_json_values_through_a_model_are_refused_as_not_json(
    app: Soniq, db: asyncpg.Connection, schema: str, args: Any
) -> None:
    ref = task_ref(name="math.float", args_model=FloatArgs)
    with pytest.raises(ArgsNotJSONError):
        await app.enqueue(ref, args)
    assert await count_jobs(db, schema) == 0


async def test_stored_args_round_trip_exactly_to_the_worker(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    args = {
        "big_int": 12345678901234567890123,
        "big_float": 1e20,
        "tenth": 0.1,
        "negative_zero": -0.0,
        "text": 'caf\u00e9 \u2603 \U0001f600 \u0000 "quoted" \\ \n\t',
        "nested": {"list": [1, 2.5, None, True, False, "", {}], "empty": []},
    }
    received: dict[str, Any] = {}

    @app.job(name="echo.all")
    async def echo(**kwargs: Any) -> None:
        received.update(kwargs)

    job_id = await app.enqueue("echo.all", args)
    stored = (await job_row(db, schema, job_id))["args_text"]
    assert json.loads(stored) == args
    worker = start_worker(app)
    await wait_state(db, schema, job_id, "done")
    await stop_worker(worker)
    assert received == args
    assert json.loads(stored) == received
    assert [type(v) for v in received.values()] == [type(v) for v in args.values()]
    assert str(received["negative_zero"]) == "-0.0"
    assert (await job_row(db, schema, job_id))["args_text"] == stored


async def test_stored_model_args_round_trip_exactly_to_the_worker(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    class Typed(BaseModel):
        at: datetime
        ratio: float
        tags: list[str]

    ref = task_ref(name="typed.args", args_model=Typed)
    sent = Typed(
        at=datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=timezone.utc),
        ratio=0.1,
        tags=["x", "\u00e9"],
    )
    received: list[Typed] = []

    @app.job(ref)
    async def handle(at: datetime, ratio: float, tags: list[str]) -> None:
        received.append(Typed(at=at, ratio=ratio, tags=tags))

    job_id = await app.enqueue(ref, sent)
    assert (await job_row(db, schema, job_id))["args_text"] == sent.model_dump_json()
    worker = start_worker(app)
    await wait_state(db, schema, job_id, "done")
    await stop_worker(worker)
    assert received == [sent]


async def test_extra_keys_an_open_model_keeps_are_stored_and_reach_only_kwargs_handlers(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    class Open(BaseModel):
        model_config = ConfigDict(extra="allow")
        order: int

    fields_only = task_ref(name="open.fields_only", args_model=Open)
    with_kwargs = task_ref(name="open.with_kwargs", args_model=Open)
    received: dict[str, dict[str, Any]] = {}

    @app.job(fields_only)
    async def handle_fields(order: int) -> None:
        received["fields"] = {"order": order}

    @app.job(with_kwargs)
    async def handle_kwargs(order: int, **more: Any) -> None:
        received["kwargs"] = {"order": order, **more}

    first = await app.enqueue(fields_only, {"order": 1, "note": "kept"})
    second = await app.enqueue(with_kwargs, {"order": 2, "note": "passed"})
    assert json.loads((await job_row(db, schema, first))["args_text"]) == {
        "order": 1,
        "note": "kept",
    }
    worker = start_worker(app)
    await wait_state(db, schema, first, "done")
    await wait_state(db, schema, second, "done")
    await stop_worker(worker)
    assert received == {"fields": {"order": 1}, "kwargs": {"order": 2, "note": "passed"}}


async def test_args_over_max_args_bytes_are_refused_and_the_limit_is_inclusive(
    database_url: str, schema: str, app: Soniq, db: asyncpg.Connection
) -> None:
    small = Soniq(database_url, schema=schema, max_args_bytes=100)
    try:
        overhead = len('{"blob":""}')
        fits = await small.enqueue("blob.store", {"blob": "x" * (100 - overhead)})
        with pytest.raises(ArgsTooLargeError) as info:
            await small.enqueue("blob.store", {"blob": "x" * (101 - overhead)})
        assert "100" in str(info.value)
        # bytes, not characters: 'é' is two bytes of UTF-8
        with pytest.raises(ArgsTooLargeError):
            await small.enqueue("blob.store", {"blob": "\u00e9" * (100 - overhead)})
        with pytest.raises(ArgsTooLargeError):
            await small.enqueue(INVOICE, {**GOOD, "email": "e" * 100})
    finally:
        await small.close()
    rows = await db.fetch(f"SELECT id, length(args::text) AS n FROM {schema}.jobs")
    assert [(r["id"], r["n"]) for r in rows] == [(fits, 100)]


# -- queue, priority, schedule -----------------------------------------------------------


async def test_queue_precedence_explicit_then_ref_then_registered_then_default(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="billing.send_invoice", validate=InvoiceArgs, queue="registered")
    async def send(order_id: str, amount: int, email: str) -> None:
        return None

    bare_ref = task_ref(name="billing.send_invoice", args_model=InvoiceArgs)
    ids = {
        "explicit": await app.enqueue(INVOICE, GOOD, queue="explicit"),
        "ref": await app.enqueue(INVOICE, GOOD),
        "registered_by_ref": await app.enqueue(bare_ref, GOOD),
        "registered_by_name": await app.enqueue("billing.send_invoice", GOOD),
        "registered_by_function": await app.enqueue(send, GOOD),
        "default": await app.enqueue("other.task", {}),
    }
    queues = {k: (await job_row(db, schema, v))["queue"] for k, v in ids.items()}
    assert queues == {
        "explicit": "explicit",
        "ref": "billing",
        "registered_by_ref": "registered",
        "registered_by_name": "registered",
        "registered_by_function": "registered",
        "default": "default",
    }


async def test_priority_explicit_overrides_registered_default(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="ops.urgent", priority=7)
    async def urgent() -> None:
        return None

    ids = [
        await app.enqueue("ops.urgent"),
        await app.enqueue("ops.urgent", priority=-3),
        await app.enqueue("ops.plain"),
        await app.enqueue("ops.plain", priority=2**31 - 1),
    ]
    assert [(await job_row(db, schema, i))["priority"] for i in ids] == [7, -3, 0, 2**31 - 1]
    for bad in (2**31, True, "1", 1.5):
        with pytest.raises(EnqueueError):
            await app.enqueue("ops.plain", priority=bad)  # type: ignore[arg-type]
    assert await count_jobs(db, schema) == 4


async def test_delay_and_scheduled_at_set_the_run_time(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    before = await db.fetchval("SELECT clock_timestamp()")
    delayed = await app.enqueue("later.task", delay=60)
    delayed_td = await app.enqueue("later.task", delay=timedelta(hours=1))
    after = await db.fetchval("SELECT clock_timestamp()")
    at = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    scheduled = await app.enqueue("later.task", scheduled_at=at)
    now_job = await app.enqueue("later.task")

    def when(row: asyncpg.Record) -> datetime:
        return row["scheduled_at"]  # type: ignore[no-any-return]

    slack = timedelta(seconds=1)  # client and server clocks are the same machine's
    d1 = when(await job_row(db, schema, delayed))
    assert before + timedelta(seconds=60) - slack <= d1 <= after + timedelta(seconds=60) + slack
    d2 = when(await job_row(db, schema, delayed_td))
    assert before + timedelta(hours=1) - slack <= d2 <= after + timedelta(hours=1) + slack
    assert when(await job_row(db, schema, scheduled)) == at
    row = await job_row(db, schema, now_job)
    assert when(row) == row["enqueued_at"]


async def test_naive_scheduled_at_and_both_schedules_are_refused(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    with pytest.raises(EnqueueError, match="timezone-aware"):
        await app.enqueue("later.task", scheduled_at=datetime(2031, 1, 1))
    with pytest.raises(EnqueueError, match="not both"):
        await app.enqueue(
            "later.task", scheduled_at=datetime.now(timezone.utc), delay=timedelta(seconds=1)
        )
    with pytest.raises(EnqueueError):
        await app.enqueue("later.task", delay="soon")  # type: ignore[arg-type]
    assert await count_jobs(db, schema) == 0


async def test_job_scheduled_in_the_future_runs_only_when_due(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    ran_at: list[datetime] = []

    @app.job(name="later.task")
    async def later() -> None:
        ran_at.append(datetime.now(timezone.utc))

    job_id = await app.enqueue("later.task", delay=timedelta(seconds=1.5))
    due = (await job_row(db, schema, job_id))["scheduled_at"]
    worker = start_worker(app, poll=0.02)
    await asyncio.sleep(0.5)  # the worker polls ~25 times meanwhile: it must not take the job
    row = await db.fetchrow(
        f"SELECT state, attempts, clock_timestamp() < scheduled_at AS early "
        f"FROM {schema}.jobs WHERE id = $1",
        job_id,
    )
    assert row["early"], "the check came too late to prove anything"
    assert (row["state"], row["attempts"], ran_at) == ("queued", 0, [])
    row = await wait_state(db, schema, job_id, "done", timeout=10)
    await stop_worker(worker)
    assert row["started_at"] >= due
    assert len(ran_at) == 1


# -- dedup -------------------------------------------------------------------------------


async def test_dedup_key_returns_existing_id_while_queued_or_running_and_new_id_after_done(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    @app.job(name="sync.account")
    async def sync(account: int) -> None:
        started.set()
        await release.wait()

    first = await app.enqueue("sync.account", {"account": 1}, dedup_key="acct-1")
    assert await app.enqueue("sync.account", {"account": 1}, dedup_key="acct-1") == first
    other_key = await app.enqueue("sync.account", {"account": 2}, dedup_key="acct-2")
    assert other_key != first
    assert await count_jobs(db, schema) == 2

    worker = start_worker(app, concurrency=1)
    await wait_until(
        lambda: db.fetchval(f"SELECT state = 'running' FROM {schema}.jobs WHERE id = $1", first)
    )
    assert await app.enqueue("sync.account", {"account": 1}, dedup_key="acct-1") == first
    release.set()
    await wait_until(lambda: _all_done(db, schema))
    second = await app.enqueue("sync.account", {"account": 1}, dedup_key="acct-1")
    assert second not in (first, other_key)
    await wait_state(db, schema, second, "done")
    await stop_worker(worker)
    rows = await db.fetch(f"SELECT id, dedup_key, state FROM {schema}.jobs ORDER BY id")
    assert [(r["id"], r["dedup_key"], r["state"]) for r in rows] == [
        (first, "acct-1", "done"),
        (other_key, "acct-2", "done"),
        (second, "acct-1", "done"),
    ]


async def _all_done(db: asyncpg.Connection, schema: str) -> bool:
    return bool(await db.fetchval(f"SELECT bool_and(state = 'done') FROM {schema}.jobs"))


async def test_invalid_dedup_keys_are_refused(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    for bad in ("", "a\x00b", "k\ud800", "k" * 1001, 5):
        with pytest.raises(EnqueueError):
            await app.enqueue("sync.account", dedup_key=bad)  # type: ignore[arg-type]
    assert await count_jobs(db, schema) == 0


# -- targets and names -------------------------------------------------------------------


async def test_registered_function_is_a_target_validated_by_its_model(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(name="reports.build", queue="reports", retries=5)
    async def build(report_id: int) -> None:
        return None

    job_id = await app.enqueue(build, {"report_id": "12"})
    row = await job_row(db, schema, job_id)
    assert (row["task_name"], row["queue"], row["max_attempts"]) == ("reports.build", "reports", 6)
    assert json.loads(row["args_text"]) == {"report_id": 12}
    with pytest.raises(InvalidArgumentsError):
        await app.enqueue(build, {"report_id": "twelve"})
    assert await count_jobs(db, schema) == 1


async def test_unregistered_function_is_refused_with_unknown_task_error(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    async def never_registered(x: int) -> None:
        return None

    with pytest.raises(UnknownTaskError, match="never_registered"):
        await app.enqueue(never_registered, {"x": 1})
    with pytest.raises(EnqueueError):
        await app.enqueue(42, {})  # type: ignore[call-overload]
    assert await count_jobs(db, schema) == 0


@pytest.mark.parametrize(
    "name", ["Billing.send", "billing send", "1billing", "", "billing.", "a" * 201]
)
async def test_invalid_task_name_is_refused(
    app: Soniq, db: asyncpg.Connection, schema: str, name: str
) -> None:
    with pytest.raises(InvalidNameError):
        await app.enqueue(name, {})
    with pytest.raises(InvalidNameError):
        await app.enqueue_many(name, [{}])
    assert await count_jobs(db, schema) == 0


@pytest.mark.parametrize("queue", ["Billing", "has space", "-leading", "", "q" * 201, "x;y"])
async def test_invalid_queue_name_is_refused(
    app: Soniq, db: asyncpg.Connection, schema: str, queue: str
) -> None:
    with pytest.raises(InvalidNameError):
        await app.enqueue("ok.task", {}, queue=queue)
    with pytest.raises(InvalidNameError):
        await app.enqueue_many("ok.task", [{}], queue=queue)
    assert await count_jobs(db, schema) == 0


# -- enqueue_many ------------------------------------------------------------------------


async def test_enqueue_many_one_invalid_item_writes_nothing_and_names_its_index(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    items: list[Any] = [GOOD, InvoiceArgs(**GOOD), {**GOOD, "amount": "x"}, GOOD]
    with pytest.raises(InvalidArgumentsError) as info:
        await app.enqueue_many(INVOICE, items)
    assert info.value.index == 2
    assert "item 2" in str(info.value)
    assert _failing_fields(info.value) == {"amount"}
    assert await count_jobs(db, schema) == 0


@pytest.mark.parametrize(
    ("items", "error"),
    [
        ([{"a": 1}, {"a": {1, 2}}], ArgsNotJSONError),
        ([{"a": 1}, {"a": "x" * 2000}], ArgsTooLargeError),
        ([{"a": 1}, [1, 2]], EnqueueError),
    ],
    ids=["not_json", "too_large", "not_a_dict"],
)
async def test_enqueue_many_any_refused_item_writes_nothing_and_names_its_index(
    database_url: str,
    schema: str,
    app: Soniq,
    db: asyncpg.Connection,
    items: list[Any],
    error: type[EnqueueError],
) -> None:
    small = Soniq(database_url, schema=schema, max_args_bytes=1000)
    try:
        with pytest.raises(error) as info:
            await small.enqueue_many("free.form", items)
    finally:
        await small.close()
    assert "item 1" in str(info.value)
    assert await count_jobs(db, schema) == 0


async def test_enqueue_many_any_refused_item_error_has_index_attribute(app: Soniq) -> None:
    # Every refusal of one item, not only InvalidArgumentsError, carries its position.
    with pytest.raises(EnqueueError) as not_json:
        await app.enqueue_many("free.form", [{"a": 1}, {"a": {1, 2}}])
    with pytest.raises(EnqueueError) as not_a_dict:
        await app.enqueue_many("free.form", [{"a": 1}, {"b": 2}, [1, 2]])
    assert getattr(not_json.value, "index", None) == 1
    assert getattr(not_a_dict.value, "index", None) == 2


async def test_enqueue_many_returns_ids_in_input_order_written_in_one_statement(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    items = [{"i": i, "label": f"item-{i}"} for i in range(300)]
    ids = await app.enqueue_many("batch.item", items, queue="bulk", priority=4)
    assert len(ids) == len(set(ids)) == 300
    rows = await db.fetch(
        f"SELECT id, args::text AS args, queue, priority, enqueued_at, xmin::text AS tx "
        f"FROM {schema}.job_live"
    )
    by_id = {r["id"]: r for r in rows}
    assert [json.loads(by_id[i]["args"]) for i in ids] == items
    assert {(r["queue"], r["priority"]) for r in rows} == {("bulk", 4)}
    # one statement: a single transaction wrote every row
    assert len({r["tx"] for r in rows}) == 1
    assert len({r["enqueued_at"] for r in rows}) == 1


async def test_enqueue_many_mixed_models_and_dicts_with_a_ref_and_a_schedule(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    at = datetime.now(timezone.utc) + timedelta(days=1)
    ids = await app.enqueue_many(
        INVOICE, [InvoiceArgs(**GOOD), {**GOOD, "amount": "9"}], scheduled_at=at
    )
    rows = [await job_row(db, schema, i) for i in ids]
    assert [json.loads(r["args_text"])["amount"] for r in rows] == [3, 9]
    assert {(r["queue"], r["scheduled_at"]) for r in rows} == {("billing", at)}


async def test_enqueue_many_empty_list_returns_empty_and_writes_nothing(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    assert await app.enqueue_many("batch.item", []) == []
    assert await app.enqueue_many(INVOICE, []) == []
    assert await count_jobs(db, schema) == 0
