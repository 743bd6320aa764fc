"""Running one attempt of one claimed job and deciding its outcome."""

from __future__ import annotations

import asyncio
import functools
import json
import random
import traceback
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import timedelta

from pydantic import ValidationError

from soniq.db.jobs import ClaimedJob, Outcome
from soniq.job import JobContext, JobError
from soniq.registry import JobSpec


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits between half and all of
    ``min(cap, base * 2**(n-1))``."""

    base: timedelta
    cap: timedelta

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap.total_seconds(), self.base.total_seconds() * 2.0 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def _dead(job: ClaimedJob, reason: str, message: str, detail: object = None) -> Outcome:
    return Outcome(job.id, job.claim_token, "dead", error=JobError(reason, message, detail))


def _failed(job: ClaimedJob, policy: RetryPolicy, reason: str, message: str) -> Outcome:
    detail = traceback.format_exc() if reason == "exception" else None
    if job.attempts < job.max_attempts:
        error = JobError(reason, f"attempt {job.attempts} of {job.max_attempts}: {message}", detail)
        return Outcome(job.id, job.claim_token, "queued", policy.delay(job.attempts), error)
    return _dead(
        job,
        reason,
        f"attempt {job.attempts} of {job.max_attempts}, no retries left: {message}",
        detail,
    )


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


async def run_attempt(
    job: ClaimedJob, spec: JobSpec, *, policy: RetryPolicy, threads: Executor
) -> Outcome:
    """Validate the stored args, call the handler, and turn what happened into an Outcome.

    Cancellation (worker shutdown) propagates to the caller, which releases the job.
    """
    try:
        values = spec.args_model.model_validate_json(job.args_json)
    except ValidationError as exc:
        errors = json.loads(exc.json(include_url=False))
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(args)'}: {e['msg']}" for e in errors
        )
        return _dead(
            job,
            "invalid arguments",
            f"invalid arguments for {spec.args_model.__name__}: {fields}",
            errors,
        )

    kwargs = dict(values)
    if spec.context_param is not None:
        kwargs[spec.context_param] = JobContext(
            job_id=job.id,
            task_name=job.task_name,
            queue=job.queue,
            attempt=job.attempts,
            max_attempts=job.max_attempts,
            enqueued_at=job.enqueued_at,
        )

    if spec.is_async:
        task = asyncio.ensure_future(spec.handler(**kwargs))
    else:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(
            loop.run_in_executor(threads, functools.partial(spec.handler, **kwargs))
        )
    timeout = spec.timeout.total_seconds() if spec.timeout is not None else None
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
        task.result()
    except asyncio.CancelledError:
        return _failed(job, policy, "exception", "handler was cancelled")
    except Exception as exc:
        return _failed(job, policy, "exception", _describe(exc))
    return Outcome(job.id, job.claim_token, "done")
