"""One decode step of the lean Llama path (`postlab.rollout.llama_decode`), by dtype, batch and weight layout.

A randomly initialised model of SmolLM2-135M's architecture (speed does not depend on the weights); the KV
cache filled to 100 positions (those steps are the warm-up); the median of the next 40 steps. For fp32 and bf16 and each batch:
the weights pre-packed for oneDNN (what the engine uses on a CPU) against plain `x @ W.T` (BLAS), each
built for that batch (`batch_hint`). Which is faster depends on the CPU and the batch, which is what
this measures. The engine packs for batches; `postlab serve` measures the one-row step both ways at start
(`TorchEngine.choose_single_row`) and `bf16=auto` is decided from a large matmul (`postlab.machine`).

    .venv/bin/python benchmarks/decode_step.py [--batches 1,4,16,64] [--dtypes fp32,bf16]

Prints ms per step and, per dtype and batch, `plain / packed` (below 1: plain is faster), then
`bf16 / fp32` per batch with the faster layout of each; then, at bf16, the step with the decode attention
as two matmuls (`llama_decode.one_query_attention`, the default on a CPU at bf16 from two rows up) against PyTorch's
`scaled_dot_product_attention`, side by side (`matmuls / sdpa` below 1: the matmuls are faster).
"""

from __future__ import annotations

import argparse

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def smollm2_135m():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                      num_attention_heads=9, num_key_value_heads=3, head_dim=64, tie_word_embeddings=True,
                      rms_norm_eps=1e-5, max_position_embeddings=2048)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


def main() -> None:
    from postlab.rollout.llama_decode import DecodeWeights, step_ms

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="1,4,16,64")
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--attention", type=int, default=1, help="also time bf16 steps with matmul attention against SDPA")
    ap.add_argument("--filled", default="100,400", help="KV columns filled before the attention comparison's steps")
    a = ap.parse_args()
    model = smollm2_135m()
    batches, dtypes = [int(b) for b in a.batches.split(",")], a.dtypes.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; SmolLM2-135M architecture, ms per decode step")
    print("| dtype | batch | packed (oneDNN) | plain (x @ W.T) | plain / packed |")
    print("|---|---|---|---|---|")
    best: dict[tuple[str, int], float] = {}
    for name in dtypes:
        for b in batches:
            packed = step_ms(DecodeWeights(model, batch_hint=b, dtype=DTYPES[name]), b, filled=100, steps=40)
            plain = step_ms(DecodeWeights(model, batch_hint=b, dtype=DTYPES[name], packed=False), b, filled=100, steps=40)
            best[name, b] = min(packed, plain)
            print(f"| {name} | {b} | {packed:.1f} | {plain:.1f} | {plain / packed:.2f} |", flush=True)
    if {"fp32", "bf16"} <= set(dtypes):
        for b in batches:
            print(f"decode step bf16 / fp32 at batch {b} (faster layout of each): {best['bf16', b] / best['fp32', b]:.2f}")
    if a.attention:
        print("\nbf16 packed, attention of the one query per row: two matmuls (the default on a CPU at bf16 from 2 rows) "
              "against scaled_dot_product_attention; KV filled to --filled, interleaved tries, the best of each")
        print("| batch | filled | matmuls ms | sdpa ms | matmuls / sdpa |")
        print("|---|---|---|---|---|")
        for b in batches:
            for filled in [int(f) for f in a.filled.split(",")]:
                w = DecodeWeights(model, batch_hint=b, dtype=torch.bfloat16)
                tries = {True: [], False: []}
                for _ in range(3):
                    for matmuls in (True, False):
                        w.matmul_attention_rows = 1 if matmuls else None
                        tries[matmuls].append(step_ms(w, b, filled=filled, steps=20))
                mm, sdpa = min(tries[True]), min(tries[False])
                print(f"| {b} | {filled} | {mm:.1f} | {sdpa:.1f} | {mm / sdpa:.2f} |", flush=True)


if __name__ == "__main__":
    main()
