"""Print the markdown tables of docs/results.md from a run directory's outputs (the commands that
produce them are in docs/results.md). Usage: python scripts/results_tables.py runs"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def metrics(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def eval_table(root: Path) -> None:
    runs = [(name, load(root / f"r6/{file}.json")) for name, file in
            (("SmolLM2-135M-Instruct", "base"), ("+ GRPO (gold reward)", "grpo_eval"), ("+ PPO (RM reward)", "ppo_eval"),
             ("+ DPO (simulated prefs)", "dpo_eval"))]
    runs = [(n, r) for n, r in runs if r]
    if not runs:
        return
    cats = list(runs[0][1]["by_category"])
    print("| model | overall | " + " | ".join(cats) + " | words |")
    print("|---|---|" + "---|" * len(cats) + "---|")
    for n, r in runs:
        print(f"| {n} | {r['overall']:.3f} ± {r['overall_se']:.3f} | " + " | ".join(f"{r['by_category'][c]:.2f}" for c in cats)
              + f" | {r['mean_length']:.0f} |")
    print()


def curve(root: Path, run: str, keys: list[str], every: int) -> None:
    m = [x for x in metrics(root / f"r6/{run}/metrics.jsonl") if keys[0] in x]
    if not m:
        return
    print("| step | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for x in m:
        if x["step"] % every == 0 or x["step"] == 1 or x is m[-1]:
            print(f"| {x['step']} | " + " | ".join(f"{x[k]:.3f}" if k in x else "" for k in keys) + " |")
    print()
    g = metrics(root / f"r6/{run}/gold_evals.jsonl")
    if g:
        print("Held-out gold slice during training: " + ", ".join(f"step {r['step']}: {r['overall']:.3f} ± {r['overall_se']:.3f}" for r in g))
        print()


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs")
    rm = load(root / "r5/rm/rm_results.json")
    if rm:
        print("RM:", json.dumps(rm))
    bon = load(root / "r5/bon/bon.json")
    if bon:
        print("| n | KL | proxy (RM) | gold |\n|---|---|---|---|")
        for r in bon["results"]:
            print(f"| {r['n']} | {r['kl']:.2f} | {r['proxy']:+.3f} ± {r['proxy_se']:.3f} | {r['gold']:.3f} ± {r['gold_se']:.3f} |")
        print()
    eval_table(root)
    curve(root, "grpo", ["reward", "gold/train_score", "objective/kl", "completions/mean_length", "completions/clipped_ratio"], 5)
    curve(root, "ppo", ["proxy/score", "gold/train_score", "objective/kl", "completions/mean_length", "completions/clipped_ratio"], 3)
    dpo = load(root / "r6/dpo/dpo_results.json")
    if dpo:
        print("DPO:", json.dumps({k: v for k, v in dpo.items() if k.startswith("eval_") or k in ("steps", "train_pairs")}))


if __name__ == "__main__":
    main()
