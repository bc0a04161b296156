"""SFT training throughput and model FLOP utilisation (MFU) of SmolLM2-135M-Instruct on this CPU.

Runs postlab's real training step (``postlab.train.loop.train_loop``) for four cases -- full
fine-tuning and LoRA, each in fp32 and bf16 autocast -- and compares the achieved model FLOP/s with
this machine's matmul peak, measured in the same run (fp32 cases vs the fp32 peak, bf16 vs bf16).

    .venv/bin/python benchmarks/sft_throughput.py [--steps 8] [--batch-size 4] [--seq-len 512]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
from postlab.utils.memory import keep_freed_memory

MODEL = "smollm2-135m-instruct"
CASES = [  # (name, lora, bf16, torch.compile)
    ("full FT fp32", False, False, False),
    ("full FT bf16 autocast", False, True, False),
    ("full FT bf16 autocast + compile", False, True, True),
    ("LoRA fp32", True, False, False),
    ("LoRA bf16 autocast", True, True, False),
]


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds used by the whole machine, by this process) so far -- to see other tenants' load."""
    fields = list(map(int, open("/proc/stat").readline().split()[1:]))
    busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    r = resource.getrusage(resource.RUSAGE_SELF)
    return busy, r.ru_utime + r.ru_stime


def mark() -> tuple[float, float, float]:
    return (time.perf_counter(), *cpu_seconds())


def other_cores(start, end) -> float:
    """Average number of cores kept busy by *other* processes between two marks."""
    return max(0.0, (end[1] - start[1]) - (end[2] - start[2])) / (end[0] - start[0])


class OtherLoad:
    """Context manager: ``.cores`` = other processes' average load while the block ran."""

    def __enter__(self):
        self.start = mark()
        return self

    def __exit__(self, *exc):
        self.cores = other_cores(self.start, mark())


def wait_idle(max_wait: float) -> None:
    """On a shared machine, wait (up to max_wait s) until other processes use < 0.15 core for 2 s."""
    deadline = time.perf_counter() + max_wait
    while time.perf_counter() < deadline:
        with OtherLoad() as load:
            time.sleep(2)
        if load.cores < 0.15:
            return


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


def flops_per_token(n_matmul: int, cfg, seq_len: int, lora_params: int = 0) -> float:
    """Model FLOPs per token of one training step (forward + backward), PaLM appendix B style.

    Full FT: 6N (2N forward, 2N activation grads, 2N weight grads) + 12 L d T for attention
    (QK^T and AV: 4 L d T forward, twice that backward; no weights there, so no weight grads).
    LoRA: the frozen weights need no weight gradients -> 4N + 12 L d T, plus 6 x (adapter params)
    for the adapters themselves (~4% here, small but counted).
    """
    attn = 12 * cfg.num_hidden_layers * cfg.hidden_size * seq_len
    if lora_params:
        return 4 * n_matmul + attn + 6 * lora_params
    return 6 * n_matmul + attn


def run_case(lora: bool, bf16: bool, compile_model: bool, args) -> tuple[float, list[float], float, float]:
    """(median tokens/s over the post-warmup steps, all per-step tokens/s, model FLOPs per token,
    other processes' load in cores during the timed steps)."""
    model, tok = load_model_and_tokenizer(MODEL)
    n_matmul = matmul_params(model)  # before peft adds its own (adapter) Linear layers
    if lora:
        model = apply_lora(model, LoraConfig(enabled=True), seed=0)
        adapters = sum(p.numel() for p in model.parameters() if p.requires_grad)
        fpt = flops_per_token(n_matmul, model.config, args.seq_len, lora_params=adapters)
    else:
        fpt = flops_per_token(n_matmul, model.config, args.seq_len)
    # Random full-length sequences: every token is a target, no padding.
    g = torch.Generator().manual_seed(0)
    n_ex = args.steps * args.batch_size
    ids = torch.randint(0, model.config.vocab_size, (n_ex, args.seq_len), generator=g)
    examples = [{"input_ids": row.tolist()} for row in ids]
    run_dir = Path(tempfile.mkdtemp(prefix="sft_throughput_"))
    marks = [mark()]  # marks[k]: after optimizer step k (via the loop's per-step callback)
    try:
        train_loop(
            model=model, examples=examples, eval_examples=[], pad_id=tok.pad_token_id,
            optim=OptimConfig(lr=1e-5, batch_size=args.batch_size, grad_accum=1, max_steps=args.steps, bf16=bf16,
                              compile=compile_model),
            ckpt=CheckpointConfig(progress=False, save_every=0, keep_last=1),  # only the final save, untimed
            run_dir=run_dir, callbacks=[lambda state, metrics: marks.append(mark())],
        )
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        tps = [json.loads(ln)["tokens_per_s"] for ln in lines if ln.strip()]
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)  # a full-FT checkpoint is ~1.6 GB
    timed = tps[args.warmup_steps:]  # first steps: oneDNN kernel setup and glibc heap growth
    return statistics.median(timed), tps, fpt, other_cores(marks[args.warmup_steps], marks[-1])


