"""The one error record every stage reports, so all problems can be shown together."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the contract set: where it is, what it is, and how to fix it."""

    file: str
    line: int | None
    pointer: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        text = f"{where}: {self.pointer or '/'}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class ContractError(Exception):
    """Raised when the contract set has problems; carries every one of them."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))
