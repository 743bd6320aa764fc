"""The JSON Schema subset contracts may use: which keywords apply to which type, and their values.

Each check looks at one schema's own keywords and returns what is wrong (an :class:`Issue`),
leaving walking the tree and reporting to the lowering.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Annotated, Any

import jsonschema
from pydantic import Field, TypeAdapter

from soniq_codegen.fingerprint import inline
from soniq_codegen.source import CONTROL
from soniq_codegen.tree import SchemaNode

#: JSON Schema ``format`` -> the strict type of the generated ``_types`` module.
FORMATS = {
    "date": "Date",
    "date-time": "DateTime",
    "email": "Email",
    "uri": "Uri",
    "uuid": "Uuid",
}
ANNOTATIONS = frozenset({"title", "description", "examples", "$comment"})
BY_TYPE: dict[str, frozenset[str]] = {
    "string": frozenset({"minLength", "maxLength", "pattern", "format"}),
    "integer": frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}),
    "number": frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}),
    "array": frozenset({"items", "minItems", "maxItems"}),
    "object": frozenset({"properties", "required", "additionalProperties"}),
    "boolean": frozenset(),
    "null": frozenset(),
}
GENERAL = frozenset({"type", "enum", "const", "default", "$ref", "$defs", "$schema"})
SUPPORTED = ANNOTATIONS | GENERAL | frozenset().union(*BY_TYPE.values())
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength")


@dataclass(frozen=True)
class Issue:
    """What is wrong with a schema: at its keyword ``key`` (None: the schema as a whole)."""

    key: str | None
    message: str
    hint: str


def unknown_keywords(data: dict[str, Any]) -> list[Issue]:
    """One issue per keyword outside the supported subset."""
    return [
        Issue(
            key, f"unsupported keyword {key!r}", "see docs/contracts.md for the supported keywords"
        )
        for key in sorted(set(data) - SUPPORTED)
    ]


def beside_ref(data: dict[str, Any]) -> Issue | None:
    """The first keyword written beside ``$ref`` other than an annotation."""
    extra = sorted(set(data) - {"$ref", "description", "title", "$comment"})
    if not extra:
        return None
    return Issue(
        extra[0], f"keyword {extra[0]!r} beside $ref", "put it in the referenced schema instead"
    )


def nullable_option(data: dict[str, Any]) -> int | Issue:
    """The index of ``X`` in ``anyOf: [X, {type: null}]``, the one ``anyOf`` supported."""
    options = data["anyOf"]
    nulls = (
        [i for i, o in enumerate(options) if o == {"type": "null"}]
        if isinstance(options, list)
        else []
    )
    if not isinstance(options, list) or len(options) != 2 or len(nulls) != 1:
        return Issue(
            "anyOf",
            "anyOf is supported only as [<schema>, {type: 'null'}]",
            "unions are not supported; use one schema, optionally nullable",
        )
    return 1 - nulls[0]


def kind(data: dict[str, Any]) -> tuple[str, bool] | Issue:
    """The one non-null type ``data`` describes (``enum`` for ``enum``/``const``), and whether
    null is also allowed."""
    declared = data.get("type")
    types = declared if isinstance(declared, list) else [declared]
    if declared is not None and (
        not types
        or len(set(types)) != len(types)
        or any(t not in BY_TYPE for t in types)
        or len([t for t in types if t != "null"]) > 1
    ):
        return Issue(
            "type",
            f"unsupported type {declared!r}",
            "use one JSON type, optionally with 'null': [string, 'null']",
        )
    nullable = "null" in types
    base = next((t for t in types if t not in ("null", None)), "null" if nullable else None)
    if "enum" in data or "const" in data:
        return _enum_kind(data, declared, base, nullable)
    if base is None:
        return Issue(None, "schema has no 'type'", "say what the value is, e.g. 'type: string'")
    return base, nullable


def _enum_kind(
    data: dict[str, Any], declared: Any, base: str | None, nullable: bool
) -> tuple[str, bool] | Issue:
    values = data["enum"] if "enum" in data else [data["const"]]
    where = "enum" if "enum" in data else "const"
    if (
        not isinstance(values, list)
        or not values
        or any(v is not None and not isinstance(v, str) for v in values)
        or len(set(values)) != len(values)
        or ("enum" in data and "const" in data)
        or base not in (None, "string", "null")
    ):
        return Issue(
            where,
            "enum and const must list distinct strings (or null)",
            "number and boolean enums are not supported; use strings",
        )
    if declared is not None and not nullable and None in values:
        return Issue(where, "null in enum but 'type' does not allow null", "add 'null' to 'type'")
    return "enum", nullable or (declared is None and None in values)


def misplaced(data: dict[str, Any], base: str) -> Issue | None:
    """The first keyword that does not apply to type ``base``."""
    for key in sorted(set(data) & (SUPPORTED - GENERAL - ANNOTATIONS)):
        if base not in BY_TYPE or key not in BY_TYPE[base]:
            return Issue(
                key,
                f"keyword {key!r} does not apply to type {base!r}",
                "JSON Schema would silently ignore it; remove it or fix 'type'",
            )
    return None


def bound_issue(data: dict[str, Any]) -> Issue | None:
    """The first numeric bound or string length whose value is not valid."""
    for key in (k for k in _BOUNDS if k in data):
        value = data[key]
        if key in ("minLength", "maxLength"):
            valid = _is_count(value)
        else:
            valid = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not valid:
            return Issue(
                key,
                f"{key} {value!r} is not valid",
                "lengths are integers >= 0, bounds are numbers",
            )
    return None


def size_issue(data: dict[str, Any]) -> Issue | None:
    """The first ``minItems`` / ``maxItems`` that is not an integer >= 0."""
    for key in (k for k in ("minItems", "maxItems") if k in data):
        value = data[key]
        if not _is_count(value):
            return Issue(key, f"{key} {value!r} is not valid", "use an integer >= 0")
    return None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def format_issue(data: dict[str, Any]) -> Issue | None:
    """A ``format`` outside :data:`FORMATS`, or one combined with a length or pattern."""
    if data["format"] in FORMATS and not set(data) & {"minLength", "maxLength", "pattern"}:
        return None
    return Issue(
        "format",
        f"unsupported format {data['format']!r} (or format with length/pattern)",
        f"supported formats: {', '.join(sorted(FORMATS))}",
    )


def pattern_issue(pattern: Any) -> Issue | None:
    """A ``pattern`` that Python or pydantic cannot compile."""
    try:
        if not isinstance(pattern, str):
            raise TypeError("not a string")
        re.compile(pattern)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            TypeAdapter(Annotated[str, Field(pattern=pattern)])
    except Exception as exc:  # any failure to compile is the contract's problem
        return Issue(
            "pattern",
            f"pattern cannot be compiled: {type(exc).__name__}",
            "use a regular expression without look-around or back-references",
        )
    return None


def default_issue(node: SchemaNode, base: str) -> Issue | None:
    """A ``default`` where defaults are not supported, or one its own schema rejects."""
    if "format" in node.data or base == "array":
        return Issue(
            "default",
            "defaults are supported on plain scalars only (no arrays, objects or formats)",
            "leave the default out: an optional field is then simply absent",
        )
    try:
        jsonschema.validate(node.data["default"], inline(node), cls=jsonschema.Draft202012Validator)
    except jsonschema.ValidationError as exc:
        return Issue(
            "default",
            f"default does not validate: {exc.message}",
            "a default must itself satisfy the schema",
        )
    return None


def property_name_issue(name: str) -> Issue | None:
    """A property name the generated model cannot carry as a field alias."""
    if not name or len(name) > 100 or CONTROL.search(name) or not name.isprintable():
        return Issue(
            None,
            f"property name {name!r} is not supported",
            "use printable names of at most 100 characters",
        )
    return None
