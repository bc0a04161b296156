"""Paired gold difference on *train-split* prompts that nothing in a run trained on (a "dev" set: the train split's
templates, unseen prompts), beside the test split's held-out templates that every stage's eval grades (issue 15):

    postlab sample model=RUN/sft/model prompts=DEV.jsonl k=1 out=dev_sft.jsonl sampling.temperature=0 \
        sampling.max_new_tokens=160            # greedy, like every eval; the same for each policy
    python scripts/dev_paired.py dev_sft.jsonl dev_rl.jsonl [more.jsonl ...]

The first file is the reference; for each other file, the gold score of its greedy answers minus the reference's,
paired per prompt on the prompts both answered, overall and by category (mean ± standard error, in points). DEV.jsonl
holds `{"id": <train item id>, "messages": ...}` rows; the ids must be train items of the spec suite.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from postlab.evals.metrics import paired_difference
from postlab.raters.gold import GoldRater
from postlab.run import _candidates
from postlab.tasks.suite import load_suite


def grade(path: str, items: dict, gold: GoldRater) -> dict[str, float]:
    """prompt id -> gold score of the file's first candidate for it."""
    out = {}
    for pid, cands in _candidates(Path(path)).items():
        if pid not in items:
            raise SystemExit(f"{path}: prompt_id {pid!r} is not a train item of the spec suite")
        out[pid] = gold.score(items[pid], cands[0][0])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reference")
    ap.add_argument("others", nargs="+")
    args = ap.parse_args()
    items, gold = {it.id: it for it in load_suite("spec", split="train")}, GoldRater()
    before = grade(args.reference, items, gold)
    for path in args.others:
        after = grade(path, items, gold)
        common = sorted(set(after) & set(before))
        if not common:
            print(f"{path}: no prompt in common with {args.reference}")
            continue
        mean, se, n = paired_difference({i: after[i] for i in common}, {i: before[i] for i in common})
        print(f"{path}: {sum(before[i] for i in common) / n:.3f} -> {sum(after[i] for i in common) / n:.3f}; "
              f"paired {100 * mean:+.1f} ± {100 * se:.1f} points on {n} prompts")
        cats: dict[str, list[str]] = defaultdict(list)
        for i in common:
            cats[i.split("-")[0]].append(i)
        parts = []
        for c, ids in sorted(cats.items()):
            m, s, k = paired_difference({i: after[i] for i in ids}, {i: before[i] for i in ids})
            parts.append(f"{c} ({k}) {100 * m:+.1f} ± {100 * s:.1f}")
        print("  " + ", ".join(parts))


if __name__ == "__main__":
    main()
