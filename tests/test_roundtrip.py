"""Models that skip validating their stored JSON again must still read back what was
accepted: checked against hostile values, and against the models that must keep the check."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

from soniq.encoding import _encode_dict_fast, _Unusual
from soniq.roundtrip import float_fields_if_exact


class Flat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    count: int = Field(ge=-(2**70))
    flag: bool = False
    note: str | None = None
    kind: Literal["a", "b"] = "a"
    numbers: list[int] = []
    groups: dict[str, list[str]] = {}
    amount: float
    ratio: float | None = None


def _unvalidated_default() -> list[int]:
    return [1]


class WithValidator(BaseModel):
    text: str

    @field_validator("text")
    @classmethod
    def shout(cls, value: str) -> str:
        return value + "!"


class WithAny(BaseModel):
    value: Any


class WithAlias(BaseModel):
    text: str = Field(alias="Text")


class Inner(BaseModel):
    n: int


class WithNested(BaseModel):
    inner: Inner


class WithTuple(BaseModel):
    pair: tuple[int, int]


class WithComputed(BaseModel):
    n: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def double(self) -> int:
        return self.n * 2


class WithExtraAllowed(BaseModel):
    model_config = ConfigDict(extra="allow")


class WithFactory(BaseModel):
    numbers: list[int] = Field(default_factory=_unvalidated_default)


class WithNestedFloats(BaseModel):
    values: list[float]


class WithBadDefault(BaseModel):
    amount: float = float("inf")


def test_a_flat_model_of_plain_json_types_skips_the_second_validation() -> None:
    assert float_fields_if_exact(Flat) == ("amount", "ratio")


@pytest.mark.parametrize(
    "model",
    [
        WithValidator,
        WithAny,
        WithAlias,
        WithNested,
        WithTuple,
        WithComputed,
        WithExtraAllowed,
        WithFactory,
        WithNestedFloats,
        WithBadDefault,
    ],
)
def test_models_whose_values_may_change_keep_the_second_validation(
    model: type[BaseModel],
) -> None:
    assert float_fields_if_exact(model) is None


scalars = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1),
    st.integers(),
    st.integers(min_value=10**4300, max_value=10**4400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.sampled_from(["a", "b", "c"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers()), inner, max_size=4),
    ),
    max_leaves=12,
)


def _or_hostile(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(valid, valid, values)


flat_args = st.fixed_dictionaries(
    {
        "text": _or_hostile(st.text()),
        "count": _or_hostile(st.integers()),
        "amount": _or_hostile(st.floats()),
    },
    optional={
        "flag": _or_hostile(st.booleans()),
        "note": _or_hostile(st.none() | st.text()),
        "kind": _or_hostile(st.sampled_from(["a", "b"])),
        "numbers": _or_hostile(st.lists(st.integers())),
        "groups": _or_hostile(st.dictionaries(st.text(), st.lists(st.text()))),
        "ratio": _or_hostile(st.none() | st.floats()),
    },
)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(args=flat_args)
def test_what_the_exact_path_stores_validates_back_to_the_accepted_values(
    args: dict[str, Any],
) -> None:
    try:
        stored = _encode_dict_fast(Flat, args, max_bytes=10**6)
    except _Unusual:
        return  # the general path decides, validating the stored text again
    json.loads(stored, parse_constant=lambda token: pytest.fail(f"{token} stored"))
    stored.encode("utf-8")
    assert Flat.model_validate_json(stored) == Flat.model_validate(args)


def test_non_finite_floats_and_long_integers_leave_the_exact_path() -> None:
    for args in (
        {"text": "", "count": 1, "amount": float("nan")},
        {"text": "", "count": 1, "amount": 1.0, "ratio": float("-inf")},
        {"text": "", "count": 1, "amount": 1.0, "numbers": [10**4400]},
    ):
        with pytest.raises(_Unusual):
            _encode_dict_fast(Flat, args, max_bytes=10**6)
