"""Best-of-n gold in a `postlab overopt` run, paired per prompt: for each proxy, gold at the n where its mean peaks
against gold at n = 32, and n = 1 against n = 32 (mean ± SE over the policy prompts of the per-prompt difference of
the exact best-of-n expectations). docs/results.md, run overopt4.

    python scripts/overopt_bon_paired.py RUN PAIRS [PAIRS ...]
"""
import sys, math
from postlab.overopt import _per_prompt, _centred
from postlab.train.bon import best_of_n_expectation
run = sys.argv[1]
for pairs in sys.argv[2:]:
    proxy, gold = _per_prompt(f"{run}/bon/{pairs}/samples.jsonl")
    P, G = list(proxy.values()), list(gold.values())
    per = {n: [best_of_n_expectation(p, g, n) for p, g in zip(P, G)] for n in (1, 2, 4, 8, 16, 32)}
    means = {n: sum(v) / len(v) for n, v in per.items()}
    peak = max(means, key=means.get)
    for a, b in ((peak, 32), (1, 32)):
        d = [x - y for x, y in zip(per[a], per[b])]
        m = sum(d) / len(d); se = math.sqrt(sum((x - m) ** 2 for x in d) / (len(d) - 1) / len(d))
        print(f"proxy {pairs}: gold(n={a}) - gold(n=32) = {m:+.3f} ± {se:.3f}  ({len(d)} prompts)")
