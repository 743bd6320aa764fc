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
from soniq_codegen.load import get_pointer, join_pointer, resolve_ref, split_pointer
from soniq_codegen.problem import Problem
from soniq_codegen.tree import SchemaTree

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
            self._problem(
                file,
                pointer,
                f"name {name!r} is reserved by the generated code",
                "choose another name",
            )
            return False
        if name in self._origin and self._origin[name] != (file, pointer):
            other_file, other_pointer = self._origin[name]
            self._problem(
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
        node = task.args
        if node.get("type") != "object":
            self._problem(
                task.file,
                join_pointer(task.args_pointer, "type"),
                "the args schema must have 'type: object'",
                "args are passed as keyword arguments, so they form an object",
            )
            return
        schema = node.get("$schema", DRAFT_2020_12)
        if schema not in (DRAFT_2020_12, DRAFT_2020_12 + "#"):
            self._problem(
                task.file,
                join_pointer(task.args_pointer, "$schema"),
                f"unsupported $schema {schema!r}",
                f"use {DRAFT_2020_12}",
            )
        node = {k: v for k, v in node.items() if k != "title"}
        if "description" not in node and task.description:
            node["description"] = task.description
        self._object(task.file, task.args_pointer, node, task.class_name, nullable=False)

    def _problem(self, file: str, pointer: str, message: str, hint: str) -> None:
        source = self.files.get(file)
        line = source.line(pointer) if source is not None else None
        self.problems.append(Problem(file, line, pointer, message, hint))

    def _schema(
        self, file: str, pointer: str, node: Any, hint: str
    ) -> tuple[dict[str, Any], bool] | None:
        """The intermediate form of ``node`` and whether it admits null; None on problems."""
        if not isinstance(node, dict):
            self._problem(
                file,
                pointer,
                "a schema must be a mapping",
                "boolean schemas and other shorthands are not supported",
            )
            return None
        if "$ref" in node:
            return self._ref(file, pointer, node)
        if "anyOf" in node and set(node) - ANNOTATIONS == {"anyOf"}:
            return self._nullable(file, pointer, node, hint)
        unknown = sorted(set(node) - SUPPORTED)
        for key in unknown:
            self._problem(
                file,
                join_pointer(pointer, key),
                f"unsupported keyword {key!r}",
                "see docs/contracts.md for the supported keywords",
            )
        if unknown:
            return None
        kind = self._kind(file, pointer, node)
        if kind is None:
            return None
        base, nullable = kind
        for key in sorted(set(node) & (SUPPORTED - GENERAL - ANNOTATIONS)):
            if base not in BY_TYPE or key not in BY_TYPE[base]:
                self._problem(
                    file,
                    join_pointer(pointer, key),
                    f"keyword {key!r} does not apply to type {base!r}",
                    "JSON Schema would silently ignore it; remove it or fix 'type'",
                )
                return None
        if base == "object":
            return self._object(file, pointer, node, hint, nullable), nullable
        out = self._value(file, pointer, node, base, nullable, hint)
        if out is None:
            return None
        if isinstance(node.get("description"), str):
            out["description"] = clean_text(node["description"])
        if "default" in node and not self._default(file, pointer, node, base):
            return None
        if "default" in node:
            out["default"] = node["default"]
        return out, nullable

    def _nullable(
        self, file: str, pointer: str, node: dict[str, Any], hint: str
    ) -> tuple[dict[str, Any], bool] | None:
        """``anyOf: [X, {type: null}]``, the one ``anyOf`` supported: X or null."""
        options = node["anyOf"]
        nulls = (
            [i for i, o in enumerate(options) if o == {"type": "null"}]
            if isinstance(options, list)
            else []
        )
        if len(options) != 2 or len(nulls) != 1:
            self._problem(
                file,
                join_pointer(pointer, "anyOf"),
                "anyOf is supported only as [<schema>, {type: 'null'}]",
                "unions are not supported; use one schema, optionally nullable",
            )
            return None
        index = 1 - nulls[0]
        compiled = self._schema(file, join_pointer(pointer, "anyOf", index), options[index], hint)
        if compiled is None:
            return None
        schema = dict(compiled[0])
        schema.pop(NOT_NULL, None)
        if isinstance(node.get("description"), str):
            schema["description"] = clean_text(node["description"])
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

    def _ref(
        self, file: str, pointer: str, node: dict[str, Any]
    ) -> tuple[dict[str, Any], bool] | None:
        ref_pointer = join_pointer(pointer, "$ref")
        for key in sorted(set(node) - {"$ref", "description", "title", "$comment"}):
            self._problem(
                file,
                join_pointer(pointer, key),
                f"keyword {key!r} beside $ref",
                "put it in the referenced schema instead",
            )
            return None
        try:
            target_file, target_pointer = resolve_ref(node["$ref"], file, set(self.files))
        except ValueError as exc:
            self._problem(
                file,
                ref_pointer,
                str(exc),
                "use a relative path inside the contract directory, "
                "e.g. common/money.yaml or common/defs.yaml#/$defs/Money",
            )
            return None
        data = self.files[target_file].data
        if data is None:
            return None  # the file's own parse problem is already reported
        try:
            target = get_pointer(data, target_pointer)
        except KeyError:
            self._problem(
                file,
                ref_pointer,
                f"$ref {node['$ref']!r} does not resolve: "
                f"{target_file} has nothing at {target_pointer or '/'}",
                "check the JSON pointer after '#'",
            )
            return None
        target_key = (target_file, target_pointer)
        if target_key in self._visiting:
            self._problem(file, ref_pointer, "recursive $ref is not supported", "break the cycle")
            return None
        tokens = split_pointer(target_pointer)
        stem = tokens[-1] if tokens else target_file.rsplit("/", 1)[-1].split(".", 1)[0]
        self._visiting.add(target_key)
        try:
            result = self._schema(target_file, target_pointer, target, pascal_case(stem))
        finally:
            self._visiting.discard(target_key)
        if result is not None and isinstance(node.get("description"), str):
            result = ({**result[0], "description": clean_text(node["description"])}, result[1])
        return result

    def _kind(self, file: str, pointer: str, node: dict[str, Any]) -> tuple[str, bool] | None:
        """The one non-null type ``node`` describes and whether null is also allowed."""
        declared = node.get("type")
        types = declared if isinstance(declared, list) else [declared]
        if declared is not None and (
            not types
            or len(set(types)) != len(types)
            or any(t not in BY_TYPE for t in types)
            or len([t for t in types if t != "null"]) > 1
        ):
            self._problem(
                file,
                join_pointer(pointer, "type"),
                f"unsupported type {declared!r}",
                "use one JSON type, optionally with 'null': [string, 'null']",
            )
            return None
        nullable = "null" in types
        base = next((t for t in types if t not in ("null", None)), "null" if nullable else None)
        if "enum" in node or "const" in node:
            values = node["enum"] if "enum" in node else [node["const"]]
            where = join_pointer(pointer, "enum" if "enum" in node else "const")
            if (
                not isinstance(values, list)
                or not values
                or any(v is not None and not isinstance(v, str) for v in values)
                or len(set(values)) != len(values)
                or ("enum" in node and "const" in node)
                or base not in (None, "string", "null")
            ):
                self._problem(
                    file,
                    where,
                    "enum and const must list distinct strings (or null)",
                    "number and boolean enums are not supported; use strings",
                )
                return None
            if declared is not None and not nullable and None in values:
                self._problem(
                    file,
                    where,
                    "null in enum but 'type' does not allow null",
                    "add 'null' to 'type'",
                )
                return None
            return "enum", nullable or (declared is None and None in values)
        if base is None:
            self._problem(
                file, pointer, "schema has no 'type'", "say what the value is, e.g. 'type: string'"
            )
            return None
        return base, nullable

    def _value(
        self, file: str, pointer: str, node: dict[str, Any], base: str, nullable: bool, hint: str
    ) -> dict[str, Any] | None:
        if base == "enum":
            values = node["enum"] if "enum" in node else [node["const"]]
            out: dict[str, Any] = {"enum": [*(v for v in values if v is not None)]}
            if nullable:
                out["enum"].append(None)
            return out
        if base == "array":
            return self._array(file, pointer, node, nullable, hint)
        ok = all(
            self._bound(file, pointer, node, key, base)
            for key in (
                "minimum",
                "maximum",
                "exclusiveMinimum",
                "exclusiveMaximum",
                "minLength",
                "maxLength",
            )
            if key in node
        )
        if not ok:
            return None
        if "format" in node:
            fmt = node["format"]
            if fmt not in FORMATS or set(node) & {"minLength", "maxLength", "pattern"}:
                self._problem(
                    file,
                    join_pointer(pointer, "format"),
                    f"unsupported format {fmt!r} (or format with length/pattern)",
                    f"supported formats: {', '.join(sorted(FORMATS))}",
                )
                return None
            self.formats.add(FORMATS[fmt])
            ref: dict[str, Any] = {"$ref": f"#/$defs/{FORMATS[fmt]}"}
            return {"anyOf": [ref, {"type": "null"}]} if nullable else ref
        if "pattern" in node and not self._pattern(file, pointer, node["pattern"]):
            return None
        out = {"type": [base, "null"] if nullable and base != "null" else base}
        out.update({k: node[k] for k in sorted(BY_TYPE[base] & set(node))})
        return out

    def _bound(self, file: str, pointer: str, node: dict[str, Any], key: str, base: str) -> bool:
        value = node[key]
        if key in ("minLength", "maxLength"):
            valid = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        else:
            valid = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not valid:
            self._problem(
                file,
                join_pointer(pointer, key),
                f"{key} {value!r} is not valid",
                "lengths are integers >= 0, bounds are numbers",
            )
        return valid

    def _pattern(self, file: str, pointer: str, pattern: Any) -> bool:
        try:
            if not isinstance(pattern, str):
                raise TypeError("not a string")
            re.compile(pattern)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                TypeAdapter(Annotated[str, Field(pattern=pattern)])
        except Exception as exc:  # any failure to compile is the contract's problem
            self._problem(
                file,
                join_pointer(pointer, "pattern"),
                f"pattern cannot be compiled: {type(exc).__name__}",
                "use a regular expression without look-around or back-references",
            )
            return False
        return True

    def _array(
        self, file: str, pointer: str, node: dict[str, Any], nullable: bool, hint: str
    ) -> dict[str, Any] | None:
        if "items" not in node:
            self._problem(
                file,
                pointer,
                "array without 'items'",
                "say what the items are, e.g. 'items: {type: string}'",
            )
            return None
        ok = all(
            self._length(file, pointer, node, key)
            for key in ("minItems", "maxItems")
            if key in node
        )
        items = self._schema(file, join_pointer(pointer, "items"), node["items"], hint + "Item")
        if items is None or not ok:
            return None
        out: dict[str, Any] = {
            "type": ["array", "null"] if nullable else "array",
            "items": items[0],
        }
        out.update({k: node[k] for k in ("minItems", "maxItems") if k in node})
        return out

    def _length(self, file: str, pointer: str, node: dict[str, Any], key: str) -> bool:
        value = node[key]
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return True
        self._problem(
            file, join_pointer(pointer, key), f"{key} {value!r} is not valid", "use an integer >= 0"
        )
        return False

    def _default(self, file: str, pointer: str, node: dict[str, Any], base: str) -> bool:
        where = join_pointer(pointer, "default")
        if "format" in node or base == "array":
            self._problem(
                file,
                where,
                "defaults are supported on plain scalars only (no arrays, objects or formats)",
                "leave the default out: an optional field is then simply absent",
            )
            return False
        try:
            jsonschema.validate(
                node["default"],
                inline(self.tree.root(file, pointer, node)),
                cls=jsonschema.Draft202012Validator,
            )
        except jsonschema.ValidationError as exc:
            self._problem(
                file,
                where,
                f"default does not validate: {exc.message}",
                "a default must itself satisfy the schema",
            )
            return False
        return True

    def _object(
        self, file: str, pointer: str, node: dict[str, Any], hint: str, nullable: bool
    ) -> dict[str, Any]:
        key = (file, pointer)
        ref: dict[str, Any] = {"$ref": f"#/$defs/{self._class_of.get(key, hint)}"}
        wrapped = {"anyOf": [ref, {"type": "null"}]} if nullable else ref
        if key in self._class_of:
            return wrapped
        name = node.get("title", hint)
        if not isinstance(name, str) or not CLASS_NAME.match(name) or len(name) > 100:
            self._problem(
                file,
                join_pointer(pointer, "title"),
                f"title {name!r} of an object is not a class name",
                "use a PascalCase identifier",
            )
            return wrapped
        if "default" in node:
            self._problem(
                file,
                join_pointer(pointer, "default"),
                "defaults are not supported on objects",
                "give the object's properties defaults instead",
            )
        ref["$ref"] = f"#/$defs/{name}"
        self._class_of[key] = name
        if not self.reserve(name, file, pointer):
            return wrapped
        props = node.get("properties", {})
        required = node.get("required", [])
        extra = node.get("additionalProperties", True)
        if not isinstance(props, dict):
            self._problem(
                file,
                join_pointer(pointer, "properties"),
                "properties must be a mapping",
                "map each property name to its schema",
            )
            props = {}
        if not isinstance(required, list) or any(r not in props for r in required):
            self._problem(
                file,
                join_pointer(pointer, "required"),
                "required must list names declared in properties",
                "declare every required property",
            )
            required = []
        if not isinstance(extra, bool):
            self._problem(
                file,
                join_pointer(pointer, "additionalProperties"),
                "additionalProperties must be true or false",
                "schemas for extra properties are not supported",
            )
        out_props: dict[str, Any] = {}
        for prop, sub in props.items():
            prop_pointer = join_pointer(pointer, "properties", prop)
            if not prop or len(prop) > 100 or _CONTROL.search(prop) or not prop.isprintable():
                self._problem(
                    file,
                    prop_pointer,
                    f"property name {prop!r} is not supported",
                    "use printable names of at most 100 characters",
                )
                continue
            compiled = self._schema(file, prop_pointer, sub, name + pascal_case(prop))
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
        description = node.get("description")
        if isinstance(description, str) and clean_text(description):
            out["description"] = clean_text(description)
        self.defs[name] = out
        return wrapped
