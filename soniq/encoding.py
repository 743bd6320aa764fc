"""Turning args into the exact JSON text to store: validated through the task's model when
it has one, checked to read back unchanged, within the size and nesting limits."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError, from_json

from soniq.errors import (
    ArgsNotJSONError,
    ArgsTooLargeError,
    EnqueueError,
    InvalidArgumentsError,
)
from soniq.roundtrip import float_fields_if_exact

# JSON parsers here (pydantic-core's, like Python's int()) refuse integers of more than
# 4,300 digits; stored args shorter than this cannot hold one.
_EXACT_MAX_BYTES = 4000


class Target(Protocol):
    """What encoding needs to know of an enqueue target: its task name and args model."""

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> type[BaseModel] | None: ...


def _describe_errors(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ())) or "(args)"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def _invalid(target: Target, exc: ValidationError, index: int | None) -> InvalidArgumentsError:
    errors = json.loads(exc.json(include_url=False))
    return InvalidArgumentsError(
        f"invalid args for task {target.name!r}{_at(index)}: {_describe_errors(errors)}",
        task_name=target.name,
        errors=errors,
        index=index,
    )


# How deeply args may nest (the args object itself is level 1): the limit of pydantic's JSON
# parser, which every worker reads args with, so deeper args could never be run.
MAX_NESTING = 200


def _at(index: int | None) -> str:
    return f" (item {index})" if index is not None else ""


def _find_non_json(value: Any) -> str | None:
    """Where in ``value`` something does not survive JSON unchanged (for the message).

    Iterative, so a value that contains itself or nests absurdly deep gets a message
    instead of a RecursionError.
    """
    Path = tuple[object, Any]  # (key or index, parent path), built into text only on failure

    def where(path: Path | None) -> str:
        parts: list[str] = []
        while path is not None:
            part, path = path
            parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
        return "args" + "".join(reversed(parts))

    stack: list[tuple[Any, Path | None, int]] = [(value, None, 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, (dict, list)) and depth > MAX_NESTING:
            return f"{where(path)}: nested over {MAX_NESTING} levels (or circular)"
        if isinstance(item, dict):
            children: list[tuple[Any, Path | None, int]] = []
            for key, child in item.items():
                if not isinstance(key, str):
                    return f"{where(path)}: key {key!r} is not a string"
                children.append((child, (key, path), depth + 1))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(
                (child, (i, path), depth + 1) for i, child in reversed(list(enumerate(item)))
            )
        elif isinstance(item, float) and not math.isfinite(item):
            return f"{where(path)}: {item!r} is not a JSON number"
        elif item is not None and type(item) not in (str, int, float, bool):
            return f"{where(path)}: {type(item).__name__} value {item!r} is not JSON"
    return None


def _check_size(target: Target, text: str, max_bytes: int, index: int | None) -> None:
    try:
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ArgsNotJSONError(
            f"args for task {target.name!r}{_at(index)} contain a lone surrogate character, "
            "which is not valid Unicode text and cannot be stored",
            task_name=target.name,
            index=index,
        ) from exc
    if size > max_bytes:
        raise ArgsTooLargeError(
            f"args for task {target.name!r}{_at(index)} are {size} bytes of JSON, over the "
            f"limit of {max_bytes}: store large payloads elsewhere and pass a reference, or "
            "raise Soniq(max_args_bytes=...)",
            task_name=target.name,
            index=index,
        )


def _encode_with_model(
    target: Target, model: type[BaseModel], args: object, index: int | None
) -> str:
    try:
        if isinstance(args, model):
            instance = args
        elif isinstance(args, BaseModel):
            raise EnqueueError(
                f"task {target.name!r}{_at(index)} takes {model.__name__} args, "
                f"got a {type(args).__name__}",
                task_name=target.name,
                index=index,
            )
        elif args is None or isinstance(args, Mapping):
            instance = model.model_validate(args or {})
        else:
            raise EnqueueError(
                f"args for task {target.name!r}{_at(index)} must be a dict or a "
                f"{model.__name__}, got {type(args).__name__}",
                task_name=target.name,
                index=index,
            )
    except ValidationError as exc:
        raise _invalid(target, exc, index) from exc
    try:
        text = instance.model_dump_json(by_alias=True)
    except PydanticSerializationError as exc:
        raise ArgsNotJSONError(
            f"args for task {target.name!r}{_at(index)} cannot be written as JSON: {exc}",
            task_name=target.name,
            index=index,
        ) from exc
    try:
        stored = model.model_validate_json(text)
    except ValidationError as exc:
        if instance is args:
            # An instance built without validation (model_construct, or changed after it)
            # is invalid args; a valid one holding e.g. NaN is args that are not JSON.
            try:
                model.model_validate(instance.model_dump(by_alias=True))
            except ValidationError as invalid:
                raise _invalid(target, invalid, index) from invalid
        raise ArgsNotJSONError(
            f"args for task {target.name!r}{_at(index)} do not survive a JSON round trip "
            f"through {model.__name__}: {_describe_errors(json.loads(exc.json()))}",
            task_name=target.name,
            index=index,
        ) from exc
    if stored != instance:
        # Valid both ways but changed on the way (a field typed Any holding NaN, a tuple, a
        # set, a non-string key): the handler would get something else than was enqueued.
        changed = sorted(
            name
            for name in type(instance).model_fields
            if getattr(stored, name, None) != getattr(instance, name, None)
        )
        raise ArgsNotJSONError(
            f"args for task {target.name!r}{_at(index)} change in a JSON round trip through "
            f"{model.__name__} (field(s): {', '.join(changed) or 'extra keys'}): use plain "
            "JSON values (no NaN, tuples, sets or non-string keys)",
            task_name=target.name,
            index=index,
        )
    return text


def _encode_plain(target: Target, args: object, index: int | None) -> str:
    value = {} if args is None else args
    if isinstance(value, BaseModel):
        value = json.loads(value.model_dump_json(by_alias=True))
    if not isinstance(value, dict):
        raise EnqueueError(
            f"args for task {target.name!r}{_at(index)} must be a dict (a JSON object), "
            f"got {type(value).__name__}",
            task_name=target.name,
            index=index,
        )
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        same = json.loads(text) == value
    except (TypeError, ValueError, RecursionError):
        same = False
    if not same:
        where = _find_non_json(value) or "args: a value changes in a JSON round trip"
        raise ArgsNotJSONError(
            f"args for task {target.name!r}{_at(index)} are not plain JSON ({where}): use "
            "dicts with string keys, lists, strings, finite numbers, booleans and None",
            task_name=target.name,
            index=index,
        )
    return text


def _check_nesting(target: Target, text: str, index: int | None) -> None:
    """Refuse args that the JSON parser every worker reads args with would refuse."""
    try:
        from_json(text)
    except ValueError as exc:
        raise ArgsNotJSONError(
            f"args for task {target.name!r}{_at(index)} nest more than {MAX_NESTING} levels "
            f"deep, which no worker can read ({exc})",
            task_name=target.name,
            index=index,
        ) from exc


def encode_args(target: Target, args: object, *, max_bytes: int, index: int | None = None) -> str:
    """Validate ``args`` for ``target`` and return the exact JSON text to store.

    With a model, the stored text is the validated model dumped by alias, and it is checked
    to validate again, so what a worker reads back is what was accepted here.
    """
    model = target.model
    if model is not None and type(args) is dict:
        try:
            return _encode_dict_fast(model, args, max_bytes)
        except _Unusual:
            pass
    if model is not None:
        text = _encode_with_model(target, model, args, index)
    else:
        text = _encode_plain(target, args, index)
    _check_size(target, text, max_bytes, index)
    if model is None:
        _check_nesting(target, text, index)
    return text


def encode_many(
    target: Target, items: Sequence[object], *, max_bytes: int, start: int = 0
) -> list[str]:
    """:func:`encode_args` for each item; indexes in errors count from ``start``."""
    return [
        encode_args(target, args, max_bytes=max_bytes, index=i)
        for i, args in enumerate(items, start=start)
    ]


def _encode_dict_fast(model: type[BaseModel], args: dict[str, Any], max_bytes: int) -> str:
    """The common case straight through pydantic-core: a dict that validates, whose JSON
    is within the size limit and reads back to the same values (checked by validating it
    again, unless the model's schema guarantees it: see :mod:`soniq.roundtrip`). Anything
    else raises :class:`_Unusual` and takes the general path, which explains the refusal."""
    validator = model.__pydantic_validator__
    floats = float_fields_if_exact(model)
    try:
        instance = validator.validate_python(args)
        raw = model.__pydantic_serializer__.to_json(instance, by_alias=True)
        if floats is None or len(raw) > _EXACT_MAX_BYTES:
            stored = validator.validate_json(raw)
            if (
                stored.__dict__ != instance.__dict__
                or stored.__pydantic_extra__ != instance.__pydantic_extra__
            ):
                raise _Unusual
        else:
            values = instance.__dict__
            for name in floats:
                value = values[name]
                if value is not None and not math.isfinite(value):
                    raise _Unusual  # written as null, which the field would refuse
    except (ValidationError, PydanticSerializationError) as exc:
        raise _Unusual from exc
    if len(raw) > max_bytes:
        raise _Unusual
    return raw.decode()


class _Unusual(Exception):
    """A case the fast path of :func:`encode_args` leaves to the general path."""
