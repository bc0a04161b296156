"""PPO for RLHF: KL-shaped per-token rewards, GAE, whitening, clipped policy and value losses,
the adaptive KL controller. Math: docs/algorithms/ppo.md. Shapes: B responses, R response tokens;
`mask` (B, R) is 1 on generated tokens (EOS included)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from postlab.algos.kl import masked_mean


def kl_shaped_rewards(scores: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor,
                      beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """r_t = −β · (log π(y_t) − log π_ref(y_t)) + [t = last] · score   (Ziegler et al. 2019; Ouyang et al. 2022)

    scores: (B,); logp, ref_logp, mask: (B, R). Returns (rewards (B, R), per-token k1 KL (B, R))."""
    kl = (logp - ref_logp) * mask  # (B, R)
    rewards = -beta * kl
    last = (mask.long().sum(dim=1) - 1).clamp_min(0)  # (B,) index of each response's last token
    rewards[torch.arange(rewards.size(0), device=rewards.device), last] += scores
    return rewards * mask, kl


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016, eq. 16):
        δ_t = r_t + γ V_{t+1} − V_t,   A_t = Σ_l (γλ)^l δ_{t+l},   returns G_t = A_t + V_t
    with V = 0 after the last real token. rewards, values, mask: (B, R) -> (A, G), each (B, R)."""
    mask = mask.to(values.dtype)
    values = values * mask  # V = 0 on padding, so the last real token bootstraps from 0
    R = rewards.size(1)
    adv = torch.zeros_like(rewards)
    zero = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(R)):
        next_v = values[:, t + 1] if t + 1 < R else zero
        next_a = adv[:, t + 1] if t + 1 < R else zero
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        adv[:, t] = (delta + gamma * lam * next_a) * mask[:, t]
    return adv, (adv + values) * mask


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x − mean) / std over the masked entries (mean kept if shift_mean is False)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask.to(x.dtype)


def ppo_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                    clip: float, n_tokens: float | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """L^CLIP = −E_t[min(ρ_t A_t, clip(ρ_t, 1−ε, 1+ε) A_t)],  ρ_t = π(y_t)/π_old(y_t)
    (Schulman et al. 2017, eq. 7), averaged over the minibatch's tokens.

    `n_tokens`: the minibatch's token count when this call sees one micro-batch of it (default: the
    mask's own), so that the micro-batches' losses and stats add up to the minibatch's."""
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    pg1 = -advantages * ratio
    pg2 = -advantages * torch.clamp(ratio, 1 - clip, 1 + clip)
    loss = masked_mean(torch.max(pg1, pg2), mask, total=n_tokens)
    with torch.no_grad():
        stats = {
            "loss/policy": loss.item(),
            "policy/clipfrac": masked_mean((pg2 > pg1).float(), mask, total=n_tokens).item(),
            "policy/approxkl": masked_mean(0.5 * log_ratio ** 2, mask, total=n_tokens).item(),  # ½ E[(log ρ)²]
            "val/ratio": masked_mean(ratio, mask, total=n_tokens).item(),
        }
    return loss, stats


def ppo_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
                   clip: float, n_tokens: float | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """L^V = ½ E_t[max((V_t − G_t)², (clip(V_t, V_old ± ε) − G_t)²)]  (the clipped value loss of
    OpenAI's baselines / lm-human-preferences), averaged over the minibatch's tokens (`n_tokens` as
    in `ppo_policy_loss`)."""
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    vf1, vf2 = (values - returns) ** 2, (clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(vf1, vf2), mask, total=n_tokens)
    with torch.no_grad():
        stats = {"loss/value": loss.item(), "val/clipfrac": masked_mean((vf2 > vf1).float(), mask, total=n_tokens).item()}
    return loss, stats


@dataclass
class AdaptiveKLController:
    """β_{k+1} = β_k · (1 + K_β · e_k),  e_k = clip(KL_k / KL_target − 1, −0.2, 0.2),  K_β = n / horizon
    (Ziegler et al. 2019, §2.2), n = episodes in the batch."""

    beta: float
    target: float
    horizon: int

    def update(self, kl: float, n_episodes: int) -> float:
        error = max(-0.2, min(0.2, kl / self.target - 1))
        self.beta *= 1 + error * n_episodes / self.horizon
        return self.beta


@dataclass
class FixedKLController:
    beta: float

    def update(self, kl: float, n_episodes: int) -> float:
        return self.beta
