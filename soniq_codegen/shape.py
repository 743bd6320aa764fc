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
from soniq_codegen.load import join_pointer
from soniq_codegen.tree import SchemaNode, SchemaTree

SIZES = ("minLength", "maxLength", "minItems", "maxItems")


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
    return _shape(tree.args(task), "", shared=False)


def _shape(node: SchemaNode, pointer: str, *, shared: bool) -> Shape:
    """The shape of ``node``, found at ``pointer`` of the inlined args schema."""
    data = node.data
    if "$ref" in data:
        return _shape(node.ref_target(), pointer, shared=True)
    if "anyOf" in data:
        # The only anyOf a checked contract can hold: [T, {type: null}] in either order.
        index = next(i for i, o in enumerate(data["anyOf"]) if o != {"type": "null"})
        inner = _shape(node.any_of[index], join_pointer(pointer, "anyOf", index), shared=shared)
        return replace(inner, outer=pointer, types=inner.types | {"null"})
    declared = data.get("type")
    types: set[str] = {t for t in (declared if isinstance(declared, list) else [declared]) if t}
    enum: frozenset[str] | None = None
    if "enum" in data or "const" in data:
        values = data["enum"] if "enum" in data else [data["const"]]
        if None in values:
            types.add("null")
        if any(v is not None for v in values):
            types.add("string")
            enum = frozenset(v for v in values if v is not None)
    shape = Shape(
        pointer=pointer,
        outer=pointer,
        origin=(f"{node.file}#{node.pointer}" if node.pointer else node.file) if shared else None,
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
    )
    if node.items is not None and isinstance(node.items.data, dict):
        shape.items = _shape(node.items, join_pointer(pointer, "items"), shared=shared)
    for name, sub in node.properties.items():
        where = join_pointer(pointer, "properties", name)
        shape.properties[name] = _shape(sub, where, shared=shared)
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
