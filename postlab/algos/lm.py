"""Next-token cross-entropy for SFT and pretraining. Math: docs/algorithms/sft.md."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


class _ChunkedNLLSum(torch.autograd.Function):
    """Σ_t -log softmax(z_t)[y_t] and its gradient (softmax − one-hot) in one pass over row chunks.

    Same value and gradient as ``cross_entropy(logits.float(), reduction="sum")``, but it never holds
    a full fp32 copy of the (B, T, V) logits, nor a separate log-softmax and its backward: each chunk
    is upcast, reduced, and its gradient written straight into a logits-dtype buffer. With V = 49152
    this is the largest non-matmul cost of a bf16 training step.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor, chunk: int) -> torch.Tensor:
        B, T, V = logits.shape
        grad = torch.zeros_like(logits)  # position T-1 predicts nothing: its gradient stays 0
        total = torch.zeros((), dtype=torch.float32, device=logits.device)
        for b in range(B):
            for s in range(0, T - 1, chunk):
                e = min(s + chunk, T - 1)
                z = logits[b, s:e].to(torch.float32, copy=True)  # (c, V) predicts s+1 .. e; a copy: z is overwritten below
                y = labels[b, s + 1 : e + 1]  # (c,)
                valid = (y != IGNORE_INDEX).unsqueeze(1)  # (c, 1)
                y_idx = y.clamp_min(0).unsqueeze(1)
                lse = torch.logsumexp(z, dim=-1, keepdim=True)  # (c, 1)
                total += ((lse - z.gather(1, y_idx)) * valid).sum()
                p = z.sub_(lse).exp_()  # softmax, in place
                p.scatter_add_(1, y_idx, torch.full_like(y_idx, -1, dtype=p.dtype))
                grad[b, s:e] = p.mul_(valid)
        ctx.save_for_backward(grad)
        return total

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (grad,) = ctx.saved_tensors
        return grad.mul_(g.to(grad.dtype)), None, None


def token_nll_sum(logits: torch.Tensor, labels: torch.Tensor, chunk: int = 32) -> tuple[torch.Tensor, int]:
    """Sum over target tokens of -log p(y_t | y_<t), with the one-step shift applied here.

    logits: (B, T, V); labels: (B, T) with IGNORE_INDEX where no loss applies.
    Returns (sum of NLL as a 0-dim fp32 tensor, number of target tokens).
    """
    n = int((labels[:, 1:] != IGNORE_INDEX).sum())
    if logits.requires_grad:
        return _ChunkedNLLSum.apply(logits, labels, chunk), n
    z = logits[:, :-1, :].float()  # (B, T-1, V) predicts position t+1
    y = labels[:, 1:]  # (B, T-1)
    return F.cross_entropy(z.reshape(-1, z.size(-1)), y.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"), n


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor, num_target_tokens: int) -> tuple[torch.Tensor, dict]:
    """L = (1/N) Σ_t -log p_θ(y_t | y_<t), N = target tokens in the *whole optimizer step*.

    Dividing every micro-batch by the step's N (not by its own count) makes gradient accumulation
    exact: k micro-batches of uneven length give the same gradient as one batch holding them all.
    """
    nll_sum, n = token_nll_sum(logits, labels)
    loss = nll_sum / max(num_target_tokens, 1)
    return loss, {"nll_sum": nll_sum.detach().item(), "num_target_tokens": n}
