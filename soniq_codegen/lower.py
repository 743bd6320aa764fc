"""Checking args schemas against the supported keywords, and lowering them to one schema.

The intermediate schema is what datamodel-code-generator sees: every object is a named entry
of ``$defs`` (one class, however many tasks reference it), string formats point at the
package's own strict types, and nothing of the source layout (file names, key order of shared
files, ``$ref`` spelling) is left in it, so the generated code depends only on the contracts'
meaning.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
import warnings
from typing import Annotated, Any

import jsonschema
from pydantic import Field, TypeAdapter

from soniq_codegen.contract import CLASS_NAME, TaskContract, pascal_case
from soniq_codegen.fingerprint import inline
from soniq_codegen.load import join_pointer, split_pointer
from soniq_codegen.problem import Problem
from soniq_codegen.tree import SchemaNode, SchemaTree

#: JSON Schema ``format`` -> the strict type of the generated ``_types`` module.
FORMATS = {
    "date": "Date",
    "date-time": "DateTime",
    "email": "Email",
    "uri": "Uri",
    "uuid": "Uuid",
}
ANNOTATIONS = frozenset({"title", "description", "examples", "$comment"})
BY_TYPE: dict[str, frozenset[str]] = {
    "string": frozenset({"minLength", "maxLength", "pattern", "format"}),
    "integer": frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}),
    "number": frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}),
    "array": frozenset({"items", "minItems", "maxItems"}),
    "object": frozenset({"properties", "required", "additionalProperties"}),
    "boolean": frozenset(),
    "null": frozenset(),
}
GENERAL = frozenset({"type", "enum", "const", "default", "$ref", "$defs", "$schema"})
SUPPORTED = ANNOTATIONS | GENERAL | frozenset().union(*BY_TYPE.values())
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
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
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def clean_text(text: str) -> str:
    """A description made safe and tidy for docstrings: no control characters or trailing spaces."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub(" ", text.replace("\t", " "))
    lines = [
        textwrap.fill(line.rstrip(), 72, break_long_words=False) or line.rstrip()
        for line in text.strip().split("\n")
    ]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


