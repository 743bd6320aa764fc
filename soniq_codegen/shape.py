"""An args schema reduced to what decides which values it accepts, for compatibility checks.

``$ref`` targets are inlined (as for the fingerprint) and the spellings the contracts allow
for the same thing (``type: [T, "null"]`` or ``anyOf: [T, {type: "null"}]``, ``const`` or a
one-value ``enum``, ``null`` inside an ``enum``, ``minimum`` or ``exclusiveMinimum``) are
unified, so two versions of a schema compare by meaning rather than by layout. Annotations
(``title``, ``description``, ``examples``, ``$comment``) are dropped. Every node keeps its JSON
pointer in the inlined args schema and, when it comes from a ``$ref`` target, where that target
is, so a finding names both.

The contract set must already be checked: references resolve and only supported keywords occur.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from soniq_codegen.contract import TaskContract
from soniq_codegen.load import SourceFile, get_pointer, join_pointer, resolve_ref

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


def args_shape(files: dict[str, SourceFile], task: TaskContract) -> Shape:
    """The shape of ``task``'s args schema."""
    return _shape(files, task.file, task.args, "", task.args_pointer, shared=False)


def _shape(
    files: dict[str, SourceFile],
    file: str,
    node: dict[str, Any],
    pointer: str,
    source: str,
    *,
    shared: bool,
) -> Shape:
    """``node``, written in ``file`` at ``source``, found at ``pointer`` of the inlined args."""
    if "$ref" in node:
        target_file, target_pointer = resolve_ref(node["$ref"], file, set(files))
        target = get_pointer(files[target_file].data, target_pointer)
        return _shape(files, target_file, target, pointer, target_pointer, shared=True)
    if "anyOf" in node:
        # The only anyOf a checked contract can hold: [T, {type: null}] in either order.
        index = next(i for i, o in enumerate(node["anyOf"]) if o != {"type": "null"})
        inner = _shape(
            files,
            file,
            node["anyOf"][index],
            join_pointer(pointer, "anyOf", index),
            join_pointer(source, "anyOf", index),
            shared=shared,
        )
        return replace(inner, outer=pointer, types=inner.types | {"null"})
    declared = node.get("type")
    types: set[str] = {t for t in (declared if isinstance(declared, list) else [declared]) if t}
    enum: frozenset[str] | None = None
    if "enum" in node or "const" in node:
        values = node["enum"] if "enum" in node else [node["const"]]
        if None in values:
            types.add("null")
        if any(v is not None for v in values):
            types.add("string")
            enum = frozenset(v for v in values if v is not None)
    shape = Shape(
        pointer=pointer,
        outer=pointer,
        origin=(f"{file}#{source}" if source else file) if shared else None,
        types=frozenset(types),
        enum=enum,
        const="const" in node,
        format=node.get("format"),
        pattern=node.get("pattern"),
        lower=_bound(node, (("minimum", False), ("exclusiveMinimum", True)), lower=True),
        upper=_bound(node, (("maximum", False), ("exclusiveMaximum", True)), lower=False),
        sizes={key: node[key] for key in SIZES if key in node},
        closed=node.get("additionalProperties", True) is False,
        required=frozenset(node.get("required", ())),
        default=(node["default"],) if "default" in node else (),
    )
    if isinstance(node.get("items"), dict):
        shape.items = _shape(
            files,
            file,
            node["items"],
            join_pointer(pointer, "items"),
            join_pointer(source, "items"),
            shared=shared,
        )
    for name, sub in node.get("properties", {}).items():
        shape.properties[name] = _shape(
            files,
            file,
            sub,
            join_pointer(pointer, "properties", name),
            join_pointer(source, "properties", name),
            shared=shared,
        )
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
