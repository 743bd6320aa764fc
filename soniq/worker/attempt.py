"""Running one attempt of one claimed job and deciding its outcome."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from soniq import tracing
from soniq.backoff import Backoff, Delays, for_task
from soniq.errors import Discard, Retry, Snooze
from soniq.job import ClaimedJob, JobContext, JobError, Outcome
from soniq.registry import CallNext, JobSpec, Middleware, Registry, Upcaster
from soniq.worker.threads import Contained

logger = logging.getLogger("soniq.worker")


def job_fields(job: ClaimedJob) -> dict[str, Any]:
    """What identifies an attempt in a log record (``record.soniq``; JSON logs show it)."""
    return {"job_id": job.id, "task": job.task_name, "queue": job.queue, "attempt": job.attempts}


def log_outcome(job: ClaimedJob, outcome: Outcome) -> None:
    """One line for each attempt that did not end done: a retry with its delay (WARNING), a
    dead letter with its reason (ERROR), a cancellation (INFO)."""
    if outcome.state == "done":
        return
    reason = outcome.error.reason if outcome.error else ""
    message = outcome.error.message if outcome.error else ""
    fields = {**job_fields(job), "outcome": outcome.state, "reason": reason}
    where = f"job {job.id} ({job.task_name}, queue {job.queue}, attempt {job.attempts})"
    if outcome.state == "queued":
        fields["retry_delay"] = round(outcome.retry_delay, 3)
        logger.warning(
            "%s failed, retrying in %.1fs: %s",
            where,
            outcome.retry_delay,
            message,
            extra={"soniq": fields},
        )
    elif outcome.state == "dead":
        logger.error("%s dead-lettered (%s): %s", where, reason, message, extra={"soniq": fields})
    else:
        logger.info("%s %s: %s", where, outcome.state, message, extra={"soniq": fields})


def _dead(job: ClaimedJob, reason: str, message: str, detail: object = None) -> Outcome:
    return Outcome(job.claim, "dead", error=JobError(reason, message, detail))


def _failed(
    job: ClaimedJob, policy: Delays, reason: str, message: str, delay: float | None = None
) -> Outcome:
    """Retried after ``delay`` (else the backoff's) while attempts remain, else dead."""
    detail = traceback.format_exc() if reason == "exception" else None
    if job.attempts < job.max_attempts:
        error = JobError(reason, f"attempt {job.attempts} of {job.max_attempts}: {message}", detail)
        wait = policy.delay(job.attempts) if delay is None else delay
        return Outcome(job.claim, "queued", wait, error)
    return _dead(
        job,
        reason,
        f"attempt {job.attempts} of {job.max_attempts}, no retries left: {message}",
        detail,
    )


def _raised(job: ClaimedJob, policy: Delays, exc: BaseException) -> Outcome:
    """The outcome of a handler (or middleware) that raised ``exc``: what a
    :class:`Retry`, :class:`Discard` or :class:`Snooze` asks for, else a failed attempt.
    Exceptions that are not ``Exception`` (``SystemExit``, ``KeyboardInterrupt``,
    ``GeneratorExit``, a custom ``BaseException``) are contained the same way: a handler
    must not be able to end the worker process or leave its job running."""
    if isinstance(exc, Contained):
        exc = exc.raised
    if isinstance(exc, Snooze):
        return Outcome(job.claim, "snoozed", exc.delay)
    if isinstance(exc, Discard):
        return _dead(job, "discarded", f"attempt {job.attempts} of {job.max_attempts}: {exc}")
    if isinstance(exc, Retry):
        return _failed(job, policy, "retry", str(exc), exc.delay)
    tracing.record_exception(exc)
    message = _describe(exc)
    if not isinstance(exc, Exception):
        message += " (not an Exception: contained as a failed attempt)"
    return _failed(job, policy, "exception", message)


def _describe(exc: BaseException) -> str:
    """``Type: message`` for an exception, even one whose ``__str__`` itself fails."""
    try:
        text = str(exc)
    except Exception:
        text = "<str() of the exception failed>"
    return f"{type(exc).__name__}: {text}"


def not_registered(job: ClaimedJob, registered: list[str]) -> Outcome:
    """The outcome for a job whose task this worker has no handler for."""
    known = ", ".join(registered) if registered else "none"
    return _dead(
        job,
        "Job not registered",
        f"Job not registered: this worker has no handler for task {job.task_name!r} "
        f"(registered here: {known}); register it with @app.job(name={job.task_name!r}) in "
        "the consumer, or stop producers from sending it",
    )


def _upcast(
    job: ClaimedJob, spec: JobSpec, upcasters: Mapping[int, Upcaster]
) -> dict[str, Any] | Outcome:
    """Carry args written against an older contract version up to the handler's version,
    one upcaster per version; an Outcome when that is impossible."""
    assert job.contract_version is not None and spec.version is not None
    args: dict[str, Any] = json.loads(job.args_json)
    for version in range(job.contract_version, spec.version):
        upcaster = upcasters.get(version)
        if upcaster is None:
            known = ", ".join(str(v) for v in sorted(upcasters)) or "none"
            return _dead(
                job,
                "unsupported contract version",
                f"job was written against version {job.contract_version} of "
                f"{job.task_name!r}; this worker runs version {spec.version} and has no "
                f"upcaster from version {version} (upcasters registered from versions: "
                f"{known}); register @app.upcaster(<ref>, from_version={version})",
            )
        try:
            args = upcaster(args)
        except BaseException as exc:  # contained, as a handler's would be
            return _dead(
                job,
                "upcaster failed",
                f"upcaster of {job.task_name!r} from version {version} raised {_describe(exc)}",
                traceback.format_exc(),
            )
        if not isinstance(args, dict):
            return _dead(
                job,
                "upcaster failed",
                f"upcaster of {job.task_name!r} from version {version} returned "
                f"{type(args).__name__}, not a dict of args",
            )
    return args


def _cancelled_from_outside() -> bool:
    """Whether this task itself is being cancelled (shutdown), rather than the handler
    letting a CancelledError of its own escape. Python 3.10 cannot tell: assume shutdown."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return cancelling is None or cancelling() > 0


async def _call(spec: JobSpec, kwargs: dict[str, Any], threads: Executor) -> Any:
    if spec.is_async:
        return await spec.handler(**kwargs)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(threads, functools.partial(spec.handler, **kwargs))


def _invoke(
    spec: JobSpec,
    kwargs: dict[str, Any],
    threads: Executor,
    middleware: Sequence[Middleware],
    context: JobContext | None,
) -> Awaitable[Any]:
    """The handler call wrapped in the middleware, the first registered outermost."""
    call: CallNext = functools.partial(_call, spec, kwargs, threads)
    if context is not None:
        for wrap in reversed(middleware):
            call = functools.partial(wrap, context, call)
    return call()


def _result(job: ClaimedJob, spec: JobSpec, value: Any) -> Outcome:
    """A done outcome carrying the encoded return value; dead (``invalid result``) when the
    value is not JSON or fails the result model: running it again would return the same."""
    try:
        if spec.result_model is not None and not isinstance(value, spec.result_model):
            value = spec.result_model.model_validate(value)
        if value is None:
            return Outcome(job.claim, "done")
        if isinstance(value, BaseModel):
            text = value.model_dump_json()
        else:
            text = json.dumps(value, allow_nan=False)
    except ValidationError as exc:
        errors = json.loads(exc.json(include_url=False))
        assert spec.result_model is not None
        return _dead(
            job,
            "invalid result",
            f"the handler's return value fails {spec.result_model.__name__}: {_fields(errors)}",
            errors,
        )
    except (TypeError, ValueError, RecursionError) as exc:
        return _dead(
            job, "invalid result", f"the handler's return value is not JSON: {_describe(exc)}"
        )
    return Outcome(job.claim, "done", result_json=text)


def _fields(errors: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(value)'}: {e['msg']}" for e in errors
    )


async def run_attempt(
    job: ClaimedJob,
    spec: JobSpec,
    *,
    policy: Backoff,
    threads: Executor,
    upcasters: Mapping[int, Upcaster],
    middleware: Sequence[Middleware] = (),
    traced: bool,
) -> Outcome:
    """Upcast and validate the stored args, call the handler through the middleware, and
    turn what happened into an Outcome; a failure is retried after the task's backoff
    (``policy``, the app's, when it has none). Cancellation (worker shutdown, app.cancel())
    propagates to the caller, which releases or cancels the job. With ``traced`` (see
    :func:`soniq.tracing.active`) the attempt runs inside a consumer span.
    """
    delays = for_task(spec.backoff, policy)
    if not traced:
        return await _run_attempt(job, spec, delays, threads, upcasters, middleware)
    with tracing.consumer_span(job) as span:
        outcome = await _run_attempt(job, spec, delays, threads, upcasters, middleware)
        tracing.end_with(span, outcome)
        return outcome


def _validated_args(
    job: ClaimedJob, spec: JobSpec, upcasters: Mapping[int, Upcaster]
) -> dict[str, Any] | Outcome:
    """The stored args, upcast to the handler's contract version and validated, as the
    handler's keyword arguments; a dead Outcome when that fails."""
    if spec.raw_args:
        # Parsed by the same JSON parser as a model would use, without building a model
        # that could only copy every key.
        raw = from_json(job.args_json)
        if isinstance(raw, dict):
            return raw
        return _dead(
            job,
            "invalid arguments",
            f"invalid arguments for {job.task_name!r}: args must be a JSON object, "
            f"got {type(raw).__name__}",
        )
    try:
        if (
            job.contract_version is not None
            and spec.version is not None
            and job.contract_version < spec.version
        ):
            upcast = _upcast(job, spec, upcasters)
            if isinstance(upcast, Outcome):
                return upcast
            values = spec.args_model.model_validate(upcast)
        else:
            values = spec.args_model.model_validate_json(job.args_json)
    except ValidationError as exc:
        errors = json.loads(exc.json(include_url=False))
        return _dead(
            job,
            "invalid arguments",
            f"invalid arguments for {spec.args_model.__name__}: {_fields(errors)}",
            errors,
        )
    # Not dict(values): that probes the model for a keys() attribute, which raises inside
    # pydantic on every job.
    if spec.takes_extra_keys and values.__pydantic_extra__:
        return {**values.__dict__, **values.__pydantic_extra__}
    return {**values.__dict__}


async def _run_attempt(
    job: ClaimedJob,
    spec: JobSpec,
    policy: Delays,
    threads: Executor,
    upcasters: Mapping[int, Upcaster],
    middleware: Sequence[Middleware],
) -> Outcome:
    kwargs = _validated_args(job, spec, upcasters)
    if isinstance(kwargs, Outcome):
        return kwargs
    context = None
    if spec.context_param is not None or middleware:
        context = JobContext(
            job_id=job.id,
            task_name=job.task_name,
            queue=job.queue,
            attempt=job.attempts,
            max_attempts=job.max_attempts,
            enqueued_at=job.enqueued_at,
        )
        if spec.context_param is not None:
            kwargs[spec.context_param] = context
    call = functools.partial(_invoke, spec, kwargs, threads, middleware, context)
    if spec.timeout is None:
        # The common path: no extra task. A CancelledError here is the worker shutting
        # down, and propagates so the job is released.
        try:
            value = await call()
        except asyncio.CancelledError:
            if _cancelled_from_outside():
                raise
            return _failed(job, policy, "exception", "handler raised CancelledError")
        except BaseException as exc:
            return _raised(job, policy, exc)
        return _result(job, spec, value)
    return await _run_with_timeout(job, spec, policy, call, spec.timeout.total_seconds())


async def _run_with_timeout(
    job: ClaimedJob,
    spec: JobSpec,
    policy: Delays,
    call: Callable[[], Awaitable[Any]],
    timeout: float,
) -> Outcome:
    task = asyncio.ensure_future(_contained(call))
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        # A cancelled sync handler keeps its thread until it returns; only the wait ends.
        await asyncio.gather(task, return_exceptions=True)
        return _failed(job, policy, "timeout", f"handler did not finish within {timeout:g}s")
    try:
        value = task.result()
    except asyncio.CancelledError:
        return _failed(job, policy, "exception", "handler was cancelled")
    except BaseException as exc:
        return _raised(job, policy, exc)
    return _result(job, spec, value)


async def _contained(call: Callable[[], Awaitable[Any]]) -> Any:
    try:
        return await call()
    except (KeyboardInterrupt, SystemExit) as exc:
        raise Contained(exc) from exc


async def run_claimed(
    job: ClaimedJob, registry: Registry, *, policy: Backoff, threads: Executor, traced: bool
) -> Outcome:
    """Run one attempt of a claimed job with the app's handler for its task, upcasters and
    middleware; a job of a task the app has no handler for is dead-lettered. The one path
    from a claimed row to its outcome, for the worker and for ``app.drain()`` alike."""
    spec = registry.get(job.task_name)
    if spec is None:
        return not_registered(job, registry.names())
    return await run_attempt(
        job,
        spec,
        policy=policy,
        threads=threads,
        upcasters=registry.upcasters(job.task_name),
        middleware=registry.middleware,
        traced=traced,
    )
