"""Markdown tables of a `postlab run` directory for docs/results.md: python scripts/run_tables.py runs/default"""

import json
import sys
from pathlib import Path


def main(run_dir: str) -> None:
    s = json.loads((Path(run_dir) / "summary.json").read_text())
    st, algo = s["stages"], s["algo"]
    g = {"base": st["baseline"]["gold"], "sft": st["sft"]["gold"], algo: st["rl"]["gold"]}
    print(f"| category | n | base | sft | {algo} | Δ final − base |\n|---|---|---|---|---|---|")
    b = g["base"]
    print(f"| **overall** | {b['n']} | {b['overall']:.3f} ± {b['overall_se']:.3f} | {g['sft']['overall']:.3f} ± "
          f"{g['sft']['overall_se']:.3f} | {g[algo]['overall']:.3f} ± {g[algo]['overall_se']:.3f} | "
          f"{100 * (g[algo]['overall'] - b['overall']):+.1f} pts |")
    for cat in sorted(b["by_category"]):
        vals = [g[k]["by_category"][cat] for k in g]
        print(f"| {cat} | | {vals[0]:.3f} | {vals[1]:.3f} | {vals[2]:.3f} | {100 * (vals[2] - vals[0]):+.1f} |")
    print(f"\nmean answer length (words): base {b['mean_length']:.1f}, sft {g['sft']['mean_length']:.1f}, "
          f"{algo} {g[algo]['mean_length']:.1f}\n")
    print("| stage | seconds |\n|---|---|")
    for k, v in s["timings_s"].items():
        print(f"| {k} | {v:.0f} |")
    rm = st["rm"]
    print(f"\nreward model: accuracy vs labels {rm['accuracy_vs_labels']}, vs gold {rm['accuracy_vs_gold']} "
          f"({rm['gold_clear_pairs']} clear pairs); RL proxy {st['rl']['proxy']:+.3f} (SFT {st['rl']['sft_proxy']:+.3f}), "
          f"KL {st['rl']['kl']:.3f}")
    print("\n| rank | model | Elo | 95% CI | gold |\n|---|---|---|---|---|")
    for i, r in enumerate(st["leaderboard"]["rows"], 1):
        print(f"| {i} | {r['model']} | {r['elo']:.0f} | [{r['ci_low']:.0f}, {r['ci_high']:.0f}] | {r['mean_score']:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/default")
