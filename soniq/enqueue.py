"""Turning an enqueue call into a validated, encoded row, before anything touches SQL."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from soniq.db.jobs import NewJob
from soniq.errors import (
    ArgsNotJSONError,
    ArgsTooLargeError,
    EnqueueError,
    InvalidArgumentsError,
    UnknownTaskError,
)
from soniq.names import check_queue_name, check_task_name
from soniq.registry import Registry
from soniq.task_ref import TaskRef

DEFAULT_QUEUE = "default"
MAX_DEDUP_KEY_LENGTH = 1000
_INT32 = range(-(2**31), 2**31)


@dataclass(frozen=True)
class Target:
    """What an enqueue target (name, TaskRef or registered function) resolves to."""

    name: str
    model: type[BaseModel] | None
    queue: str
    priority: int
    max_attempts: int
    contract_version: int | None
    contract_fingerprint: str | None


def resolve_target(target: object, registry: Registry, *, default_retries: int) -> Target:
    """Find the name, model and defaults for ``target``.

    Queue precedence: the ref's ``default_queue``, then the locally registered job's queue,
    then ``"default"`` (an explicit ``queue=`` overrides all of them later).
    """
    ref: TaskRef[Any] | None = None
    if isinstance(target, TaskRef):
        ref = target
        spec = registry.get(target.name)
    elif isinstance(target, str):
        check_task_name(target)
        spec = registry.get(target)
    elif callable(target):
        spec = registry.for_handler(target)
        if spec is None:
            raise UnknownTaskError(
                f"{getattr(target, '__qualname__', target)!r} is not a registered job: "
                "decorate it with @app.job(name=...) on this app, or enqueue by task name"
            )
    else:
        raise EnqueueError(
            f"cannot enqueue {target!r}: pass a task name, a TaskRef, or a registered function"
        )

    name = ref.name if ref is not None else spec.name if spec is not None else str(target)
    model = ref.args_model if ref is not None else spec.args_model if spec is not None else None
    queue = (
        (ref.default_queue if ref is not None else None)
        or (spec.queue if spec is not None else None)
        or DEFAULT_QUEUE
    )
    return Target(
        name=name,
        model=model,
        queue=queue,
        priority=spec.priority if spec is not None and spec.priority is not None else 0,
        max_attempts=spec.max_attempts if spec is not None else default_retries + 1,
        contract_version=ref.version if ref is not None else None,
        contract_fingerprint=ref.fingerprint if ref is not None else None,
    )


def _describe_errors(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ())) or "(args)"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def _invalid(target: Target, exc: ValidationError, index: int | None) -> InvalidArgumentsError:
    errors = json.loads(exc.json(include_url=False))
    at = f" (item {index})" if index is not None else ""
    return InvalidArgumentsError(
        f"invalid args for task {target.name!r}{at}: {_describe_errors(errors)}",
        task_name=target.name,
        errors=errors,
        index=index,
    )


def _find_non_json(value: Any, path: str) -> str | None:
    """Where in ``value`` something does not survive JSON unchanged (for the message)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}: key {key!r} is not a string"
            found = _find_non_json(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _find_non_json(item, f"{path}[{i}]")
            if found:
                return found
    elif isinstance(value, float) and not math.isfinite(value):
        return f"{path}: {value!r} is not a JSON number"
    elif value is not None and type(value) not in (str, int, float, bool):
        return f"{path}: {type(value).__name__} value {value!r} is not JSON"
    return None


def _check_size(target: Target, text: str, max_bytes: int, index: int | None) -> None:
    try:
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ArgsNotJSONError(
            f"args for task {target.name!r} contain a lone surrogate character, which is not "
            "valid Unicode text and cannot be stored",
            task_name=target.name,
        ) from exc
    if size > max_bytes:
        at = f" (item {index})" if index is not None else ""
        raise ArgsTooLargeError(
            f"args for task {target.name!r}{at} are {size} bytes of JSON, over the limit of "
            f"{max_bytes}: store large payloads elsewhere and pass a reference, or raise "
            "Soniq(max_args_bytes=...)",
            task_name=target.name,
        )


def encode_args(target: Target, args: object, *, max_bytes: int, index: int | None = None) -> str:
    """Validate ``args`` for ``target`` and return the exact JSON text to store.

    With a model, the stored text is the validated model dumped by alias, and it is checked
    to validate again, so what a worker reads back is what was accepted here.
    """
    model = target.model
    if model is not None:
        try:
            if isinstance(args, model):
                instance = args
            elif isinstance(args, BaseModel):
                raise EnqueueError(
                    f"task {target.name!r} takes {model.__name__} args, "
                    f"got a {type(args).__name__}",
                    task_name=target.name,
                )
            elif args is None or isinstance(args, Mapping):
                instance = model.model_validate(args or {})
            else:
                raise EnqueueError(
                    f"args for task {target.name!r} must be a dict or a {model.__name__}, "
                    f"got {type(args).__name__}",
                    task_name=target.name,
                )
        except ValidationError as exc:
            raise _invalid(target, exc, index) from exc
        try:
            text = instance.model_dump_json(by_alias=True)
        except PydanticSerializationError as exc:
            raise ArgsNotJSONError(
                f"args for task {target.name!r} cannot be written as JSON: {exc}",
                task_name=target.name,
            ) from exc
        try:
            model.model_validate_json(text)
        except ValidationError as exc:
            if isinstance(args, model):
                raise _invalid(target, exc, index) from exc
            raise ArgsNotJSONError(
                f"args for task {target.name!r} do not survive a JSON round trip through "
                f"{model.__name__}: {_describe_errors(json.loads(exc.json()))}",
                task_name=target.name,
            ) from exc
    else:
        value = {} if args is None else args
        if isinstance(value, BaseModel):
            value = json.loads(value.model_dump_json(by_alias=True))
        if not isinstance(value, dict):
            raise EnqueueError(
                f"args for task {target.name!r} must be a dict (a JSON object), "
                f"got {type(value).__name__}",
                task_name=target.name,
            )
        try:
            text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
            same = json.loads(text) == value
        except (TypeError, ValueError, RecursionError):
            same = False
        if not same:
            where = _find_non_json(value, "args") or "args: a value changes in a JSON round trip"
            raise ArgsNotJSONError(
                f"args for task {target.name!r} are not plain JSON ({where}): use dicts with "
                "string keys, lists, strings, finite numbers, booleans and None",
                task_name=target.name,
            )
    _check_size(target, text, max_bytes, index)
    return text


def scheduled_time(
    scheduled_at: datetime | None, delay: timedelta | float | None
) -> datetime | None:
    """The absolute run time from ``scheduled_at`` or ``delay`` (not both); None means now."""
    if scheduled_at is not None and delay is not None:
        raise EnqueueError("pass either scheduled_at or delay, not both")
    if scheduled_at is not None:
        if not isinstance(scheduled_at, datetime) or scheduled_at.tzinfo is None:
            raise EnqueueError(
                "scheduled_at must be a timezone-aware datetime, "
                "e.g. datetime.now(timezone.utc) + timedelta(minutes=5)"
            )
        return scheduled_at
    if delay is not None:
        if isinstance(delay, (int, float)) and not isinstance(delay, bool):
            delay = timedelta(seconds=delay)
        if not isinstance(delay, timedelta):
            raise EnqueueError("delay must be a timedelta or a number of seconds")
        return datetime.now(timezone.utc) + delay
    return None


def build_job(
    target: Target,
    args_json: str,
    *,
    queue: str | None,
    priority: int | None,
    scheduled_at: datetime | None,
    delay: timedelta | float | None,
    dedup_key: str | None,
) -> NewJob:
    """Combine a resolved target, encoded args and per-call options into a row to insert."""
    if priority is not None and (
        isinstance(priority, bool) or not isinstance(priority, int) or priority not in _INT32
    ):
        raise EnqueueError(f"priority must be a 32-bit integer, got {priority!r}")
    if dedup_key is not None and (
        not isinstance(dedup_key, str)
        or not dedup_key
        or len(dedup_key) > MAX_DEDUP_KEY_LENGTH
        or "\x00" in dedup_key
    ):
        raise EnqueueError(
            f"dedup_key must be a non-empty string of at most {MAX_DEDUP_KEY_LENGTH} "
            "characters without NUL"
        )
    return NewJob(
        task_name=target.name,
        queue=check_queue_name(queue) if queue is not None else target.queue,
        args_json=args_json,
        priority=target.priority if priority is None else priority,
        max_attempts=target.max_attempts,
        scheduled_at=scheduled_time(scheduled_at, delay),
        dedup_key=dedup_key,
        contract_version=target.contract_version,
        contract_fingerprint=target.contract_fingerprint,
    )
