"""An args schema reduced to what decides which values it accepts, for compatibility checks.

Shapes are read from the schema tree, following its resolved ``$ref`` targets. The spellings
the contracts allow for the same thing (``type: [T, "null"]`` or ``anyOf: [T, {type: "null"}]``,
``const`` or a one-value ``enum``, ``null`` inside an ``enum``, ``minimum`` or
``exclusiveMinimum``) are unified, so two versions of a schema compare by meaning rather than by
layout. Annotations (``title``, ``description``, ``examples``, ``$comment``) are dropped. Every
node keeps its JSON pointer in the inlined args schema and, when it comes from a ``$ref``
target, where that target is, so a finding names both.

The contract set must already be checked: references resolve and only supported keywords occur.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from soniq_codegen.contract import TaskContract
from soniq_codegen.fingerprint import canonical_json, inline
from soniq_codegen.keywords import ANNOTATIONS, CHECKED, JSON_TYPES, json_types
from soniq_codegen.load import join_pointer
from soniq_codegen.tree import SchemaNode, SchemaTree

SIZES = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties")
#: Keywords compared as a whole (their inlined value), rather than taken apart.
WHOLE = CHECKED - {"anyOf", "oneOf", "minProperties", "maxProperties"}
ALL_TYPES = frozenset(JSON_TYPES)


@dataclass(frozen=True)
class Bound:
    """One side of a numeric range, from the keyword that sets it."""

    value: int | float
    exclusive: bool
    keyword: str

    def __str__(self) -> str:
        return f"{self.keyword} {self.value}"


@dataclass
class Shape:
    """The accepted values of one schema node, in a canonical form."""

    #: Where the node's keywords are, in the args schema with every ``$ref`` inlined.
    pointer: str
    #: Where the value is declared; differs from ``pointer`` inside ``anyOf: [T, null]``.
    outer: str
    #: ``file#pointer`` of the ``$ref`` target the node belongs to, None in the task's own file.
    origin: str | None
    #: JSON types accepted; ``null`` included when the value may be null.
    types: frozenset[str]
    #: The allowed strings of an ``enum``/``const`` (null excluded), None without one.
    enum: frozenset[str] | None = None
    const: bool = False
    format: str | None = None
    pattern: str | None = None
    lower: Bound | None = None
    upper: Bound | None = None
    sizes: dict[str, int] = field(default_factory=dict)
    items: Shape | None = None
    properties: dict[str, Shape] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    closed: bool = False
    #: ``(value,)`` when the schema has a default, ``()`` otherwise.
    default: tuple[Any, ...] = ()
    #: ``anyOf`` or ``oneOf`` (not the ``[T, null]`` form) and the shapes of its branches.
    union: str | None = None
    branches: list[Shape] = field(default_factory=list)
    #: The canonical JSON of the inlined schema; set on union branches, to match them up.
    canonical: str = ""
    #: Keywords compared whole (:data:`WHOLE`, non-string enums, ...): canonical JSON each.
    whole: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> frozenset[str]:
        """The accepted types without ``null``."""
        return self.types - {"null"}

    def type_text(self) -> str:
        """``string``, ``[integer, null]``, ...: the accepted types as one would write them."""
        names = sorted(self.base) + (["null"] if "null" in self.types else [])
        if self.enum is not None:
            names[0] = "const" if self.const else "enum"
        return names[0] if len(names) == 1 else f"[{', '.join(names)}]"


def args_shape(tree: SchemaTree, task: TaskContract) -> Shape:
    """The shape of ``task``'s args schema."""
    return _Shaper().shape(tree.args(task), "", shared=False)


