"""Critic-free policy gradients over k samples per prompt: advantages (GRPO, RLOO), the losses of the
GRPO family (GRPO, BNPO/DAPO, Dr. GRPO) and RLOO's sequence-level REINFORCE, each a function picked by
name from `LOSSES`, and DAPO's group filter. Math: docs/algorithms/grpo.md.

Shapes: B responses, the k samples of a prompt adjacent; R response tokens; `mask` (B, R) is 1 on the
tokens that carry loss. A loss may see one micro-batch of the step's batch at a time: its normalisers
come from the whole batch's `BatchTotals`, so the micro-batches' losses and stats add up to exactly the
full batch's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from postlab.algos.kl import kl_k3, masked_mean


def grpo_advantages(scores: torch.Tensor, k: int, eps: float = 1e-4, scale: bool = True) -> torch.Tensor:
    """Â_i = (r_i − mean(r_group)) / (std(r_group) + ε)   (Shao et al. 2024, DeepSeekMath §4.1.2).

    scores: (B,) with B = prompts·k, the k samples of each prompt adjacent. std is the sample std
    (k − 1 in the denominator); scale=False drops the division (half of Dr. GRPO, Liu et al. 2025;
    the other half is `dr_grpo_loss`)."""
    r = scores.view(-1, k)  # (P, k)
    adv = r - r.mean(dim=1, keepdim=True)
    if scale:
        adv = adv / (r.std(dim=1, keepdim=True) + eps)
    return adv.reshape(-1)


def rloo_advantages(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Â_i = r_i − (1/(k−1)) Σ_{j≠i} r_j   (Ahmadian et al. 2024, eq. 4: leave-one-out baseline).
    scores: (B,) = prompts·k, samples of a prompt adjacent."""
    if k < 2:
        raise ValueError("RLOO needs k >= 2 samples per prompt")
    r = scores.view(-1, k)
    baseline = (r.sum(dim=1, keepdim=True) - r) / (k - 1)
    return (r - baseline).reshape(-1)


ADVANTAGES = {"grpo": grpo_advantages, "rloo": rloo_advantages}


def zero_std_groups(scores: torch.Tensor, k: int) -> torch.Tensor:
    """(P,) True for each group whose k rewards are all equal: its advantages are all 0, so it gives
    no policy-gradient signal (DAPO's dynamic sampling drops such groups; Yu et al. 2025, §3.2)."""
    r = scores.view(-1, k)  # (P, k)
    return r.amax(dim=1) == r.amin(dim=1)


def rows_with_signal(advantages: torch.Tensor, kl_coef: float) -> list[int]:
    """The rows a step must forward and backpropagate. Every loss here multiplies each row's terms by its
    Â and divides by the whole batch's `BatchTotals`, so with β = 0 (no KL term) a row with Â = 0 adds
    exactly nothing to the loss, its gradient or the clip stats, and is skipped (with 0/1 rewards most
    groups are all right or all wrong: most rows). With β > 0 its KL term counts: every row.
    advantages: (B,)."""
    if kl_coef:
        return list(range(advantages.numel()))
    return (advantages != 0).nonzero().squeeze(1).tolist()


@dataclass(frozen=True)
class BatchTotals:
    """Normalisers of the step's whole batch (a micro-batch's loss divides by these, not its own)."""

    n_seqs: int  # G: responses in the batch
    n_tokens: int  # Σ_i |o_i|: loss-carrying tokens in the batch
    max_len: int  # L: the longest a response may be (max_new_tokens)

    @classmethod
    def of(cls, mask: torch.Tensor, max_len: int) -> BatchTotals:
        """mask: (B, R), the whole batch's loss mask."""
        return cls(n_seqs=mask.size(0), n_tokens=int(mask.sum()), max_len=max_len)


def token_objective(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None, advantages: torch.Tensor,
                    mask: torch.Tensor, totals: BatchTotals, *, epsilon: float, epsilon_high: float, kl_coef: float
                    ) -> tuple[torch.Tensor, dict[str, float]]:
    """The per-token loss shared by the GRPO family (GRPO eq. 3 inside its sums; DAPO's clip-higher):

        ℓ_t = −min(ρ_t Â, clip(ρ_t, 1 − ε_low, 1 + ε_high) Â) + β · k3_t,   ρ_t = π_θ(y_t) / π_old(y_t)

    logp, old_logp, ref_logp, mask: (B, R); advantages: (B,), one per response, or (B, R), one per token
    (per-turn shaping of multi-turn episodes, postlab.agents.grpo). Returns ℓ (B, R) and its token-mean
    stats over the batch: k3 KL, and the share of tokens clipped below (ρ < 1 − ε_low with Â < 0), above
    (ρ > 1 + ε_high with Â > 0) or either — the tokens whose gradient the clip removed."""
    ratio = torch.exp(logp - old_logp)  # (B, R)
    A = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages  # (B, 1) or (B, R)
    per_token = -torch.min(ratio * A, torch.clamp(ratio, 1 - epsilon, 1 + epsilon_high) * A)
    kl = kl_k3(logp, ref_logp) if ref_logp is not None else torch.zeros_like(logp)
    if kl_coef:
        per_token = per_token + kl_coef * kl
    with torch.no_grad():
        low, high = (ratio < 1 - epsilon) & (A < 0), (ratio > 1 + epsilon_high) & (A > 0)
        stats = {"kl": masked_mean(kl, mask, total=totals.n_tokens).item(),
                 "clip_ratio/low_mean": masked_mean(low.float(), mask, total=totals.n_tokens).item(),
                 "clip_ratio/high_mean": masked_mean(high.float(), mask, total=totals.n_tokens).item(),
                 "clip_ratio/region_mean": masked_mean((low | high).float(), mask, total=totals.n_tokens).item()}
    return per_token, stats


