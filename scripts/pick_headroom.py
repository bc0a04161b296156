"""What picking among a policy's own samples could gain (issue 15; docs/results.md, "Where the RL stage's gain is
lost"): for every prompt of a `postlab sample` file with at least two finished candidates, the gold of a random
candidate (the mean), of gold's own pick (the oracle) and, with --run, of the run's reward model's pick; with
--greedy, the gold of the policy's greedy answer to the same prompts (an eval's samples file), by category:

    python scripts/pick_headroom.py runs/x/fresh_candidates.jsonl --run runs/q2 --scores runs/x/rm_scores.json
    python scripts/pick_headroom.py runs/x/test_candidates.jsonl --split test --all \
        --greedy runs/q2/eval/sft.samples.jsonl

With --run it also prints the reward's and gold's correlation with length in words, and the gold of the pick under
reward − λ·words for a few λ (a length-penalised reward model). --all grades every candidate, finished or not (the
headroom of any sample, as an eval's greedy answer is graded even when cut off).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from statistics import correlation, fmean

from postlab.raters.gold import GoldRater
from postlab.run import _candidates
from postlab.tasks.suite import load_suite
from postlab.train.bon_sft import scorable

from experiment_common import rm_scorer  # scripts/ is on sys.path when a script runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("candidates")
    ap.add_argument("--split", choices=["train", "test"], default="train")
    ap.add_argument("--run", help="a finished run whose reward model picks too")
    ap.add_argument("--scores", help="JSON file memoising the reward model's scores across reruns")
    ap.add_argument("--rm", help="with --run: pick with this reward model instead of RUN/rm/model")
    ap.add_argument("--greedy", help="an eval's samples file: the greedy answers' gold beside the picks'")
    ap.add_argument("--all", action="store_true", help="grade every candidate, not only the finished ones")
    args = ap.parse_args()
    items, gold = {it.id: it for it in load_suite("spec", split=args.split)}, GoldRater()
    texts = {pid: [t for t, _ in c] if args.all else scorable(c)
             for pid, c in _candidates(Path(args.candidates)).items() if pid in items}
    texts = {pid: t for pid, t in texts.items() if len(t) >= 2}
    golds = {pid: [gold.score(items[pid], t) for t in ts] for pid, ts in texts.items()}
    cols = {"random": {p: fmean(g) for p, g in golds.items()}, "oracle": {p: max(g) for p, g in golds.items()}}
    if args.greedy:
        greedy = {r["id"]: r["score"] for r in map(json.loads, open(args.greedy, encoding="utf-8")) if r["id"] in golds}
        cols = {"greedy": greedy, **cols}
    if args.run:
        score = rm_scorer(Path(args.run), args.scores, args.rm)
        rewards = {pid: score([items[pid].messages] * len(ts), ts) for pid, ts in texts.items()}
        words = {pid: [len(t.split()) for t in ts] for pid, ts in texts.items()}

        def pick(lam: float) -> dict[str, float]:
            return {p: max(zip(rewards[p], words[p], golds[p]), key=lambda x: x[0] - lam * x[1])[2] for p in golds}
        cols["reward model"] = pick(0.0)
        flat = lambda d: [x for p in golds for x in d[p]]  # noqa: E731
        r, w, g = flat(rewards), flat(words), flat(golds)
        print(f"correlation with length in words: reward {correlation(r, w):.2f}, gold {correlation(g, w):.2f}; "
              f"reward vs gold {correlation(r, g):.2f}")
        print("gold of the reward model's pick under reward − λ·words: " + ", ".join(
            f"λ {lam:g}: {fmean(pick(lam).values()):.3f}" for lam in (0, 0.02, 0.05, 0.1, 0.2, 0.5)))
    print(f"{len(golds)} prompts with two or more {'' if args.all else 'finished '}candidates")
    cats: dict[str, list[str]] = defaultdict(list)
    for p in golds:
        cats[p.split("-")[0]].append(p)
    print(f"{'':18s} {'n':>4s} " + " ".join(f"{c:>12s}" for c in cols))
    for name, ids in [("all", list(golds))] + sorted(cats.items()):
        print(f"{name:18s} {len(ids):4d} " + " ".join(f"{fmean(col[i] for i in ids):12.3f}" for col in cols.values()))
    if "reward model" in cols:
        rnd, orc, rm = (fmean(cols[c].values()) for c in ("random", "oracle", "reward model"))
        print(f"share of the lift the reward model took: {(rm - rnd) / (orc - rnd):.0%}" if orc > rnd else "")


if __name__ == "__main__":
    main()
