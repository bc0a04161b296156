"""Sampling parameters and the per-step token choice (pure functions over logits)."""

from __future__ import annotations

from pydantic import Field

from postlab.config import Section

import torch


class SamplingParams(Section):
    """How to sample. temperature=0 means greedy."""

    max_new_tokens: int = Field(128, ge=1, description="upper bound on generated tokens per response")
    temperature: float = Field(1.0, ge=0, description="softmax temperature; 0 = greedy (argmax)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling: keep the smallest set of tokens with this much mass")
    top_k: int = Field(0, ge=0, description="keep only the k most likely tokens (0 = off)")
    seed: int | None = Field(None, description="seed for reproducible sampling (None = nondeterministic)")
    stop_at_eos: bool = Field(True, description="end a response at EOS / end-of-turn (off: always generate max_new_tokens)")


def scaled_logprobs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """log softmax(z / T) in fp32; T = 0 (greedy) scores with T = 1. logits: (B, V) -> (B, V)."""
    z = logits.float()
    if temperature > 0 and temperature != 1.0:
        z = z / temperature
    return torch.log_softmax(z, dim=-1)


def restrict_top_k_top_p(logp: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Set to -inf every token outside the top-k and outside the top-p nucleus. (B, V) -> (B, V)."""
    if top_k and top_k < logp.size(-1):
        kth = torch.topk(logp, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logp = logp.masked_fill(logp < kth, float("-inf"))
    if top_p < 1.0:
        sorted_lp, order = torch.sort(logp, dim=-1, descending=True)
        cum = sorted_lp.exp().cumsum(dim=-1)
        drop_sorted = (cum - sorted_lp.exp()) >= top_p  # mass before this token already reaches top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logp = logp.masked_fill(drop, float("-inf"))
    return logp


def choose_tokens(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None):
    """Pick the next token of each row. logits: (B, V). Returns (tokens (B,), logprobs (B,) fp32)."""
    logp = scaled_logprobs(logits, params.temperature)  # (B, V)
    if params.temperature == 0:
        tokens = logp.argmax(dim=-1)
    else:
        allowed = restrict_top_k_top_p(logp, params.top_k, params.top_p)
        # Gumbel-max draws from softmax(allowed) with one vectorised op and a seedable generator.
        u = torch.rand(allowed.shape, generator=generator, dtype=torch.float32, device=allowed.device)
        gumbel = -torch.log(-torch.log(u.clamp_min(1e-20)))
        tokens = (allowed + gumbel).argmax(dim=-1)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)
