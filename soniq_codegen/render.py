"""Rendering a checked contract set into the files of an installable stub package."""

from __future__ import annotations

import ast
import json
import re
import warnings
from importlib import resources
from typing import Any

from datamodel_code_generator import PythonVersion, generate
from datamodel_code_generator.enums import DataModelType, InputFileType, StrictTypes
from datamodel_code_generator.format import Formatter
from datamodel_code_generator.parser import LiteralType

from soniq_codegen.contract import TaskContract
from soniq_codegen.contract_set import ContractSet
from soniq_codegen.fingerprint import canonical_json
from soniq_codegen.lower import NOT_NULL, OPTIONAL
from soniq_codegen.source import (
    HEADER,
    clean_text,
    docstring,
    export_sort_key,
    finish_module,
    import_block,
    py_str,
    verify_module,
)

DIST_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*([._-][A-Za-z0-9]+)*$")
VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*((a|b|rc)[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?$")
PYDANTIC_REQUIREMENT = "pydantic>=2.11,<3"
#: Declared only by a package with a model that checks rules as data (``_rules.py``): 4.18
#: brought the referencing-based validators and ``validators.extend`` as used there.
JSONSCHEMA_REQUIREMENT = "jsonschema>=4.18,<5"
#: Declared only by a package whose contracts use ``format: email`` (pydantic's email check
#: needs it; 2.0 is the release pydantic supports).
EMAIL_REQUIREMENT = "email-validator>=2.0"
_MODEL_IMPORTS = frozenset({"__future__", "typing", "pydantic", "._types", "._base", "._rules"})
_MODEL_CALLS = frozenset({"Field", "ConfigDict"})


def import_name(dist_name: str) -> str:
    """The Python package name of a distribution: lowercase, ``-`` and ``.`` become ``_``."""
    return re.sub(r"[-.]", "_", dist_name).lower()


def package_file(name: str) -> str:
    """A module every generated package ships unchanged (``soniq_codegen/package_files``).

    They are real files so that ruff and mypy check them; each already starts with the header
    :func:`~soniq_codegen.source.finish_module` gives generated modules.
    """
    files = resources.files("soniq_codegen").joinpath("package_files")
    return files.joinpath(name).read_bytes().decode("utf-8")


def runtime_requirement() -> str:
    """The runtime a generated package needs, e.g. ``soniq-jobs>=0.2.0``: read from the
    ``_runtime.py`` it ships, which checks the same requirement at import."""
    values: dict[str, str] = {}
    for node in ast.parse(package_file("_runtime.py")).body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            values[node.targets[0].id] = node.value.value
    return f"{values['DISTRIBUTION']}>={values['REQUIRED_VERSION']}"


def render_package(contracts: ContractSet, dist_name: str, version: str) -> dict[str, bytes]:
    """Every file of the generated project, keyed by POSIX path relative to the output dir."""
    pkg = import_name(dist_name)
    requirements = [runtime_requirement(), PYDANTIC_REQUIREMENT]
    if contracts.rules:
        requirements.append(JSONSCHEMA_REQUIREMENT)
    if "Email" in contracts.formats:
        requirements.append(EMAIL_REQUIREMENT)
    files: dict[str, str] = {
        "pyproject.toml": _pyproject(dist_name, pkg, version, requirements),
        "README.md": _readme(dist_name, pkg, contracts.tasks),
        f"{pkg}/__init__.py": "",
        f"{pkg}/_base.py": package_file("_base.py"),
        f"{pkg}/_runtime.py": package_file("_runtime.py"),
        f"{pkg}/_types.py": package_file("_types.py"),
        f"{pkg}/models.py": _models(contracts, pkg),
        f"{pkg}/py.typed": "",
        f"{pkg}/soniq.lock.json": _lock(contracts.tasks),
    }
    if contracts.rules:
        files[f"{pkg}/_rules.py"] = package_file("_rules.py")
    models = verify_module(files[f"{pkg}/models.py"], _MODEL_IMPORTS, _MODEL_CALLS)
    classes = [node.name for node in models.body if isinstance(node, ast.ClassDef)]
    files[f"{pkg}/tasks.py"] = _tasks(contracts.tasks)
    files[f"{pkg}/__init__.py"] = _init(dist_name, contracts.tasks, classes)
    verify_module(
        files[f"{pkg}/tasks.py"],
        frozenset({"__future__", "typing", "soniq", ".models"}),
        frozenset({"task_ref"}),
    )
    verify_module(
        files[f"{pkg}/__init__.py"], frozenset({"._runtime", ".models", ".tasks"}), frozenset()
    )
    out = {path: text.encode("utf-8") for path, text in files.items()}
    for path, source in contracts.files.items():
        out[f"{pkg}/contracts/{path}"] = source.raw
    return dict(sorted(out.items()))


def _models(contracts: ContractSet, pkg: str) -> str:
    defs: dict[str, Any] = {name: contracts.defs[name] for name in sorted(contracts.defs)}
    for name in sorted(contracts.formats):
        defs[name] = {
            "type": "string",
            "x-python-import": {"module": f"{pkg}._types", "name": name},
        }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = generate(
            {"$defs": defs},
            input_file_type=InputFileType.JsonSchema,
            output_model_type=DataModelType.PydanticV2BaseModel,
            target_python_version=PythonVersion.PY_310,
            base_class=f"{pkg}._base.ContractModel",
            allow_remote_refs=False,
            disable_timestamp=True,
            custom_file_header=HEADER.rstrip("\n"),
            formatters=[Formatter.BUILTIN],
            builtin_format_line_length=88,
            use_schema_description=True,
            use_field_description=True,
            field_constraints=True,
            use_annotated=True,
            enum_field_as_literal=LiteralType.All,
            use_double_quotes=True,
            allow_population_by_field_name=True,
            strict_nullable=True,
            skip_root_model=True,
            collapse_root_models=True,
            use_standard_collections=True,
            use_union_operator=True,
            field_extra_keys={NOT_NULL, OPTIONAL},
            strict_types=[StrictTypes.str, StrictTypes.int, StrictTypes.float, StrictTypes.bool],
        )
    if not isinstance(text, str):
        raise TypeError("datamodel-code-generator returned no single module")
    # Relative imports keep the package relocatable and put them in isort's last section.
    text = text.replace(f"from {pkg}._types import", "from ._types import")
    text = text.replace(f"from {pkg}._base import", "from ._base import")
    return _fix_header(_rewrite_classes(text, contracts.rules))


def _rewrite_classes(text: str, rules: dict[str, Any]) -> str:
    """Root models become aliases; classes with rules become ``RuledModel``s carrying their
    schema as a JSON literal.

    The generator wraps constrained array items in root models (``class Tag(RootModel[str]):
    root: Annotated[...]``); as plain aliases (``Tag = Annotated[...]``) the items validate
    the same but reach handlers as plain values (``list[str]``, not ``list[Tag]``).
    """
    lines = text.split("\n")
    for node in reversed(ast.parse(text).body):
        if _is_model_rebuild(node) and node.end_lineno is not None:
            # A class that refers to itself: pydantic completes it at first use anyway.
            del lines[node.lineno - 1 : node.end_lineno]
        if not isinstance(node, ast.ClassDef) or node.end_lineno is None:
            continue
        if (
            len(node.bases) == 1
            and isinstance(node.bases[0], ast.Subscript)
            and isinstance(node.bases[0].value, ast.Name)
            and node.bases[0].value.id == "RootModel"
            and len(node.body) == 1
            and isinstance(node.body[0], ast.AnnAssign)
            and node.body[0].value is None
        ):
            annotation = ast.get_source_segment(text, node.body[0].annotation)
            if annotation is not None:
                lines[node.lineno - 1 : node.end_lineno] = [f"{node.name} = {annotation}"]
        elif node.name in rules:
            literal = py_str(canonical_json(rules[node.name]))
            lines.insert(node.end_lineno, f"    __contract__: ClassVar[str] = {literal}")
            lines[node.lineno - 1] = lines[node.lineno - 1].replace(
                "(ContractModel)", "(RuledModel)"
            )
    text = "\n".join(lines)
    if rules:
        future = "from __future__ import annotations\n"
        imports = "from typing import ClassVar\nfrom ._rules import RuledModel\n"
        text = text.replace(future, future + imports, 1)
    return text


def _is_model_rebuild(node: ast.stmt) -> bool:
    """``Name.model_rebuild()``, which the generator writes after self-referring classes."""
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Attribute)
        and node.value.func.attr == "model_rebuild"
    )


