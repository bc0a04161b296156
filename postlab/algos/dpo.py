"""Direct preference losses (DPO, IPO) on sequence log-probabilities. Math: docs/algorithms/dpo.md."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from postlab.algos.lm import IGNORE_INDEX, token_nll_sum


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log π(y | x) = Σ_t log π(y_t | x, y_<t) over each row's labelled tokens, one-step shift applied.

    logits: (B, T, V); labels: (B, T) with IGNORE_INDEX on the prompt and padding. Returns (B,) fp32.
    Row by row through ``token_nll_sum``, so training never holds a full fp32 copy of the logits. Each
    row is cloned because that function overwrites fp32 input in place (with the softmax).
    """
    rows = zip(logits.unbind(0), labels.unbind(0))
    return -torch.stack([token_nll_sum(z[None].clone(), y[None])[0] for z, y in rows])


def response_lengths(labels: torch.Tensor) -> torch.Tensor:
    """|y|: labelled tokens per row after the shift. labels: (B, T) -> (B,) fp32."""
    return (labels[:, 1:] != IGNORE_INDEX).sum(1).float()


def _stats(loss: torch.Tensor, pi_logp_c, pi_logp_r, ref_logp_c, ref_logp_r, beta: float, N: int) -> dict[str, float]:
    r_c = beta * (pi_logp_c.detach().float() - ref_logp_c.float())  # (B,) implicit reward of y_c
    r_r = beta * (pi_logp_r.detach().float() - ref_logp_r.float())  # (B,)
    return {
        "loss": loss.item(),
        "rewards/chosen": r_c.sum().item() / N,
        "rewards/rejected": r_r.sum().item() / N,
        "rewards/accuracies": (r_c > r_r).float().sum().item() / N,
        "rewards/margins": (r_c - r_r).sum().item() / N,
        "logps/chosen": pi_logp_c.detach().float().sum().item() / N,
        "logps/rejected": pi_logp_r.detach().float().sum().item() / N,
    }


def _log_ratio_difference(pi_logp_c, pi_logp_r, ref_logp_c, ref_logp_r) -> torch.Tensor:
    """h = log π(y_c)/π_ref(y_c) − log π(y_r)/π_ref(y_r), all (B,)."""
    return (pi_logp_c.float() - ref_logp_c.float()) - (pi_logp_r.float() - ref_logp_r.float())


def dpo_loss(pi_logp_c: torch.Tensor, pi_logp_r: torch.Tensor, ref_logp_c: torch.Tensor, ref_logp_r: torch.Tensor,
             *, beta: float, total_pairs: int | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """L = −(1/N) Σ_i log σ(β [log π(y_c)/π_ref(y_c) − log π(y_r)/π_ref(y_r)])

    DPO (Rafailov et al. 2023, eq. 7): the Bradley–Terry loss on the implicit reward
    r(x, y) = β log π(y|x)/π_ref(y|x). All inputs are (B,) summed response log-probs; the ref_ ones
    carry no gradient. N = pairs in the whole optimizer step (default B), so gradient accumulation is
    exact; the stats are this micro-batch's contributions to step means.
    """
    N = total_pairs or pi_logp_c.numel()
    h = _log_ratio_difference(pi_logp_c, pi_logp_r, ref_logp_c, ref_logp_r)  # (B,)
    loss = -F.logsigmoid(beta * h).sum() / N
    return loss, _stats(loss, pi_logp_c, pi_logp_r, ref_logp_c, ref_logp_r, beta, N)


def ipo_loss(pi_logp_c: torch.Tensor, pi_logp_r: torch.Tensor, ref_logp_c: torch.Tensor, ref_logp_r: torch.Tensor,
             *, beta: float, total_pairs: int | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """L = (1/N) Σ_i (h_i − 1/(2τ))²,  h = log π(y_c)/π_ref(y_c) − log π(y_r)/π_ref(y_r),  τ = beta

    IPO (Azar et al. 2023, eq. 17): regresses h onto a finite target instead of pushing it to
    infinity, so the policy stays near the reference even on deterministic preferences. Pass
    *token-mean* log-probs (see ``PREFERENCE_LOSSES``), as TRL and the authors' experiments do: with
    sums, h grows with response length and the fixed target 1/(2τ) would mean different things for
    short and long answers. Shapes, N and stats as in ``dpo_loss``.
    """
    N = total_pairs or pi_logp_c.numel()
    h = _log_ratio_difference(pi_logp_c, pi_logp_r, ref_logp_c, ref_logp_r)  # (B,)
    loss = ((h - 1 / (2 * beta)) ** 2).sum() / N
    return loss, _stats(loss, pi_logp_c, pi_logp_r, ref_logp_c, ref_logp_r, beta, N)


PreferenceLossFn = Callable[..., tuple[torch.Tensor, dict[str, float]]]


@dataclass(frozen=True)
class PreferenceLoss:
    fn: PreferenceLossFn
    token_mean: bool  # log π(y|x) averaged over the response's tokens instead of summed


PREFERENCE_LOSSES: dict[str, PreferenceLoss] = {
    "dpo": PreferenceLoss(dpo_loss, token_mean=False),
    "ipo": PreferenceLoss(ipo_loss, token_mean=True),
}
