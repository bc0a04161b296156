"""postlab GRPO against TRL's GRPOTrainer on SmolLM2-135M-Instruct, side by side in one run.

Same model, same prompts (the first 2·steps items of the spec suite's train split), group size 8,
16 completions per step (2 prompts), at most 64 new tokens, temperature 1 over the full vocabulary,
the same reward (the gold rater), KL coefficient 0.04 against a frozen reference copy, the GRPO loss
(per-response token mean, then mean over responses), one update per batch, lr 1e-5, bf16 autocast
over fp32 weights (`--fp32`: fp32 throughout, for a machine without fast bf16), dropout off, no gradient
checkpointing, for the same number of steps. `--lora`: both train LoRA adapters (r 16, α 32, dropout 0, on
every attention and MLP projection) at lr 1e-4, each with the adapters-off base as its reference (no copy). Each
trainer runs in its own subprocess, so peak resident memory (ru_maxrss) is its own.

TRL is a benchmark-only dependency: `pip install trl` (or `pip install -e '.[bench]'`).

    .venv/bin/python benchmarks/rl_vs_trl.py [--steps 4] [--fp32] [--lora]

Prints seconds per step (first step excluded: one-time setup), completion tokens/s, mean reward of
the first and second half of the steps, and peak RSS for each; the last line is
`grpo speedup vs trl: X.XX` (TRL's seconds per step over postlab's).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

MODEL = "smollm2-135m-instruct"
K, PROMPTS_PER_STEP, MAX_NEW, LR, BETA = 8, 2, 64, 1e-5, 0.04


BF16 = "--fp32" not in sys.argv  # both trainers alike
LORA = "--lora" in sys.argv
LORA_R, LORA_ALPHA, LORA_LR = 16, 32, 1e-4
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _items(steps: int):
    from postlab.tasks.suite import load_suite

    return load_suite("spec", split="train", limit=PROMPTS_PER_STEP * steps)


def run_postlab(steps: int, out: str) -> dict:
    from postlab.train.grpo import GRPOConfig, train
    from postlab.tasks.suite import write_suite

    suite = os.path.join(out, "prompts.jsonl")
    write_suite(_items(steps), suite)
    cfg = GRPOConfig(model=MODEL, out_dir=os.path.join(out, "postlab"), suite=suite, k=K,
                     prompts_per_step=PROMPTS_PER_STEP, steps=steps, kl_coef=BETA, reward={"source": "gold"},
                     sampling={"temperature": 1.0, "max_new_tokens": MAX_NEW, "seed": 0},
                     optim={"lr": LORA_LR if LORA else LR, "bf16": BF16, "micro_batch_size": 16},
                     lora={"enabled": LORA, "r": LORA_R, "alpha": LORA_ALPHA, "target_modules": LORA_TARGETS},
                     checkpoint={"progress": False, "save_every": 0})
    train(cfg)
    rows = [json.loads(x) for x in open(os.path.join(out, "postlab", "metrics.jsonl")) if x.strip()]
    rows = [r for r in rows if "reward" in r]
    return {"step_s": [r["time/step_s"] for r in rows], "tokens": [r["completions/mean_length"] * K * PROMPTS_PER_STEP for r in rows],
            "reward": [r["reward"] for r in rows],
            "phases": {ph: [r[f"time/{ph}_s"] for r in rows] for ph in ("sample", "logprob", "update")}}


def run_trl(steps: int, out: str) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from postlab.models.load import load_tokenizer, resolve_model
    from postlab.raters.gold import GoldRater

    items = _items(steps)
    by_id = {it.id: it for it in items}
    gold = GoldRater()

    def gold_reward(prompts, completions, item_id, **kwargs):
        return [gold.score(by_id[i], c[-1]["content"] if isinstance(c, list) else c) for i, c in zip(item_id, completions)]

    data = Dataset.from_list([{"prompt": it.messages, "item_id": it.id} for it in items])
    tok = load_tokenizer(MODEL)
    model = AutoModelForCausalLM.from_pretrained(resolve_model(MODEL), dtype=torch.float32)
    args = GRPOConfig(output_dir=os.path.join(out, "trl"), per_device_train_batch_size=K * PROMPTS_PER_STEP,
                      num_generations=K, max_completion_length=MAX_NEW, temperature=1.0, top_k=0, top_p=1.0,
                      beta=BETA, loss_type="grpo", scale_rewards="group", epsilon=0.2, num_iterations=1,
                      learning_rate=LORA_LR if LORA else LR, adam_epsilon=1e-5, lr_scheduler_type="constant", max_steps=steps,
                      bf16=BF16, use_cpu=True, gradient_checkpointing=False, disable_dropout=True,
                      logging_steps=1, report_to=[], save_strategy="no", seed=0, dataloader_num_workers=0)
    marks: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **kw):
            marks.append(time.perf_counter())

        def on_step_end(self, *a, **kw):
            marks[-1] = time.perf_counter() - marks[-1]

    peft_config = None
    if LORA:
        from peft import LoraConfig

        peft_config = LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=0.0, target_modules=LORA_TARGETS,
                                 task_type="CAUSAL_LM")
    trainer = GRPOTrainer(model=model, reward_funcs=gold_reward, args=args, train_dataset=data,
                          processing_class=tok, callbacks=[Timer()], peft_config=peft_config)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "reward" in h]
    return {"step_s": marks, "tokens": [h["completions/mean_length"] * K * PROMPTS_PER_STEP for h in logs],
            "reward": [h["reward"] for h in logs]}


def child(which: str, steps: int, out: str) -> None:
    from postlab.utils.memory import keep_freed_memory

    keep_freed_memory()  # as the postlab CLI does; applies to both
    result = (run_postlab if which == "postlab" else run_trl)(steps, out)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


def summarize(name: str, r: dict) -> dict:
    s, tokens, rew = r["step_s"][1:], r["tokens"][1:], r["reward"]
    half = len(rew) // 2
    return {"name": name, "s_per_step": sum(s) / len(s), "tok_s": sum(tokens) / sum(s),
            "reward_first": sum(rew[:half]) / max(half, 1), "reward_second": sum(rew[half:]) / max(len(rew) - half, 1),
            "peak_rss_mb": r["peak_rss_mb"],
            "phases": {ph: sum(v[1:]) / len(v[1:]) for ph, v in r.get("phases", {}).items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--child", choices=["postlab", "trl"])
    ap.add_argument("--out")
    ap.add_argument("--fp32", action="store_true", help="fp32 for both trainers instead of bf16 autocast")
    ap.add_argument("--lora", action="store_true", help="both trainers train LoRA adapters (reference: adapters off)")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.steps, args.out)
        return
    out = tempfile.mkdtemp(prefix="rl_vs_trl_")
    rows = []
    for which in ("trl", "postlab"):
        p = subprocess.run([sys.executable, __file__, "--child", which, "--steps", str(args.steps), "--out", out,
                            *(["--fp32"] if args.fp32 else []), *(["--lora"] if args.lora else [])],
                           capture_output=True, text=True)
        line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
        if p.returncode != 0 or line is None:
            sys.exit(f"{which} failed:\n{p.stderr[-3000:]}")
        rows.append(summarize(which, json.loads(line[7:])))
    print(f"SmolLM2-135M-Instruct GRPO, {args.steps} steps, {K * PROMPTS_PER_STEP} completions/step (k={K}), "
          f"max {MAX_NEW} new tokens, {'fp32' if args.fp32 else 'bf16 autocast'}, gold-rater reward"
          + (f", LoRA r={LORA_R} (reference: adapters off)" if args.lora else ", full fine-tuning"))
    print("| trainer | s/step | completion tok/s | reward 1st half | reward 2nd half | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['s_per_step']:.2f} | {r['tok_s']:.1f} | {r['reward_first']:.3f} | "
              f"{r['reward_second']:.3f} | {r['peak_rss_mb']:.0f} |")
    trl, ours = rows
    print("postlab's step: " + ", ".join(f"{ph} {v:.2f} s" for ph, v in ours["phases"].items())
          + " (sample = generation + reward; logprob = reference forward; update = forward, backward, optimizer)")
    print(f"peak memory postlab / trl: {ours['peak_rss_mb'] / trl['peak_rss_mb']:.2f}")
    print(f"grpo speedup vs trl: {trl['s_per_step'] / ours['s_per_step']:.2f}")


if __name__ == "__main__":
    main()
