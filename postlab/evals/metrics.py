"""Aggregate gold results into the numbers an eval reports."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path

from postlab.raters.gold import GoldResult
from postlab.raters.simulated import num_words
from postlab.tasks.suite import Item


def mean_se(xs: list[float]) -> tuple[float, float]:
    """Mean and its standard error (sample std / sqrt(n); 0 for n < 2)."""
    n = len(xs)
    if n == 0:
        return float("nan"), float("nan")
    m = sum(xs) / n
    if n < 2:
        return m, 0.0
    var = sum((x - m) ** 2 for x in xs) / (n - 1)
    return m, math.sqrt(var / n)


def summarize(items: list[Item], results: list[GoldResult], responses: list[str]) -> dict:
    """Gold score overall / per category / per check, IFEval's four accuracies, mean length (words).

    overall = mean over items of the fraction of its checks passed (strict);
    prompt_level_*_acc = fraction of items passing all checks; inst_level_*_acc = fraction of all
    checks passed, pooled over items (IFEval's definitions)."""
    scores = [r.score for r in results]
    overall, overall_se = mean_se(scores)
    by_cat: dict[str, list[float]] = defaultdict(list)
    by_check: dict[str, list[bool]] = defaultdict(list)
    for it, r in zip(items, results):
        by_cat[it.category].append(r.score)
        for c in r.checks:
            by_check[c.id].append(c.passed)
    inst = [c for r in results for c in r.checks]
    return {
        "n": len(items),
        "overall": overall,
        "overall_se": overall_se,
        "by_category": {k: mean_se(v)[0] for k, v in sorted(by_cat.items())},
        "by_category_se": {k: mean_se(v)[1] for k, v in sorted(by_cat.items())},
        "by_category_n": {k: len(v) for k, v in sorted(by_cat.items())},
        "by_check": {k: sum(v) / len(v) for k, v in sorted(by_check.items())},
        "prompt_level_strict_acc": sum(r.all_passed for r in results) / len(results),
        "inst_level_strict_acc": sum(c.passed for c in inst) / len(inst),
        "prompt_level_loose_acc": sum(r.all_passed_loose for r in results) / len(results),
        "inst_level_loose_acc": sum(c.passed_loose for c in inst) / len(inst),
        "mean_length": sum(num_words(t) for t in responses) / len(responses),
        # responses the gold rater's answer gate scored 0 (postlab.spec.answer), by reason
        "non_answer": dict(sorted(Counter(r.non_answer for r in results if r.non_answer).items())),
    }


def paired_difference(after: dict[str, float], before: dict[str, float]) -> tuple[float, float, int]:
    """Mean and standard error of after[i] − before[i] over the items both scored, and their number: the
    paired comparison of two policies on the same items (far tighter than comparing two means)."""
    d = [after[k] - before[k] for k in after if k in before]
    mean, se = mean_se(d)
    return mean, se, len(d)


def sample_scores(samples_path: str | Path) -> dict[str, float]:
    """Item id -> gold score from an eval's samples file."""
    with open(samples_path, encoding="utf-8") as f:
        return {row["id"]: row["score"] for row in (json.loads(line) for line in f if line.strip())}

