"""The rules a generated model checks beyond its field types: a schema as self-contained data.

What a pydantic type cannot state exactly (``oneOf``, ``not``, ``multipleOf``, ...) is checked
by the generated package against a JSON Schema document embedded in the model as a JSON
literal. This module makes that document from the schema tree: every ``$ref`` target becomes
one entry of its ``$defs`` (so shared and recursive references stay data), and annotations and
the source's own ``$defs`` are left out. Contract text is only ever data here, never code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from soniq_codegen.tree import SCHEMA_LIST, SCHEMA_MAP, SchemaNode

#: Keys that do not take part in validation (or are resolved already).
DROPPED = frozenset(
    {"$defs", "$schema", "$id", "$comment", "title", "description", "examples", "default"}
)


def map_schema(
    node: SchemaNode,
    data: dict[str, Any],
    sub: Callable[[tuple[str, ...], SchemaNode], Any],
) -> dict[str, Any]:
    """``data`` (written where ``node`` is) with each sub-schema replaced by
    ``sub(path, child)``, ``path`` being where the child is below ``node``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in SCHEMA_LIST and isinstance(value, list):
            value = [sub((key, str(i)), node.subs[(key, str(i))]) for i in range(len(value))]
        elif key in SCHEMA_MAP and isinstance(value, dict):
            value = {name: sub((key, name), node.subs[(key, name)]) for name in value}
        elif (key,) in node.subs:
            value = sub((key,), node.subs[(key,)])
        out[key] = value
    return out


class _Document:
    def __init__(self) -> None:
        self.names: dict[tuple[str, str], str] = {}
        self.defs: dict[str, Any] = {}

    def schema(self, node: SchemaNode) -> Any:
        if not isinstance(node.data, dict):
            return node.data
        data = {k: v for k, v in node.data.items() if k not in DROPPED}
        out = map_schema(node, data, lambda _, child: self.schema(child))
        if "$ref" in out:
            out["$ref"] = f"#/$defs/{self.define(node.ref_target())}"
        return out

    def define(self, target: SchemaNode) -> str:
        key = (target.file, target.pointer)
        if key not in self.names:
            name = self.names[key] = f"s{len(self.names)}"
            self.defs[name] = self.schema(target)
        return self.names[key]


def document(node: SchemaNode, exact: frozenset[str] = frozenset()) -> Any:
    """The schema of ``node`` as one self-contained JSON Schema document.

    The root's ``exact`` properties are left out: their field types already accept exactly
    what their schemas do, and the model checks its rules after its fields. (Their names
    stay where ``additionalProperties`` needs them; ``additionalProperties: false`` alone is
    the model's own ``extra="forbid"``.)
    """
    builder = _Document()
    root = builder.schema(node)
    if exact and isinstance(root, dict) and isinstance(root.get("properties"), dict):
        properties = root["properties"]
        extra = root.get("additionalProperties", True)
        if extra is True or (extra is False and "patternProperties" not in root):
            root.pop("additionalProperties", None)
            root["properties"] = {k: v for k, v in properties.items() if k not in exact}
        else:
            root["properties"] = {k: True if k in exact else v for k, v in properties.items()}
    if builder.defs:
        if not isinstance(root, dict):
            raise ValueError("a boolean schema has no references")
        root = {**root, "$defs": dict(sorted(builder.defs.items()))}
    return root
