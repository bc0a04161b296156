"""Rescoring one draw with several proxy reward models: each on its own against the bottom layers they share run
once per batch (`postlab.raters.reward_model.score_together`, what `postlab overopt` does for its later proxies).

Proxies of SmolLM2-135M's architecture with random weights (speed does not depend on them), sharing everything but
their top `--top` layers and head, as proxies trained from one policy with `rm_trainable_layers` do; `--texts`
responses of ~60 words to short prompts; bf16 autocast where `--bf16`. The two ways alternate `--reps` times and
the best time of each is kept; the scores are checked to be the same bit for bit.

    .venv/bin/python benchmarks/rescore_shared.py [--proxies 2] [--top 4] [--texts 256] [--bf16] [--reps 2]

Prints seconds per way and `rescore shared / separate` (below 1: sharing is faster).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import torch


def proxies(n: int, top: int, root: Path) -> list[str]:
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from postlab.models.load import load_tokenizer

    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                      num_attention_heads=9, num_key_value_heads=3, head_dim=64, tie_word_embeddings=True,
                      rms_norm_eps=1e-5, max_position_embeddings=2048, num_labels=1)
    tok = load_tokenizer("smollm2-135m-instruct")
    cfg.pad_token_id = tok.pad_token_id
    torch.manual_seed(0)
    base = LlamaForSequenceClassification(cfg).eval()
    dirs = []
    for i in range(n):
        with torch.no_grad():
            for layer in base.model.layers[-top:]:
                for p in layer.parameters():
                    p.add_(0.01 * torch.randn_like(p))
            base.score.weight.add_(0.1 * torch.randn_like(base.score.weight))
        d = root / f"proxy{i}"
        base.save_pretrained(d)
        tok.save_pretrained(d)
        dirs.append(str(d))
    return dirs


def main() -> None:
    from postlab.raters.reward_model import RewardModelRater, score_together

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--proxies", type=int, default=2)
    ap.add_argument("--top", type=int, default=4)
    ap.add_argument("--texts", type=int, default=256)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args()
    rng = random.Random(0)
    words = "the a model answer check kind time people water city number small large first last".split()
    prompts = [[{"role": "user", "content": f"Question {i}: " + " ".join(rng.choices(words, k=12))}]
               for i in range(a.texts)]
    texts = [" ".join(rng.choices(words, k=rng.randint(30, 90))) for _ in range(a.texts)]
    with tempfile.TemporaryDirectory() as tmp:
        raters = [RewardModelRater(d, bf16=a.bf16) for d in proxies(a.proxies, a.top, Path(tmp))]
        times: dict[str, list[float]] = {"separate": [], "shared": []}
        for _ in range(a.reps):
            t = time.perf_counter()
            separate = [r.score_texts(prompts, texts) for r in raters]
            times["separate"].append(time.perf_counter() - t)
            t = time.perf_counter()
            shared = score_together(raters, prompts, texts)
            times["shared"].append(time.perf_counter() - t)
            assert shared == separate, "the shared bottom changed the scores"
    best = {k: min(v) for k, v in times.items()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {a.proxies} proxies of SmolLM2-135M's shape "
          f"differing in their top {a.top} layers; {a.texts} responses; {'bf16 autocast' if a.bf16 else 'fp32'}")
    for k, v in best.items():
        print(f"{k:9s} {v:7.2f} s")
    print(f"rescore shared / separate: {best['shared'] / best['separate']:.2f}")


if __name__ == "__main__":
    main()
