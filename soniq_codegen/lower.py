"""Lowering the args schemas, read from the schema tree, into one intermediate ``$defs`` map.

The intermediate schema is what datamodel-code-generator sees: every object is a named entry
of ``$defs`` (one class, however many tasks reference it), string formats point at the
package's own strict types, and nothing of the source layout (file names, key order of shared
files, ``$ref`` spelling) is left in it, so the generated code depends only on the contracts'
meaning. Every schema is checked against the supported subset (:mod:`keywords`) on the way.
"""

from __future__ import annotations

from typing import Any

from soniq_codegen import keywords
from soniq_codegen.contract import CLASS_NAME, TaskContract, pascal_case
from soniq_codegen.keywords import ANNOTATIONS, DRAFT_2020_12, FORMATS, Issue
from soniq_codegen.load import join_pointer, split_pointer
from soniq_codegen.problem import Problem
from soniq_codegen.source import clean_text
from soniq_codegen.tree import SchemaNode, SchemaTree

#: Marks a field that may be left out but not set to null; the generated ``_base`` reads it.
NOT_NULL = "x-soniq-not-null"
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
        if not isinstance(data, dict):
            self._problem(
                node,
                None,
                "a schema must be a mapping",
                "boolean schemas and other shorthands are not supported",
            )
            return None
        if "$ref" in data:
            return self._ref(node)
        if "anyOf" in data and set(data) - ANNOTATIONS == {"anyOf"}:
            return self._nullable(node, hint)
        unknown = keywords.unknown_keywords(data)
        for issue in unknown:
            self._issue(node, issue)
        kind = keywords.kind(data) if not unknown else None
        if isinstance(kind, Issue):
            self._issue(node, kind)
        if not isinstance(kind, tuple):
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

    def _nullable(self, node: SchemaNode, hint: str) -> Lowered:
        """``anyOf: [X, {type: null}]``: X or null."""
        index = keywords.nullable_option(node.data)
        if isinstance(index, Issue):
            self._issue(node, index)
            return None
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

    def _ref(self, node: SchemaNode) -> Lowered:
        """A ``$ref``: its target's form, under the name of the target's last pointer token
        (or file stem) when the target is an object."""
        beside = keywords.beside_ref(node.data)
        if beside is not None:
            self._issue(node, beside)
            return None
        if node.unresolved is not None:
            self._problem(node, "$ref", node.unresolved.message, node.unresolved.hint)
            return None
        target = node.target
        if target is None:
            return None  # the target file's own parse problem is already reported
        target_key = (target.file, target.pointer)
        if target_key in self._visiting:
            self._problem(node, "$ref", "recursive $ref is not supported", "break the cycle")
            return None
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
        if node.items is None:
            self._problem(
                node,
                None,
                "array without 'items'",
                "say what the items are, e.g. 'items: {type: string}'",
            )
            return None
        size = keywords.size_issue(node.data)
        if size is not None:
            self._issue(node, size)
        # The items are lowered even when a size is wrong, so their problems show up too.
        items = self._schema(node.items, hint + "Item")
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
        props = data.get("properties", {})
        required = data.get("required", [])
        extra = data.get("additionalProperties", True)
        if not isinstance(props, dict):
            self._problem(
                node,
                "properties",
                "properties must be a mapping",
                "map each property name to its schema",
            )
            props = {}
        if not isinstance(required, list) or any(r not in props for r in required):
            self._problem(
                node,
                "required",
                "required must list names declared in properties",
                "declare every required property",
            )
            required = []
        if not isinstance(extra, bool):
            self._problem(
                node,
                "additionalProperties",
                "additionalProperties must be true or false",
                "schemas for extra properties are not supported",
            )
        fields: dict[str, Any] = {}
        for prop in props:
            field = self._field(node.properties[prop], prop, name, prop in required)
            if field is not None:
                fields[prop] = field
        out: dict[str, Any] = {"type": "object", "properties": fields}
        if required:
            out["required"] = [p for p in props if p in required]
        if extra is False:
            out["additionalProperties"] = False
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
        elif "default" not in schema and not nullable:
            schema[NOT_NULL] = True
        return schema
