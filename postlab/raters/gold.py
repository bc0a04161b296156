"""The gold rater: a response's score is the fraction of its item's spec checks it passes, once it is an
answer at all.

Two gates make a score mean "this is a good answer" (docs/evals.md):

1. `postlab.spec.answer.non_answer`: a blank, gibberish, looping or copied response, a refusal of an item
   that asks to be answered, or an off-topic response to an item graded only on form scores 0.
2. Content before form: when an item has content checks (a right answer, a refusal of a harmful
   request, a stated limit with an offer, a kept secret) and one fails, its form checks (length,
   language, format, no lecture, complies, no action claim) fail too: a short wrong answer is not concise.

Items read from IFEval's own input files (category ``ifeval``) are graded by IFEval's checks alone, so
their accuracies stay comparable with published IFEval numbers; so are items graded only by exact-answer
checks (``postlab.spec.reasoning``: arith, countdown, wordprob, GSM8K), whose answer is right or wrong.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from postlab.raters.base import Preference
from postlab.spec import answer, checks, reasoning
from postlab.tasks.suite import Item

UNGATED_CATEGORIES = ("ifeval",)


@dataclass(frozen=True)
class CheckResult:
    id: str
    kwargs: dict
    passed: bool  # strict, after the gates
    passed_loose: bool  # IFEval's loose variants (equal to strict for postlab's own checks), after the gates
    raw: bool | None = None  # the check alone (strict), before the gates; None when equal to `passed`


@dataclass(frozen=True)
class GoldResult:
    score: float  # in [0, 1]: fraction of checks passed (strict)
    checks: tuple[CheckResult, ...]
    non_answer: str | None = None  # why the response is not an answer (postlab.spec.answer), if it is not

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
        raw = []
        for c in item.checks:
            strict = checks.passes(c.id, c.kwargs, response, request=item.prompt)
            # loose differs from strict only for IFEval's checks; postlab's own are not run twice
            loose = checks.passes(c.id, c.kwargs, response, loose=True) if checks.is_ifeval(c.id) else strict
            raw.append((c, strict, loose))
        if item.category in UNGATED_CATEGORIES or all(c.id in reasoning.CHECKS for c in item.checks):
            results = tuple(CheckResult(c.id, c.kwargs, s, lo) for c, s, lo in raw)
            return GoldResult(sum(r.passed for r in results) / len(results), results)
        reason = answer.non_answer(item.messages, [(c.id, c.kwargs) for c in item.checks], response)
        content_ok = all(s for c, s, _ in raw if c.id in answer.CONTENT_CHECKS)
        results = []
        for c, strict, loose in raw:
            keep = reason is None and (content_ok or c.id in answer.CONTENT_CHECKS)
            results.append(CheckResult(c.id, c.kwargs, strict and keep, loose and keep,
                                       raw=None if keep or not strict else strict))
        results = tuple(results)
        return GoldResult(sum(r.passed for r in results) / len(results), results, reason)

    def score(self, item: Item, response: str) -> float:
        return self.grade(item, response).score

    def compare(self, item: Item, a: str, b: str) -> Preference:
        margin = self.score(item, a) - self.score(item, b)
        choice = "a" if margin > 0 else "b" if margin < 0 else "tie"
        return Preference(choice, abs(margin), self.id, gold_margin=margin)


@lru_cache(maxsize=1)
def ruler_version() -> str:
    """A short hash of the gold rater's code (postlab/spec and this module): a stored gold score graded under
    another version is stale (``postlab run`` regrades such evals from their saved answers)."""
    package = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted([*(package / "spec").rglob("*.py"), Path(__file__).resolve()]):
        h.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]
