"""The fixed helper modules every generated package ships (``_base.py`` and ``_types.py``)."""

from __future__ import annotations

from soniq_codegen.source import finish_module

BASE_MODULE = finish_module('''"""Base class of the generated args models."""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)
from pydantic.fields import FieldInfo

NOT_NULL = "x-soniq-not-null"


def _not_null(field: FieldInfo) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and extra.get(NOT_NULL) is True


class ContractModel(BaseModel):
    """An args model that accepts exactly what its contract's JSON Schema accepts.

    A field the contract lets callers leave out but not set to null rejects an
    explicit ``None`` and is left out of dumps while unset, so every dump is valid
    per the schema.
    """

    model_config = ConfigDict(
        allow_inf_nan=False, protected_namespaces=(), serialize_by_alias=True
    )

    @model_validator(mode="before")
    @classmethod
    def _reject_null(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                if not _not_null(field):
                    continue
                for key in {name, field.alias or name}:
                    if key in data and data[key] is None:
                        raise ValueError(f"{key!r} may be left out but may not be null")
        return data

    @model_serializer(mode="wrap")
    def _leave_out_unset(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> Any:
        data = handler(self)
        by_alias = info.by_alias is not False  # None: the config's serialize_by_alias
        if isinstance(data, dict):
            for name, field in type(self).model_fields.items():
                if _not_null(field) and getattr(self, name) is None:
                    data.pop(field.alias or name if by_alias else name, None)
        return data
''')

TYPES_MODULE = finish_module(r'''"""Strict types for the string formats of the contracts.

Each accepts the JSON strings its JSON Schema format accepts (and, from Python,
the matching object), never numbers or other coercions, so a model and its schema
agree.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, StrictStr

_DATE_TIME = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]*$")


def _date_time(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _DATE_TIME.fullmatch(value):
        return value.upper()
    raise ValueError("expected an RFC 3339 date-time, e.g. 2024-01-31T09:30:00Z")


def _date(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _DATE.fullmatch(value):
        return value
    raise ValueError("expected an RFC 3339 full-date, e.g. 2024-01-31")


def _uuid(value: Any) -> Any:
    if isinstance(value, UUID) or (isinstance(value, str) and _UUID.fullmatch(value)):
        return value
    raise ValueError("expected a hyphenated UUID string")


def _email(value: str) -> str:
    if "@" not in value:
        raise ValueError("expected an email address")
    return value


def _uri(value: str) -> str:
    if not _URI.fullmatch(value):
        raise ValueError("expected an absolute URI such as https://example.com/x")
    return value


DateTime = Annotated[AwareDatetime, BeforeValidator(_date_time)]
Date = Annotated[date, BeforeValidator(_date)]
Uuid = Annotated[UUID, BeforeValidator(_uuid)]
Email = Annotated[StrictStr, AfterValidator(_email)]
Uri = Annotated[StrictStr, AfterValidator(_uri)]
''')
