"""Which args models are known, from their schema alone, to survive a JSON round trip.

Enqueue stores a model's JSON and promises that a worker validating that text gets the
values that were accepted. For most models this is checked per job by validating the text
again, which costs as much as the first validation. For a flat model of plain JSON types
(strings, integers, booleans, None, string literals, and lists or string-keyed dicts of
those; no validators, aliases, computed fields, custom serialisers or nested models, whose
instances pydantic would take unvalidated), the round trip cannot change a value, with one
exception: a NaN or infinite float is written as null. Such models skip the second
validation and enqueue checks their float fields are finite instead. Any other model keeps
the check.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from pydantic import BaseModel
from pydantic_core import SchemaValidator, ValidationError

_CONSTRAINTS = frozenset({"type", "strict", "metadata"})
_LEAF_KEYS: dict[str, frozenset[str]] = {
    "str": _CONSTRAINTS | {"min_length", "max_length", "pattern"},
    "int": _CONSTRAINTS | {"ge", "gt", "le", "lt", "multiple_of"},
    "bool": _CONSTRAINTS,
    "none": _CONSTRAINTS,
}
_FLOAT_KEYS = _CONSTRAINTS | {"ge", "gt", "le", "lt", "allow_inf_nan"}
_LIST_KEYS = _CONSTRAINTS | {"items_schema", "min_length", "max_length"}
_DICT_KEYS = _CONSTRAINTS | {"keys_schema", "values_schema"}
_MODEL_KEYS = frozenset(
    {"type", "cls", "config", "custom_init", "metadata", "ref", "root_model", "schema"}
)
_FIELDS_KEYS = frozenset({"type", "fields", "model_name", "computed_fields"})
_MODEL_CONFIG_KEYS = frozenset({"title", "extra_fields_behavior"})


@functools.cache
def float_fields_if_exact(model: type[BaseModel]) -> tuple[str, ...] | None:
    """The float fields to check for finiteness when ``model`` otherwise round-trips
    exactly; None when a value may change (keep validating the stored JSON again)."""
    schema = model.__pydantic_core_schema__
    if schema.get("type") != "model" or set(schema) - _MODEL_KEYS:
        return None
    if schema.get("custom_init") or schema.get("root_model"):
        return None
    config = schema.get("config", {})
    if set(config) - _MODEL_CONFIG_KEYS:
        return None
    if config.get("extra_fields_behavior", "ignore") not in ("ignore", "forbid"):
        return None  # extra keys are kept as Any
    fields = schema["schema"]
    if fields.get("type") != "model-fields" or set(fields) - _FIELDS_KEYS:
        return None
    if fields.get("computed_fields"):
        return None
    floats = []
    for name, field in fields["fields"].items():
        if set(field) - {"type", "schema", "metadata"}:
            return None  # aliases, exclusions, ...
        if _is_float(field["schema"]):
            floats.append(name)
        elif not _is_exact(field["schema"]):
            return None
    return tuple(floats)


def _is_float(schema: dict[str, Any]) -> bool:
    """A float, possibly nullable or with a plain default."""
    if schema.get("type") == "default":
        return _plain_default(schema) and _is_float(schema["schema"])
    if schema.get("type") == "nullable":
        return set(schema) <= {"type", "schema"} and _is_float(schema["schema"])
    return schema.get("type") == "float" and set(schema) <= _FLOAT_KEYS


def _plain_default(schema: dict[str, Any]) -> bool:
    """A default that is a plain JSON value (an empty list or dict at most) which its field
    accepts unchanged: it is stored as it is and must validate back to itself."""
    if set(schema) != {"type", "schema", "default"}:
        return False  # default_factory, validate_default, ...
    default = schema["default"]
    plain = (
        default is None
        or type(default) in (str, bool, int)
        or (type(default) is float and math.isfinite(default))
        or (type(default) in (list, dict) and not default)
    )
    if not plain:
        return False
    try:
        accepted = SchemaValidator(schema["schema"]).validate_python(default)
    except ValidationError:
        return False
    return type(accepted) is type(default) and bool(accepted == default)


def _is_exact(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    if kind in _LEAF_KEYS:
        return set(schema) <= _LEAF_KEYS[kind]
    if kind == "literal":
        return set(schema) <= {"type", "expected", "metadata"} and all(
            value is None or type(value) is str for value in schema["expected"]
        )
    if kind == "nullable":
        return set(schema) <= {"type", "schema"} and _is_exact(schema["schema"])
    if kind == "default":
        return _plain_default(schema) and _is_exact(schema["schema"])
    if kind == "list":
        return set(schema) <= _LIST_KEYS and _is_exact(schema["items_schema"])
    if kind == "dict":
        return (
            set(schema) <= _DICT_KEYS
            and schema["keys_schema"] == {"type": "str"}
            and _is_exact(schema["values_schema"])
        )
    return False
