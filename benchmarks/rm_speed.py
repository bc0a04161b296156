"""Reward-model training speed: full fine-tuning vs LoRA vs training only the top N layers on cached
hidden states (``postlab rm trainable_layers=N``), side by side in one run.

A random-weight model with SmolLM2-135M's architecture (Llama: hidden 576, 30 layers, 9 heads, 3 kv
heads, intermediate 1536, vocab 49152) and a scalar head; random pairs of full-length sequences (no
padding, every sequence distinct: the worst case for the cache); postlab's real ``train_loop`` and
reward objectives, ``--pairs`` pairs per optimizer step.

    .venv/bin/python benchmarks/rm_speed.py [--steps 3] [--pairs 8] [--seq-len 256] [--fp32]
"""

from __future__ import annotations

import argparse
import copy
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForSequenceClassification

from postlab.models.prepare import apply_lora, count_parameters
from postlab.train.common import CheckpointConfig, LoraConfig, OptimConfig
from postlab.train.loop import train_loop
from postlab.train.rm import CachedRewardObjective, LayerInputCache, RewardObjective, freeze_bottom, sequences
from postlab.utils.memory import keep_freed_memory
from sft_throughput import OtherLoad  # benchmarks/ is on sys.path when this script runs

SMOLLM2_135M = dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                    intermediate_size=1536, vocab_size=49152, max_position_embeddings=8192, rope_theta=100000.0,
                    rms_norm_eps=1e-5, tie_word_embeddings=True)
PAD = 0
CASES = [("full FT", "full", 0), ("LoRA r=16", "lora", 0), ("top-4 + cache", "top", 4), ("top-2 + cache", "top", 2)]


def random_pairs(n: int, seq_len: int, vocab: int) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, vocab, (2 * n, seq_len), generator=g).tolist()  # 1..vocab-1: never the pad id
    return [{"chosen_ids": ids[2 * i], "rejected_ids": ids[2 * i + 1], "margin": 0.0, "gold_margin": float("nan")}
            for i in range(n)]


def run_case(base, mode: str, n_top: int, args) -> dict:
    """Seconds per optimizer step (steps after the first), and for the cached cases the one-off
    seconds per sequence spent filling the cache."""
    model = copy.deepcopy(base)
    examples = random_pairs(args.steps * args.pairs, args.seq_len, model.config.vocab_size)
    objective, cache_s = RewardObjective(PAD), 0.0
    if mode == "lora":
        model = apply_lora(model, LoraConfig(enabled=True), seed=0, task_type="SEQ_CLS")
    if mode == "top":
        start = freeze_bottom(model, n_top)
        t0 = time.perf_counter()
        cache = LayerInputCache(model=model, sequences=sequences(examples), start=start, pad_id=PAD,
                                batch_size=2 * args.pairs, bf16=not args.fp32)
        cache_s = (time.perf_counter() - t0) / cache.num_sequences
        objective = CachedRewardObjective(pad_id=PAD, cache=cache)
    trainable, _ = count_parameters(model)
    ends: list[float] = []
    run_dir = Path(tempfile.mkdtemp(prefix="rm_speed_"))
    try:
        with OtherLoad() as load:
            t0 = time.perf_counter()
            train_loop(model=model, examples=examples, eval_examples=[], objective=objective,
                       optim=OptimConfig(lr=1e-5, batch_size=args.pairs, max_steps=args.steps, bf16=not args.fp32),
                       ckpt=CheckpointConfig(progress=False, keep_last=1), run_dir=run_dir,
                       callbacks=[lambda state, metrics: ends.append(time.perf_counter())])
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    steps = [b - a for a, b in zip([t0, *ends], ends)]
    return {"step_s": statistics.mean(steps[1:]), "steps": steps, "cache_s": cache_s, "trainable": trainable,
            "other_cores": load.cores}


def main() -> None:
    keep_freed_memory()  # as the postlab CLI does
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3, help="optimizer steps per case; the first is left out")
    ap.add_argument("--pairs", type=int, default=8, help="pairs per optimizer step")
    ap.add_argument("--seq-len", type=int, default=256, help="tokens per sequence")
    ap.add_argument("--fp32", action="store_true", help="fp32 instead of bf16 autocast (the RM default)")
    args = ap.parse_args()
    if args.steps < 2:
        ap.error("--steps must be at least 2")
    t_start = time.perf_counter()
    torch.manual_seed(0)
    base = LlamaForSequenceClassification(LlamaConfig(**SMOLLM2_135M, num_labels=1, pad_token_id=PAD))
    dtype = "fp32" if args.fp32 else "bf16 autocast"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; SmolLM2-135M shape, random weights; "
          f"{args.pairs} pairs x {args.seq_len} tokens per step, {dtype}", file=sys.stderr)
    results = {}
    for name, mode, n_top in CASES:
        results[name] = r = run_case(base, mode, n_top, args)
        print(f"{name}: steps {[round(s, 2) for s in r['steps']]} s, cache {r['cache_s']:.3f} s/sequence, "
              f"other processes {r['other_cores']:.2f} cores", file=sys.stderr, flush=True)

    full = results["full FT"]["step_s"]
    # One epoch in which every sequence is new (the worst case) pays the cache once per sequence:
    print(f"\n| case ({dtype}) | trained params | s/step | pairs/s | speed-up | cache s/seq | "
          f"first-epoch s/step | first-epoch speed-up | other procs (cores) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        first_epoch = r["step_s"] + 2 * args.pairs * r["cache_s"]
        print(f"| {name} | {r['trainable'] / 1e6:.1f}M | {r['step_s']:.2f} | {args.pairs / r['step_s']:.2f} | "
              f"{full / r['step_s']:.1f}x | {r['cache_s']:.3f} | {first_epoch:.2f} | {full / first_epoch:.1f}x | "
              f"{r['other_cores']:.2f} |")
    print(f"\nTotal time {time.perf_counter() - t_start:.0f} s.")


if __name__ == "__main__":
    main()
