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
    return loss, _pair_stats(loss, r_chosen, r_rejected, N)


def _pair_stats(loss: torch.Tensor, r_chosen: torch.Tensor, r_rejected: torch.Tensor, N: int) -> dict[str, float]:
    """A micro-batch's contributions to the step means of TRL's reward-trainer metrics."""
    d = (r_chosen.float() - r_rejected.float()).detach()
    return {
        "loss": loss.item(),
        "rewards/chosen": r_chosen.detach().float().sum().item() / N,
        "rewards/rejected": r_rejected.detach().float().sum().item() / N,
        "rewards/accuracies": (d > 0).float().sum().item() / N,
        "rewards/margins": d.sum().item() / N,
    }


def length_controlled_bt_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, l_chosen: torch.Tensor,
                              l_rejected: torch.Tensor, beta: torch.Tensor, margin: torch.Tensor | None = None,
                              total_pairs: int | None = None, decorrelation: float = 1.0
                              ) -> tuple[torch.Tensor, dict[str, float]]:
    """L = −(1/N) Σ_i log σ(r_θ(x, y_c) − r_θ(x, y_r) + β·(ℓ_c − ℓ_r) − m_i) + λ·(B/N)·ρ(r_θ, ℓ)²

    Bradley–Terry with a length term, ℓ = log(1 + |y| in words): β, one scalar learned with θ, is the raters'
    taste for length (the simulated raters' verbosity bias has exactly this form, postlab.raters.simulated), and
    ρ, the Pearson correlation of r_θ with ℓ over the micro-batch's 2B responses, is penalised (λ =
    ``decorrelation``) so that r_θ cannot carry length itself: without it a reward that can read length and β
    fit the same preference equally well, and which one takes it is an accident of optimisation. A two-head
    length/quality split of the reward, as ODIN (Chen et al. 2024) does, with a fixed-form length head; only r_θ
    is the reward. l_chosen, l_rejected: (B,) ℓ; beta: a 0-dim tensor; the rest as ``bradley_terry_loss``.
    """
    B = r_chosen.numel()
    N = total_pairs or B
    diff = r_chosen.float() - r_rejected.float()  # (B,)
    z = diff + beta.float() * (l_chosen.float() - l_rejected.float())
    if margin is not None:
        z = z - margin.float()
    r = torch.cat([r_chosen, r_rejected]).float()  # (2B,)
    ell = torch.cat([l_chosen, l_rejected]).float()
    rc, lc = r - r.mean(), ell - ell.mean()
    rho = (rc * lc).sum() / (rc.norm() * lc.norm()).clamp_min(1e-8)  # 0 when either is constant
    loss = -F.logsigmoid(z).sum() / N + decorrelation * (B / N) * rho ** 2
    return loss, {**_pair_stats(loss, r_chosen, r_rejected, N),
                  "length/beta": float(beta.detach()) * B / N,  # a micro-batch's share: the step's stats sum to β
                  "length/reward_corr": float(rho.detach()) * B / N}
