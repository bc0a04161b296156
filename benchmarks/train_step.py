"""A training step's forward + backward on SmolLM2-135M's architecture: postlab's CPU training paths against the
model's own, side by side in one run, alternating step by step.

- **SFT** (`postlab.train.loop.LMObjective.loss`): conversations shaped like the default recipe's SFT data
  (`--prompt-share` of the tokens carry no loss: 0.58 in run f1's data, 89 tokens on average, right-padded in
  batches of 8). `full`: the model's own forward (the head at every position) and `causal_lm_loss`;
  `packed`: the head only where a target is predicted (`postlab.models.lm_head`); `packed + attention`: and
  the hand-written attention backward (`postlab.models.cpu_attention`, what `prepare_model` sets on a CPU).
- **RL log-probs** (`postlab.train.rl_common.response_logprobs` with a loss on them, as the GRPO/PPO update runs
  it: 16 left-padded rows of a 70-token prompt and a 64-token response): SDPA's attention against
  `cpu_attention`'s; and on a GRPO batch (8 responses of 40–64 tokens to each of 2 prompts) the plain pass
  against the prompts run once each (`postlab.train.shared_prompt`).

A randomly initialised model of SmolLM2-135M's shape (speed does not depend on the weights), bf16 autocast over
fp32 weights as the recipes train on a machine with fast bf16 (`--fp32` for fp32).

    .venv/bin/python benchmarks/train_step.py [--reps 6] [--fp32]
    .venv/bin/python benchmarks/train_step.py --attention [--reps 6] [--fp32]

Prints the median seconds per step of each, then `sft step full / packed + attention` and `rl logprob step
sdpa / attention` and `rl logprob step plain / shared prompt` (above 1: postlab's path is faster). `--attention` instead times one layer's attention forward
and backward (SmolLM2's 9 query and 3 key/value heads of 64, causal, ~2,150 tokens per batch) by sequence
length: PyTorch's flash kernel against `cpu_attention`'s backward, the measurement behind its `MAX_KEYS` (`--fp32`:
in fp32, as the recipes train on a machine without fast bf16).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from postlab.algos.lm import IGNORE_INDEX, causal_lm_loss
from postlab.data.collate import collate
from postlab.models import cpu_attention
from postlab.rollout.types import Rollout
from postlab.algos.lm import token_logprobs
from postlab.train.rl_common import response_logprobs
from postlab.train.shared_prompt import response_logits
from postlab.train.loop import LMObjective
from postlab.utils.memory import keep_freed_memory

from decode_step import smollm2_135m  # benchmarks/decode_step.py: a random model of SmolLM2-135M's shape


def sft_batches(n_batches: int, batch: int, mean_len: int, prompt_share: float):
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n_batches):
        examples = []
        for _ in range(batch):
            n = int(torch.randint(mean_len // 2, mean_len * 3 // 2, (1,), generator=g))
            ids = torch.randint(3, 49152, (n,), generator=g).tolist()
            p = int(n * prompt_share)
            examples.append({"input_ids": ids, "labels": [IGNORE_INDEX] * p + ids[p:]})
        out.append(collate(examples, 0))
    return out


def attention_by_length(reps: int, dtype: torch.dtype) -> None:
    import torch.nn.functional as F

    from postlab.models.cpu_attention import MAX_KEYS, _FlashForwardMathBackward

    print(f"one layer's attention forward + backward, {dtype}, median of {reps} (ms); postlab uses its own up to "
          f"{MAX_KEYS} keys")
    for T in (64, 96, 128, 134, 160, 176, 191, 192, 256, 384, 512):
        B = max(1, 2150 // T)
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(B, h, T, 64, generator=g).to(dtype).requires_grad_() for h in (9, 3, 3))
        allowed, do = torch.ones(B, 1, T, T, dtype=torch.bool).tril(), torch.randn(B, 9, T, 64).to(dtype)
        paths = {"flash": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=0.125,
                                                                 enable_gqa=True),
                 "ours": lambda: _FlashForwardMathBackward.apply(q, k, v, allowed, 0.125)}
        ms = {}
        for name, fwd in paths.items():
            fwd().backward(do)  # warm-up
            ms[name] = 1e3 * statistics.median(timed(lambda: fwd().backward(do)) for _ in range(reps))
        print(f"  {B} x {T}: flash {ms['flash']:.1f}, ours {ms['ours']:.1f}, flash / ours {ms['flash'] / ms['ours']:.2f}")


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    keep_freed_memory()  # as the postlab CLI does
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=6, help="steps of each path (after one warm-up each)")
    ap.add_argument("--prompt-share", type=float, default=0.58)
    ap.add_argument("--mean-len", type=int, default=89)
    ap.add_argument("--fp32", action="store_true", help="fp32 instead of bf16 autocast")
    ap.add_argument("--attention", action="store_true", help="time one layer's attention by sequence length")
    args = ap.parse_args()
    if args.attention:
        return attention_by_length(args.reps, torch.float32 if args.fp32 else torch.bfloat16)
    model = smollm2_135m().train()
    amp = contextlib.nullcontext if args.fp32 else lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    objective = LMObjective(0)
    batches = sft_batches(args.reps + 1, 8, args.mean_len, args.prompt_share)

    def sft(case: str, b):
        def run():
            model.set_attn_implementation(cpu_attention.register() if case == "packed + attention" else "sdpa")
            with amp():
                if case == "full":
                    logits = model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits
                    loss, _ = causal_lm_loss(logits, b.labels, b.num_target_tokens)
                else:
                    loss, _ = objective.loss(model, b, b.num_target_tokens)
            loss.backward()
            model.zero_grad(set_to_none=True)
        return run

    B, P, R = 16, 70, 64
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 49152, (B, P + R), generator=g)
    mask = torch.ones_like(ids)
    mask[: B // 2, : P // 3] = 0  # left padding, as rollouts are
    rollout = Rollout(prompt_ids=ids[:, :P], prompt_mask=mask[:, :P], response_ids=ids[:, P:],
                      response_mask=torch.ones(B, R, dtype=torch.long), logprobs=torch.zeros(B, R), texts=[""] * B,
                      finished=torch.ones(B, dtype=torch.bool), pad_id=0)

    # GRPO's batches: k = 8 responses to each of 2 prompts (lengths 50 and 70, left-padded), responses 40–64 long
    grouped = Rollout(prompt_ids=ids[[0] * 8 + [8] * 8, :P], prompt_mask=mask[[0] * 8 + [8] * 8, :P],
                      response_ids=ids[:, P:], response_mask=(torch.arange(R) < torch.randint(40, R + 1, (B, 1), generator=g)).long(),
                      logprobs=torch.zeros(B, R), texts=[""] * B, finished=torch.ones(B, dtype=torch.bool), pad_id=0)

    def rl(case: str):
        def run():
            model.set_attn_implementation(cpu_attention.register() if case != "sdpa" else "sdpa")
            with amp():
                if case in ("plain", "shared prompt"):
                    logits = response_logits(model, grouped, share_prompts=case == "shared prompt")
                    logp = token_logprobs(logits, grouped.response_ids)[0] * grouped.response_mask
                else:
                    logp, _ = response_logprobs(model, rollout, 1.0)
            (-logp.mean()).backward()
            model.zero_grad(set_to_none=True)
        return run

    sft_cases, rl_cases = ("full", "packed", "packed + attention"), ("sdpa", "attention", "plain", "shared prompt")
    for case in sft_cases:  # warm-up
        sft(case, batches[0])()
    times = {**{f"sft {c}": [] for c in sft_cases}, **{f"rl {c}": [] for c in rl_cases}}
    for b in batches[1:]:  # alternating, so drift in the machine's speed hits every path alike
        for case in sft_cases:
            times[f"sft {case}"].append(timed(sft(case, b)))
    rl("attention")()
    for _ in range(args.reps):
        for case in rl_cases:
            times[f"rl {case}"].append(timed(rl(case)))
    med = {k: statistics.median(v) for k, v in times.items()}
    dtype = "fp32" if args.fp32 else "bf16 autocast"
    print(f"SmolLM2-135M shape, {dtype}, {torch.get_num_threads()} threads, median of {args.reps} steps each:")
    for k, v in med.items():
        print(f"  {k}: {v:.3f} s/step")
    print(f"sft step full / packed: {med['sft full'] / med['sft packed']:.2f}")
    print(f"sft step full / packed + attention: {med['sft full'] / med['sft packed + attention']:.2f}")
    print(f"rl logprob step sdpa / attention: {med['rl sdpa'] / med['rl attention']:.2f}")
    print(f"rl logprob step plain / shared prompt: {med['rl plain'] / med['rl shared prompt']:.2f}")

if __name__ == "__main__":
    main()