def _fix_header(text: str) -> str:
    """The fixed header, a docstring and an isort-ordered import block, then the classes."""
    tree = ast.parse(text)
    imports = [node for node in tree.body if isinstance(node, ast.ImportFrom)]
    lines = text.split("\n")
    body = "\n".join(lines[max(node.end_lineno or 0 for node in imports) :]).strip("\n")
    declarations = [node for node in tree.body if not isinstance(node, ast.ImportFrom)]
    used = {n.id for d in declarations for n in ast.walk(d) if isinstance(n, ast.Name)}
    groups: tuple[dict[str, list[str]], ...] = ({}, {}, {})  # stdlib, third party, local
    for node in imports:
        module = "." * node.level + (node.module or "")
        names = [a.name for a in node.names if a.name in used]
        if module != "__future__" and names:
            group = groups[2 if node.level else 1 if module == "pydantic" else 0]
            group.setdefault(module, []).extend(names)
    sections = [
        "".join(import_block(m, sorted(set(g[m]), key=export_sort_key)) for m in sorted(g))
        for g in groups
        if g
    ]
    return finish_module(
        '"""Args models of the task contracts."""\n\n'
        + "from __future__ import annotations\n\n"
        + "\n".join(sections)
        + ("\n\n" if body.startswith("class ") else "\n")
        + body
        + "\n"
    )


