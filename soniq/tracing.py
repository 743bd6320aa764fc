"""Optional OpenTelemetry tracing (``opentelemetry-api``, when installed).

At enqueue the current span's W3C trace context is stored with the job row; the worker runs
each attempt inside a ``soniq.run <task>`` CONSUMER span whose parent is that context, so
the consumer's span joins the producer's trace. Without opentelemetry-api installed,
:data:`ENABLED` is False and callers skip all of this.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
except ImportError:  # pragma: no cover - exercised only without the package
    ENABLED = False
else:
    ENABLED = True

if TYPE_CHECKING:
    from soniq.job import ClaimedJob, Outcome


def missing_hint() -> str | None:
    """One line for a worker to log when OpenTelemetry is configured in the environment
    (an ``OTEL_*`` variable is set) but opentelemetry-api is not installed, else None."""
    configured = sorted(name for name in os.environ if name.startswith("OTEL_"))
    if ENABLED or not configured:
        return None
    return (
        f"{configured[0]} is set but opentelemetry-api is not installed, so jobs are not "
        "traced: pip install 'soniq-jobs[tracing]'"
    )


def active() -> bool:
    """Whether OpenTelemetry is installed and a tracer provider configured: without one
    every span would be a no-op, and the worker skips them. Looking the provider up reads
    the environment, so the worker asks once per claimed batch, not per job."""
    return ENABLED and not isinstance(
        trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
    )


def inject() -> str | None:
    """The current span's trace context as JSON text, or None without a valid span."""
    if not ENABLED or not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return json.dumps(carrier) if carrier else None


@contextmanager
def consumer_span(job: ClaimedJob) -> Iterator[Any]:
    """The current span for one attempt of ``job``, a child of the producer's span (a root
    span when the job carries no trace context). Only called when :data:`ENABLED`."""
    parent = (
        propagate.extract(json.loads(job.trace_context))
        if job.trace_context is not None
        else otel_context.Context()
    )
    tracer = trace.get_tracer("soniq")
    with tracer.start_as_current_span(
        f"soniq.run {job.task_name}",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "messaging.system": "soniq",
            "messaging.destination.name": job.queue,
            "messaging.message.id": str(job.id),
            "soniq.job.id": job.id,
            "soniq.task": job.task_name,
            "soniq.queue": job.queue,
            "soniq.attempt": job.attempts,
        },
    ) as span:
        yield span


def record_exception(exc: BaseException) -> None:
    """Record a handler's exception on the current span, if tracing."""
    if ENABLED:
        # The span renders str(exc), which user code can make raise; the attempt's outcome
        # must still be written.
        with suppress(Exception):
            trace.get_current_span().record_exception(exc)


def end_with(span: Any, outcome: Outcome) -> None:
    """Note the attempt's outcome on its span; an error status unless ``done``."""
    span.set_attribute("soniq.outcome", outcome.state)
    if outcome.error is not None:
        span.set_status(trace.Status(trace.StatusCode.ERROR, outcome.error.message))
