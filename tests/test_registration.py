"""Registering handlers with @app.job and creating task references."""

from __future__ import annotations

import dataclasses
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from pydantic import BaseModel

from soniq import (
    InvalidArgumentsError,
    InvalidNameError,
    JobContext,
    RegistrationError,
    Soniq,
    task_ref,
)
from soniq.backoff import Backoff
from soniq.job import ClaimedJob
from soniq.registry import JobSpec, build_spec
from soniq.worker.attempt import run_attempt
from tests.helpers import job_row


class InvoiceArgs(BaseModel):
    order_id: str
    customer: str


SEND_INVOICE = task_ref(
    name="billing.send_invoice", args_model=InvoiceArgs, default_queue="billing", version=2
)


@pytest.fixture
def bare_app(database_url: str, schema: str) -> Soniq:
    """An app that never connects: registration needs no database."""
    return Soniq(database_url, schema=schema)


BAD_TASK_NAMES = {
    "uppercase": "Billing.send",
    "space": "billing send",
    "leading_digit": "1billing",
    "part_leading_digit": "billing.2send",
    "empty": "",
    "too_long": "a" * 201,
    "dash": "billing-send",
    "trailing_dot": "billing.",
    "double_dot": "billing..send",
    "non_ascii": "b\u00e9lling",
}


@pytest.mark.parametrize("name", list(BAD_TASK_NAMES.values()), ids=list(BAD_TASK_NAMES))
def test_invalid_task_name_refused_at_decoration_with_helpful_message(
    bare_app: Soniq, name: str
) -> None:
    with pytest.raises(InvalidNameError) as info:

        @bare_app.job(name=name)
        async def handler() -> None:
            return None

    message = str(info.value)
    assert repr(name) in message
    assert "billing.send_invoice" in message  # an example of a valid name
    assert "200" in message  # the length limit


def test_longest_valid_task_name_is_accepted(bare_app: Soniq) -> None:
    @bare_app.job(name="a" * 200)
    async def handler() -> None:
        return None


@pytest.mark.parametrize("queue", ["Billing", "has space", "-x", "", "q" * 201])
def test_invalid_queue_name_refused_at_decoration(bare_app: Soniq, queue: str) -> None:
    with pytest.raises(InvalidNameError, match="invalid queue name"):

        @bare_app.job(name="ok.task", queue=queue)
        async def handler() -> None:
            return None


def test_model_field_missing_from_handler_is_refused(bare_app: Soniq) -> None:
    with pytest.raises(RegistrationError) as info:

        @bare_app.job(name="billing.send", validate=InvoiceArgs)
        async def send(order_id: str) -> None:
            return None

    assert "customer" in str(info.value)
    assert "InvoiceArgs" in str(info.value)


def test_handler_parameter_without_default_outside_model_is_refused(bare_app: Soniq) -> None:
    with pytest.raises(RegistrationError) as info:

        @bare_app.job(name="billing.send", validate=InvoiceArgs)
        async def send(order_id: str, customer: str, copies: int) -> None:
            return None

    assert "copies" in str(info.value)


def test_handler_parameter_with_default_outside_model_is_accepted(bare_app: Soniq) -> None:
    @bare_app.job(name="billing.send", validate=InvoiceArgs)
    async def send(order_id: str, customer: str, copies: int = 1) -> None:
        return None


def test_kwargs_handler_accepts_any_model(bare_app: Soniq) -> None:
    @bare_app.job(name="billing.send", validate=InvoiceArgs)
    async def send(**fields: Any) -> None:
        return None

    @bare_app.job(name="billing.other", validate=InvoiceArgs)
    async def other(order_id: str, **rest: Any) -> None:
        return None


@pytest.mark.parametrize("kind", ["positional_only", "var_positional"])
def test_positional_only_and_star_args_handlers_are_refused(bare_app: Soniq, kind: str) -> None:
    async def positional_only(order_id: str, /) -> None:
        return None

    async def var_positional(*args: Any) -> None:
        return None

    handler = positional_only if kind == "positional_only" else var_positional
    with pytest.raises(RegistrationError, match="keyword"):
        bare_app.job(name="billing.send")(handler)


def test_same_name_for_two_functions_is_refused(bare_app: Soniq) -> None:
    @bare_app.job(name="billing.send")
    async def first() -> None:
        return None

    with pytest.raises(RegistrationError) as info:

        @bare_app.job(name="billing.send")
        async def second() -> None:
            return None

    assert "billing.send" in str(info.value) and "first" in str(info.value)


