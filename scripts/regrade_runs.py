"""Regrade finished `postlab run` directories with the gold rater as the code now stands.

The ruler changes (issue 14) while the runs stay on disk: this re-scores each run's saved greedy
answers (eval/baseline, eval/sft, eval/rl .samples.jsonl, on the spec test split) and prints, per run,
overall gold per stage, the paired differences SFT − base and RL − SFT (mean ± SE over items), and
gold per category. No model is loaded.

    python scripts/regrade_runs.py runs/d6 runs/d7 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from postlab.evals.generate import read_responses
from postlab.evals.harness import grade
from postlab.evals.metrics import paired_difference
from postlab.tasks.suite import load_suite

STAGES = ("baseline", "sft", "rl")


def regrade(run: Path) -> dict:
    items = load_suite("spec", split="test")
    out: dict = {"run": str(run), "stages": {}}
    scores: dict[str, dict[str, float]] = {}
    for stage in STAGES:
        path = run / "eval" / f"{stage}.samples.jsonl"
        if not path.is_file():
            continue
        answered = {json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()}
        asked = [it for it in items if it.id in answered]  # a run with eval_limit answered the first N items
        summary, rows = grade(asked, read_responses(str(path), asked))
        scores[stage] = {r["id"]: r["score"] for r in rows}
        out["stages"][stage] = {"overall": summary["overall"], "by_category": summary["by_category"]}
    for name, (a, b) in {"sft_minus_base": ("sft", "baseline"), "rl_minus_sft": ("rl", "sft"),
                         "rl_minus_base": ("rl", "baseline")}.items():
        if a in scores and b in scores:
            m, se, n = paired_difference(scores[a], scores[b])
            out[name] = {"mean": m, "se": se, "n": n}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = [regrade(r) for r in args.runs]
    for r in results:
        st = r["stages"]
        print(f"{r['run']}: " + " -> ".join(f"{s} {st[s]['overall']:.3f}" for s in STAGES if s in st))
        for key in ("sft_minus_base", "rl_minus_sft", "rl_minus_base"):
            if key in r:
                print(f"  {key}: {100 * r[key]['mean']:+.1f} ± {100 * r[key]['se']:.1f} points (n={r[key]['n']})")
        cats = sorted(next(iter(st.values()))["by_category"])
        print("  " + ", ".join(f"{c} " + " → ".join(f"{st[s]['by_category'][c]:.2f}" for s in STAGES if s in st)
                               for c in cats))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
