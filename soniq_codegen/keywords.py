"""The JSON Schema subset contracts may use: which keywords apply to which type, and their values.

Each check looks at one schema's own keywords and returns what is wrong (an :class:`Issue`),
leaving walking the tree and reporting to the lowering.
"""

from __future__ import annotations

import difflib
import functools
import re
import warnings
from dataclasses import dataclass
from typing import Annotated, Any

import jsonschema
import jsonschema_rs
from pydantic import Field, TypeAdapter

from soniq_codegen.rules import document
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
FORMAT_HINT = f"supported formats: {', '.join(sorted(FORMATS))}"
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
#: Keywords no pydantic type states exactly: a model whose schema uses them also checks its
#: own schema, embedded as data (see :mod:`soniq_codegen.rules`).
CHECKED = frozenset(
    {
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
        "multipleOf",
        "uniqueItems",
        "prefixItems",
        "contains",
        "minContains",
        "maxContains",
        "minProperties",
        "maxProperties",
        "patternProperties",
        "propertyNames",
        "dependentRequired",
        "dependentSchemas",
    }
)
#: Keywords refused, and why: their meaning depends on more than the schema's own text.
REFUSED = {
    "$dynamicRef": "dynamic references resolve against the evaluation path",
    "$dynamicAnchor": "dynamic references resolve against the evaluation path",
    "$anchor": "only JSON-pointer references are supported",
    "unevaluatedProperties": "it depends on what every other keyword evaluated",
    "unevaluatedItems": "it depends on what every other keyword evaluated",
    "$vocabulary": "custom vocabularies are not supported",
}
SUPPORTED = ANNOTATIONS | GENERAL | CHECKED | frozenset().union(*BY_TYPE.values())
#: JSON type -> the Python value types that are of it (bool is not an integer).
JSON_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
META_HINT = "see https://json-schema.org/draft/2020-12"
#: Keywords whose value is a count: ``2.0`` is one too, checked as data.
_COUNTS = ("minLength", "maxLength", "minItems", "maxItems")
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength")


@dataclass(frozen=True)
class Issue:
    """What is wrong with a schema: at its keyword ``key`` (None: the schema as a whole)."""

    key: str | None
    message: str
    hint: str


