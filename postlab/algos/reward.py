"""Reward-model losses. Math: docs/algorithms/reward_model.md."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: torch.Tensor | None = None,
                       total_pairs: int | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """L = −(1/N) Σ_i log σ(r_θ(x, y_c) − r_θ(x, y_r) − m_i)

    Bradley–Terry pairwise loss (Ouyang et al. 2022, eq. 1); the optional margin m_i (Touvron et al.
    2023, Llama 2 §3.2.2) asks for a larger gap on pairs rated as clearly different. r_chosen,
    r_rejected, margin: (B,). N = pairs in the whole optimizer step (default B), so gradient
    accumulation is exact; the stats are this micro-batch's contributions to step means.
    """
    N = total_pairs or r_chosen.numel()
    diff = r_chosen.float() - r_rejected.float()  # (B,)
    z = diff - margin.float() if margin is not None else diff
    loss = -F.logsigmoid(z).sum() / N
    d = diff.detach()
    stats = {
        "loss": loss.item(),
        "rewards/chosen": r_chosen.detach().float().sum().item() / N,
        "rewards/rejected": r_rejected.detach().float().sum().item() / N,
        "rewards/accuracies": (d > 0).float().sum().item() / N,
        "rewards/margins": d.sum().item() / N,
    }
    return loss, stats