class SchemaCompiler:
    """Checks args schemas and collects their classes into one intermediate ``$defs`` map."""

    def __init__(self, tree: SchemaTree) -> None:
        self.tree = tree
        self.files = tree.files
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

    def compile_task(self, task: TaskContract) -> None:
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
        source = self.files.get(file)
        line = source.line(pointer) if source is not None else None
        self.problems.append(Problem(file, line, pointer, message, hint))

    def _problem(self, node: SchemaNode, key: str | None, message: str, hint: str) -> None:
        """Report a problem at ``node``, or at its keyword ``key``."""
        pointer = node.pointer if key is None else join_pointer(node.pointer, key)
        self._report(node.file, pointer, message, hint)

    def _schema(self, node: SchemaNode, hint: str) -> tuple[dict[str, Any], bool] | None:
        """The intermediate form of ``node`` and whether it admits null; None on problems."""
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
        unknown = sorted(set(data) - SUPPORTED)
        for key in unknown:
            self._problem(
                node,
                key,
                f"unsupported keyword {key!r}",
                "see docs/contracts.md for the supported keywords",
            )
        if unknown:
            return None
        kind = self._kind(node)
        if kind is None:
            return None
        base, nullable = kind
        for key in sorted(set(data) & (SUPPORTED - GENERAL - ANNOTATIONS)):
            if base not in BY_TYPE or key not in BY_TYPE[base]:
                self._problem(
                    node,
                    key,
                    f"keyword {key!r} does not apply to type {base!r}",
                    "JSON Schema would silently ignore it; remove it or fix 'type'",
                )
                return None
        if base == "object":
            return self._object(node, hint, nullable), nullable
        out = self._value(node, base, nullable, hint)
        if out is None:
            return None
        if isinstance(data.get("description"), str):
            out["description"] = clean_text(data["description"])
        if "default" in data and not self._default(node, base):
            return None
        if "default" in data:
            out["default"] = data["default"]
        return out, nullable

    def _nullable(self, node: SchemaNode, hint: str) -> tuple[dict[str, Any], bool] | None:
        """``anyOf: [X, {type: null}]``, the one ``anyOf`` supported: X or null."""
        options = node.data["anyOf"]
        nulls = (
            [i for i, o in enumerate(options) if o == {"type": "null"}]
            if isinstance(options, list)
            else []
        )
        if len(options) != 2 or len(nulls) != 1:
            self._problem(
                node,
                "anyOf",
                "anyOf is supported only as [<schema>, {type: 'null'}]",
                "unions are not supported; use one schema, optionally nullable",
            )
            return None
        compiled = self._schema(node.any_of[1 - nulls[0]], hint)
        if compiled is None:
            return None
        schema = dict(compiled[0])
        schema.pop(NOT_NULL, None)
        if isinstance(node.data.get("description"), str):
            schema["description"] = clean_text(node.data["description"])
        if compiled[1]:
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

    def _ref(self, node: SchemaNode) -> tuple[dict[str, Any], bool] | None:
        data = node.data
        for key in sorted(set(data) - {"$ref", "description", "title", "$comment"}):
            self._problem(
                node,
                key,
                f"keyword {key!r} beside $ref",
                "put it in the referenced schema instead",
            )
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
        if result is not None and isinstance(data.get("description"), str):
            result = ({**result[0], "description": clean_text(data["description"])}, result[1])
        return result

    def _kind(self, node: SchemaNode) -> tuple[str, bool] | None:
        """The one non-null type ``node`` describes and whether null is also allowed."""
        data = node.data
        declared = data.get("type")
        types = declared if isinstance(declared, list) else [declared]
        if declared is not None and (
            not types
            or len(set(types)) != len(types)
            or any(t not in BY_TYPE for t in types)
            or len([t for t in types if t != "null"]) > 1
        ):
            self._problem(
                node,
                "type",
                f"unsupported type {declared!r}",
                "use one JSON type, optionally with 'null': [string, 'null']",
            )
            return None
        nullable = "null" in types
        base = next((t for t in types if t not in ("null", None)), "null" if nullable else None)
        if "enum" in data or "const" in data:
            values = data["enum"] if "enum" in data else [data["const"]]
            where = "enum" if "enum" in data else "const"
            if (
                not isinstance(values, list)
                or not values
                or any(v is not None and not isinstance(v, str) for v in values)
                or len(set(values)) != len(values)
                or ("enum" in data and "const" in data)
                or base not in (None, "string", "null")
            ):
                self._problem(
                    node,
                    where,
                    "enum and const must list distinct strings (or null)",
                    "number and boolean enums are not supported; use strings",
                )
                return None
            if declared is not None and not nullable and None in values:
                self._problem(
                    node,
                    where,
                    "null in enum but 'type' does not allow null",
                    "add 'null' to 'type'",
                )
                return None
            return "enum", nullable or (declared is None and None in values)
        if base is None:
            self._problem(
                node, None, "schema has no 'type'", "say what the value is, e.g. 'type: string'"
            )
            return None
        return base, nullable

    def _value(
        self, node: SchemaNode, base: str, nullable: bool, hint: str
    ) -> dict[str, Any] | None:
        data = node.data
        if base == "enum":
            values = data["enum"] if "enum" in data else [data["const"]]
            out: dict[str, Any] = {"enum": [*(v for v in values if v is not None)]}
            if nullable:
                out["enum"].append(None)
            return out
        if base == "array":
            return self._array(node, nullable, hint)
        ok = all(
            self._bound(node, key)
            for key in (
                "minimum",
                "maximum",
                "exclusiveMinimum",
                "exclusiveMaximum",
                "minLength",
                "maxLength",
            )
            if key in data
        )
        if not ok:
            return None
        if "format" in data:
            fmt = data["format"]
            if fmt not in FORMATS or set(data) & {"minLength", "maxLength", "pattern"}:
                self._problem(
                    node,
                    "format",
                    f"unsupported format {fmt!r} (or format with length/pattern)",
                    f"supported formats: {', '.join(sorted(FORMATS))}",
                )
                return None
            self.formats.add(FORMATS[fmt])
            ref: dict[str, Any] = {"$ref": f"#/$defs/{FORMATS[fmt]}"}
            return {"anyOf": [ref, {"type": "null"}]} if nullable else ref
        if "pattern" in data and not self._pattern(node, data["pattern"]):
            return None
        out = {"type": [base, "null"] if nullable and base != "null" else base}
        out.update({k: data[k] for k in sorted(BY_TYPE[base] & set(data))})
        return out

    def _bound(self, node: SchemaNode, key: str) -> bool:
        value = node.data[key]
        if key in ("minLength", "maxLength"):
            valid = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        else:
            valid = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not valid:
            self._problem(
                node,
                key,
                f"{key} {value!r} is not valid",
                "lengths are integers >= 0, bounds are numbers",
            )
        return valid

    def _pattern(self, node: SchemaNode, pattern: Any) -> bool:
        try:
            if not isinstance(pattern, str):
                raise TypeError("not a string")
            re.compile(pattern)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                TypeAdapter(Annotated[str, Field(pattern=pattern)])
        except Exception as exc:  # any failure to compile is the contract's problem
            self._problem(
                node,
                "pattern",
                f"pattern cannot be compiled: {type(exc).__name__}",
                "use a regular expression without look-around or back-references",
            )
            return False
        return True

    def _array(self, node: SchemaNode, nullable: bool, hint: str) -> dict[str, Any] | None:
        data = node.data
        if node.items is None:
            self._problem(
                node,
                None,
                "array without 'items'",
                "say what the items are, e.g. 'items: {type: string}'",
            )
            return None
        ok = all(self._length(node, key) for key in ("minItems", "maxItems") if key in data)
        items = self._schema(node.items, hint + "Item")
        if items is None or not ok:
            return None
        out: dict[str, Any] = {
            "type": ["array", "null"] if nullable else "array",
            "items": items[0],
        }
        out.update({k: data[k] for k in ("minItems", "maxItems") if k in data})
        return out

    def _length(self, node: SchemaNode, key: str) -> bool:
        value = node.data[key]
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return True
        self._problem(node, key, f"{key} {value!r} is not valid", "use an integer >= 0")
        return False

    def _default(self, node: SchemaNode, base: str) -> bool:
        data = node.data
        if "format" in data or base == "array":
            self._problem(
                node,
                "default",
                "defaults are supported on plain scalars only (no arrays, objects or formats)",
                "leave the default out: an optional field is then simply absent",
            )
            return False
        try:
            jsonschema.validate(data["default"], inline(node), cls=jsonschema.Draft202012Validator)
        except jsonschema.ValidationError as exc:
            self._problem(
                node,
                "default",
                f"default does not validate: {exc.message}",
                "a default must itself satisfy the schema",
            )
            return False
        return True

    def _object(
        self,
        node: SchemaNode,
        hint: str,
        nullable: bool,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The class of an object schema (``data`` stands in for the args root's own keywords)."""
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
        if not self.reserve(name, node.file, node.pointer):
            return wrapped
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
        out_props: dict[str, Any] = {}
        for prop in props:
            sub = node.properties[prop]
            if not prop or len(prop) > 100 or _CONTROL.search(prop) or not prop.isprintable():
                self._problem(
                    sub,
                    None,
                    f"property name {prop!r} is not supported",
                    "use printable names of at most 100 characters",
                )
                continue
            compiled = self._schema(sub, name + pascal_case(prop))
            if compiled is None:
                continue
            schema, prop_nullable = compiled
            if prop in required:
                schema.pop("default", None)
            elif "default" not in schema and not prop_nullable:
                schema[NOT_NULL] = True
            out_props[prop] = schema
        out: dict[str, Any] = {"type": "object", "properties": out_props}
        if required:
            out["required"] = [p for p in props if p in required]
        if extra is False:
            out["additionalProperties"] = False
        description = data.get("description")
        if isinstance(description, str) and clean_text(description):
            out["description"] = clean_text(description)
        self.defs[name] = out
        return wrapped
