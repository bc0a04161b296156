"""Next-token cross-entropy for SFT and pretraining. Math: docs/algorithms/sft.md."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def _nll_rows(z_rows: torch.Tensor, y: torch.Tensor, grad: torch.Tensor | None, chunk: int) -> torch.Tensor:
    """Σ_r -log softmax(z_r)[y_r] over rows whose target is not IGNORE_INDEX, as a 0-dim fp32 tensor, one
    chunk of rows at a time; with ``grad`` (like z_rows), its gradient (softmax − one-hot, 0 on ignored rows)
    is written there. z_rows: (R, V) any float dtype; y: (R,)."""
    total = torch.zeros((), dtype=torch.float32, device=z_rows.device)
    for s in range(0, z_rows.size(0), chunk):
        e = min(s + chunk, z_rows.size(0))
        z = z_rows[s:e].to(torch.float32, copy=True)  # (c, V), a copy: z is overwritten below
        valid = (y[s:e] != IGNORE_INDEX).unsqueeze(1)  # (c, 1)
        y_idx = y[s:e].clamp_min(0).unsqueeze(1)
        lse = torch.logsumexp(z, dim=-1, keepdim=True)  # (c, 1)
        total += ((lse - z.gather(1, y_idx)) * valid).sum()
        if grad is not None:
            p = z.sub_(lse).exp_()  # softmax, in place
            p.scatter_add_(1, y_idx, torch.full_like(y_idx, -1, dtype=p.dtype))
            grad[s:e] = p.mul_(valid)
    return total


class _ChunkedNLLSum(torch.autograd.Function):
    """Σ_t -log softmax(z_t)[y_t] and its gradient (softmax − one-hot) in one pass over row chunks.

    Same value and gradient as ``cross_entropy(logits.float(), reduction="sum")``, but it never holds
    a full fp32 copy of the (B, T, V) logits, nor a separate log-softmax and its backward: each chunk
    is upcast, reduced, and its gradient written straight into a logits-dtype buffer. With V = 49152
    this is the largest non-matmul cost of a bf16 training step.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor, chunk: int) -> torch.Tensor:
        grad = torch.zeros_like(logits)  # position T-1 predicts nothing: its gradient stays 0
        total = torch.zeros((), dtype=torch.float32, device=logits.device)
        for b in range(logits.size(0)):  # position t predicts label t + 1
            total += _nll_rows(logits[b, :-1], labels[b, 1:], grad[b, :-1], chunk)
        ctx.save_for_backward(grad)
        return total

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (grad,) = ctx.saved_tensors
        return grad.mul_(g.to(grad.dtype)), None, None


class _ChunkedTargetNLLSum(_ChunkedNLLSum):
    """``_ChunkedNLLSum`` for logits already gathered at the target positions: (N, V) rows, (N,) targets (its
    backward, the saved gradient times the incoming one, is the parent's)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
        grad = torch.empty_like(logits)
        total = _nll_rows(logits, targets, grad, chunk)
        ctx.save_for_backward(grad)
        return total


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


def target_nll_sum(logits: torch.Tensor, targets: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """Σ_i -log softmax(z_i)[y_i] over logits gathered at the target positions (no shift here).

    logits: (N, V), any float dtype; targets: (N,). Returns a 0-dim fp32 tensor, chunked as
    ``token_nll_sum`` (no fp32 copy of the logits; with gradient, one exp pass in all).
    """
    if logits.requires_grad:
        return _ChunkedTargetNLLSum.apply(logits, targets, chunk)
    return _nll_rows(logits, targets, None, chunk)


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor, num_target_tokens: int) -> tuple[torch.Tensor, dict]:
    """L = (1/N) Σ_t -log p_θ(y_t | y_<t), N = target tokens in the *whole optimizer step*.

    Dividing every micro-batch by the step's N (not by its own count) makes gradient accumulation
    exact: k micro-batches of uneven length give the same gradient as one batch holding them all.
    """
    nll_sum, n = token_nll_sum(logits, labels)
    loss = nll_sum / max(num_target_tokens, 1)
    return loss, {"nll_sum": nll_sum.detach().item(), "num_target_tokens": n}


class _ChunkedTokenLogProbs(torch.autograd.Function):
    """log softmax(z_t / T)[y_t] per position, and (without gradient) the entropy of softmax(z_t / T).

    Same values and gradient as ``log_softmax(logits.float() / T).gather(-1, y)``, computed over row
    chunks: no fp32 (B, R, V) copy, no full softmax kept for backward. Backward recomputes each chunk's
    softmax p from the saved logits and log-normaliser: ∂ log p(y_t) / ∂z_tj = (1[j = y_t] − p_tj) / T.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor, inv_t: float, chunk: int, want_entropy: bool):
        B, R, _ = logits.shape
        logp = torch.empty((B, R), dtype=torch.float32, device=logits.device)
        logz = torch.empty_like(logp)
        ent = torch.zeros_like(logp) if want_entropy else torch.zeros((0,), device=logits.device)
        for b in range(B):
            for s in range(0, R, chunk):
                e = min(s + chunk, R)
                z = logits[b, s:e].to(torch.float32, copy=True).mul_(inv_t)  # (c, V)
                m = z.amax(dim=-1, keepdim=True)  # (c, 1)
                ez = (z - m).exp_()  # (c, V) exp(z − max): one exp pass serves both outputs
                total = ez.sum(dim=-1)  # (c,)
                lz = m.squeeze(1) + total.log()
                logz[b, s:e] = lz
                logp[b, s:e] = z.gather(1, labels[b, s:e].unsqueeze(1)).squeeze(1) - lz
                if want_entropy:  # H = log Z − Σ_j p_j z_j
                    ent[b, s:e] = lz - torch.linalg.vecdot(ez, z) / total
        ctx.save_for_backward(logits, labels, logz)
        ctx.inv_t, ctx.chunk = inv_t, chunk
        ctx.mark_non_differentiable(ent)
        return logp, ent

    @staticmethod
    def backward(ctx, g: torch.Tensor, _g_ent):
        logits, labels, logz = ctx.saved_tensors
        B, R, _ = logits.shape
        grad = torch.empty_like(logits)
        for b in range(B):
            for s in range(0, R, ctx.chunk):
                e = min(s + ctx.chunk, R)
                gb = g[b, s:e].to(torch.float32).unsqueeze(1)  # (c, 1)
                p = logits[b, s:e].to(torch.float32, copy=True).mul_(ctx.inv_t).sub_(logz[b, s:e].unsqueeze(1)).exp_()
                p.mul_(-gb).scatter_add_(1, labels[b, s:e].unsqueeze(1), gb)  # g (1[j = y] − p)
                grad[b, s:e] = p.mul_(ctx.inv_t)
        return grad, None, None, None, None


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0, *, entropy: bool = False,
                   chunk: int = 32) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log π(y_t) = z_t[y_t]/T − log Σ_j exp(z_tj/T) for every position, (B, R) fp32, and optionally the
    entropy H_t = log Z_t − Σ_j p_tj z_tj/T of π_t = softmax(z_t/T), (B, R) fp32 without gradient.

    logits: (B, R, V), any float dtype (position t's logits score labels[:, t]); labels: (B, R) token
    ids (padding positions may hold any valid id: mask the result). T ≤ 0 means T = 1 (greedy
    sampling has no temperature to undo).
    """
    inv_t = 1.0 / temperature if temperature > 0 else 1.0
    logp, ent = _ChunkedTokenLogProbs.apply(logits, labels, inv_t, chunk, entropy)
    return logp, (ent if entropy else None)
