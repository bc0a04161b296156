"""What a PPO step costs on SmolLM2-135M-Instruct: full weights, a LoRA policy, and a value head on the policy's own
backbone, side by side in one run.

`postlab ppo` at its defaults (16 prompts a step, one response each, at most 64 new tokens at T = 0.7, 4 epochs
of updates over the batch, the policy and a value model with its own backbone, bf16 autocast where
`optim.bf16=auto` picks it, KL penalty against the reference) with the gold rater as the reward (no reward model
to train first), on the first 16·steps prompts of the spec suite's train split, for the same number of steps:

- **full**: every weight of the policy trains; the reference is a frozen copy;
- **lora**: LoRA adapters (r 16, α 32, every attention and MLP projection) train on the policy, whose reference is
  the same model with its adapters off (no copy); the value model trains in full;
- **shared**: full weights, with `value_head=shared`: the values come from a scalar head on the policy's last hidden
  state, in the policy's own forward and backward (no value model);
- **lora + shared**: both.

Each runs in its own subprocess, so peak resident memory (ru_maxrss) is its own.

    .venv/bin/python benchmarks/ppo_step.py [--steps 4]

Prints seconds per step (the first excluded: one-time setup) with its phases (sample = generation and reward;
logprob = the old policy's, the reference's and the values' passes; update = the epochs' forwards, backwards and
optimizer steps) and peak RSS for each, then `ppo step full / lora`, `ppo step full / shared value head` and
`ppo step full / lora + shared value head`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

MODEL = "smollm2-135m-instruct"
PROMPTS_PER_STEP = 16
LORA = {"enabled": True, "r": 16, "alpha": 32}
CASES = {"full": (False, "model"), "lora": (True, "model"), "shared": (False, "shared"), "lora + shared": (True, "shared")}


def run(which: str, steps: int, out: str) -> dict:
    lora, value_head = CASES[which]
    from postlab.tasks.suite import load_suite, write_suite
    from postlab.train.ppo import PPOConfig, train
    from postlab.utils.memory import keep_freed_memory

    keep_freed_memory()  # as the postlab CLI does
    suite = os.path.join(out, "prompts.jsonl")
    write_suite(load_suite("spec", split="train", limit=PROMPTS_PER_STEP * steps), suite)
    run_dir = os.path.join(out, which.replace(" + ", "_"))
    cfg = PPOConfig(model=MODEL, out_dir=run_dir, suite=suite, steps=steps, value_head=value_head,
                    prompts_per_step=PROMPTS_PER_STEP, reward={"source": "gold", "missing_eos_penalty": 1.0},
                    lora=LORA if lora else {"enabled": False},
                    checkpoint={"progress": False, "save_every": 0})
    train(cfg)
    rows = [json.loads(x) for x in open(os.path.join(run_dir, "metrics.jsonl")) if x.strip()]
    rows = [r for r in rows if "time/step_s" in r]
    return {"step_s": [r["time/step_s"] for r in rows],
            "phases": {ph: [r[f"time/{ph}_s"] for r in rows] for ph in ("sample", "logprob", "update")},
            "bf16": cfg.optim.bf16, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def mean_after_first(v: list[float]) -> float:
    return sum(v[1:]) / len(v[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--child", choices=list(CASES))
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.steps < 2:
        ap.error("--steps must be at least 2 (the first step is not timed)")
    if args.child:
        print("RESULT " + json.dumps(run(args.child, args.steps, args.out)))
        return
    out = tempfile.mkdtemp(prefix="ppo_step_")
    rows = {}
    for which in CASES:
        p = subprocess.run([sys.executable, __file__, "--child", which, "--steps", str(args.steps), "--out", out],
                           capture_output=True, text=True)
        line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
        if p.returncode != 0 or line is None:
            sys.exit(f"{which} failed:\n{p.stderr[-3000:]}")
        rows[which] = json.loads(line[7:])
    print(f"SmolLM2-135M-Instruct PPO, {args.steps} steps (first not timed), {PROMPTS_PER_STEP} responses a step, "
          f"postlab ppo's defaults, gold-rater reward, bf16={rows['full']['bf16']}")
    print("| policy | s/step | sample | logprob | update | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for which, r in rows.items():
        ph = {k: mean_after_first(v) for k, v in r["phases"].items()}
        print(f"| {which} | {mean_after_first(r['step_s']):.2f} | {ph['sample']:.2f} | {ph['logprob']:.2f} | "
              f"{ph['update']:.2f} | {r['peak_rss_mb']:.0f} |")
    s = {w: mean_after_first(r["step_s"]) for w, r in rows.items()}
    print(f"ppo step full / lora: {s['full'] / s['lora']:.2f}")
    print(f"ppo step full / shared value head: {s['full'] / s['shared']:.2f}")
    print(f"ppo step full / lora + shared value head: {s['full'] / s['lora + shared']:.2f}")


if __name__ == "__main__":
    main()
