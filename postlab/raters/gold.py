"""The gold rater: a response's score is the fraction of its item's spec checks it passes."""

from __future__ import annotations

from dataclasses import dataclass

from postlab.raters.base import Preference
from postlab.spec import checks
from postlab.tasks.suite import Item


@dataclass(frozen=True)
class CheckResult:
    id: str
    kwargs: dict
    passed: bool  # strict
    passed_loose: bool  # IFEval's loose variants (equal to strict for postlab's own checks)


@dataclass(frozen=True)
class GoldResult:
    score: float  # in [0, 1]: fraction of checks passed (strict)
    checks: tuple[CheckResult, ...]

    @property
    def all_passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def all_passed_loose(self) -> bool:
        return all(c.passed_loose for c in self.checks)


class GoldRater:
    """Deterministic: the same item and response always give the same result."""

    id = "gold"

    def grade(self, item: Item, response: str) -> GoldResult:
        results = []
        for c in item.checks:
            strict = checks.passes(c.id, c.kwargs, response)
            # loose differs from strict only for IFEval's checks; postlab's own are not run twice
            loose = checks.passes(c.id, c.kwargs, response, loose=True) if checks.is_ifeval(c.id) else strict
            results.append(CheckResult(c.id, c.kwargs, strict, loose))
        results = tuple(results)
        return GoldResult(sum(r.passed for r in results) / len(results), results)

    def score(self, item: Item, response: str) -> float:
        return self.grade(item, response).score

    def compare(self, item: Item, a: str, b: str) -> Preference:
        margin = self.score(item, a) - self.score(item, b)
        choice = "a" if margin > 0 else "b" if margin < 0 else "tie"
        return Preference(choice, abs(margin), self.id, gold_margin=margin)
