"""Comparing an old and a new args shape side by side: each change, named by its rule.

Which directions a rule breaks, and whether it fails the check, is
:data:`soniq_codegen.compatibility.RULES`'s to say; this only finds the changes.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from soniq_codegen.fingerprint import canonical_json
from soniq_codegen.load import join_pointer
from soniq_codegen.shape import Bound, Shape

_SIZE_RULES = {
    "minLength": "min-length",
    "maxLength": "max-length",
    "minItems": "min-items",
    "maxItems": "max-items",
    "minProperties": "min-properties",
    "maxProperties": "max-properties",
}
#: Keywords compared whole whose change has a direction: rule stem when added / removed.
_WHOLE_RULES = {"multipleOf": "multiple-of", "uniqueItems": "unique-items"}


@dataclass(frozen=True)
class Change:
    """One change between two shapes: its rule, where it is and what changed."""

    rule: str
    pointer: str
    detail: str
    #: ``file#pointer`` of the shared definition (``$ref`` target) the change is in.
    via: str | None


def changes(old: Shape, new: Shape) -> list[Change]:
    """Every change from ``old`` to ``new``, at its pointer in the new args schema."""
    differ = _Differ()
    differ.shapes(old, new)
    return differ.changes


def _values(values: frozenset[str] | set[str] | list[str]) -> str:
    return ", ".join(repr(v) for v in sorted(values))


class _Differ:
    """Walks an old and a new shape of one task side by side, collecting changes."""

    def __init__(self) -> None:
        self.changes: list[Change] = []

    def add(self, rule: str, pointer: str, detail: str, via: str | None) -> None:
        self.changes.append(Change(rule, pointer, detail, via))

    def shapes(self, old: Shape, new: Shape) -> None:
        at = new.pointer
        if old.base != new.base and not (old.base | new.base <= {"integer", "number"}):
            detail = f"type {old.type_text()} -> {new.type_text()}"
            self.add("type-changed", join_pointer(at, "type"), detail, new.origin)
            return
        if old.base != new.base:
            rule = "type-widened" if "number" in new.base else "type-narrowed"
            detail = f"type {old.type_text()} -> {new.type_text()}"
            self.add(rule, join_pointer(at, "type"), detail, new.origin)
        if "null" in new.types and "null" not in old.types:
            self.add("null-added", new.outer, "null now allowed", new.origin)
        elif "null" in old.types and "null" not in new.types:
            self.add("null-removed", new.outer, "null no longer allowed", new.origin)
        self.wholes(old, new)
        self.unions(old, new)
        if new.base == {"string"}:
            self.strings(old, new)
        elif new.base <= {"integer", "number"}:
            self.numbers(old, new)
        elif new.base == {"array"}:
            self.arrays(old, new)
        elif new.base == {"object"}:
            self.objects(old, new)
        elif len(new.base) > 1:  # each keyword applies to its own type
            self.sizes(old, new, ("minLength", "maxLength"))
            self.numbers(old, new)
            self.texts(old, new)
            self.arrays(old, new)
            self.objects(old, new)

    def arrays(self, old: Shape, new: Shape) -> None:
        self.sizes(old, new, ("minItems", "maxItems"))
        if old.items is not None and new.items is not None:
            self.shapes(old.items, new.items)

    def wholes(self, old: Shape, new: Shape) -> None:
        """Keywords compared whole: a change is breaking unless its direction is known."""
        for key in sorted(old.whole.keys() | new.whole.keys()):
            was, now = old.whole.get(key), new.whole.get(key)
            if was == now:
                continue
            at = join_pointer(new.pointer, key)
            if key == "dependentRequired":
                self.dependencies(json.loads(was or "{}"), json.loads(now or "{}"), at, new.origin)
                continue
            if key == "uniqueItems" and {was, now} <= {None, "false"}:
                continue
            stem = _WHOLE_RULES.get(key)
            state = (
                "added"
                if was in (None, "false")
                else "removed"
                if now in (None, "false")
                else "changed"
            )
            rule = f"{stem}-{state}" if stem else "keyword-changed"
            self.add(rule, at, f"{key} {state}: {_or_none(was)} -> {_or_none(now)}", new.origin)

    def dependencies(
        self, was: dict[str, list[str]], now: dict[str, list[str]], at: str, via: str | None
    ) -> None:
        before = {(k, v) for k, values in was.items() for v in values}
        after = {(k, v) for k, values in now.items() for v in values}
        for rule, pairs in (
            ("dependent-required-added", after - before),
            ("dependent-required-removed", before - after),
        ):
            if pairs:
                detail = ", ".join(f"{k!r} needs {v!r}" for k, v in sorted(pairs))
                self.add(rule, at, detail, via)

    def unions(self, old: Shape, new: Shape) -> None:
        """``anyOf``/``oneOf`` branches: added, removed, or changed in place."""
        if old.union != new.union:
            key = new.union or old.union or "anyOf"
            detail = f"{old.union or 'no union'} -> {new.union or 'no union'}"
            self.add("keyword-changed", join_pointer(new.pointer, key), detail, new.origin)
            return
        if new.union is None:
            return
        kept = {b.canonical for b in old.branches} & {b.canonical for b in new.branches}
        gone = [b for b in old.branches if b.canonical not in kept]
        added = [b for b in new.branches if b.canonical not in kept]
        if len(gone) == len(added):  # changed in place: compared branch by branch
            for was, now in zip(gone, added, strict=True):
                self.shapes(was, now)
            return
        for branch in added:
            self.add("branch-added", branch.pointer, f"{new.union} branch added", new.origin)
        for branch in gone:
            where = join_pointer(new.pointer, new.union)
            self.add(
                "branch-removed",
                where,
                f"{new.union} branch removed: {branch.canonical}",
                new.origin,
            )

    def strings(self, old: Shape, new: Shape) -> None:
        at, via = new.pointer, new.origin
        keyword = "const" if new.const else "enum"
        if old.enum is not None and new.enum is not None:
            if old.const and new.const and old.enum != new.enum:
                detail = f"const {_values(old.enum)} -> {_values(new.enum)}"
                self.add("const-changed", join_pointer(at, "const"), detail, via)
                return
            if new.enum - old.enum:
                detail = f"{_values(new.enum - old.enum)} added"
                self.add("enum-value-added", join_pointer(at, keyword), detail, via)
            if old.enum - new.enum:
                detail = f"{_values(old.enum - new.enum)} removed"
                self.add("enum-value-removed", join_pointer(at, keyword), detail, via)
            return
        if old.enum is not None:
            # The old values are finite, so whether new workers still take them is exact.
            detail = f"{'const' if old.const else 'enum'} dropped: any string is now allowed"
            self.add("enum-constraint-removed", at, detail, via)
            rejected = [v for v in old.enum if not _accepts(new, v)]
            if rejected:
                detail = f"{_values(rejected)} no longer allowed by the string's constraints"
                self.add("enum-value-removed", at, detail, via)
            return
        if new.enum is not None:
            detail = f"restricted to {_values(new.enum)} by {keyword}"
            self.add("enum-constraint-added", join_pointer(at, keyword), detail, via)
            rejected = [v for v in new.enum if not _accepts(old, v)]
            if rejected:
                detail = f"{_values(rejected)} not allowed by the old string's constraints"
                self.add("enum-value-added", join_pointer(at, keyword), detail, via)
            return
        self.sizes(old, new, ("minLength", "maxLength"))
        self.texts(old, new)

    def texts(self, old: Shape, new: Shape) -> None:
        at, via = new.pointer, new.origin
        for keyword, rules in (("pattern", "pattern"), ("format", "format")):
            was, now = getattr(old, keyword), getattr(new, keyword)
            if was == now:
                continue
            if was is None:
                rule, detail = f"{rules}-added", f"{keyword} {now!r} added"
            elif now is None:
                rule, detail = f"{rules}-removed", f"{keyword} {was!r} removed"
            else:
                rule, detail = f"{rules}-changed", f"{keyword} {was!r} -> {now!r}"
            self.add(rule, join_pointer(at, keyword), detail, via)

    def sizes(self, old: Shape, new: Shape, keywords: tuple[str, ...]) -> None:
        for keyword in keywords:
            was, now = old.sizes.get(keyword), new.sizes.get(keyword)
            if keyword.startswith("min"):
                if (was or 0) == (now or 0):
                    continue
                tightened = (now or 0) > (was or 0)
            else:
                if was == now:
                    continue
                tightened = now is not None and (was is None or now < was)
            rule = f"{_SIZE_RULES[keyword]}-{'tightened' if tightened else 'loosened'}"
            detail = f"{keyword} {_or_none(was)} -> {_or_none(now)}"
            self.add(rule, join_pointer(new.pointer, keyword), detail, new.origin)

    def numbers(self, old: Shape, new: Shape) -> None:
        integers = old.base == new.base == {"integer"}
        for side, was, now in (
            ("minimum", old.lower, new.lower),
            ("maximum", old.upper, new.upper),
        ):
            upper = side == "maximum"
            before, after = _tightness(was, integers, upper), _tightness(now, integers, upper)
            if before == after:
                continue
            rule = f"{side}-{'tightened' if after > before else 'loosened'}"
            keyword = now.keyword if now is not None else was.keyword if was is not None else side
            if was is not None and now is not None and was.keyword == now.keyword:
                detail = f"{was.keyword} {was.value} -> {now.value}"
            else:
                detail = f"{_or_none(was)} -> {_or_none(now)}"
            self.add(rule, join_pointer(new.pointer, keyword), detail, new.origin)

    def objects(self, old: Shape, new: Shape) -> None:
        at, via = new.pointer, new.origin
        self.sizes(old, new, ("minProperties", "maxProperties"))
        if old.closed != new.closed:
            rule = "additional-properties-closed" if new.closed else "additional-properties-opened"
            detail = "unknown keys now rejected" if new.closed else "unknown keys now allowed"
            self.add(rule, join_pointer(at, "additionalProperties"), detail, via)
        for name in sorted(old.properties.keys() | new.properties.keys()):
            was, now = old.properties.get(name), new.properties.get(name)
            where = join_pointer(at, "properties", name)
            if now is None:
                self.removed(name, old, new, where)
            elif was is None:
                self.added(name, old, new, now, where)
            else:
                self.kept(name, old, new, was, now, where)

    def removed(self, name: str, old: Shape, new: Shape, where: str) -> None:
        required = name in old.required
        if required:
            detail = f"required property {name!r} removed: new jobs lack it"
            self.add("required-removed", where, detail, new.origin)
        if new.closed:
            detail = f"property {name!r} removed from a closed object: queued jobs may carry it"
            self.add("property-removed-closed", where, detail, new.origin)
        elif not required:
            detail = (
                f"optional property {name!r} removed from an open object: new producers may send "
                "it as an extra key, with a value old workers reject"
            )
            self.add("property-removed-open", where, detail, new.origin)

    def added(self, name: str, old: Shape, new: Shape, now: Shape, where: str) -> None:
        required = name in new.required
        if required:
            rule = "required-added-with-default" if now.default else "required-added"
            detail = f"new required property {name!r}: queued jobs lack it"
            if now.default:
                detail += " (a required property's default is not applied; make it optional)"
            self.add(rule, where, detail, new.origin)
        if old.closed:
            detail = f"property {name!r} added to a closed object: old workers reject the key"
            self.add("property-added-closed", where, detail, new.origin)
        elif not required:
            detail = (
                f"optional property {name!r} added to an open object: queued jobs may carry it as "
                "an extra key, with a value new workers reject"
            )
            self.add("property-added-open", where, detail, new.origin)

    def kept(self, name: str, old: Shape, new: Shape, was: Shape, now: Shape, where: str) -> None:
        required_before, required_now = name in old.required, name in new.required
        if required_now and not required_before:
            detail = f"{name!r} made required: queued jobs may lack it"
            self.add("optional-made-required", where, detail, new.origin)
        elif required_before and not required_now:
            detail = f"{name!r} made optional: new jobs may lack it"
            self.add("required-made-optional", where, detail, new.origin)
        elif not required_now and _json(was.default) != _json(now.default):
            detail = (
                f"default {_default_text(was)} -> {_default_text(now)}: jobs that leave "
                f"{name!r} out mean something else to old and new workers"
            )
            self.add("default-changed", join_pointer(now.pointer, "default"), detail, now.origin)
        self.shapes(was, now)


def _tightness(bound: Bound | None, integers: bool, upper: bool) -> tuple[float, bool]:
    """An order on bounds of one side: the larger, the fewer values the bound lets through."""
    if bound is None:
        return (-math.inf, False)
    value, exclusive = bound.value, bound.exclusive
    if integers:
        # On integers, > 0 and >= 1 are the same bound.
        if upper:
            return (-(math.ceil(value) - 1 if exclusive else math.floor(value)), False)
        return (math.floor(value) + 1 if exclusive else math.ceil(value), False)
    return (-value if upper else value, exclusive)


def _accepts(shape: Shape, value: str) -> bool:
    """Whether a plain string ``shape`` accepts ``value`` (a format counts as a rejection)."""
    if shape.format is not None:
        return False  # the enum's values cannot be checked against a format here: assume not
    if len(value) < shape.sizes.get("minLength", 0):
        return False
    if len(value) > shape.sizes.get("maxLength", len(value)):
        return False
    return shape.pattern is None or re.search(shape.pattern, value) is not None


def _or_none(value: object) -> str:
    return "none" if value is None else str(value)


def _json(value: tuple[Any, ...]) -> str:
    return canonical_json(list(value))


def _default_text(shape: Shape) -> str:
    return canonical_json(shape.default[0]) if shape.default else "none"
