"""Critic-free policy gradients over k samples per prompt: GRPO and RLOO advantages and the
clipped surrogate with a KL loss term. Math: docs/algorithms/grpo.md."""

from __future__ import annotations

import torch

from postlab.algos.kl import kl_k3, masked_mean


def grpo_advantages(scores: torch.Tensor, k: int, eps: float = 1e-4, scale: bool = True) -> torch.Tensor:
    """Â_i = (r_i − mean(r_group)) / (std(r_group) + ε)   (Shao et al. 2024, DeepSeekMath §4.1.2).

    scores: (B,) with B = prompts·k, the k samples of each prompt adjacent. std is the sample std
    (k − 1 in the denominator); scale=False drops the division (Dr. GRPO, Liu et al. 2025)."""
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


def clipped_pg_loss(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None,
                    advantages: torch.Tensor, mask: torch.Tensor, *, clip: float, kl_coef: float
                    ) -> tuple[torch.Tensor, dict[str, float]]:
    """J = (1/G) Σ_i (1/|o_i|) Σ_t [min(ρ_t Â_i, clip(ρ_t, 1±ε) Â_i) − β · k3_t]   (GRPO, eq. 3)

    logp, old_logp, ref_logp, mask: (B, R); advantages: (B,) one per response. Returns −J (to
    minimise): per-token terms averaged within each response, then over responses."""
    ratio = torch.exp(logp - old_logp)
    A = advantages.unsqueeze(1)  # (B, 1)
    surrogate = torch.min(ratio * A, torch.clamp(ratio, 1 - clip, 1 + clip) * A)  # (B, R)
    per_token = -surrogate
    kl = kl_k3(logp, ref_logp) if ref_logp is not None else torch.zeros_like(logp)
    if kl_coef:
        per_token = per_token + kl_coef * kl
    loss = masked_mean(per_token, mask, dim=1).mean()
    with torch.no_grad():
        low = (ratio < 1 - clip) & (A < 0)
        high = (ratio > 1 + clip) & (A > 0)
        stats = {"loss": loss.item(), "kl": masked_mean(kl, mask).item(),
                 "clip_ratio/low_mean": masked_mean(low.float(), mask).item(),
                 "clip_ratio/high_mean": masked_mean(high.float(), mask).item(),
                 "clip_ratio/region_mean": masked_mean((low | high).float(), mask).item()}
    return loss, stats