def unknown_keywords(data: dict[str, Any], root: bool) -> list[Issue]:
    """One issue per keyword refused or outside the supported subset (``$id`` is allowed at
    the root of a file, where it changes nothing a JSON pointer reference resolves)."""
    issues = []
    for key in sorted(set(data) - SUPPORTED - ({"$id"} if root else set())):
        if key in REFUSED or key == "$id":
            why = REFUSED.get(key, "it would change what references inside it resolve to")
            issues.append(
                Issue(key, f"keyword {key!r} is not supported: {why}", "see docs/contracts.md")
            )
            continue
        close = difflib.get_close_matches(key, sorted(SUPPORTED), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "see docs/contracts.md"
        issues.append(Issue(key, f"unknown keyword {key!r}", hint))
    return issues


def checked(data: dict[str, Any]) -> bool:
    """Whether ``data`` needs its rules checked as data: a keyword no pydantic type states
    exactly, or a ``type``/``enum`` beyond one type (optionally nullable) or strings."""
    return (
        bool(set(data) & CHECKED)
        or isinstance(kind(data), Issue)
        or any(isinstance(data.get(key), float) for key in _COUNTS)
    )


def json_types(data: dict[str, Any]) -> frozenset[str]:
    """The JSON types a value of ``data`` can have, by its ``type``, ``enum`` and ``const``."""
    declared = data.get("type", list(JSON_TYPES))
    types = set(declared if isinstance(declared, list) else [declared])
    if "number" in types:
        types.add("integer")
    if "enum" in data or "const" in data:
        values = data["enum"] if "enum" in data else [data["const"]]
        found = {type_of(v) for v in values} if isinstance(values, list) else set()
        types &= found | ({"integer", "number"} if found & {"integer", "number"} else set())
    return frozenset(types & set(JSON_TYPES))


def type_of(value: Any) -> str:
    """The JSON type of a JSON value (an integral float is a number)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def beside_ref(data: dict[str, Any]) -> Issue | None:
    """The first keyword written beside ``$ref`` other than an annotation."""
    extra = sorted(set(data) - {"$ref", "description", "title", "$comment"})
    if not extra:
        return None
    return Issue(
        extra[0], f"keyword {extra[0]!r} beside $ref", "put it in the referenced schema instead"
    )


def nullable_option(data: dict[str, Any]) -> int | None:
    """The index of ``X`` in ``anyOf: [X, {type: null}]`` (the nullable form, a plain type
    or null), None for any other ``anyOf``."""
    options = data["anyOf"]
    if not isinstance(options, list) or len(options) != 2:
        return None
    nulls = [i for i, o in enumerate(options) if o == {"type": "null"}]
    return 1 - nulls[0] if len(nulls) == 1 else None


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
        FORMAT_HINT,
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
        jsonschema.validate(
            node.data["default"], document(node), cls=jsonschema.Draft202012Validator
        )
    except jsonschema.ValidationError as exc:
        return Issue(
            "default",
            f"default does not validate: {exc.message}",
            "a default must itself satisfy the schema",
        )
    return None


@functools.cache
def _meta_validator() -> Any:
    # jsonschema-rs: the same meta-schema checks, ~500x faster than jsonschema's $dynamicRef
    # walk, which took a third of a 200-contract build.
    return jsonschema_rs.Draft202012Validator(jsonschema.Draft202012Validator.META_SCHEMA)


def schema_errors(schema: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """Where ``schema`` breaks the JSON Schema 2020-12 meta-schema, and how."""
    errors = _meta_validator().iter_errors(schema)
    return sorted((tuple(e.instance_path), e.message.replace('"', "'")) for e in errors)


def property_name_issue(name: str) -> Issue | None:
    """A property name the generated model cannot carry as a field alias."""
    if not name or len(name) > 100 or CONTROL.search(name) or not name.isprintable():
        return Issue(
            None,
            f"property name {name!r} is not supported",
            "use printable names of at most 100 characters",
        )
    return None


def unchecked(node: SchemaNode) -> list[tuple[SchemaNode, Issue]]:
    """What rules checked as data could not check exactly, in ``node`` and all it reaches:
    refused or unknown keywords, unresolved references, patterns or formats that cannot be
    checked; each with the node it is in."""
    seen: set[tuple[str, str]] = set()
    stack = [node]
    found: list[tuple[SchemaNode, Issue]] = []
    while stack:
        current = stack.pop()
        if (current.file, current.pointer) in seen or not isinstance(current.data, dict):
            continue
        seen.add((current.file, current.pointer))
        data = current.data
        issues = unknown_keywords(data, root=current.pointer == "")
        patterns = [data["pattern"]] if "pattern" in data else []
        if isinstance(data.get("patternProperties"), dict):
            patterns.extend(data["patternProperties"])
        issues.extend(i for p in patterns if (i := pattern_issue(p)) is not None)
        if "format" in data and data["format"] not in FORMATS:
            issues.append(Issue("format", f"unsupported format {data['format']!r}", FORMAT_HINT))
        if current.unresolved is not None:
            unresolved = current.unresolved
            issues.append(Issue("$ref", unresolved.message, unresolved.hint))
        found.extend((current, issue) for issue in issues)
        stack.extend([current.target] if current.target is not None else [])
        stack.extend(current.subs.values())
    if not found:
        found.extend((at, LOOP) for at in _loops(node))
    return found


#: Keywords whose schemas apply to the value itself, not to a part of it.
_IN_PLACE = frozenset({"allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas"})
LOOP = Issue(
    "$ref",
    "$ref comes back to a schema it is part of without going into a property or item",
    "checking it would never end; refer to a schema from inside its properties or items",
)


def _loops(node: SchemaNode) -> list[SchemaNode]:
    """The ``$ref``s that close a loop of schemas applying to the same value."""
    done: set[int] = set()
    closing: list[SchemaNode] = []

    def visit(current: SchemaNode, path: set[int], via: SchemaNode) -> None:
        if id(current) in path:
            closing.append(via)  # the schema whose $ref (or applicator) closes the loop
            return
        if id(current) in done:
            return
        done.add(id(current))
        path.add(id(current))
        in_place = [s for p, s in current.subs.items() if p[0] in _IN_PLACE]
        for sub in ([current.target] if current.target is not None else []) + in_place:
            visit(sub, path, current)
        path.discard(id(current))
        for key, sub in current.subs.items():  # a part of the value starts a new path
            if key[0] not in _IN_PLACE:
                visit(sub, set(), current)

    visit(node, set(), node)
    return closing
