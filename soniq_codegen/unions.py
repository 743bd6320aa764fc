"""Unions of classes that a property tells apart: pydantic's discriminated unions."""

from __future__ import annotations

import keyword
from typing import Any


def discriminator(options: list[dict[str, Any]], defs: dict[str, dict[str, Any]]) -> str | None:
    """The property that tells the classes of a union apart, if there is one.

    ``options`` are the intermediate forms of the branches, ``defs`` the classes made so far.
    The property must be required in every branch and restricted to strings of its own
    (``const`` or ``enum``) in each, so a value valid for a branch always carries that
    branch's tag, and it must be spelt as the field is named (no alias).
    """
    if len(options) < 2 or any(set(o) != {"$ref"} for o in options):
        return None
    classes = [defs.get(str(o["$ref"]).removeprefix("#/$defs/")) for o in options]
    found = [c for c in classes if c is not None]
    if len(found) != len(options):
        return None
    for tag in found[0].get("required", []):
        if not tag.isidentifier() or tag.startswith("_") or keyword.iskeyword(tag):
            continue
        values = [set(c["properties"].get(tag, {}).get("enum", [None])) for c in found]
        if (
            all(tag in c.get("required", []) for c in found)
            and all(None not in v for v in values)
            and sum(len(v) for v in values) == len(set().union(*values))
        ):
            return str(tag)
    return None
