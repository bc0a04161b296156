"""Paired difference of gold scores between two eval samples files (same items): mean ± SE, overall and per
category. With --regrade, both files' answers are first graded again with the gold rater as the code now stands
(the scores saved in a samples file are the rater's of the day it was written).

Usage: python scripts/paired_delta.py after.samples.jsonl before.samples.jsonl [--regrade]
                                      [--suite spec --split test]"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

from postlab.evals.metrics import mean_se


def _rows(path: str) -> list[dict]:
    return [json.loads(line) for line in open(path) if line.strip()]


def _regraded(path: str, suite: str, split: str) -> list[dict]:
    from postlab.evals.generate import read_responses
    from postlab.evals.harness import grade
    from postlab.tasks.suite import load_suite

    answered = {r["id"] for r in _rows(path)}
    items = [it for it in load_suite(suite, split=split) if it.id in answered]
    return grade(items, read_responses(path, items))[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("after")
    ap.add_argument("before")
    ap.add_argument("--regrade", action="store_true", help="grade both files again with the current gold rater")
    ap.add_argument("--suite", default="spec")
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    load = (lambda p: _regraded(p, args.suite, args.split)) if args.regrade else _rows
    a = {r["id"]: r for r in load(args.after)}
    b = {r["id"]: r for r in load(args.before)}
    common = [k for k in a if k in b]
    if len(common) < 2:
        raise SystemExit(f"paired_delta: only {len(common)} items in common between {args.after} and {args.before}")
    d = [a[k]["score"] - b[k]["score"] for k in common]
    m, se = mean_se(d)
    mean_a = sum(a[k]["score"] for k in common) / len(common)
    mean_b = sum(b[k]["score"] for k in common) / len(common)
    print(f"n={len(d)}  {mean_b:.3f} -> {mean_a:.3f}  delta={m:+.3f} ± {se:.3f}  "
          f"(better {sum(x > 0 for x in d)}, worse {sum(x < 0 for x in d)}, same {sum(x == 0 for x in d)})")
    by_cat: dict[str, list[float]] = defaultdict(list)
    for k, x in zip(common, d):
        by_cat[a[k].get("category", "?")].append(x)
    print("  " + ", ".join(f"{c} {100 * mean_se(v)[0]:+.1f} ± {100 * mean_se(v)[1]:.1f}"
                           for c, v in sorted(by_cat.items())))


if __name__ == "__main__":
    main()
