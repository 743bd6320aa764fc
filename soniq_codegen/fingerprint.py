"""Fingerprints: a digest of each task's args schema, read from the schema tree."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from soniq_codegen.contract import TaskContract
from soniq_codegen.load import join_pointer
from soniq_codegen.rules import map_schema
from soniq_codegen.tree import SchemaNode, SchemaTree

#: Keys of a ``$ref`` target that belong to its file, not to the schema it stands for.
_TARGET_ONLY = ("$defs", "$schema", "x-soniq")
_ANNOTATIONS = frozenset({"description", "title", "$comment"})


def canonical_json(value: Any) -> str:
    """Canonical JSON: sorted keys, no whitespace, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def inline(node: SchemaNode) -> Any:
    """The schema of ``node`` with ``$ref`` replaced by its target, recursively, and without
    ``$defs`` and ``$schema``.

    A ``$ref`` with only annotations beside it is replaced by its target's keywords (with the
    annotations written beside it on top), as fingerprints have always been taken; one with
    other keywords beside it keeps them and holds the inlined target under ``$ref``. A
    ``$ref`` back to a schema being inlined becomes ``{"$ref": "#<pointer>"}``, the pointer
    of that schema in the result. The set must already be checked.
    """
    return _Inliner().node(node, node.data, "")


class _Inliner:
    def __init__(self) -> None:
        self.open: dict[tuple[str, str], str] = {}

    def node(self, node: SchemaNode, data: Any, at: str) -> Any:
        """``data``, written where ``node`` is, inlined at pointer ``at`` of the result."""
        if not isinstance(data, dict):
            return data
        if "$ref" in data:
            target = node.ref_target()
            key = (target.file, target.pointer)
            if key in self.open:
                return {"$ref": "#" + self.open[key]}
            beside = {k: v for k, v in data.items() if k != "$ref"}
            if not set(beside) <= _ANNOTATIONS:
                inner = self.node(node, {"$ref": data["$ref"]}, join_pointer(at, "$ref"))
                return {**self.node(node, beside, at), "$ref": inner}
            self.open[key] = at
            try:
                if not isinstance(target.data, dict):
                    return target.data
                merged = {k: v for k, v in target.data.items() if k not in _TARGET_ONLY}
                return self.node(target, {**merged, **beside}, at)
            finally:
                del self.open[key]
        kept = {k: v for k, v in data.items() if k not in ("$defs", "$schema")}
        return map_schema(
            node, kept, lambda path, sub: self.node(sub, sub.data, join_pointer(at, *path))
        )


def fingerprint(tree: SchemaTree, task: TaskContract) -> str:
    """``sha256:<hex>`` of the canonical args schema with every ``$ref`` inlined."""
    digest = hashlib.sha256(canonical_json(inline(tree.args(task))).encode())
    return f"sha256:{digest.hexdigest()}"
