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


def inverse_cdf_sample(weights: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Draw one index per row with probability ∝ weights (B, V), from a single uniform per row.

    One random number per row instead of one per vocabulary entry (Gumbel-max, multinomial's
    exponential race) keeps sampling cheap next to a 49k-token vocabulary.
    """
    cdf = weights.cumsum(dim=-1)  # (B, V)
    u = torch.rand((weights.size(0), 1), generator=generator, dtype=cdf.dtype, device=cdf.device) * cdf[:, -1:]
    idx = torch.searchsorted(cdf, u, right=True).squeeze(-1)  # first index whose cdf exceeds u
    return idx.clamp_max(weights.size(-1) - 1)


def choose_tokens(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None):
    """Pick the next token of each row. logits: (B, V). Returns (tokens (B,), logprobs (B,) fp32)."""
    logp = scaled_logprobs(logits, params.temperature)  # (B, V)
    if params.temperature == 0:
        tokens = logp.argmax(dim=-1)
    else:
        allowed = restrict_top_k_top_p(logp, params.top_k, params.top_p)
        tokens = inverse_cdf_sample(allowed.exp(), generator)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)
