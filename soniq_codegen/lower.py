"""Lowering the args schemas, read from the schema tree, into one intermediate ``$defs`` map.

The intermediate schema is what datamodel-code-generator sees: every object is a named entry
of ``$defs`` (one class, however many tasks reference it), string formats point at the
package's own strict types, and nothing of the source layout (file names, key order of shared
files, ``$ref`` spelling) is left in it, so the generated code depends only on the contracts'
meaning. Every schema is checked against the supported language (:mod:`keywords`) on the
way. What no pydantic type states exactly lowers to the closest wider type, and the class
it is in is recorded in :attr:`Lowering.rules` to check its schema as data.
"""

from __future__ import annotations

from typing import Any

from soniq_codegen import keywords
from soniq_codegen.contract import CLASS_NAME, TaskContract, is_task_file, pascal_case
from soniq_codegen.keywords import (
    ANNOTATIONS,
    DRAFT_2020_12,
    FORMATS,
    META_HINT,
    Issue,
)
from soniq_codegen.load import join_pointer, split_pointer
from soniq_codegen.problem import Problem
from soniq_codegen.source import clean_text
from soniq_codegen.tree import SchemaNode, SchemaTree, all_of_branches
from soniq_codegen.unions import discriminator

#: Marks a field that may be left out but not set to null; the generated ``_base`` reads it.
NOT_NULL = "x-soniq-not-null"
#: Marks a nullable field that may be left out and has no default: left out of dumps while
#: unset (as a :data:`NOT_NULL` field is).
OPTIONAL = "x-soniq-optional"
#: Names the generated modules bind themselves; a contract class may not take them.
RESERVED = frozenset(
    {
        "Annotated",
        "Any",
        "BaseModel",
        "ConfigDict",
        "ContractModel",
        "Field",
        "Final",
        "Literal",
        "Model",
        "RootModel",
        "StrictBool",
        "StrictFloat",
        "StrictInt",
        "StrictStr",
        "TaskRef",
        *FORMATS.values(),
    }
)

#: A schema's intermediate form and whether it admits null; None when it has problems.
Lowered = tuple[dict[str, Any], bool] | None


