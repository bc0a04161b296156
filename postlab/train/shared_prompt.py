"""The policy's logits at the response tokens, with each distinct prompt run through the model once.

RL batches hold k responses to each prompt (GRPO/RLOO groups). A plain forward over the (B, P + R)
rows runs every prompt k times; here the U distinct prompts go through the model once, their keys and
values are indexed out to the B rows (``Cache.reorder_cache``: an index, so autograd sums the k rows'
gradients back into the one prompt pass), and the responses go through with that cache as their past.
Same positions, masks and weights as the plain pass, so the same numbers up to floating-point
reassociation (tests/test_shared_prompt.py: fp32 log-probs and gradients within 1e-5; bit for bit between
a policy and its reference copy), for U·P + B·R token-passes instead of B·(P + R): with 2 prompts of
~50 tokens and 16 responses of ~64, about 40% fewer. Math: docs/algorithms/grpo.md; figures:
docs/benchmarks.md.
"""

from __future__ import annotations

import inspect

import torch

from postlab.models.attention import varying_shape_attention
from postlab.rollout.types import Rollout, distinct_rows


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids of left-padded rows: 0 at each row's first real token (B, S) -> (B, S)."""
    return (attention_mask.long().cumsum(dim=1) - 1).clamp_min(0)


def distinct_prompts(rollout: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, inverse): `first` (U,) the first row holding each distinct prompt, `inverse` (B,) the
    distinct prompt of every row (a pad id may be a real token elsewhere: the mask is part of the key)."""
    return distinct_rows(rollout.prompt_ids, rollout.prompt_mask)


def _cache_arg(model) -> str:
    """The forward's name for a past cache: `cache` in recent transformers, `past_key_values` before."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # under a peft wrapper
    return "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"


def _one_pass(model) -> bool:
    """Models that take the plain pass: FSDP2-sharded ones (FSDP2 frees each layer's gathered weights after its
    forward, and the backward of the prompt pass would find them gone) and ones that checkpoint activations
    (transformers then refuses to return a cache)."""
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) or getattr(m, "gradient_checkpointing", False) for m in model.modules())


def response_logits(model, rollout: Rollout, share_prompts: bool = True) -> torch.Tensor:
    """Logits (B, R, V) in the model's dtype, position t scoring response token t (log π(y_t | x, y_<t)
    after a log-softmax). With fewer distinct prompts than rows (and `share_prompts`), each prompt runs
    once; else one plain pass (only the R + 1 last positions go through the LM head in both)."""
    device = next(model.parameters()).device
    ids, mask = rollout.input_ids.to(device), rollout.attention_mask.to(device)  # (B, P + R)
    P, R = rollout.prompt_ids.size(1), rollout.response_ids.size(1)
    first, inverse = distinct_prompts(rollout)
    with varying_shape_attention():  # a new shape every batch: no per-shape cuDNN plans
        if first.numel() == inverse.numel() or not share_prompts or P < 2 or R == 0 or _one_pass(model):  # plain
            return model(input_ids=ids, attention_mask=mask, position_ids=positions(mask),
                         logits_to_keep=R + 1).logits[:, :-1]
        first, inverse = first.to(device), inverse.to(device)
        # The prompts less their last token (left-padded: the last is real in every row) fill the cache; the
        # tail, that token and the responses, runs the head at all its R positions as the plain pass does at
        # R of its R + 1 (so the head's matmul has the same shape, and rounds the same, in both).
        pmask = mask[first, : P - 1]  # (U, P − 1)
        out = model(input_ids=ids[first, : P - 1], attention_mask=pmask, position_ids=positions(pmask),
                    use_cache=True, logits_to_keep=1)  # (its one head row is not used)
        cache = out.cache if "cache" in out else out.past_key_values  # `cache` in transformers ≥ 5.2x
        cache.reorder_cache(inverse)  # (U, ...) -> (B, ...): row b's prompt keys and values
        return model(input_ids=ids[:, P - 1 : P + R - 1], attention_mask=mask[:, : P + R - 1],
                     position_ids=positions(mask)[:, P - 1 : P + R - 1], **{_cache_arg(model): cache},
                     use_cache=True, logits_to_keep=R).logits  # (B, R, V): position P − 1 + t scores token t
