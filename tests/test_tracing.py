"""OpenTelemetry: the worker's consumer span continues the producer's trace via the job row."""

from __future__ import annotations

import json
from collections.abc import Iterator

import asyncpg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from soniq import Soniq
from tests.helpers import start_worker, stop_worker, wait_state, wait_until

_EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """The spans finished during one test (the global provider can only be set once)."""
    trace.set_tracer_provider(_PROVIDER)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


async def _span_of(exporter: InMemorySpanExporter, name: str, count: int = 1) -> list[ReadableSpan]:
    async def finished() -> list[ReadableSpan]:
        spans = [s for s in exporter.get_finished_spans() if s.name == name]
        return spans if len(spans) >= count else []

    return await wait_until(finished)


async def test_consumer_span_is_a_child_of_the_producer_span(
    app: Soniq, db: asyncpg.Connection, schema: str, exporter: InMemorySpanExporter
) -> None:
    @app.job(name="t.ok")
    async def ok(n: int) -> int:
        return n

    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("produce") as producer:
        job_id = await app.enqueue("t.ok", {"n": 1})
        [many_id] = await app.enqueue_many("t.ok", [{"n": 2}])
    stored = await db.fetchval(
        f"SELECT trace_context::text FROM {schema}.jobs WHERE id = $1", job_id
    )
    produced = producer.get_span_context()
    assert json.loads(stored)["traceparent"] == (
        f"00-{produced.trace_id:032x}-{produced.span_id:016x}-{produced.trace_flags:02x}"
    )
    worker = start_worker(app)
    await wait_state(db, schema, job_id, "done")
    await wait_state(db, schema, many_id, "done")
    await stop_worker(worker)

    spans = await _span_of(exporter, "soniq.run t.ok", 2)
    by_id = {s.attributes["soniq.job.id"]: s for s in spans if s.attributes}
    for jid in (job_id, many_id):
        span = by_id[jid]
        assert span.kind == trace.SpanKind.CONSUMER
        assert span.context.trace_id == produced.trace_id
        assert span.parent is not None and span.parent.span_id == produced.span_id
        assert span.attributes is not None
        assert span.attributes["soniq.task"] == "t.ok"
        assert span.attributes["soniq.queue"] == "default"
        assert span.attributes["soniq.attempt"] == 1
        assert span.attributes["soniq.outcome"] == "done"
        assert span.status.status_code == trace.StatusCode.UNSET


async def test_failed_attempt_records_the_exception(
    app: Soniq, db: asyncpg.Connection, schema: str, exporter: InMemorySpanExporter
) -> None:
    @app.job(name="t.broken", retries=0)
    def broken() -> None:
        raise ValueError("boom")

    job_id = await app.enqueue("t.broken", {})  # no current span: nothing stored
    assert (
        await db.fetchval(f"SELECT trace_context FROM {schema}.jobs WHERE id = $1", job_id) is None
    )
    worker = start_worker(app)
    await wait_state(db, schema, job_id, "dead")
    await stop_worker(worker)

    [span] = await _span_of(exporter, "soniq.run t.broken")
    assert span.parent is None  # a root span: the producer had none
    assert span.status.status_code == trace.StatusCode.ERROR
    assert span.attributes is not None and span.attributes["soniq.outcome"] == "dead"
    [event] = span.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "boom"


async def test_an_exception_whose_str_raises_is_still_recorded_under_tracing(
    app: Soniq, db: asyncpg.Connection, schema: str, exporter: InMemorySpanExporter
) -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    @app.job(name="t.unprintable", retries=0)
    async def unprintable() -> None:
        raise Unprintable

    job_id = await app.enqueue("t.unprintable")
    worker = start_worker(app)
    row = await wait_state(db, schema, job_id, "dead", timeout=10)
    await stop_worker(worker)
    assert (row["error_reason"], "Unprintable" in row["error_message"]) == ("exception", True)
    [span] = await _span_of(exporter, "soniq.run t.unprintable")
    assert span.attributes is not None and span.attributes["soniq.outcome"] == "dead"
