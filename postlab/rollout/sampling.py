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
    """Set to -inf every token outside the top-k, then outside the top-p nucleus of what is left
    (renormalised, as HF's warpers and vLLM do). (B, V) -> (B, V)."""
    if top_k and top_k < logp.size(-1):
        kth = torch.topk(logp, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logp = logp.masked_fill(logp < kth, float("-inf"))
        if top_p < 1.0:  # top-p measures mass among the top-k survivors
            logp = logp - torch.logsumexp(logp, dim=-1, keepdim=True)
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
    u = torch.rand((weights.size(0), 1), generator=generator, dtype=weights.dtype, device=weights.device)
    return inverse_cdf_pick(weights, u)


def inverse_cdf_pick(weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The index of each row's cdf where the uniform u (B, 1) in [0, 1) lands. weights: (B, V) -> (B,)."""
    cdf = weights.cumsum(dim=-1)  # (B, V)
    idx = torch.searchsorted(cdf, u.to(cdf.dtype) * cdf[:, -1:], right=True).squeeze(-1)  # first index whose cdf exceeds u
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


def choose_tokens_per_row(logits: torch.Tensor, params: list[SamplingParams],
                          generators: list[torch.Generator | None]) -> tuple[torch.Tensor, torch.Tensor]:
    """``choose_tokens`` with each row's own temperature, top-k/top-p and generator. logits: (B, V).

    A seeded row draws its one uniform per step from its own generator, so its tokens do not depend
    on which other rows share the batch (an unseeded row draws from torch's global generator).
    Returns (tokens (B,), logprobs (B,) fp32).
    """
    B = logits.size(0)
    temperature = torch.tensor([p.temperature for p in params], dtype=torch.float32, device=logits.device)
    scale = torch.where(temperature > 0, temperature, torch.ones_like(temperature))  # greedy rows score with T = 1
    logp = torch.log_softmax(logits.float() / scale[:, None], dim=-1)  # (B, V)
    tokens = logp.argmax(dim=-1)
    sampled = [b for b in range(B) if params[b].temperature > 0]
    by_restriction: dict[tuple[int, float], list[int]] = {}
    for b in sampled:
        by_restriction.setdefault((params[b].top_k, params[b].top_p), []).append(b)
    for (top_k, top_p), rows in by_restriction.items():
        index = torch.tensor(rows, device=logits.device)
        allowed = restrict_top_k_top_p(logp[index], top_k, top_p)  # (b, V)
        u = torch.cat([torch.rand((1, 1), generator=generators[b], device=logits.device) for b in rows])  # (b, 1)
        tokens[index] = inverse_cdf_pick(allowed.exp(), u)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)


ROW_SEED_STRIDE = 1_000_003  # row g of a sampling round seeded s draws from seed s · stride + g


def row_params(params: SamplingParams, seed: int, rows) -> list[SamplingParams]:
    """One ``SamplingParams`` per row g of ``rows``, seeded ``(seed · ROW_SEED_STRIDE + g) mod 2**63`` (torch's
    seed range): each row draws from its own generator, so its tokens do not depend on which rows share its
    batch, rank or rollout worker."""
    return [params.model_copy(update={"seed": (seed * ROW_SEED_STRIDE + g) % 2**63}) for g in rows]
