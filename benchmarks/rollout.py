"""Rollout engine vs transformers' generate on SmolLM2-135M-Instruct, measured side by side in one run.

Sampling at temperature 1 over the full vocabulary (generate's default top_k=50 is switched off so
both sample the same distribution), EOS disabled so both produce exactly max_new_tokens per row.
Prints completion tokens/s of both and the ratio; the last line is the bf16, batch 16, 64-token case.

    .venv/bin/python benchmarks/rollout.py [--batches 16,64] [--tokens 64,128] [--dtypes fp32,bf16] [--reps 2]
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import resources

import torch
from transformers import GenerationConfig
from transformers.utils import logging as hf_logging

from postlab.models.load import load_model_and_tokenizer
from postlab.rollout import SamplingParams, TorchEngine
from postlab.utils.memory import keep_freed_memory

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def prompts(n: int) -> list[list[dict]]:
    path = resources.files("postlab") / "assets" / "demos.jsonl"
    users = [json.loads(line)["messages"][:1] for line in path.read_text().splitlines()]
    return [users[i % len(users)] for i in range(n)]


def time_best(fn, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    keep_freed_memory()  # as the postlab CLI does; applies to both engines
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="16,64")
    ap.add_argument("--tokens", default="64,128")
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| dtype | batch | new tokens | generate tok/s | postlab tok/s | speedup |")
    print("|---|---|---|---|---|---|")
    headline = None
    for dname in args.dtypes.split(","):
        model, tok = load_model_and_tokenizer("smollm2-135m-instruct", dtype=DTYPES[dname])
        model.eval()
        engine = TorchEngine(model=model, tokenizer=tok)
        for B in map(int, args.batches.split(",")):
            convs = prompts(B)
            enc_rows = engine.encode_prompts(convs)
            tok.padding_side = "left"
            texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in convs]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            for R in map(int, args.tokens.split(",")):
                gen_cfg = GenerationConfig(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=R,
                                           min_new_tokens=R, eos_token_id=None, pad_token_id=tok.pad_token_id)
                params = SamplingParams(temperature=1.0, max_new_tokens=R, seed=0, stop_at_eos=False)

                def run_generate():
                    with torch.inference_mode():
                        out = model.generate(**enc, generation_config=gen_cfg)
                    assert out.shape[1] - enc["input_ids"].shape[1] == R

                def run_postlab():
                    r = engine.generate_ids(enc_rows, params)
                    assert int(r.response_mask.sum()) == B * R

                run_postlab()  # warm-up (allocator, any compilation) outside the timing
                t_gen = time_best(run_generate, args.reps)
                t_ours = time_best(run_postlab, args.reps)
                speedup = t_gen / t_ours
                print(f"| {dname} | {B} | {R} | {B * R / t_gen:.0f} | {B * R / t_ours:.0f} | {speedup:.2f} |", flush=True)
                if (dname, B, R) == ("bf16", 16, 64):
                    headline = speedup
    if headline is not None:
        print(f"rollout speedup vs generate: {headline:.2f}")


if __name__ == "__main__":
    main()