def grpo_loss(logp, old_logp, ref_logp, advantages, mask, totals, *, epsilon, epsilon_high, kl_coef):
    """L = (1/G) Σ_i (1/|o_i|) Σ_t ℓ_it   (Shao et al. 2024, GRPO eq. 3; TRL loss_type="grpo").

    Each response's tokens are averaged, then the responses: a token of a long response weighs less
    than one of a short response, which favours long wrong answers and short right ones (Liu et al. 2025)."""
    per_token, stats = token_objective(logp, old_logp, ref_logp, advantages, mask, totals,
                                       epsilon=epsilon, epsilon_high=epsilon_high, kl_coef=kl_coef)
    loss = masked_mean(per_token, mask, dim=1).sum() / totals.n_seqs
    return loss, {"loss": loss.item(), **stats}


def token_mean_loss(logp, old_logp, ref_logp, advantages, mask, totals, *, epsilon, epsilon_high, kl_coef):
    """L = (1 / Σ_i |o_i|) Σ_i Σ_t ℓ_it   (Yu et al. 2025, DAPO §3.3, token-level policy-gradient loss;
    TRL loss_type="dapo", and "bnpo", which TRL normalises per process: one process here, so the same).

    Every token of the batch weighs the same, whatever the length of its response."""
    per_token, stats = token_objective(logp, old_logp, ref_logp, advantages, mask, totals,
                                       epsilon=epsilon, epsilon_high=epsilon_high, kl_coef=kl_coef)
    loss = masked_mean(per_token, mask, total=totals.n_tokens)
    return loss, {"loss": loss.item(), **stats}


def dr_grpo_loss(logp, old_logp, ref_logp, advantages, mask, totals, *, epsilon, epsilon_high, kl_coef):
    """L = (1 / (G · L_max)) Σ_i Σ_t ℓ_it   (Liu et al. 2025, Dr. GRPO; TRL loss_type="dr_grpo").

    A constant normaliser (L_max = max_new_tokens): no 1/|o_i| per response, so no length bias. With
    `scale_rewards=false` (no std in the advantages) this is the whole of Dr. GRPO."""
    per_token, stats = token_objective(logp, old_logp, ref_logp, advantages, mask, totals,
                                       epsilon=epsilon, epsilon_high=epsilon_high, kl_coef=kl_coef)
    loss = (per_token * mask.to(per_token.dtype)).sum() / (totals.n_seqs * totals.max_len)
    return loss, {"loss": loss.item(), **stats}


def rloo_loss(logp, old_logp, ref_logp, advantages, mask, totals, *, epsilon, epsilon_high, kl_coef):
    """Sequence-level REINFORCE: the whole response is one action (Ahmadian et al. 2024, RLOO):

        ρ_i = π_θ(o_i) / π_old(o_i) = exp Σ_t (log π_θ(y_it) − log π_old(y_it))
        L = (1/G) Σ_i [ −min(ρ_i Â_i, clip(ρ_i, 1 − ε_low, 1 + ε_high) Â_i) + β Σ_t k3_it ]

    With one update per batch ρ_i = 1 and ∇L = −(1/G) Σ_i Â_i ∇ log π_θ(o_i) (+ the KL term): REINFORCE
    with the leave-one-out baseline. The clip stats here are shares of responses, not of tokens."""
    m = mask.to(logp.dtype)
    ratio = torch.exp(((logp - old_logp) * m).sum(1))  # (B,)
    surrogate = torch.min(ratio * advantages, torch.clamp(ratio, 1 - epsilon, 1 + epsilon_high) * advantages)
    kl = kl_k3(logp, ref_logp) if ref_logp is not None else torch.zeros_like(logp)
    per_seq = (-surrogate + kl_coef * (kl * m).sum(1)) * (m.sum(1) > 0)  # (B,); a fully masked response: 0
    loss = per_seq.sum() / totals.n_seqs
    with torch.no_grad():
        low, high = (ratio < 1 - epsilon) & (advantages < 0), (ratio > 1 + epsilon_high) & (advantages > 0)
        stats = {"loss": loss.item(), "kl": masked_mean(kl, mask, total=totals.n_tokens).item(),
                 "clip_ratio/low_mean": low.float().sum().item() / totals.n_seqs,
                 "clip_ratio/high_mean": high.float().sum().item() / totals.n_seqs,
                 "clip_ratio/region_mean": (low | high).float().sum().item() / totals.n_seqs}
    return loss, stats


LOSSES = {"grpo": grpo_loss, "bnpo": token_mean_loss, "dapo": token_mean_loss, "dr_grpo": dr_grpo_loss,
          "rloo": rloo_loss}
"""loss_type -> loss(logp, old_logp, ref_logp, advantages, mask, totals, *, epsilon, epsilon_high,
kl_coef) -> (loss, stats); TRL's names where it has them."""
