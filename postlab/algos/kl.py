"""Per-token KL estimators between the policy π and the reference π_ref, from sampled tokens.

With ratio ρ_t = π_ref(y_t) / π(y_t) for y_t ~ π (Schulman 2020, "Approximating KL divergence"):
  k1 = −log ρ_t                 unbiased for KL(π‖π_ref), high variance, can be negative
  k3 = (ρ_t − 1) − log ρ_t      unbiased, always ≥ 0, lower variance (GRPO's KL loss term)
"""

from __future__ import annotations

import torch


def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k1 = log π(y_t) − log π_ref(y_t). (B, R) -> (B, R)."""
    return logp - ref_logp


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k3 = exp(log π_ref − log π) − (log π_ref − log π) − 1. (B, R) -> (B, R)."""
    log_ratio = ref_logp - logp
    return torch.exp(log_ratio) - log_ratio - 1


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None, total: float | None = None) -> torch.Tensor:
    """Σ x·mask / Σ mask (over `dim`, or everything). `total` replaces the denominator Σ mask: a
    micro-batch then contributes its share of the mean over a larger batch."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / (mask.sum().clamp_min(1) if total is None else max(total, 1))
    return (x * mask).sum(dim) / mask.sum(dim).clamp_min(1)
