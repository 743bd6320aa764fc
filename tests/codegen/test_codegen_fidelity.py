"""Model fidelity: a generated model accepts exactly what its JSON Schema accepts.

Instances are drawn near the schema (mostly valid, often broken in one place) and checked by
``jsonschema`` and by the model, in JSON and in Python mode; an accepted value's dump must
validate again. The reference uses the documented semantics of docs/contracts.md: formats
are asserted, ``integer`` means a JSON integer literal (not 1.0), and ``date-time``/``uri``,
which jsonschema checks only with optional packages, use the documented grammar.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from datetime import date, datetime
from types import ModuleType
from typing import Any

import jsonschema
import pytest
from codegen_helpers import SpecValidator, cli, write_contracts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

DEFS = {
    "Card": {
        "type": "object",
        "properties": {
            "kind": {"const": "card"},
            "last4": {"type": "string", "pattern": "^[0-9]{4}$"},
        },
        "required": ["kind", "last4"],
        "additionalProperties": False,
    },
    "Bank": {
        "type": "object",
        "properties": {"kind": {"const": "bank"}, "iban": {"type": "string", "minLength": 4}},
        "required": ["kind", "iban"],
    },
    "Money": {
        "type": "object",
        "properties": {
            "cents": {"type": "integer", "minimum": 0},
            "currency": {"enum": ["EUR", "USD"]},
        },
        "required": ["cents", "currency"],
        "additionalProperties": False,
    },
}
SCHEMAS: dict[str, dict[str, Any]] = {
    # Keywords checked as data, and unions: discriminated (pay), of scalars (ref), overlapping
    # branches where oneOf's "exactly one" decides (either).
    "UnionsArgs": {
        "type": "object",
        "properties": {
            "pay": {"oneOf": [{"$ref": "#/$defs/Card"}, {"$ref": "#/$defs/Bank"}]},
            "ref": {
                "anyOf": [{"type": "string", "maxLength": 3}, {"type": "integer", "minimum": 0}]
            },
            "step": {"type": "integer", "multipleOf": 3},
            "tags": {
                "type": "array",
                "items": {"type": "string", "maxLength": 2},
                "uniqueItems": True,
                "maxItems": 3,
            },
            "either": {
                "oneOf": [{"type": "integer", "maximum": 5}, {"type": "integer", "minimum": 3}]
            },
        },
        "required": ["pay"],
        "dependentRequired": {"step": ["ref"]},
        "additionalProperties": False,
        "$defs": DEFS,
    },
    "StringsArgs": {
        "type": "object",
        "properties": {
            "code": {"type": "string", "minLength": 2, "maxLength": 4},
            "slug": {"type": "string", "pattern": "^[a-z]+(-[a-z]+)*$"},
            "plan": {"type": "string", "enum": ["free", "pro"]},
            "kind": {"const": "fixed"},
            "note": {"type": ["string", "null"], "maxLength": 3},
            "level": {"enum": ["low", "high", None]},
            "label": {"type": "string", "default": "x"},
        },
        "required": ["code"],
        "additionalProperties": False,
    },
    "NumbersArgs": {
        "type": "object",
        "properties": {
            "count": {"type": "integer", "minimum": -3, "maximum": 3},
            "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "big": {"type": "integer"},
            "flag": {"type": "boolean"},
            "maybe": {"type": ["number", "null"]},
            "nothing": {"type": "null"},
        },
        "required": ["count"],
        "additionalProperties": False,
    },
    "FormatsArgs": {
        "type": "object",
        "properties": {
            "at": {"type": "string", "format": "date-time"},
            "on": {"type": "string", "format": "date"},
            "id": {"type": "string", "format": "uuid"},
            "email": {"type": "string", "format": "email"},
            "link": {"type": "string", "format": "uri"},
            "until": {"type": ["string", "null"], "format": "date-time"},
        },
        "required": ["at"],
        "additionalProperties": False,
    },
    "NestedArgs": {
        "type": "object",
        "properties": {
            "money": {"$ref": "#/$defs/Money"},
            "refund": {"anyOf": [{"$ref": "#/$defs/Money"}, {"type": "null"}]},
            "items": {"type": "array", "items": {"$ref": "#/$defs/Money"}, "maxItems": 2},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}, "minItems": 1},
            "meta": {"type": "object", "properties": {"k-1": {"type": "integer"}}},
            "class": {"type": "boolean"},
        },
        "required": ["money"],
        "additionalProperties": False,
        "$defs": DEFS,
    },
}

_DATE_TIME = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]*$")
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time")
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.match(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


@FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    return not isinstance(value, str) or bool(_URI.match(value))


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    root = tmp_path_factory.mktemp("fidelity")
    contracts = {
        f"{name}.json": {**schema, "title": name, "x-soniq": {"task": f"fid.t{i}"}}
        for i, (name, schema) in enumerate(SCHEMAS.items())
    }
    write_contracts(root / "contracts", contracts)
    result = cli("build", root / "contracts", "-o", root / "fidelity_pkg")
    assert result.exit_code == 0, result.output
    sys.path.insert(0, str(root / "fidelity_pkg"))
    try:
        return importlib.import_module("fidelity_pkg")
    finally:
        sys.path.remove(str(root / "fidelity_pkg"))


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(-2, 2, allow_nan=False)
    | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=4,
)
#: Type confusions a lax model would let through, then anything.
FAULTS = (
    st.sampled_from(
        [
            None,
            0,
            1,
            -1,
            1.0,
            2.5,
            "",
            "1",
            "true",
            "2024-01-01",
            True,
            False,
            [],
            {},
            ["a"],
            {"a": 1},
        ]
    )
    | JSON
)
FORMAT_VALUES = {
    "date-time": st.datetimes(timezones=st.timezones() | st.none()).map(lambda d: d.isoformat())
    | st.sampled_from(
        [
            "2024-01-31T09:30:00Z",
            "2024-01-31t09:30:00z",
            "2024-02-30T00:00:00Z",
            "2024-01-31T09:30:00.1234567Z",
            "2024-01-31 09:30:00Z",
            "2024-01-31",
        ]
    ),
    "date": st.dates().map(date.isoformat)
    | st.sampled_from(["2024-02-30", "2024-1-01", "20240101", "2024-01-01T00:00:00Z"]),
    "uuid": st.uuids().map(str)
    | st.uuids().map(lambda u: u.hex)
    | st.just("{12345678-1234-5678-1234-567812345678}"),
    "email": st.emails() | st.text(max_size=5),
    "uri": st.sampled_from(
        [
            "https://example.com/a?b=c",
            "mailto:x@y",
            "no scheme",
            "urn:isbn:123",
            "1http://x",
            "http://a b",
        ]
    ),
}


def near(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values close to ``schema``: valid or off by one edge, now and then anything at all."""
    return st.one_of(valid_ish(schema, defs), valid_ish(schema, defs), FAULTS)