class Lowering:
    """Checks args schemas and collects their classes into one intermediate ``$defs`` map."""

    def __init__(self, tree: SchemaTree) -> None:
        self.tree = tree
        self.problems: list[Problem] = []
        self.defs: dict[str, dict[str, Any]] = {}
        self.formats: set[str] = set()
        #: Class name -> the schema node whose rules the class checks as data, and the
        #: properties whose field types are exact (their rules need no checking).
        self.rules: dict[str, tuple[SchemaNode, frozenset[str]]] = {}
        self._checked = False
        self._defined: set[tuple[str, str]] = set()
        self._invalid: set[tuple[str, str]] = set()
        self._class_of: dict[tuple[str, str], str] = {}
        self._origin: dict[str, tuple[str, str]] = {}
        self._visiting: set[tuple[str, str]] = set()

    def reserve(self, name: str, file: str, pointer: str) -> bool:
        """Claim a global name (class or constant); report a problem if it is taken."""
        if name in RESERVED:
            self._report(
                file,
                pointer,
                f"name {name!r} is reserved by the generated code",
                "choose another name",
            )
            return False
        if name in self._origin and self._origin[name] != (file, pointer):
            other_file, other_pointer = self._origin[name]
            self._report(
                file,
                pointer,
                f"duplicate name {name!r}",
                f"also used at {other_file}:{other_pointer or '/'}; rename one",
            )
            return False
        self._origin[name] = (file, pointer)
        return True

    def lower_task(self, task: TaskContract) -> None:
        """Check ``task``'s args schema and add its classes to :attr:`defs`."""
        root = self.tree.args(task)
        data = task.args
        if data.get("type") != "object":
            self._problem(
                root,
                "type",
                "the args schema must have 'type: object'",
                "args are passed as keyword arguments, so they form an object",
            )
            return
        schema = data.get("$schema", DRAFT_2020_12)
        if schema not in (DRAFT_2020_12, DRAFT_2020_12 + "#"):
            self._problem(
                root, "$schema", f"unsupported $schema {schema!r}", f"use {DRAFT_2020_12}"
            )
        data = {k: v for k, v in data.items() if k != "title"}
        if "description" not in data and task.description:
            data["description"] = task.description
        self._object(root, task.class_name, nullable=False, data=data)

    def _report(self, file: str, pointer: str, message: str, hint: str) -> None:
        source = self.tree.files.get(file)
        line = source.line(pointer) if source is not None else None
        self.problems.append(Problem(file, line, pointer, message, hint))

    def _problem(self, node: SchemaNode, key: str | None, message: str, hint: str) -> None:
        """Report a problem at ``node``, or at its keyword ``key``."""
        pointer = node.pointer if key is None else join_pointer(node.pointer, key)
        self._report(node.file, pointer, message, hint)

    def _issue(self, node: SchemaNode, issue: Issue) -> None:
        self._problem(node, issue.key, issue.message, issue.hint)

    def _schema(self, node: SchemaNode, hint: str) -> Lowered:
        """The intermediate form of ``node``; ``hint`` names its class if it is an object."""
        data = node.data
        if isinstance(data, bool):
            self._checked = self._checked or not data
            return {}, True
        if not isinstance(data, dict):
            self._problem(node, None, "a schema must be a mapping or a boolean", "use a mapping")
            return None
        unknown = keywords.unknown_keywords(data, root=node.pointer == "")
        for issue in unknown:
            self._issue(node, issue)
        if unknown:
            return None
        if "$ref" in data:
            return self._ref(node, hint)
        index = keywords.nullable_option(data) if set(data) - ANNOTATIONS == {"anyOf"} else None
        if index is not None:
            return self._nullable(node, index, hint)
        if keywords.checked(data):
            return self._checked_schema(node, hint)
        kind = keywords.kind(data)
        if isinstance(kind, Issue):
            self._issue(node, kind)
            return None
        base, nullable = kind
        misplaced = keywords.misplaced(data, base)
        if misplaced is not None:
            self._issue(node, misplaced)
            return None
        if base == "object":
            return self._object(node, hint, nullable), nullable
        out = self._value(node, base, nullable, hint)
        if out is None:
            return None
        if isinstance(data.get("description"), str):
            out["description"] = clean_text(data["description"])
        if "default" in data:
            bad_default = keywords.default_issue(node, base)
            if bad_default is not None:
                self._issue(node, bad_default)
                return None
            out["default"] = data["default"]
        return out, nullable

    def _checked_schema(self, node: SchemaNode, hint: str) -> Lowered:
        """A schema no pydantic type states exactly: the closest type that accepts every
        value it accepts (a union of its branches, a class, a list, or the JSON types it
        allows), whose class then checks the schema's rules as data."""
        data = node.data
        if not self._inspect(node):
            return None
        if "default" in data:
            self._problem(
                node,
                "default",
                "defaults are supported on plain scalars only",
                "leave the default out: an optional field is then simply absent",
            )
            return None
        branches = [k for k in ("anyOf", "oneOf") if k in data]
        if len(branches) == 1 and set(data) - ANNOTATIONS == set(branches):
            return self._union(node, branches[0], hint)
        types = keywords.json_types(data)
        for branch in all_of_branches(node):  # allOf: what every branch allows
            types &= keywords.json_types(branch.data)
        nullable = "null" in types
        if types - {"null"} == {"object"} and "enum" not in data and "const" not in data:
            return self._object(node, hint, nullable), nullable
        self._checked = True
        if (
            types - {"null"} == {"array"}
            and isinstance(data.get("items"), (dict, bool))
            and "prefixItems" not in data
        ):
            items = self._schema(node.subs[("items",)], hint + "Item")
            if items is None:
                return None
            return {"type": ["array", "null"] if nullable else "array", "items": items[0]}, nullable
        if types == frozenset(keywords.JSON_TYPES) or not types:
            return {}, True
        return {"type": sorted(types)}, nullable

    def _inspect(self, node: SchemaNode) -> bool:
        """Report what rules checked as data could not check exactly, in ``node`` and all it
        reaches; True when there is nothing."""
        found = keywords.unchecked(node)
        for where, issue in found:
            self._issue(where, issue)
        return not found

    def _union(self, node: SchemaNode, key: str, hint: str) -> Lowered:
        """``anyOf``/``oneOf``: the union of its branches' types."""
        options: list[dict[str, Any]] = []
        nullable = False
        for index in range(len(node.data[key])):
            lowered = self._schema(node.subs[(key, str(index))], f"{hint}{index + 1}")
            if lowered is None:
                return None
            options.append(lowered[0])
            nullable = nullable or lowered[1]
        if any(not option for option in options):
            self._checked = True
            return {}, True
        tag = discriminator(options, self.defs)
        if tag is not None:  # one branch at most can match: exact as it is
            return {"oneOf": options, "discriminator": {"propertyName": tag}}, nullable
        # anyOf is the union of exact branch types; oneOf also needs "only one" checked.
        self._checked = self._checked or key == "oneOf"
        return {"anyOf": options}, nullable

    def _nullable(self, node: SchemaNode, index: int, hint: str) -> Lowered:
        """``anyOf: [X, {type: null}]``: X (at ``index``) or null."""
        lowered = self._schema(node.any_of[index], hint)
        if lowered is None:
            return None
        schema = dict(lowered[0])
        schema.pop(NOT_NULL, None)
        if isinstance(node.data.get("description"), str):
            schema["description"] = clean_text(node.data["description"])
        if lowered[1]:
            return schema, True
        if isinstance(schema.get("type"), str):
            schema["type"] = [schema["type"], "null"]
        elif "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
        else:
            schema = {"anyOf": [schema, {"type": "null"}]}
            if "description" in schema["anyOf"][0]:
                schema["description"] = schema["anyOf"][0].pop("description")
        return schema, True

    def _valid_definition(self, target: SchemaNode) -> bool:
        """Whether a ``$ref`` target in a task file (whose definitions beside the task are
        no part of any args schema, so no other check saw them) is valid JSON Schema."""
        source = self.tree.files[target.file]
        key = (target.file, target.pointer)
        if key in self._defined or not is_task_file(source.data):
            return key not in self._invalid
        self._defined.add(key)
        for path, message in keywords.schema_errors(target.data):
            where = join_pointer(target.pointer, *path)
            self._report(target.file, where, f"invalid JSON Schema: {message}", META_HINT)
            self._invalid.add(key)
        return key not in self._invalid

    def _ref(self, node: SchemaNode, hint: str) -> Lowered:
        """A ``$ref``: its target's form, under the name of the target's last pointer token
        (or file stem) when the target is an object. Beside other keywords, or back to a
        schema it is inside, it is checked as data."""
        if node.unresolved is not None:
            self._problem(node, "$ref", node.unresolved.message, node.unresolved.hint)
            return None
        target = node.target
        if target is None:
            return None  # the target file's own parse problem is already reported
        target_key = (target.file, target.pointer)
        if not self._valid_definition(target):
            return None
        if keywords.beside_ref(node.data) is not None or target_key in self._visiting:
            beside = {k: v for k, v in node.data.items() if k != "$ref"}
            if not self._inspect(node):
                return None
            self._checked = True
            types = keywords.json_types(beside) if "type" in beside else None
            if types is None or types == frozenset(keywords.JSON_TYPES):
                return {}, True
            return {"type": sorted(types)}, "null" in types
        tokens = split_pointer(target.pointer)
        stem = tokens[-1] if tokens else target.file.rsplit("/", 1)[-1].split(".", 1)[0]
        self._visiting.add(target_key)
        try:
            result = self._schema(target, pascal_case(stem))
        finally:
            self._visiting.discard(target_key)
        description = node.data.get("description")
        if result is not None and isinstance(description, str):
            result = ({**result[0], "description": clean_text(description)}, result[1])
        return result

    def _value(
        self, node: SchemaNode, base: str, nullable: bool, hint: str
    ) -> dict[str, Any] | None:
        """The intermediate form of a schema that is not an object."""
        data = node.data
        if base == "enum":
            values = data["enum"] if "enum" in data else [data["const"]]
            out: dict[str, Any] = {"enum": [*(v for v in values if v is not None)]}
            if nullable:
                out["enum"].append(None)
            return out
        if base == "array":
            return self._array(node, nullable, hint)
        issue = keywords.bound_issue(data)
        if issue is None and "format" in data:
            issue = keywords.format_issue(data)
        if issue is None and "pattern" in data:
            issue = keywords.pattern_issue(data["pattern"])
        if issue is not None:
            self._issue(node, issue)
            return None
        if "format" in data:
            self.formats.add(FORMATS[data["format"]])
            ref: dict[str, Any] = {"$ref": f"#/$defs/{FORMATS[data['format']]}"}
            return {"anyOf": [ref, {"type": "null"}]} if nullable else ref
        out = {"type": [base, "null"] if nullable and base != "null" else base}
        out.update({k: data[k] for k in sorted(keywords.BY_TYPE[base] & set(data))})
        return out

    def _array(self, node: SchemaNode, nullable: bool, hint: str) -> dict[str, Any] | None:
        size = keywords.size_issue(node.data)
        if size is not None:
            self._issue(node, size)
        # The items are lowered even when a size is wrong, so their problems show up too.
        items = self._schema(node.items, hint + "Item") if node.items is not None else ({}, True)
        if items is None or size is not None:
            return None
        out: dict[str, Any] = {
            "type": ["array", "null"] if nullable else "array",
            "items": items[0],
        }
        out.update({k: node.data[k] for k in ("minItems", "maxItems") if k in node.data})
        return out

    def _object(
        self,
        node: SchemaNode,
        hint: str,
        nullable: bool,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A reference to the class of an object schema, made on first sight (``data`` stands
        in for the args root's own keywords)."""
        data = node.data if data is None else data
        key = (node.file, node.pointer)
        ref: dict[str, Any] = {"$ref": f"#/$defs/{self._class_of.get(key, hint)}"}
        wrapped = {"anyOf": [ref, {"type": "null"}]} if nullable else ref
        if key in self._class_of:
            return wrapped
        name = data.get("title", hint)
        if not isinstance(name, str) or not CLASS_NAME.match(name) or len(name) > 100:
            self._problem(
                node,
                "title",
                f"title {name!r} of an object is not a class name",
                "use a PascalCase identifier",
            )
            return wrapped
        if "default" in data:
            self._problem(
                node,
                "default",
                "defaults are not supported on objects",
                "give the object's properties defaults instead",
            )
        ref["$ref"] = f"#/$defs/{name}"
        self._class_of[key] = name
        if self.reserve(name, node.file, node.pointer):
            self.defs[name] = self._class(node, data, name)
        return wrapped

    def _class(self, node: SchemaNode, data: dict[str, Any], name: str) -> dict[str, Any]:
        """The intermediate schema of class ``name``: fields, required ones, openness, doc."""
        props = dict(node.properties)  # with the properties of allOf's object branches
        required = set(data.get("required", []))
        for branch in all_of_branches(node):
            props.update({k: v for k, v in branch.properties.items() if k not in props})
            required.update(branch.data.get("required", []))
        extra = data.get("additionalProperties", True)
        outer, self._checked = self._checked, keywords.checked(data) or not isinstance(extra, bool)
        self._checked = self._checked or bool(required - props.keys())
        fields: dict[str, Any] = {}
        exact: set[str] = set()  # fields whose type alone is exact: their rules go unchecked
        for prop in props:
            checked, self._checked = self._checked, False
            field = self._field(props[prop], prop, name, prop in required)
            if field is not None:
                fields[prop] = field
                exact.update([] if self._checked else [prop])
            self._checked = checked or self._checked
        if self._checked:
            self.rules[name] = (node, frozenset(exact))
        self._checked = outer
        out: dict[str, Any] = {"type": "object", "properties": fields}
        if any(p in required for p in props):
            out["required"] = [p for p in props if p in required]
        # Extra keys the schema allows are kept (and checked by the rules when it says how).
        out["additionalProperties"] = extra is not False or "patternProperties" in data
        description = data.get("description")
        if isinstance(description, str) and clean_text(description):
            out["description"] = clean_text(description)
        return out

    def _field(
        self, node: SchemaNode, prop: str, owner: str, required: bool
    ) -> dict[str, Any] | None:
        """The intermediate form of property ``prop`` of class ``owner``."""
        bad_name = keywords.property_name_issue(prop)
        if bad_name is not None:
            self._issue(node, bad_name)
            return None
        lowered = self._schema(node, owner + pascal_case(prop))
        if lowered is None:
            return None
        schema, nullable = lowered
        if required:
            schema.pop("default", None)
        elif "default" not in schema:  # not-null fields are optional ones too
            schema[OPTIONAL if nullable else NOT_NULL] = True
        return schema
