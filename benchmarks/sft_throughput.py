"""SFT training throughput and model FLOP utilisation (MFU) of SmolLM2-135M-Instruct on this CPU.

Runs postlab's real training step (``postlab.train.loop.train_loop``) for four cases -- full
fine-tuning and LoRA, each in fp32 and bf16 autocast -- and compares the achieved model FLOP/s with
this machine's matmul peak, measured in the same run (fp32 cases vs the fp32 peak, bf16 vs bf16).

    .venv/bin/python benchmarks/sft_throughput.py [--steps 5] [--batch-size 4] [--seq-len 512]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from postlab.models.load import load_model_and_tokenizer
from postlab.models.prepare import apply_lora
from postlab.train.common import CheckpointConfig, LoraConfig, OptimConfig
from postlab.train.loop import train_loop

MODEL = "smollm2-135m-instruct"
CASES = [  # (name, lora, bf16)
    ("full FT fp32", False, False),
    ("full FT bf16 autocast", False, True),
    ("LoRA fp32", True, False),
    ("LoRA bf16 autocast", True, True),
]


def matmul_peak(dtype: torch.dtype, sizes=(2048, 4096), warmup: int = 2, seconds: float = 2.0) -> dict[int, float]:
    """GFLOP/s of torch.matmul on n x n matrices, per size (2 n^3 FLOPs per product)."""
    out = {}
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        for _ in range(warmup):
            torch.matmul(a, b)
        reps, t0 = 0, time.perf_counter()
        while reps < 3 or time.perf_counter() - t0 < seconds:  # at least 3 reps, about `seconds` long
            torch.matmul(a, b)
            reps += 1
        out[n] = 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9
    return out


def matmul_params(model) -> int:
    """Parameters that take part in matmuls: every nn.Linear weight, counted per module -- so the lm_head,
    tied to the embedding, counts once more (it is a real matmul); the embedding lookup is not a matmul."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def flops_per_token(model, seq_len: int, lora: bool, trainable: int) -> float:
    """Model FLOPs per token of one training step (forward + backward), PaLM appendix B style.

    Full FT: 6N (2N forward, 2N activation grads, 2N weight grads) + 12 L d T for attention
    (QK^T and AV: 4 L d T forward, twice that backward; no weights there, so no weight grads).
    LoRA: the frozen weights need no weight gradients -> 4N + 12 L d T, plus 6 x (adapter params)
    for the adapters themselves (~4% here, not quite negligible, so counted).
    """
    cfg = model.config
    L, d = cfg.num_hidden_layers, cfg.hidden_size
    attn = 12 * L * d * seq_len
    if lora:
        return 4 * matmul_params(model) + attn + 6 * trainable
    return 6 * matmul_params(model) + attn


def run_case(lora: bool, bf16: bool, args) -> tuple[float, list[float], float]:
    """(median tokens/s over the post-warmup steps, all per-step tokens/s, model FLOPs per token)."""
    model, tok = load_model_and_tokenizer(MODEL)
    fpt_base = model  # count matmul params on the plain model (peft wraps Linear layers)
    if lora:
        model = apply_lora(model, LoraConfig(enabled=True), seed=0)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    fpt = flops_per_token(fpt_base, args.seq_len, lora, trainable)
    # Random full-length sequences: every token is a target, no padding.
    g = torch.Generator().manual_seed(0)
    n_ex = args.steps * args.batch_size
    ids = torch.randint(0, model.config.vocab_size, (n_ex, args.seq_len), generator=g)
    examples = [{"input_ids": row.tolist()} for row in ids]
    run_dir = Path(tempfile.mkdtemp(prefix="sft_throughput_"))
    try:
        train_loop(
            model=model, examples=examples, eval_examples=[], pad_id=tok.pad_token_id,
            optim=OptimConfig(lr=1e-5, batch_size=args.batch_size, grad_accum=1, max_steps=args.steps, bf16=bf16),
            ckpt=CheckpointConfig(progress=False, save_every=0, keep_last=1),  # only the final save, untimed
            run_dir=run_dir,
        )
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        tps = [json.loads(ln)["tokens_per_s"] for ln in lines if ln.strip()]
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)  # a full-FT checkpoint is ~1.6 GB
    timed = tps[args.warmup_steps:]  # first step(s): allocator / oneDNN warmup
    return statistics.median(timed), tps, fpt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5, help="optimizer steps per case (incl. warmup steps)")
    ap.add_argument("--batch-size", type=int, default=4, help="sequences per step")
    ap.add_argument("--seq-len", type=int, default=512, help="tokens per sequence")
    ap.add_argument("--warmup-steps", type=int, default=1, help="leading steps left out of the median")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads")
    args = ap.parse_args()
    if args.steps <= args.warmup_steps:
        ap.error("--steps must exceed --warmup-steps")
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; B={args.batch_size} T={args.seq_len} "
          f"steps={args.steps} (first {args.warmup_steps} discarded)", file=sys.stderr)

    # Peaks before and after the training cases (shared machine): keep the higher, so MFU is not flattered.
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"matmul GFLOP/s (before): {peaks}", file=sys.stderr)

    results = []
    for name, lora, bf16 in CASES:
        t0 = time.perf_counter()
        med, tps, fpt = run_case(lora, bf16, args)
        results.append((name, bf16, med, fpt))
        print(f"{name}: tokens/s per step {[round(x) for x in tps]} -> median {med:.0f} "
              f"({fpt / 1e6:.0f} MFLOP/token; case took {time.perf_counter() - t0:.0f} s)", file=sys.stderr)

    after = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"matmul GFLOP/s (after): {after}", file=sys.stderr)
    peak = {k: max(*peaks[k].values(), *after[k].values()) for k in peaks}

    print()
    print(f"Matmul peak (best of n={sorted(peaks['fp32'])}, before/after): "
          f"fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s")
    print()
    print(f"SmolLM2-135M-Instruct, postlab train_loop, batch {args.batch_size} x seq {args.seq_len}, "
          f"median of steps {args.warmup_steps + 1}-{args.steps}:")
    print()
    print("| case | tokens/s | achieved GFLOP/s | MFU % |")
    print("|---|---:|---:|---:|")
    mfu = {}
    for name, bf16, med, fpt in results:
        gflops = med * fpt / 1e9
        mfu[name] = 100 * gflops / peak["bf16" if bf16 else "fp32"]
        print(f"| {name} | {med:.0f} | {gflops:.0f} | {mfu[name]:.1f} |")
    print()
    print(f"(total {time.perf_counter() - t_start:.0f} s)")
    print(f"bf16 full fine-tuning MFU: {mfu['full FT bf16 autocast']:.1f}% of measured bf16 peak")


if __name__ == "__main__":
    main()