def _tasks(tasks: list[TaskContract]) -> str:
    models = sorted({t.class_name for t in tasks})
    parts = [
        '"""Typed task references: one per task contract."""\n\n',
        "from __future__ import annotations\n\n",
        "from typing import Final\n\n",
        "from soniq import TaskRef, task_ref\n\n",
        import_block(".models", models),
    ]
    for task in tasks:
        queue = "None" if task.default_queue is None else py_str(task.default_queue)
        parts.append(
            f"\n{task.constant}: Final[TaskRef[{task.class_name}]] = task_ref(\n"
            f"    name={py_str(task.task)},\n"
            f"    args_model={task.class_name},\n"
            f"    default_queue={queue},\n"
            f"    version={task.version},\n"
            f"    fingerprint={py_str(task.fingerprint)},\n"
            ")\n"
        )
        summary = f"``{task.task}`` v{task.version}"
        if task.description:
            summary += ": " + clean_text(task.description)
        parts.append(docstring(summary))
    return finish_module("".join(parts))


def _init(dist_name: str, tasks: list[TaskContract], classes: list[str]) -> str:
    constants = [t.constant for t in tasks]
    exported = sorted([*constants, *classes], key=export_sort_key)
    return finish_module(
        "".join(
            [
                docstring(f"Task contracts of {dist_name}: typed task references and args models."),
                "\n",
                "# First: a clear ImportError when the installed soniq cannot run this package.\n",
                "from ._runtime import RUNTIME_REQUIREMENT as RUNTIME_REQUIREMENT\n",
                import_block(".models", sorted(classes, key=export_sort_key)),
                import_block(".tasks", sorted(constants, key=export_sort_key)),
                "\n__all__ = [\n",
                "".join(f"    {py_str(name)},\n" for name in exported),
                "]\n",
            ]
        )
    )


def _lock(tasks: list[TaskContract]) -> str:
    lock = {
        "generated_by": "soniq-codegen; do not edit",
        "lock_version": 1,
        "tasks": {t.task: {"fingerprint": t.fingerprint, "version": t.version} for t in tasks},
    }
    return json.dumps(lock, indent=2, sort_keys=True) + "\n"


def _pyproject(dist_name: str, pkg: str, version: str, requirements: list[str]) -> str:
    return (
        HEADER + "\n[build-system]\n"
        'requires = ["setuptools>=61"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        "[project]\n"
        f"name = {py_str(dist_name)}\n"
        f"version = {py_str(version)}\n"
        'description = "Typed task references and args models generated from task contracts."\n'
        'readme = "README.md"\n'
        'requires-python = ">=3.10"\n'
        f"dependencies = [{', '.join(py_str(r) for r in requirements)}]\n\n"
        "# The runtime finds every installed contract package here (enqueue by bare name).\n"
        '[project.entry-points."soniq.contracts"]\n'
        f"{pkg} = {py_str(pkg + '.tasks')}\n\n"
        "[tool.setuptools.packages.find]\n"
        f"include = [{py_str(pkg)}, {py_str(pkg + '.*')}]\n\n"
        "[tool.setuptools.package-data]\n"
        '"*" = ["py.typed", "*.json", "*.yaml", "*.yml"]\n'
    )


def _markdown_cell(text: str) -> str:
    text = " ".join(text.split())
    return "".join(f"&#{ord(c)};" if c in "|<>&`*_[]\\" else c for c in text)


def _readme(dist_name: str, pkg: str, tasks: list[TaskContract]) -> str:
    rows = "".join(
        f"| `{t.constant}` | `{t.task}` | {t.version} | {t.default_queue or ''} "
        f"| `{t.class_name}` | {_markdown_cell(t.description or '')} |\n"
        for t in tasks
    )
    example = tasks[0]
    return (
        "<!-- Generated by soniq-codegen from task contracts. DO NOT EDIT. -->\n\n"
        f"# {dist_name}\n\n"
        "Typed task references and pydantic args models for these Soniq tasks, generated\n"
        "from their contracts (shipped in `contracts/`, fingerprints in `soniq.lock.json`).\n\n"
        "```python\n"
        f"from {pkg} import {example.constant}, {example.class_name}\n\n"
        f"@app.job({example.constant})\n"
        "async def handle(**args): ...\n"
        "```\n\n"
        "| Constant | Task | Version | Default queue | Args model | Description |\n"
        "| --- | --- | --- | --- | --- | --- |\n" + rows
    )
