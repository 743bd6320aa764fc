"""Fingerprints: a digest of each task's args schema, read from the schema tree."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from soniq_codegen.contract import TaskContract
from soniq_codegen.tree import SchemaNode, SchemaTree

#: Keys of a ``$ref`` target that belong to its file, not to the schema it stands for.
_TARGET_ONLY = ("$defs", "$schema", "x-soniq")


def canonical_json(value: Any) -> str:
    """Canonical JSON: sorted keys, no whitespace, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def inline(node: SchemaNode) -> Any:
    """The schema of ``node`` with ``$ref`` replaced by its target, recursively, and without
    ``$defs`` and ``$schema``.

    Only the schema itself and what is reached through ``properties`` and ``items`` is
    inlined; a ``$ref`` inside ``anyOf`` stays as written. Fingerprints have always been taken
    this way, and every lock file depends on it. The set must already be checked.
    """
    return _inline(node, node.data)


def _inline(node: SchemaNode, data: Any) -> Any:
    """``data``, written where ``node`` is (so its ``$ref`` resolves to ``node``'s target)."""
    if not isinstance(data, dict):
        return data
    if "$ref" in data:
        target = node.ref_target()
        merged = {k: v for k, v in target.data.items() if k not in _TARGET_ONLY}
        merged.update({k: v for k, v in data.items() if k != "$ref"})
        return _inline(target, merged)
    result: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("$defs", "$schema"):
            continue
        if key == "properties" and isinstance(value, dict):
            value = {name: _inline(node.properties[name], sub) for name, sub in value.items()}
        elif key == "items" and node.items is not None:
            value = _inline(node.items, value)
        result[key] = value
    return result


def fingerprint(tree: SchemaTree, task: TaskContract) -> str:
    """``sha256:<hex>`` of the canonical args schema with every ``$ref`` inlined."""
    digest = hashlib.sha256(canonical_json(inline(tree.args(task))).encode())
    return f"sha256:{digest.hexdigest()}"
