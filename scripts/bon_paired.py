"""Best-of-n against a reward model on the test items, paired with the greedy answers (docs/results.md,
"Best-of-n at inference"), everything graded by the gold rater as the code now stands:

    postlab bon --policy RUN/sft/model --rm RUN/rm/model --suite spec --n 1,2,4 --out DIR \\
        sampling.temperature=0.7 sampling.max_new_tokens=160 sampling.seed=0
    python scripts/bon_paired.py DIR/samples.jsonl RUN/eval/sft.samples.jsonl RUN/rm/model

prints, for m = 0..N−1, the expected gold of the reward model's pick among the greedy answer and m of the
N samples (exact expectation over all m-subsets) minus the greedy answer's, mean ± SE over items and by
category; the same for best-of-n over samples only; and both without the items graded by the language
check alone (see docs/evals.md, round 3)."""

from __future__ import annotations

import itertools
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

from postlab.raters.gold import GoldRater
from postlab.raters.reward_model import RewardModelRater
from postlab.tasks.suite import load_suite
from postlab.train.bon import best_of_n_expectation


def mean_se(d: list[float]) -> tuple[float, float]:
    m = sum(d) / len(d)
    return m, math.sqrt(sum((x - m) ** 2 for x in d) / (len(d) - 1) / len(d))


def main(bon: str, greedy_path: str, rm: str) -> None:
    items = {it.id: it for it in load_suite("spec", split="test")}
    gold = GoldRater()
    greedy = [json.loads(line) for line in open(greedy_path, encoding="utf-8")]
    cache = Path(bon).with_name("greedy_rewards.json")  # the greedy answers' rewards, kept beside the samples
    if cache.exists():
        rewards = json.loads(cache.read_text())
    else:
        rewards = RewardModelRater(rm, bf16=True).score_texts([r["messages"] for r in greedy], [r["response"] for r in greedy])
        cache.write_text(json.dumps(rewards))
    by = defaultdict(list)
    for r in map(json.loads, open(bon, encoding="utf-8")):
        by[r["id"]].append((r["sample_index"], r["proxy"], gold.score(items[r["id"]], r["response"])))
    N = min(len(v) for v in by.values())
    lang_only = {k for k, it in items.items() if [c.id for c in it.checks] == ["language:response_language"]}
    rows = []
    for r, p in zip(greedy, rewards):
        base = gold.score(items[r["id"]], r["response"])
        samples = sorted(by[r["id"]])[:N]
        with_greedy = [sum(max([(p, base)] + [(x[1], x[2]) for x in sub], key=lambda c: c[0])[1]
                           for sub in itertools.combinations(samples, m)) / math.comb(N, m) - base for m in range(N)]
        only = [best_of_n_expectation([x[1] for x in samples], [x[2] for x in samples], n) - base for n in range(1, N + 1)]
        rows.append((r["id"], r["category"], with_greedy, only))
    for label, keep in (("all items", lambda i: True), (f"without the {len(lang_only)} language-only items",
                                                        lambda i: i not in lang_only)):
        sel = [row for row in rows if keep(row[0])]
        print(f"== {label} (n={len(sel)}): gold of the pick minus the greedy answer's, mean ± SE")
        for m in range(N):
            mu, se = mean_se([row[2][m] for row in sel])
            cats = defaultdict(list)
            for row in sel:
                cats[row[1]].append(row[2][m])
            print(f"  greedy + {m} samples: {100 * mu:+.1f} ± {100 * se:.1f}   "
                  + "  ".join(f"{c} {100 * sum(v) / len(v):+.0f}" for c, v in sorted(cats.items())))
        for n in range(1, N + 1):
            mu, se = mean_se([row[3][n - 1] for row in sel])
            print(f"  best of {n} samples: {100 * mu:+.1f} ± {100 * se:.1f}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