def main() -> None:
    keep_freed_memory()  # as the postlab CLI does (postlab/utils/memory.py)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8, help="optimizer steps per case (incl. warmup steps)")
    ap.add_argument("--batch-size", type=int, default=4, help="sequences per step")
    ap.add_argument("--seq-len", type=int, default=512, help="tokens per sequence")
    ap.add_argument("--warmup-steps", type=int, default=2, help="leading steps left out of the median")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch intra-op threads")
    ap.add_argument("--wait-idle", type=float, default=60.0,
                    help="before each measurement wait up to this many seconds for other processes to go idle")
    args = ap.parse_args()
    if args.steps <= args.warmup_steps:
        ap.error("--steps must exceed --warmup-steps")
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    log(f"torch {torch.__version__}, {torch.get_num_threads()} threads; B={args.batch_size} T={args.seq_len} "
        f"steps={args.steps} (first {args.warmup_steps} discarded)")

    def peaks() -> dict[str, dict[int, float]]:
        wait_idle(args.wait_idle)
        with OtherLoad() as load:
            out = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
        log(f"matmul GFLOP/s {({k: {n: round(v) for n, v in d.items()} for k, d in out.items()})} "
            f"(other processes: {load.cores:.2f} cores)")
        return out

    # Peaks before and after the training cases (shared machine): keep the higher, so MFU is not flattered.
    before = peaks()
    results = []
    for name, lora, bf16, compile_model in CASES:
        wait_idle(args.wait_idle)
        t0 = time.perf_counter()
        med, tps, fpt, load = run_case(lora, bf16, compile_model, args)
        results.append((name, bf16, med, fpt, load))
        log(f"{name}: tokens/s per step {[round(x) for x in tps]} -> median {med:.0f} ({fpt / 1e6:.0f} MFLOP/token; "
            f"{time.perf_counter() - t0:.0f} s incl. load and final checkpoint; other processes: {load:.2f} cores)")
    after = peaks()
    peak = {k: max(*before[k].values(), *after[k].values()) for k in before}

    print()
    print(f"Matmul peak (torch.matmul, n in {sorted(before['fp32'])}, best of before/after the cases, "
          f"{args.threads} threads): fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s")
    print()
    print(f"SmolLM2-135M-Instruct, postlab train_loop, batch {args.batch_size} x seq {args.seq_len}, "
          f"median tokens/s of steps {args.warmup_steps + 1}-{args.steps}:")
    print()
    print("| case | tokens/s | achieved GFLOP/s | MFU % |")
    print("|---|---:|---:|---:|")
    mfu = {}
    for name, bf16, med, fpt, _ in results:
        gflops = med * fpt / 1e9
        mfu[name] = 100 * gflops / peak["bf16" if bf16 else "fp32"]
        print(f"| {name} | {med:.0f} | {gflops:.0f} | {mfu[name]:.1f} |")
    print()
    print("Model FLOPs/token: full FT 6N + 12LdT; LoRA 4N + 12LdT + 6 x adapter params "
          f"(full FT {results[0][3] / 1e6:.0f}M, LoRA {results[-1][3] / 1e6:.0f}M).")
    busy = [f"{n} {c:.2f}" for n, _, _, _, c in results if c > 0.15]
    print("Other processes' CPU during the timed steps (cores): "
          + (", ".join(busy) + " -- figures disturbed, rerun when idle" if busy else "none above 0.15 (clean run)"))
    print(f"Total time {time.perf_counter() - t_start:.0f} s.")
    print(f"bf16 full fine-tuning MFU (eager): {mfu['full FT bf16 autocast']:.1f}% of measured bf16 peak")
    print(f"bf16 full fine-tuning MFU: {mfu['full FT bf16 autocast + compile']:.1f}% of measured bf16 peak (optim.compile=true)")


if __name__ == "__main__":
    main()
