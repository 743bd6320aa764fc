"""Breaking-change rules: what a change to the contracts does to jobs already in flight.

Two directions, as schema registries name them:

* **backward**: new workers (the new contract) read jobs written under the old contract, which
  still wait in the table (scheduled, retried, dead-lettered and replayed);
* **forward**: old workers read jobs written under the new contract, during a rolling deploy.

A change breaks a direction when some args value the writer's contract accepts is rejected by
the reader's. ``full`` checks both. ``version`` is the contract's major version: a breaking
change must bump it, which turns its findings from failing into allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from soniq_codegen.baseline import Baseline
from soniq_codegen.contract import TaskContract
from soniq_codegen.contract_set import ContractSet
from soniq_codegen.shape import args_shape
from soniq_codegen.shape_diff import changes

Direction = Literal["backward", "forward"]
Severity = Literal["error", "warning"]
BACKWARD: Direction = "backward"
FORWARD: Direction = "forward"
BOTH: tuple[Direction, ...] = (BACKWARD, FORWARD)
MODES: dict[str, tuple[Direction, ...]] = {
    "full": BOTH,
    "backward": (BACKWARD,),
    "forward": (FORWARD,),
}
_CONSEQUENCE = {
    BACKWARD: "new workers would reject jobs already queued",
    FORWARD: "old workers would reject jobs from new producers",
}


@dataclass(frozen=True)
class Rule:
    """One kind of change: the directions it breaks and whether it fails the check."""

    id: str
    breaks: tuple[Direction, ...]
    severity: Severity
    change: str


def _rules(*rules: Rule) -> dict[str, Rule]:
    return {rule.id: rule for rule in rules}


#: Every rule, in the order of the table in docs/breaking-changes.md.
RULES = _rules(
    Rule("task-removed", (BACKWARD,), "error", "a task is no longer declared"),
    Rule("task-renamed", (BACKWARD,), "error", "a task is gone and a new name has its args"),
    Rule("version-decreased", BOTH, "error", "`version` went down"),
    Rule("fingerprint-changed", BOTH, "error", "args changed, compared with a lock file alone"),
    Rule("default-queue-changed", BOTH, "warning", "`default_queue` changed"),
    Rule("property-added-closed", (FORWARD,), "error", "property added to a closed object"),
    Rule("property-added-open", (BACKWARD,), "error", "optional property added, open object"),
    Rule("property-removed-closed", (BACKWARD,), "error", "property removed, closed object"),
    Rule("property-removed-open", (FORWARD,), "error", "optional property removed, open object"),
    Rule("required-added", (BACKWARD,), "error", "new required property without default"),
    Rule("required-added-with-default", (BACKWARD,), "error", "new required property, default"),
    Rule("required-removed", (FORWARD,), "error", "required property removed"),
    Rule("optional-made-required", (BACKWARD,), "error", "optional property made required"),
    Rule("required-made-optional", (FORWARD,), "error", "required property made optional"),
    Rule("additional-properties-closed", (BACKWARD,), "error", "`additionalProperties: false` set"),
    Rule("additional-properties-opened", (FORWARD,), "error", "`additionalProperties: false` gone"),
    Rule("type-changed", BOTH, "error", "type changed to an unrelated type"),
    Rule("type-widened", (FORWARD,), "error", "`integer` became `number`"),
    Rule("type-narrowed", (BACKWARD,), "error", "`number` became `integer`"),
    Rule("null-added", (FORWARD,), "error", "null allowed"),
    Rule("null-removed", (BACKWARD,), "error", "null no longer allowed"),
    Rule("enum-value-added", (FORWARD,), "error", "enum/const value added"),
    Rule("enum-value-removed", (BACKWARD,), "error", "enum/const value removed"),
    Rule("const-changed", BOTH, "error", "`const` value changed"),
    Rule("enum-constraint-added", (BACKWARD,), "error", "a string restricted by `enum`/`const`"),
    Rule("enum-constraint-removed", (FORWARD,), "error", "`enum`/`const` dropped from a string"),
    Rule("min-length-tightened", (BACKWARD,), "error", "`minLength` raised or added"),
    Rule("min-length-loosened", (FORWARD,), "error", "`minLength` lowered or removed"),
    Rule("max-length-tightened", (BACKWARD,), "error", "`maxLength` lowered or added"),
    Rule("max-length-loosened", (FORWARD,), "error", "`maxLength` raised or removed"),
    Rule("pattern-added", (BACKWARD,), "error", "`pattern` added"),
    Rule("pattern-removed", (FORWARD,), "error", "`pattern` removed"),
    Rule("pattern-changed", BOTH, "error", "`pattern` changed"),
    Rule("format-added", (BACKWARD,), "error", "`format` added"),
    Rule("format-removed", (FORWARD,), "error", "`format` removed"),
    Rule("format-changed", BOTH, "error", "`format` changed"),
    Rule("minimum-tightened", (BACKWARD,), "error", "lower bound raised or added"),
    Rule("minimum-loosened", (FORWARD,), "error", "lower bound lowered or removed"),
    Rule("maximum-tightened", (BACKWARD,), "error", "upper bound lowered or added"),
    Rule("maximum-loosened", (FORWARD,), "error", "upper bound raised or removed"),
    Rule("min-items-tightened", (BACKWARD,), "error", "`minItems` raised or added"),
    Rule("min-items-loosened", (FORWARD,), "error", "`minItems` lowered or removed"),
    Rule("max-items-tightened", (BACKWARD,), "error", "`maxItems` lowered or added"),
    Rule("max-items-loosened", (FORWARD,), "error", "`maxItems` raised or removed"),
    Rule("min-properties-tightened", (BACKWARD,), "error", "`minProperties` raised or added"),
    Rule("min-properties-loosened", (FORWARD,), "error", "`minProperties` lowered or removed"),
    Rule("max-properties-tightened", (BACKWARD,), "error", "`maxProperties` lowered or added"),
    Rule("max-properties-loosened", (FORWARD,), "error", "`maxProperties` raised or removed"),
    Rule("multiple-of-added", (BACKWARD,), "error", "`multipleOf` added"),
    Rule("multiple-of-removed", (FORWARD,), "error", "`multipleOf` removed"),
    Rule("multiple-of-changed", BOTH, "error", "`multipleOf` changed"),
    Rule("unique-items-added", (BACKWARD,), "error", "`uniqueItems: true` added"),
    Rule("unique-items-removed", (FORWARD,), "error", "`uniqueItems: true` removed"),
    Rule("dependent-required-added", (BACKWARD,), "error", "a `dependentRequired` name added"),
    Rule("dependent-required-removed", (FORWARD,), "error", "a `dependentRequired` name removed"),
    Rule("branch-added", (FORWARD,), "error", "an `anyOf`/`oneOf` branch added"),
    Rule("branch-removed", (BACKWARD,), "error", "an `anyOf`/`oneOf` branch removed"),
    Rule("keyword-changed", BOTH, "error", "a keyword compared whole changed"),
    Rule("default-changed", BOTH, "warning", "default of an optional property changed"),
)


@dataclass(frozen=True, order=True)
class Finding:
    """One change to one task, where it is, the rule it falls under and why it matters."""

    task: str
    pointer: str
    rule: str
    why: str
    #: ``file#pointer`` of the shared definition (``$ref`` target) the change is in.
    via: str | None = None
    #: What excuses it: a version bump, ``--allow-removed``, ``--allow-breaking``.
    allowed_by: str | None = None

    @property
    def spec(self) -> Rule:
        return RULES[self.rule]

    @property
    def status(self) -> str:
        """``failing``, ``allowed`` or ``warning``."""
        if self.allowed_by is not None:
            return "allowed"
        return "failing" if self.spec.severity == "error" else "warning"

    def line(self) -> str:
        """The finding as one line of text."""
        status = f"allowed ({self.allowed_by})" if self.allowed_by else self.spec.severity
        via = f" [in {self.via}]" if self.via else ""
        breaks = "+".join(self.spec.breaks)
        return (
            f"{status}: {self.task} {self.pointer or '/'}: {self.rule} "
            f"(breaks {breaks}): {self.why}{via}"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "pointer": self.pointer,
            "rule": self.rule,
            "severity": self.spec.severity,
            "breaks": list(self.spec.breaks),
            "status": self.status,
            "allowed_by": self.allowed_by,
            "message": self.why,
            "via": self.via,
        }


@dataclass
class Report:
    """The outcome of comparing a baseline with the current contracts in one mode."""

    against: str
    mode: str
    findings: list[Finding]
    compared: list[str]
    added: list[str]
    removed: list[str]
    changed: list[str]

    @property
    def failing(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "failing"]

    def summary(self) -> str:
        """One line: the verdict and the counts."""
        counts = {s: sum(f.status == s for f in self.findings) for s in ("allowed", "warning")}
        stats = (
            f"{len(self.compared)} task(s) compared, {len(self.changed)} changed, "
            f"{len(self.added)} added, {len(self.removed)} removed; "
            f"{counts['allowed']} allowed, {counts['warning']} warning(s); "
            f"mode {self.mode}, against {self.against}"
        )
        failing = self.failing
        if not failing:
            return f"ok: no breaking change without a version bump ({stats})"
        tasks = len({f.task for f in failing})
        return (
            f"{len(failing)} breaking change(s) in {tasks} task(s) without a version bump ({stats})"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "against": self.against,
            "mode": self.mode,
            "ok": not self.failing,
            "summary": {
                "compared": len(self.compared),
                "added": self.added,
                "removed": self.removed,
                "changed": self.changed,
                "failing": len(self.failing),
                "allowed": sum(f.status == "allowed" for f in self.findings),
                "warnings": sum(f.status == "warning" for f in self.findings),
            },
            "findings": [f.as_json() for f in self.findings],
        }


def compare(
    old: Baseline,
    new: ContractSet,
    mode: str = "full",
    allow_removed: frozenset[str] = frozenset(),
) -> Report:
    """Every change from ``old`` to ``new`` that breaks a direction of ``mode``."""
    current = {t.task: t for t in new.tasks}
    removed = sorted(set(old.tasks) - set(current))
    added = sorted(set(current) - set(old.tasks))
    both = sorted(set(old.tasks) & set(current))
    findings = [_removed(name, old, current, added, allow_removed) for name in removed]
    for name in both:
        findings.extend(_task_findings(name, old, new, current[name]))
    wanted = set(MODES[mode])
    return Report(
        against=old.label,
        mode=mode,
        findings=sorted(f for f in findings if wanted & set(f.spec.breaks)),
        compared=both,
        added=added,
        removed=removed,
        changed=[n for n in both if old.tasks[n].fingerprint != current[n].fingerprint],
    )


def _removed(
    name: str,
    old: Baseline,
    current: dict[str, TaskContract],
    added: list[str],
    allow_removed: frozenset[str],
) -> Finding:
    """A task of ``old`` that is gone: renamed when exactly one new task has its args."""
    successors = [a for a in added if current[a].fingerprint == old.tasks[name].fingerprint]
    if len(successors) == 1:
        rule = "task-renamed"
        detail = f"renamed to {successors[0]!r} (same args)"
    else:
        rule, detail = "task-removed", "no longer declared"
    why = f"{detail}: queued jobs of {name!r} would find no handler on new workers"
    allowed = "--allow-removed" if name in allow_removed else None
    return Finding(name, "", rule, why, allowed_by=allowed)


def _task_findings(name: str, old: Baseline, new: ContractSet, now: TaskContract) -> list[Finding]:
    """The findings of a task declared before and after, allowed when its version went up."""
    was = old.tasks[name]
    found: list[Finding] = []
    if now.version < was.version:
        detail = f"version {was.version} -> {now.version}: versions only go up"
        found.append(Finding(name, "", "version-decreased", detail))
    if old.contracts is None:
        if was.fingerprint != now.fingerprint:
            detail = (
                f"args changed but version stayed {now.version}; a lock file holds no schemas "
                "to compare: pass --against the package or contract directory for the details"
            )
            found.append(Finding(name, "", "fingerprint-changed", detail))
    else:
        before = next(t for t in old.contracts.tasks if t.task == name)
        if before.default_queue != now.default_queue:
            waiting = repr(before.default_queue) if before.default_queue else "the default queue"
            detail = (
                f"default_queue {before.default_queue!r} -> {now.default_queue!r}: jobs waiting "
                f"in {waiting} are served only by workers that still consume it"
            )
            found.append(Finding(name, "", "default-queue-changed", detail))
        if was.fingerprint != now.fingerprint:
            before_shape, now_shape = (
                args_shape(old.contracts.tree, before),
                args_shape(new.tree, now),
            )
            found.extend(
                Finding(name, c.pointer, c.rule, _why(c.rule, c.detail), c.via)
                for c in changes(before_shape, now_shape)
            )
    if now.version > was.version:
        bump = f"version {was.version} -> {now.version}"
        found = [replace(f, allowed_by=bump) for f in found]
    return found


def _why(rule: str, detail: str) -> str:
    """``detail``, followed for errors by what goes wrong in each direction the rule breaks."""
    spec = RULES[rule]
    if spec.severity != "error":
        return detail
    return f"{detail}: " + " and ".join(_CONSEQUENCE[d] for d in spec.breaks)
