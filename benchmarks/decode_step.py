"""One decode step of the lean Llama path (`postlab.rollout.llama_decode`), by dtype, batch and weight layout.

A randomly initialised model of SmolLM2-135M's architecture (speed does not depend on the weights); the KV
cache filled to 100 positions (those steps are the warm-up); the median of the next 40 steps. For fp32 and bf16 and each batch:
the weights pre-packed for oneDNN (what the engine uses on a CPU) against plain `x @ W.T` (BLAS), each
built for that batch (`batch_hint`). Which is faster depends on the CPU and the batch, which is what
this measures: the engine's choices (packed weights; `bf16=auto` from a large matmul) are made elsewhere.

    .venv/bin/python benchmarks/decode_step.py [--batches 1,4,16,64] [--dtypes fp32,bf16]

Prints ms per step and, per dtype and batch, `plain / packed` (below 1: plain is faster), then
`bf16 / fp32` per batch with the faster layout of each.
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def smollm2_135m():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                      num_attention_heads=9, num_key_value_heads=3, head_dim=64, tie_word_embeddings=True,
                      rms_norm_eps=1e-5, max_position_embeddings=2048)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


@contextmanager
def without_onednn():
    """DecodeWeights built inside lay weights out plainly (it packs only when oneDNN is available)."""
    available = torch.backends.mkldnn.is_available
    torch.backends.mkldnn.is_available = lambda: False
    try:
        yield
    finally:
        torch.backends.mkldnn.is_available = available


def step_ms(weights, batch: int, filled: int = 100, steps: int = 40) -> float:
    from postlab.rollout.llama_decode import LlamaDecoder

    dec = LlamaDecoder(weights, batch=batch, max_len=filled + steps + 1)
    tokens, mask = torch.full((batch,), 5), torch.ones(batch, filled + steps + 1, dtype=torch.bool)
    times = []
    with torch.inference_mode():
        for s in range(filled + steps):
            t = time.perf_counter()
            dec.step(tokens, torch.full((batch,), s), s, mask[:, : s + 1])
            if s >= filled:  # the first `filled` steps fill the cache and warm up
                times.append(time.perf_counter() - t)
    return 1e3 * sorted(times)[len(times) // 2]


def main() -> None:
    from postlab.rollout.llama_decode import DecodeWeights

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="1,4,16,64")
    ap.add_argument("--dtypes", default="fp32,bf16")
    a = ap.parse_args()
    model = smollm2_135m()
    batches, dtypes = [int(b) for b in a.batches.split(",")], a.dtypes.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; SmolLM2-135M architecture, ms per decode step")
    print("| dtype | batch | packed (oneDNN) | plain (x @ W.T) | plain / packed |")
    print("|---|---|---|---|---|")
    best: dict[tuple[str, int], float] = {}
    for name in dtypes:
        for b in batches:
            packed = step_ms(DecodeWeights(model, batch_hint=b, dtype=DTYPES[name]), b)
            with without_onednn():
                plain_weights = DecodeWeights(model, batch_hint=b, dtype=DTYPES[name])
            plain = step_ms(plain_weights, b)
            best[name, b] = min(packed, plain)
            print(f"| {name} | {b} | {packed:.1f} | {plain:.1f} | {plain / packed:.2f} |", flush=True)
    if {"fp32", "bf16"} <= set(dtypes):
        for b in batches:
            print(f"decode step bf16 / fp32 at batch {b} (faster layout of each): {best['bf16', b] / best['fp32', b]:.2f}")


if __name__ == "__main__":
    main()
