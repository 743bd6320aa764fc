"""Breaking-change rules: each with a minimal old/new pair, checked in both directions.

Every pair is compared old -> new and new -> old; each mode must flag exactly the rules whose
directions it covers. The directions are not taken on trust from the rule table: for each
direction a rule breaks, the case carries a witness, args the writer's schema accepts and the
reader's rejects, checked with ``jsonschema``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from codegen_helpers import REPO, write_contracts

from soniq_codegen import ContractSet, check_contracts
from soniq_codegen.baseline import Baseline as BaselineType
from soniq_codegen.baseline import LockEntry, contracts_baseline
from soniq_codegen.compatibility import MODES, RULES, Report, compare
from soniq_codegen.fingerprint import inline
from soniq_codegen.tree import SchemaTree

BWD = ("backward",)
FWD = ("forward",)
BOTH = ("backward", "forward")
STR = {"type": "string"}
INT = {"type": "integer"}


def obj(props: dict[str, Any], required: tuple[str, ...] = (), closed: bool = True) -> dict:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    if closed:
        out["additionalProperties"] = False
    return out


def p(schema: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """Args with the one property ``p``."""
    return obj({"p": schema}, **kw)


def arr(**kw: Any) -> dict[str, Any]:
    return {"type": "array", "items": STR, **kw}


@dataclass(frozen=True)
class Case:
    rule: str
    old: dict[str, Any]
    new: dict[str, Any]
    breaks: tuple[str, ...]
    pointer: str
    reverse: str | None
    #: Args valid under ``old`` and rejected by ``new`` (the change breaks backward).
    old_only: dict[str, Any] | None = None
    #: Args valid under ``new`` and rejected by ``old`` (the change breaks forward).
    new_only: dict[str, Any] | None = None


# fmt: off
CASES = [
    Case("property-added-closed", obj({"a": STR}), obj({"a": STR, "b": STR}), FWD,
         "/properties/b", "property-removed-closed", new_only={"b": "x"}),
    Case("property-added-open", obj({"a": STR}, closed=False),
         obj({"a": STR, "b": STR}, closed=False), BWD, "/properties/b", "property-removed-open",
         old_only={"b": 1}),
    Case("required-added", obj({"a": STR}, closed=False),
         obj({"a": STR, "b": STR}, ("b",), closed=False), BWD, "/properties/b", "required-removed",
         old_only={}),
    Case("required-added-with-default", obj({"a": STR}, closed=False),
         obj({"a": STR, "b": {**INT, "default": 1}}, ("b",), closed=False), BWD, "/properties/b",
         "required-removed", old_only={}),
    Case("optional-made-required", p(STR), p(STR, required=("p",)), BWD, "/properties/p",
         "required-made-optional", old_only={}),
    Case("additional-properties-closed", obj({"a": STR}, closed=False), obj({"a": STR}), BWD,
         "/additionalProperties", "additional-properties-opened", old_only={"z": 1}),
    Case("type-changed", p(STR), p(INT), BOTH, "/properties/p/type", "type-changed",
         old_only={"p": "x"}, new_only={"p": 1}),
    Case("type-widened", p(INT), p({"type": "number"}), FWD, "/properties/p/type", "type-narrowed",
         new_only={"p": 1.5}),
    Case("null-added", p(STR), p({"type": ["string", "null"]}), FWD, "/properties/p",
         "null-removed", new_only={"p": None}),
    Case("enum-value-added", p({"enum": ["a"]}), p({"enum": ["a", "b"]}), FWD,
         "/properties/p/enum", "enum-value-removed", new_only={"p": "b"}),
    Case("const-changed", p({"const": "a"}), p({"const": "b"}), BOTH, "/properties/p/const",
         "const-changed", old_only={"p": "a"}, new_only={"p": "b"}),
    Case("enum-constraint-added", p(STR), p({"type": "string", "enum": ["a"]}), BWD,
         "/properties/p/enum", "enum-constraint-removed", old_only={"p": "z"}),
    Case("min-length-tightened", p({**STR, "minLength": 1}), p({**STR, "minLength": 2}), BWD,
         "/properties/p/minLength", "min-length-loosened", old_only={"p": "a"}),
    Case("max-length-tightened", p(STR), p({**STR, "maxLength": 3}), BWD,
         "/properties/p/maxLength", "max-length-loosened", old_only={"p": "abcd"}),
    Case("pattern-added", p(STR), p({**STR, "pattern": "^a"}), BWD, "/properties/p/pattern",
         "pattern-removed", old_only={"p": "b"}),
    Case("pattern-changed", p({**STR, "pattern": "^a"}), p({**STR, "pattern": "^b"}), BOTH,
         "/properties/p/pattern", "pattern-changed", old_only={"p": "a"}, new_only={"p": "b"}),
    Case("format-added", p(STR), p({**STR, "format": "uuid"}), BWD, "/properties/p/format",
         "format-removed", old_only={"p": "x"}),
    Case("format-changed", p({**STR, "format": "uuid"}), p({**STR, "format": "email"}), BOTH,
         "/properties/p/format", "format-changed",
         old_only={"p": "6f1c1c1e-3b5d-4b8e-9a44-0e8f6c1d2b3a"}, new_only={"p": "a@b"}),
    Case("minimum-tightened", p({**INT, "minimum": 0}), p({**INT, "minimum": 1}), BWD,
         "/properties/p/minimum", "minimum-loosened", old_only={"p": 0}),
    Case("maximum-tightened", p({"type": "number", "maximum": 10}),
         p({"type": "number", "exclusiveMaximum": 10}), BWD, "/properties/p/exclusiveMaximum",
         "maximum-loosened", old_only={"p": 10}),
    Case("min-items-tightened", p(arr()), p(arr(minItems=1)), BWD, "/properties/p/minItems",
         "min-items-loosened", old_only={"p": []}),
    Case("max-items-tightened", p(arr(maxItems=3)), p(arr(maxItems=2)), BWD,
         "/properties/p/maxItems", "max-items-loosened", old_only={"p": ["a", "b", "c"]}),
    # Array items and nested objects are compared like the top level, at their own pointer.
    Case("type-changed", p(arr()), p({"type": "array", "items": INT}), BOTH,
         "/properties/p/items/type", "type-changed", old_only={"p": ["a"]},
         new_only={"p": [1]}),
    Case("property-added-closed", p(obj({"x": STR})), p(obj({"x": STR, "y": STR})), FWD,
         "/properties/p/properties/y", "property-removed-closed", new_only={"p": {"y": "v"}}),
    Case("null-added", p(arr()), p({"type": "array", "items": {"type": ["string", "null"]}}),
         FWD, "/properties/p/items", "null-removed", new_only={"p": [None]}),
    Case("default-changed", p({**INT, "default": 1}), p({**INT, "default": 2}), BOTH,
         "/properties/p/default", "default-changed"),
    # The keywords checked as data.
    Case("min-properties-tightened", p({"type": "object"}),
         p({"type": "object", "minProperties": 1}), BWD, "/properties/p/minProperties",
         "min-properties-loosened", old_only={"p": {}}),
    Case("max-properties-tightened", p({"type": "object", "maxProperties": 2}),
         p({"type": "object", "maxProperties": 1}), BWD, "/properties/p/maxProperties",
         "max-properties-loosened", old_only={"p": {"a": 1, "b": 2}}),
    Case("multiple-of-added", p(INT), p({**INT, "multipleOf": 5}), BWD,
         "/properties/p/multipleOf", "multiple-of-removed", old_only={"p": 3}),
    Case("multiple-of-changed", p({**INT, "multipleOf": 2}), p({**INT, "multipleOf": 3}), BOTH,
         "/properties/p/multipleOf", "multiple-of-changed", old_only={"p": 2}, new_only={"p": 3}),
    Case("unique-items-added", p(arr()), p(arr(uniqueItems=True)), BWD,
         "/properties/p/uniqueItems", "unique-items-removed", old_only={"p": ["a", "a"]}),
    Case("dependent-required-added", obj({"a": STR, "b": STR}),
         {**obj({"a": STR, "b": STR}), "dependentRequired": {"a": ["b"]}}, BWD,
         "/dependentRequired", "dependent-required-removed", old_only={"a": "x"}),
    Case("branch-added", p({"anyOf": [STR, INT]}), p({"anyOf": [STR, INT, {"type": "boolean"}]}),
         FWD, "/properties/p/anyOf/2", "branch-removed", new_only={"p": True}),
    Case("branch-added", p({"oneOf": [obj({"k": {"const": "a"}}, ("k",))]}),
         p({"oneOf": [obj({"k": {"const": "a"}}, ("k",)), obj({"k": {"const": "b"}}, ("k",))]}),
         FWD, "/properties/p/oneOf/1", "branch-removed", new_only={"p": {"k": "b"}}),
    # A branch changed in place is compared like any schema, at its own pointer.
    Case("enum-value-added", p({"oneOf": [INT, {"enum": ["a"]}]}),
         p({"oneOf": [INT, {"enum": ["a", "b"]}]}), FWD, "/properties/p/oneOf/1/enum",
         "enum-value-removed", new_only={"p": "b"}),
    Case("keyword-changed", p({**STR, "not": {"const": "a"}}), p({**STR, "not": {"const": "b"}}),
         BOTH, "/properties/p/not", "keyword-changed", old_only={"p": "b"}, new_only={"p": "a"}),
]
# fmt: on
TASK_RULES = {"task-removed", "task-renamed", "version-decreased", "fingerprint-changed"}
TASK_RULES |= {"default-queue-changed"}


def make_set(root: Path, args: dict[str, Any], **envelope: Any) -> ContractSet:
    task = {"task": "shop.order", **envelope, "args": args}
    return check_contracts(write_contracts(root, {"order.yaml": task}))


def baseline(contracts: ContractSet) -> BaselineType:
    return contracts_baseline(contracts, "old")


def rules(report: Report) -> set[str]:
    return {f.rule for f in report.findings}


def accepts(args: dict[str, Any], value: dict[str, Any]) -> bool:
    schema = inline(SchemaTree({}).root("order.yaml", "/args", args))
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    return validator.is_valid(value)


def check_pair(tmp_path: Path, old: dict[str, Any], new: dict[str, Any], name: str) -> dict:
    """The rules each mode flags for ``old -> new``."""
    before = make_set(tmp_path / f"{name}-old", old)
    after = make_set(tmp_path / f"{name}-new", new)
    return {mode: compare(baseline(before), after, mode) for mode in MODES}


@pytest.mark.parametrize("case", CASES, ids=[f"{c.rule}:{c.pointer}" for c in CASES])
def test_rule_in_both_directions(case: Case, tmp_path: Path) -> None:
    assert case.rule in RULES and case.reverse in RULES
    forward = check_pair(tmp_path, case.old, case.new, "a")
    backward = check_pair(tmp_path, case.new, case.old, "b")
    reverse_breaks = tuple({"backward": "forward", "forward": "backward"}[d] for d in case.breaks)
    assert set(RULES[case.rule].breaks) == set(case.breaks)
    assert set(RULES[case.reverse].breaks) == set(reverse_breaks)
    for reports, rule, breaks in (
        (forward, case.rule, case.breaks),
        (backward, case.reverse, reverse_breaks),
    ):
        assert rules(reports["full"]) == {rule}, reports["full"].findings
        for mode in ("backward", "forward"):
            expected = {rule} if mode in breaks else set()
            assert rules(reports[mode]) == expected, (mode, reports[mode].findings)
        failing = bool(reports["full"].failing)
        assert failing == (RULES[rule].severity == "error")
    (finding,) = forward["full"].findings
    assert finding.pointer == case.pointer
    assert finding.task == "shop.order" and finding.via is None
    for direction, witness, writer, reader in (
        ("backward", case.old_only, case.old, case.new),
        ("forward", case.new_only, case.new, case.old),
    ):
        if direction in case.breaks and RULES[case.rule].severity == "error":
            assert witness is not None, f"{case.rule} needs a {direction} witness"
        if witness is not None:
            assert accepts(writer, witness) and not accepts(reader, witness), (direction, witness)


def test_every_rule_is_exercised() -> None:
    covered = {c.rule for c in CASES} | {c.reverse for c in CASES if c.reverse} | TASK_RULES
    assert covered == set(RULES)


def test_every_rule_is_in_the_docs_table() -> None:
    text = (REPO / "docs" / "breaking-changes.md").read_text("utf-8")
    rows = re.findall(
        r"^\| `([a-z-]+)` \| (.*) \| (yes|no) \| (yes|no) \| (error|warning) \|$", text, re.M
    )
    table = {rule: (back == "yes", fwd == "yes", severity) for rule, _, back, fwd, severity in rows}
    assert list(table) == list(RULES)
    for rule, spec in RULES.items():
        assert table[rule] == ("backward" in spec.breaks, "forward" in spec.breaks, spec.severity)


def test_exclusive_and_inclusive_integer_bounds_compare_by_meaning(tmp_path: Path) -> None:
    old = p({**INT, "exclusiveMinimum": 0, "maximum": 9})
    new = p({**INT, "minimum": 1, "exclusiveMaximum": 10})
    assert rules(check_pair(tmp_path, old, new, "x")["full"]) == set()
    number = {"type": "number"}
    loosened = check_pair(
        tmp_path, p({**number, "exclusiveMinimum": 0}), p({**number, "minimum": 0}), "y"
    )
    assert rules(loosened["full"]) == {"minimum-loosened"}


def test_enum_against_plain_string_is_exact(tmp_path: Path) -> None:
    short = p({**STR, "maxLength": 2})
    enum = p({"enum": ["ab", "abc"]})
    to_enum = check_pair(tmp_path, short, enum, "a")["full"]
    assert rules(to_enum) == {"enum-constraint-added", "enum-value-added"}
    assert any("'abc'" in f.why for f in to_enum.findings if f.rule == "enum-value-added")
    from_enum = check_pair(tmp_path, enum, short, "b")["full"]
    assert rules(from_enum) == {"enum-constraint-removed", "enum-value-removed"}
    fits = check_pair(tmp_path, short, p({"enum": ["ab"]}), "c")["full"]
    assert rules(fits) == {"enum-constraint-added"}


def test_equivalent_spellings_and_refactorings_are_not_changes(tmp_path: Path) -> None:
    old_files = {
        "order.yaml": {
            "task": "shop.order",
            "args": obj(
                {
                    "a": {"type": ["string", "null"], "maxLength": 3},
                    "b": {"const": "x"},
                    "c": {"enum": ["x", None]},
                    "d": {"$ref": "common/money.yaml"},
                    "e": {**STR, "minLength": 0},
                }
            ),
        },
        "common/money.yaml": obj({"cents": INT}, ("cents",)),
    }
    new_files = {
        "order.yaml": {
            "task": "shop.order",
            "description": "Reworded.",
            "$defs": {"Cash": {**obj({"cents": INT}, ("cents",)), "title": "Cash"}},
            "args": {
                **obj(
                    {
                        "a": {"anyOf": [{"type": "null"}, {**STR, "maxLength": 3}]},
                        "b": {"enum": ["x"]},
                        "c": {"type": ["string", "null"], "enum": ["x"]},
                        "d": {"$ref": "#/$defs/Cash", "description": "Inlined."},
                        "e": STR,
                    }
                ),
                "title": "OrderArguments",
                "$comment": "refactored",
            },
        },
    }
    old = check_contracts(write_contracts(tmp_path / "old", old_files))
    new = check_contracts(write_contracts(tmp_path / "new", new_files))
    report = compare(baseline(old), new)
    assert report.findings == [] and report.changed == ["shop.order"]


def test_description_and_title_changes_are_not_breaking(tmp_path: Path) -> None:
    old = make_set(tmp_path / "old", p({**STR, "description": "Old."}))
    new_args = {**p({**STR, "description": "New.", "title": "P", "examples": ["x"]}), "title": "X"}
    new = make_set(tmp_path / "new", {**new_args, "description": "Args."}, description="Doc.")
    report = compare(baseline(old), new)
    assert report.findings == [] and not report.failing
    assert old.tasks[0].fingerprint != new.tasks[0].fingerprint


SHARED = {
    "common/money.yaml": obj({"cents": INT, "currency": {"enum": ["EUR", "GBP"]}}, ("cents",)),
    "pay.yaml": {"task": "shop.pay", "args": obj({"amount": {"$ref": "common/money.yaml"}})},
    "refund.yaml": {
        "task": "shop.refund",
        "version": 3,
        "args": obj(
            {
                "lines": {"type": "array", "items": {"$ref": "common/money.yaml"}},
                "fee": {"anyOf": [{"$ref": "common/money.yaml"}, {"type": "null"}]},
            }
        ),
    },
    "note.yaml": {"task": "shop.note", "args": obj({"text": STR})},
}


def test_shared_definition_change_is_reported_on_every_task_using_it(tmp_path: Path) -> None:
    old = check_contracts(write_contracts(tmp_path / "old", SHARED))
    changed_money = obj({"cents": INT, "currency": {"enum": ["EUR"]}}, ("cents",))
    new_files = {**SHARED, "common/money.yaml": changed_money}
    new = check_contracts(write_contracts(tmp_path / "new", new_files))
    report = compare(baseline(old), new)
    found = {(f.task, f.pointer, f.rule, f.via) for f in report.findings}
    via = "common/money.yaml#/properties/currency"
    assert found == {
        ("shop.pay", "/properties/amount/properties/currency/enum", "enum-value-removed", via),
        (
            "shop.refund",
            "/properties/lines/items/properties/currency/enum",
            "enum-value-removed",
            via,
        ),
        (
            "shop.refund",
            "/properties/fee/anyOf/0/properties/currency/enum",
            "enum-value-removed",
            via,
        ),
    }
    assert report.changed == ["shop.pay", "shop.refund"]
    assert all("'GBP' removed" in f.why for f in report.findings)
    # Only the forward mode lets a removed value through.
    assert compare(baseline(old), new, "forward").findings == []


def test_version_bump_turns_findings_into_allowed(tmp_path: Path) -> None:
    old = make_set(tmp_path / "old", p(STR))
    new = make_set(tmp_path / "new", p(INT), version=2)
    report = compare(baseline(old), new)
    (finding,) = report.findings
    assert finding.rule == "type-changed" and finding.status == "allowed"
    assert finding.allowed_by == "version 1 -> 2"
    assert report.failing == [] and report.summary().startswith("ok:")
    assert "allowed (version 1 -> 2)" in finding.line()


def test_version_decreased_fails_even_without_other_changes(tmp_path: Path) -> None:
    old = make_set(tmp_path / "old", p(STR), version=2)
    new = make_set(tmp_path / "new", p(STR), version=1)
    for mode in MODES:
        assert [f.rule for f in compare(baseline(old), new, mode).failing] == ["version-decreased"]
    bumped_back = compare(baseline(old), make_set(tmp_path / "n2", p(INT), version=1))
    assert {f.rule: f.status for f in bumped_back.findings} == {
        "version-decreased": "failing",
        "type-changed": "failing",
    }


def test_task_removed_and_renamed(tmp_path: Path) -> None:
    two = {
        "a.yaml": {"task": "shop.a", "args": p(STR)},
        "b.yaml": {"task": "shop.b", "args": p(INT)},
    }
    old = check_contracts(write_contracts(tmp_path / "old", two))
    renamed = {"a.yaml": two["a.yaml"], "c.yaml": {"task": "shop.c", "args": p(INT)}}
    new = check_contracts(write_contracts(tmp_path / "new", renamed))
    full = compare(baseline(old), new)
    (finding,) = full.findings
    assert (finding.task, finding.rule, finding.status) == ("shop.b", "task-renamed", "failing")
    assert "'shop.c'" in finding.why and full.added == ["shop.c"] and full.removed == ["shop.b"]
    assert compare(baseline(old), new, "forward").findings == []
    gone = check_contracts(write_contracts(tmp_path / "gone", {"a.yaml": two["a.yaml"]}))
    removed = compare(baseline(old), gone, "backward")
    assert [(f.rule, f.status) for f in removed.findings] == [("task-removed", "failing")]
    # The task added back (old -> new reversed) is not a finding.
    assert compare(baseline(gone), old).findings == []
    acknowledged = compare(baseline(old), gone, allow_removed=frozenset({"shop.b"}))
    assert [f.status for f in acknowledged.findings] == ["allowed"] and not acknowledged.failing


def test_default_queue_change_is_a_warning_in_every_mode(tmp_path: Path) -> None:
    old = make_set(tmp_path / "old", p(STR), default_queue="billing")
    new = make_set(tmp_path / "new", p(STR), default_queue="invoices")
    for mode in MODES:
        report = compare(baseline(old), new, mode)
        assert [(f.rule, f.status) for f in report.findings] == [
            ("default-queue-changed", "warning")
        ]
        assert not report.failing
    assert "'billing' -> 'invoices'" in report.findings[0].why
    back = compare(baseline(new), make_set(tmp_path / "none", p(STR)))
    assert [f.rule for f in back.findings] == ["default-queue-changed"]


def test_lock_only_baseline_reports_fingerprint_changes(tmp_path: Path) -> None:
    old = make_set(tmp_path / "old", p(STR))
    lock = BaselineType(
        "soniq.lock.json",
        {t.task: LockEntry(t.version, t.fingerprint) for t in old.tasks},
    )
    same = compare(lock, make_set(tmp_path / "same", p(STR)))
    assert same.findings == [] and same.changed == []
    changed = compare(lock, make_set(tmp_path / "new", p({**STR, "description": "x"})))
    assert [(f.rule, f.status) for f in changed.findings] == [("fingerprint-changed", "failing")]
    assert "--against the package or contract directory" in changed.findings[0].why
    bumped = compare(lock, make_set(tmp_path / "bump", p(INT), version=2))
    assert [f.status for f in bumped.findings] == ["allowed"]
    gone = compare(lock, make_set(tmp_path / "other", p(STR), task="shop.other"))
    assert {f.rule for f in gone.findings} == {"task-renamed"}