def test_registering_the_same_function_twice_is_allowed(bare_app: Soniq) -> None:
    async def handler() -> None:
        return None

    bare_app.job(name="billing.send")(handler)
    bare_app.job(name="billing.send")(handler)


def test_two_apps_may_use_the_same_name(database_url: str, schema: str) -> None:
    for _ in range(2):
        app = Soniq(database_url, schema=schema)

        @app.job(name="billing.send")
        async def send() -> None:
            return None


def test_decorator_returns_the_function_unchanged(bare_app: Soniq) -> None:
    def add(a: int, b: int) -> int:
        return a + b

    assert bare_app.job(name="math.add")(add) is add
    assert add(2, 3) == 5


async def test_job_from_ref_takes_name_model_and_queue_from_the_ref(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    @app.job(SEND_INVOICE)
    async def send_invoice(order_id: str, customer: str) -> None:
        return None

    job_id = await app.enqueue(send_invoice, {"order_id": "o1", "customer": "acme"})
    row = await job_row(db, schema, job_id)
    assert (row["task_name"], row["queue"]) == ("billing.send_invoice", "billing")
    assert json.loads(row["args_text"]) == {"order_id": "o1", "customer": "acme"}
    with pytest.raises(InvalidArgumentsError) as info:
        await app.enqueue(send_invoice, {"order_id": "o1"})
    assert [e["loc"] for e in info.value.errors] == [["customer"]]
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.jobs") == 1


def test_job_from_ref_checks_the_handler_against_the_ref_model(bare_app: Soniq) -> None:
    with pytest.raises(RegistrationError, match="customer"):

        @bare_app.job(SEND_INVOICE)
        async def send_invoice(order_id: str) -> None:
            return None


def test_job_from_ref_with_a_different_name_is_refused(bare_app: Soniq) -> None:
    with pytest.raises(RegistrationError) as info:
        bare_app.job(SEND_INVOICE, name="billing.other")
    assert "billing.other" in str(info.value)


def test_string_passed_positionally_gives_a_helpful_error(bare_app: Soniq) -> None:
    with pytest.raises(RegistrationError) as info:
        bare_app.job("billing.x")  # type: ignore[arg-type]
    assert "name='billing.x'" in str(info.value)


def test_job_without_a_name_is_refused(bare_app: Soniq) -> None:
    with pytest.raises(RegistrationError, match="name"):
        bare_app.job()


@pytest.mark.parametrize(
    "options",
    [
        {"retries": -1},
        {"retries": True},
        {"retries": 1.5},
        {"timeout": 0},
        {"timeout": timedelta(seconds=-1)},
        {"timeout": "5"},
        {"priority": "high"},
        {"validate": dict},
        {"validate": InvoiceArgs(order_id="o", customer="c")},
    ],
    ids=lambda o: "-".join(f"{k}={v!r}"[:30] for k, v in o.items()),
)
def test_bad_registration_options_are_refused(bare_app: Soniq, options: dict[str, Any]) -> None:
    with pytest.raises(RegistrationError):

        @bare_app.job(name="ok.task", **options)
        async def handler(**kwargs: Any) -> None:
            return None


def test_non_callable_handler_is_refused(bare_app: Soniq) -> None:
    with pytest.raises(RegistrationError):
        bare_app.job(name="ok.task")("not a function")  # type: ignore[type-var]


async def test_unresolvable_annotation_does_not_drop_the_other_parameter_types(
    bare_app: Soniq,
) -> None:
    # A common module layout: JobContext imported only for type checkers.
    source = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from soniq import JobContext\n"
        "async def handler(order_id: int, ctx: JobContext) -> None:\n"
        "    return None\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, "<handler module>", "exec"), namespace)
    bare_app.job(name="typed.task")(namespace["handler"])
    # order_id keeps its int type (and ctx is still recognised as the context, not an arg)
    with pytest.raises(InvalidArgumentsError) as info:
        await bare_app.enqueue("typed.task", {"order_id": "not a number"})
    assert [e["loc"] for e in info.value.errors] == [["order_id"]]


# -- task_ref ----------------------------------------------------------------------------


@dataclasses.dataclass
class NotAModel:
    order_id: str


@pytest.mark.parametrize(
    "args_model",
    [dict, NotAModel, InvoiceArgs(order_id="o", customer="c"), "InvoiceArgs", None],
    ids=["dict", "dataclass", "model_instance", "string", "none"],
)
def test_task_ref_refuses_non_basemodel_args_model(args_model: Any) -> None:
    with pytest.raises(RegistrationError, match="BaseModel"):
        task_ref(name="billing.send", args_model=args_model)


@pytest.mark.parametrize("name", ["Billing.send", "", "1x", "a b"])
def test_task_ref_refuses_bad_names(name: str) -> None:
    with pytest.raises(InvalidNameError):
        task_ref(name=name, args_model=InvoiceArgs)


def test_task_ref_refuses_bad_default_queue() -> None:
    with pytest.raises(InvalidNameError):
        task_ref(name="billing.send", args_model=InvoiceArgs, default_queue="Bad Queue")


@pytest.mark.parametrize("version", [0, -1, True, "1", 1.0])
def test_task_ref_refuses_version_below_one_or_not_int(version: Any) -> None:
    with pytest.raises(RegistrationError, match="version"):
        task_ref(name="billing.send", args_model=InvoiceArgs, version=version)


def test_task_ref_keeps_its_fields_and_is_immutable() -> None:
    ref = task_ref(
        name="billing.send", args_model=InvoiceArgs, default_queue="q", version=1, fingerprint="f"
    )
    assert (ref.name, ref.args_model, ref.default_queue, ref.version, ref.fingerprint) == (
        "billing.send",
        InvoiceArgs,
        "q",
        1,
        "f",
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.name = "other.name"  # type: ignore[misc]


async def test_ref_version_and_fingerprint_are_stamped_on_jobs(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    ref = task_ref(name="billing.send", args_model=InvoiceArgs, version=3, fingerprint="abc123")
    by_ref = await app.enqueue(ref, {"order_id": "o", "customer": "c"})
    by_name = await app.enqueue("billing.send", {"order_id": "o", "customer": "c"})
    rows = [await job_row(db, schema, i) for i in (by_ref, by_name)]
    assert [(r["contract_version"], r["contract_fingerprint"]) for r in rows] == [
        (3, "abc123"),
        (None, None),
    ]


class _RefusesEverything(BaseModel):
    """A model no args pass: a dispatch that consults it dead-letters the job."""

    never_given: int


def _spec_of(handler: Any, validate: type[BaseModel] | None = None) -> JobSpec:
    return build_spec(
        handler, name="raw.task", validate=validate, queue=None, retries=0, timeout=None,
        priority=None, ref=None,
    )  # fmt: skip


def test_only_a_handler_taking_nothing_but_kwargs_without_a_model_gets_raw_args() -> None:
    async def only_kwargs(**kwargs: Any) -> None: ...

    async def context_and_kwargs(ctx: JobContext, **kwargs: Any) -> None: ...

    async def named(order_id: str, **kwargs: Any) -> None: ...

    assert _spec_of(only_kwargs).raw_args
    assert _spec_of(context_and_kwargs).raw_args
    assert not _spec_of(named).raw_args
    assert not _spec_of(only_kwargs, InvoiceArgs).raw_args


async def test_raw_args_reach_the_handler_without_passing_through_any_model() -> None:
    received: list[dict[str, Any]] = []

    async def only_kwargs(**kwargs: Any) -> None:
        received.append(kwargs)

    # The signature's own model accepts anything; swapped for one that accepts nothing, a
    # dispatch that still validated would dead-letter the job instead of running it.
    spec = dataclasses.replace(_spec_of(only_kwargs), args_model=_RefusesEverything)
    args = {"n": 1, "nested": {"a-b": [1.5, None, "\u00e9"]}}
    job = ClaimedJob(
        id=1, slot=0, task_name="raw.task", queue="default", args_json=json.dumps(args),
        attempts=1, max_attempts=1, enqueued_at=datetime.now(timezone.utc),
        claim_token=uuid.uuid4(), contract_version=None, queue_wait=0.0, trace_context=None,
    )  # fmt: skip
    policy = Backoff(timedelta(seconds=1), timedelta(seconds=1))
    with ThreadPoolExecutor(1) as threads:
        outcome = await run_attempt(
            job, spec, policy=policy, threads=threads, upcasters={}, traced=False
        )
        not_an_object = await run_attempt(
            job._replace(args_json="[1, 2]"), spec, policy=policy, threads=threads,
            upcasters={}, traced=False,
        )  # fmt: skip
    assert outcome.state == "done"
    assert received == [args]
    assert not_an_object.state == "dead"
    assert not_an_object.error is not None
    assert not_an_object.error.reason == "invalid arguments"
    assert "must be a JSON object" in not_an_object.error.message
