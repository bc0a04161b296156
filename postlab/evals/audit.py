"""``postlab gold-audit``: how accurate is the gold rater itself?

The audit set (``postlab/assets/gold_audit.jsonl``) holds real answers of SmolLM2-135M-Instruct to test
items of the ``spec`` suite — from the base model, the SFT policy and the RL policy of a ``postlab run``
— each requirement judged by reading it (how, and by whom, is in docs/evals.md), without the rater's
verdicts in view. This command grades the same answers with the gold rater and reports, per check id and
overall, with Wilson 95% intervals:

- ``precision``: of the requirements the rater passes, the share the readers pass (a lenient check,
  one RL can exploit, has low precision);
- ``recall``: of the requirements the readers pass, the share the rater passes;
- ``agreement``: share of requirements where both agree; ``response_agreement``: share of responses
  where the rater's "passes everything" equals the readers' "meets every requirement";
  ``good_agreement``: the same against the readers' overall "a good answer".
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from postlab.errors import DataError
from postlab.raters.gold import GoldRater, GoldResult
from postlab.spec import checks
from postlab.tasks.suite import make_item
from postlab.utils.io import atomic_write_text

AUDIT_PATH = Path(__file__).resolve().parents[1] / "assets" / "gold_audit.jsonl"


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (Wilson 1927); (nan, nan) for n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate(k: int, n: int) -> dict:
    """A share with its Wilson interval (None when there is nothing to share, so the JSON stays valid)."""
    if n == 0:
        return {"value": None, "k": 0, "n": 0, "ci95": [None, None]}
    return {"value": k / n, "k": k, "n": n, "ci95": list(wilson(k, n))}


def read_audit(path: str | Path) -> list[dict]:
    rows = []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if len(row["human"]["checks"]) != len(row["checks"]):
                raise ValueError("human.checks must hold one verdict per check")
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"{path}:{i}: {e}") from None
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no audit rows")
    return rows


def grade_row(gold: GoldRater, row: dict) -> GoldResult:
    """The gold rater's grade of one audit row's response to its item."""
    item = make_item(row["item_id"], row["messages"], row["category"], "test",
                     [(c["id"], c["kwargs"]) for c in row["checks"]])
    return gold.grade(item, row["response"])


def audit(rows: list[dict]) -> dict:
    """Per-check and overall precision/recall/agreement of the gold rater against the readers."""
    gold = GoldRater()
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # tp, fp, fn, tn (pass = positive)
    responses = good = 0
    disagreements = []
    by_source: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        result = grade_row(gold, row)
        human = [bool(x) for x in row["human"]["checks"]]
        for c, h in zip(result.checks, human):
            counts[c.id][(0 if h else 1) if c.passed else (2 if h else 3)] += 1
            if c.passed != h:
                disagreements.append({"key": row["key"], "check": c.id, "gold": c.passed, "human": h,
                                      "non_answer": result.non_answer, "note": row["human"].get("note", "")})
        same = result.all_passed == all(human)
        responses += same
        good += result.all_passed == bool(row["human"]["good"])
        by_source[row.get("source", "?")][0] += same
        by_source[row.get("source", "?")][1] += 1

    def summary(tp: int, fp: int, fn: int, tn: int) -> dict:
        return {"precision": _rate(tp, tp + fp), "recall": _rate(tp, tp + fn),
                "agreement": _rate(tp + tn, tp + fp + fn + tn), "n": tp + fp + fn + tn}

    total = [sum(c[i] for c in counts.values()) for i in range(4)]
    postlab_own = [sum(c[i] for k, c in counts.items() if not checks.is_ifeval(k)) for i in range(4)]
    return {
        "n_responses": len(rows),
        "overall": summary(*total),
        "postlab_checks": summary(*postlab_own),
        "response_agreement": _rate(responses, len(rows)),
        "good_agreement": _rate(good, len(rows)),
        "by_source": {s: _rate(k, n) for s, (k, n) in sorted(by_source.items())},
        "by_check": {k: summary(*c) for k, c in sorted(counts.items())},
        "disagreements": disagreements,
    }


def format_audit(result: dict) -> str:
    def pct(r: dict) -> str:
        if not r["n"]:
            return "      -       "
        return f"{100 * r['value']:5.1f} [{100 * r['ci95'][0]:3.0f},{100 * r['ci95'][1]:3.0f}]"

    lines = [f"gold-audit: {result['n_responses']} responses judged by reading",
             f"{'check':42s} {'n':>4s}  {'precision (95% CI)':18s} {'recall (95% CI)':18s} agreement"]
    for name, s in [*result["by_check"].items(), ("ALL CHECKS", result["overall"]),
                    ("POSTLAB'S OWN CHECKS", result["postlab_checks"])]:
        lines.append(f"{name:42s} {s['n']:4d}  {pct(s['precision']):18s} {pct(s['recall']):18s} "
                     f"{pct(s['agreement'])}")
    lines.append(f"responses (all checks pass vs all met): {pct(result['response_agreement'])}")
    lines.append(f"responses (all checks pass vs 'a good answer'): {pct(result['good_agreement'])}")
    for source, r in result["by_source"].items():
        lines.append(f"  {source}: {pct(r)} of {r['n']}")
    return "\n".join(lines)


def main(path: str | Path = AUDIT_PATH, out: str | Path | None = None, show: int = 0) -> dict:
    result = audit(read_audit(path))
    print(format_audit(result))
    for d in result["disagreements"][:show]:
        print(f"  {d['key']} {d['check']}: gold {d['gold']} / reading {d['human']}"
              f"{' (' + d['non_answer'] + ')' if d['non_answer'] else ''} — {d['note']}")
    if out:
        atomic_write_text(out, json.dumps(result, indent=1, allow_nan=False, default=str) + "\n")
    return result