class _Shaper:
    def __init__(self) -> None:
        #: The ``$ref`` targets being shaped: a reference back to one is recursion.
        self.open: set[tuple[str, str]] = set()

    def shape(self, node: SchemaNode, pointer: str, *, shared: bool) -> Shape:
        """The shape of ``node``, found at ``pointer`` of the inlined args schema."""
        data = node.data
        origin = (f"{node.file}#{node.pointer}" if node.pointer else node.file) if shared else None
        if not isinstance(data, dict):
            types = ALL_TYPES if data else frozenset()
            return Shape(pointer=pointer, outer=pointer, origin=origin, types=types)
        if "$ref" in data:
            target = node.ref_target()
            key = (target.file, target.pointer)
            if key in self.open:
                where = f"{target.file}#{target.pointer}"
                return Shape(pointer, pointer, origin, ALL_TYPES, whole={"$ref": where})
            if set(data) - ANNOTATIONS == {"$ref"}:
                self.open.add(key)
                try:
                    return self.shape(target, pointer, shared=True)
                finally:
                    self.open.discard(key)
            beside = {k: v for k, v in data.items() if k != "$ref"}
            shape = self.plain(node, beside, pointer, shared=shared)
            shape.whole["$ref"] = canonical_json(inline(target))
            return shape
        nulls = [i for i, o in enumerate(data.get("anyOf", ())) if o == {"type": "null"}]
        if set(data) - ANNOTATIONS == {"anyOf"} and len(data["anyOf"]) == 2 and len(nulls) == 1:
            index = 1 - nulls[0]
            inner = self.shape(
                node.any_of[index], join_pointer(pointer, "anyOf", index), shared=shared
            )
            return replace(inner, outer=pointer, types=inner.types | {"null"})
        return self.plain(node, data, pointer, shared=shared)

    def plain(self, node: SchemaNode, data: dict[str, Any], pointer: str, *, shared: bool) -> Shape:
        """The shape of ``data``, written at ``node``, that is not a reference."""
        declared = data.get("type")
        types: set[str] = {t for t in (declared if isinstance(declared, list) else [declared]) if t}
        enum: frozenset[str] | None = None
        wholes = sorted(set(data) & WHOLE) + (
            ["additionalProperties"] if isinstance(data.get("additionalProperties"), dict) else []
        )
        if "anyOf" in data and "oneOf" in data:
            wholes.append("anyOf")
        inlined = inline(node) if wholes else {}
        whole = {k: canonical_json(inlined[k]) for k in wholes}
        if "enum" in data or "const" in data:
            values = data["enum"] if "enum" in data else [data["const"]]
            if all(v is None or isinstance(v, str) for v in values):
                types.update(["null"] if None in values else [])
                types.update(["string"] if any(v is not None for v in values) else [])
                enum = frozenset(v for v in values if v is not None) or None
            else:
                types = set(json_types(data))
                whole["enum"] = canonical_json(sorted(canonical_json(v) for v in values))
        elif declared is None:
            types = set(json_types(data))
        shape = Shape(
            pointer=pointer,
            outer=pointer,
            origin=(f"{node.file}#{node.pointer}" if node.pointer else node.file)
            if shared
            else None,
            types=frozenset(types),
            enum=enum,
            const="const" in data,
            format=data.get("format"),
            pattern=data.get("pattern"),
            lower=_bound(data, (("minimum", False), ("exclusiveMinimum", True)), lower=True),
            upper=_bound(data, (("maximum", False), ("exclusiveMaximum", True)), lower=False),
            sizes={key: data[key] for key in SIZES if key in data},
            closed=data.get("additionalProperties", True) is False,
            required=frozenset(data.get("required", ())),
            default=(data["default"],) if "default" in data else (),
            whole=whole,
        )
        if node.items is not None and isinstance(node.items.data, dict):
            shape.items = self.shape(node.items, join_pointer(pointer, "items"), shared=shared)
        for name, sub in node.properties.items():
            where = join_pointer(pointer, "properties", name)
            shape.properties[name] = self.shape(sub, where, shared=shared)
        for key in ("oneOf", "anyOf"):
            if isinstance(data.get(key), list) and shape.union is None:
                shape.union = key
                for index in range(len(data[key])):
                    sub = node.subs[(key, str(index))]
                    branch = self.shape(sub, join_pointer(pointer, key, index), shared=shared)
                    branch.canonical = canonical_json(inline(sub))
                    shape.branches.append(branch)
        return shape


def _bound(
    node: dict[str, Any], keys: tuple[tuple[str, bool], ...], *, lower: bool
) -> Bound | None:
    """The tighter of the inclusive and the exclusive bound on one side, if any."""
    found = [Bound(node[key], exclusive, key) for key, exclusive in keys if key in node]
    if not found:
        return None
    if lower:
        return max(found, key=lambda b: (b.value, b.exclusive))
    return min(found, key=lambda b: (b.value, not b.exclusive))
