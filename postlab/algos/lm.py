"""Next-token cross-entropy for SFT and pretraining. Math: docs/algorithms/sft.md."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def token_nll_sum(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Sum over target tokens of -log p(y_t | y_<t), with the one-step shift applied here.

    logits: (B, T, V); labels: (B, T) with IGNORE_INDEX where no loss applies.
    Returns (sum of NLL as a 0-dim fp32 tensor, number of target tokens).
    """
    z = logits[:, :-1, :].float()  # (B, T-1, V) predicts position t+1
    y = labels[:, 1:]  # (B, T-1)
    nll = F.cross_entropy(z.reshape(-1, z.size(-1)), y.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum")
    return nll, int((y != IGNORE_INDEX).sum())


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor, num_target_tokens: int) -> tuple[torch.Tensor, dict]:
    """L = (1/N) Σ_t -log p_θ(y_t | y_<t), N = target tokens in the *whole optimizer step*.

    Dividing every micro-batch by the step's N (not by its own count) makes gradient accumulation
    exact: k micro-batches of uneven length give the same gradient as one batch holding them all.
    """
    nll_sum, n = token_nll_sum(logits, labels)
    loss = nll_sum / max(num_target_tokens, 1)
    return loss, {"nll_sum": nll_sum.detach().item(), "num_target_tokens": n}