def valid_ish(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "$ref" in schema:
        return valid_ish(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of(*(valid_ish(s, defs) for s in schema[key]))
    if "enum" in schema or "const" in schema:
        values = schema.get("enum", [schema.get("const")])
        return st.sampled_from(values) | st.sampled_from([v.upper() for v in values if v])
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    return st.one_of(*(_typed(t, schema, defs) for t in types))


def _typed(kind: str, schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        low, high = schema.get("minimum", -(10**20)), schema.get("maximum", 10**20)
        return st.integers(low - 1, high + 1) | st.integers(-2, 2) | st.sampled_from([1.0, 0.5])
    if kind == "number":
        return (
            st.floats(-1.5, 1.5, allow_nan=False)
            | st.integers(-2, 2)
            | st.sampled_from([0, 1, 0.5, 1e308])
        )
    if kind == "string":
        if "format" in schema:
            return FORMAT_VALUES[schema["format"]]
        if "pattern" in schema:
            return st.from_regex(schema["pattern"]) | st.text(max_size=3)
        return st.text(
            min_size=max(schema.get("minLength", 0) - 1, 0), max_size=schema.get("maxLength", 6) + 1
        )
    if kind == "array":
        items = valid_ish(schema["items"], defs)
        return st.lists(items, max_size=schema.get("maxItems", 2) + 1) | st.lists(
            near(schema["items"], defs), max_size=2
        )
    props = schema.get("properties", {})
    required = [k for k in props if k in schema.get("required", [])]
    base = st.fixed_dictionaries(
        {k: valid_ish(v, defs) for k, v in props.items() if k in required},
        optional={k: valid_ish(v, defs) for k, v in props.items() if k not in required},
    )
    # One fault at a time, so a wrong answer on that field is not masked by another.
    one_field = st.tuples(base, st.sampled_from([*props, "extra"]), FAULTS).map(
        lambda p: {**p[0], p[1]: p[2]}
    )
    choices = [base, base, one_field]
    if required:
        choices.append(
            st.tuples(base, st.sampled_from(required)).map(
                lambda p: {k: v for k, v in p[0].items() if k != p[1]}
            )
        )
    return st.one_of(*choices)


def _accepts(model: type[BaseModel], instance: Any, *, json_mode: bool) -> BaseModel | None:
    try:
        if json_mode:
            return model.model_validate_json(json.dumps(instance))
        return model.model_validate(instance)
    except ValidationError:
        return None


def _check(package: ModuleType, name: str, instance: Any) -> None:
    schema = SCHEMAS[name]
    validator = SpecValidator(schema, format_checker=FORMATS)
    model = getattr(package, name)
    expected = validator.is_valid(instance)
    for json_mode in (True, False):
        accepted = _accepts(model, instance, json_mode=json_mode)
        assert (accepted is not None) == expected, (name, instance, json_mode)
        if accepted is not None:
            dumped = accepted.model_dump(mode="json")
            errors = [e.message for e in validator.iter_errors(dumped)]
            assert not errors, (name, instance, dumped, errors)


FAST = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_model_accepts_exactly_what_the_schema_accepts(package: ModuleType, name: str) -> None:
    schema = SCHEMAS[name]

    @FAST
    @given(near(schema, schema.get("$defs", {})))
    def run(instance: Any) -> None:
        _check(package, name, instance)

    run()


@pytest.mark.parametrize(
    ("name", "instance", "valid"),
    [
        ("StringsArgs", {"code": "ab", "plan": None}, False),  # optional but not nullable
        ("StringsArgs", {"code": "ab", "note": None, "level": None}, True),
        ("StringsArgs", {"code": "ab", "extra": 1}, False),
        ("StringsArgs", {"code": "ab", "slug": "a-b\n"}, False),  # ECMA `$`
        ("NumbersArgs", {"count": True}, False),
        ("NumbersArgs", {"count": 1.0}, False),  # integer means an integer literal
        ("NumbersArgs", {"count": "1"}, False),
        ("NumbersArgs", {"count": 0, "ratio": 1}, False),
        ("FormatsArgs", {"at": 0}, False),
        ("FormatsArgs", {"at": "2024-01-31T09:30:00"}, False),  # offset required
        ("FormatsArgs", {"at": "2024-01-31T09:30:00+05:30", "on": "2024-02-29"}, True),
        (
            "NestedArgs",
            {"money": {"cents": 1, "currency": "EUR"}, "meta": {"k-1": 2, "x": 1}},
            True,
        ),
        ("NestedArgs", {"money": {"cents": 1, "currency": "EUR"}, "class": False}, True),
    ],
)
def test_edge_cases(package: ModuleType, name: str, instance: Any, valid: bool) -> None:
    assert SpecValidator(SCHEMAS[name], format_checker=FORMATS).is_valid(instance) is valid
    _check(package, name, instance)


def test_unset_optional_field_is_left_out_of_dumps(package: ModuleType) -> None:
    model = package.StringsArgs.model_validate({"code": "ab"})
    # Left out, not null: absent and null are different values (a default is filled in).
    assert model.model_dump(mode="json") == {"code": "ab", "label": "x"}
    explicit = package.StringsArgs.model_validate({"code": "ab", "note": None})
    assert explicit.model_dump(mode="json") == {"code": "ab", "note": None, "label": "x"}
    assert json.loads(model.model_dump_json(by_alias=True))["label"] == "x"
    assert dict(model)["plan"] is None  # handlers still get every field as a keyword
