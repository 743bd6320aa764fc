"""Resolving every ``$ref`` of the args schemas once, into one tree that knows where each node is.

Fingerprints, compatibility shapes and the lowering to generated classes all read this tree;
none of them resolves a reference itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from soniq_codegen.contract import TaskContract
from soniq_codegen.load import SourceFile, get_pointer, join_pointer, resolve_ref

#: Keywords whose value is one sub-schema, a list of them, or a map of names to them.
ONE_SCHEMA = ("items", "contains", "not", "if", "then", "else", "additionalProperties")
SCHEMA_LIST = ("prefixItems", "allOf", "anyOf", "oneOf")
SCHEMA_MAP = ("properties", "patternProperties", "dependentSchemas")
_REF_ALONE = frozenset({"$ref", "title", "description", "examples", "$comment"})
REF_HINT = (
    "use a relative path inside the contract directory, "
    "e.g. common/money.yaml or common/defs.yaml#/$defs/Money"
)


@dataclass(frozen=True)
class Unresolved:
    """Why a ``$ref`` has no target, and how to fix it."""

    message: str
    hint: str


@dataclass(eq=False, repr=False)
class SchemaNode:
    """One schema as written at ``file`` / ``pointer``, with its sub-schemas and ``$ref`` target.

    A definition referenced from many places is one node, so the tree is really a graph; a
    recursive ``$ref`` makes it cyclic. Only the lowering walks an unchecked tree, and it
    refuses cycles; every other reader runs on a checked contract set.
    """

    file: str
    pointer: str
    #: The schema exactly as written (any JSON value: unchecked contracts may hold anything).
    data: Any
    properties: dict[str, SchemaNode] = field(default_factory=dict)
    items: SchemaNode | None = None
    any_of: list[SchemaNode] = field(default_factory=list)
    #: Every sub-schema by its path below this node (``oneOf/0``, ``not``, ``properties/a``).
    subs: dict[tuple[str, ...], SchemaNode] = field(default_factory=dict)
    #: The node ``$ref`` points at; None without ``$ref`` or when it does not resolve.
    target: SchemaNode | None = None
    #: Why ``$ref`` does not resolve; None also when the target file did not parse, since
    #: that file's own problem is reported already.
    unresolved: Unresolved | None = None

    def __repr__(self) -> str:
        return f"SchemaNode({self.file}#{self.pointer})"

    def ref_target(self) -> SchemaNode:
        """The ``$ref`` target, which every reference of a checked contract set has."""
        if self.target is None:
            raise LookupError(f"$ref at {self.file}#{self.pointer} is not resolved")
        return self.target


class SchemaTree:
    """The args schemas of a contract set, with every ``$ref`` resolved once."""

    def __init__(self, files: dict[str, SourceFile]) -> None:
        self.files = files
        self._known = set(files)
        self._nodes: dict[tuple[str, str], SchemaNode] = {}
        self._args: dict[tuple[str, str], SchemaNode] = {}

    def args(self, task: TaskContract) -> SchemaNode:
        """The root of ``task``'s args schema, as the task declares it (without ``x-soniq``)."""
        key = (task.file, task.args_pointer)
        if key not in self._args:
            self._args[key] = self.root(task.file, task.args_pointer, task.args)
        return self._args[key]

    def root(self, file: str, pointer: str, data: Any) -> SchemaNode:
        """A node for ``data``, written in ``file`` at ``pointer``, with all it reaches."""
        node = SchemaNode(file, pointer, data)
        self._fill(node)
        return node

    def _at(self, file: str, pointer: str, data: Any) -> SchemaNode:
        """The one node for the schema at ``file`` / ``pointer``."""
        key = (file, pointer)
        node = self._nodes.get(key)
        if node is None:
            # Registered before its children are built, so a recursive $ref finds it.
            node = self._nodes[key] = SchemaNode(file, pointer, data)
            self._fill(node)
        return node

    def _fill(self, node: SchemaNode) -> None:
        data = node.data
        if not isinstance(data, dict):
            return
        if "$ref" in data:
            self._resolve(node, data["$ref"])
        for path, sub in _sub_schemas(data):
            node.subs[path] = self._at(node.file, join_pointer(node.pointer, *path), sub)
        node.properties = {
            path[1]: sub for path, sub in node.subs.items() if path[0] == "properties"
        }
        node.items = node.subs.get(("items",))
        node.any_of = [sub for path, sub in node.subs.items() if path[0] == "anyOf"]

    def _resolve(self, node: SchemaNode, ref: object) -> None:
        try:
            file, pointer = resolve_ref(ref, node.file, self._known)
        except ValueError as exc:
            root = self.files[node.file].data
            hint = REF_HINT
            if isinstance(root, dict) and "$id" in root:  # the author meant the $id's URI
                hint = f"$ref resolves against the file, not against $id (not supported); {hint}"
            node.unresolved = Unresolved(str(exc), hint)
            return
        data = self.files[file].data
        if data is None:
            return
        try:
            target = get_pointer(data, pointer)
        except KeyError:
            node.unresolved = Unresolved(
                f"$ref {ref!r} does not resolve: {file} has nothing at {pointer or '/'}",
                "check the JSON pointer after '#'",
            )
            return
        node.target = self._at(file, pointer, target)


def _sub_schemas(data: dict[str, Any]) -> list[tuple[tuple[str, ...], Any]]:
    """The sub-schemas of ``data`` with their paths, for the keywords that hold schemas."""
    found: list[tuple[tuple[str, ...], Any]] = []
    for key in ONE_SCHEMA:
        if key in data:
            found.append(((key,), data[key]))
    for key in SCHEMA_LIST:
        if isinstance(data.get(key), list):
            found.extend(((key, str(i)), sub) for i, sub in enumerate(data[key]))
    for key in SCHEMA_MAP:
        if isinstance(data.get(key), dict):
            found.extend(((key, name), sub) for name, sub in data[key].items())
    return found


def all_of_branches(node: SchemaNode) -> list[SchemaNode]:
    """The mapping schemas in ``node``'s ``allOf`` (through ``$ref``s written alone, and
    nested ``allOf``s): all their keywords apply to ``node``'s value too."""
    found: list[SchemaNode] = []
    seen = {(node.file, node.pointer)}
    stack = [node]
    while stack:
        for path, sub in stack.pop().subs.items():
            if path[0] != "allOf":
                continue
            followed = {(sub.file, sub.pointer)}
            while isinstance(sub.data, dict) and set(sub.data) <= _REF_ALONE and sub.target:
                sub = sub.target
                if (sub.file, sub.pointer) in followed:
                    break  # a $ref cycle: nothing but references
                followed.add((sub.file, sub.pointer))
            if isinstance(sub.data, dict) and (sub.file, sub.pointer) not in seen:
                seen.add((sub.file, sub.pointer))
                found.append(sub)
                stack.append(sub)
    return found
