"""Attention for training on a CPU: PyTorch's flash kernel forward, and a backward written out by hand.

PyTorch's CPU flash-attention backward costs about a quarter of a millisecond per (row, head) however short the
sequence. One layer of SmolLM2 (9 query heads, 3 key/value heads), forward and backward in bf16, for 16 rows × 134
tokens: 31.6 ms with the flash kernel's backward, 13.8 ms with the one below; 33 × 64: 22.4 against 7.6 ms
(2-core Xeon with AMX; `benchmarks/train_step.py --attention`, which also times the whole step without it).
Post-training sequences are short (the default recipe's SFT conversations average 89 tokens, its RL rows ~134),
so there it is a sixth of a training step. From 192 keys on the flash kernel is faster again, and in fp32 it is
faster at every length; there (and for any pass without gradient, with dropout, or off the CPU) this hands over to
Hugging Face's SDPA path.

The backward is the textbook one, from the forward's log-normaliser L (saved by the flash kernel), per head:

    P = exp(S − L) on allowed positions, 0 elsewhere,  S = scale · Q Kᵀ
    dV = Pᵀ dO,   dP = dO Vᵀ,   Δ = rowsum(dO ∘ O),   dS = P ∘ (dP − Δ),
    dQ = scale · dS K,   dK = scale · dSᵀ Q

with S, P, dP and dS in fp32 and the products P·dO, dS·K, dSᵀ·Q in the inputs' dtype; grouped-query heads share
their key/value head by stacking the G query heads of a group along the rows (no copy of K or V). Against an
fp32 reference its gradients are at least as close as the flash kernel's (tests/test_cpu_attention.py).
"""

from __future__ import annotations

import torch

NAME = "postlab_cpu_train"
# The hand-written backward up to this many keys. At 192 keys the flash kernel moves to larger blocks and its
# time falls from 29.5 to 16.3 ms (11 rows); ours is then level (14.8 ms) and slower beyond (19.3 vs 17.5 at 256,
# 42.1 vs 23.7 at 512): `benchmarks/train_step.py --attention`.
MAX_KEYS = 191
# Only in these compute dtypes. In fp32 (the recipes' choice on a CPU without fast bf16) the flash kernel's own
# backward is faster at every length: 0.62-0.85x for ours from 64 to 512 keys on a 2-core Xeon without
# AVX512-BF16, where in bf16 ours is 1.6-2.5x below 192 keys (`benchmarks/train_step.py --attention [--fp32]`).
DTYPES = (torch.bfloat16, torch.float16)


class _FlashForwardMathBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None, scale: float):
        """q: (B, H, T, D); k, v: (B, KV, S, D); allowed: (B|1, 1, T, S) bool, or None for causal with S = T."""
        T, S = q.size(2), k.size(2)
        bias = None
        if allowed is not None:  # the CPU kernel takes an additive mask of the query's dtype
            bias = torch.zeros(allowed.shape, dtype=q.dtype, device=q.device).masked_fill_(~allowed, float("-inf"))
        else:
            allowed = torch.ones(1, 1, T, S, dtype=torch.bool, device=q.device).tril(S - T)
        o, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            q, k, v, 0.0, bias is None, attn_mask=bias, scale=scale)  # o (B, H, T, D), lse (B, H, T) fp32
        ctx.save_for_backward(q, k, v, allowed, o, lse)
        ctx.scale = scale
        return o

    @staticmethod
    def backward(ctx, do: torch.Tensor):
        q, k, v, allowed, o, lse = ctx.saved_tensors
        B, H, T, D = q.shape
        KV, S = k.size(1), k.size(2)
        G, f32 = H // KV, torch.float32
        qg = q.reshape(B, KV, G * T, D)  # the G query heads of a key/value head, stacked along the rows
        dog = do.reshape(B, KV, G * T, D)
        s = torch.matmul(qg.to(f32), k.to(f32).transpose(-1, -2).contiguous()).view(B, KV, G, T, S)  # Kᵀ laid out: 1.6x
        p = s.mul_(ctx.scale).sub_(lse.view(B, KV, G, T, 1)).exp_()  # P = exp(S − L), in place
        p = p.masked_fill_(~allowed.unsqueeze(2), 0.0).view(B, KV, G * T, S)  # (B, KV, G·T, S)
        dv = torch.matmul(p.to(v.dtype).transpose(-1, -2), dog)  # (B, KV, S, D): sums over the group
        dp = torch.matmul(dog.to(f32), v.to(f32).transpose(-1, -2).contiguous())  # (B, KV, G·T, S)
        delta = (do.to(f32) * o.to(f32)).sum(-1).reshape(B, KV, G * T, 1)
        ds = p.mul_(dp.sub_(delta)).mul_(ctx.scale).to(q.dtype)  # dS, with the scale of S folded in
        dq = torch.matmul(ds, k).view(B, H, T, D)
        dk = torch.matmul(ds.transpose(-1, -2), qg)  # (B, KV, S, D)
        return dq, dk, dv, None, None


def _compute_dtype(query, key, value) -> torch.dtype:
    # as autocast treats scaled_dot_product_attention: all three in its lower precision (RoPE leaves q and k fp32)
    return (torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else
            torch.promote_types(torch.promote_types(query.dtype, key.dtype), value.dtype))


def _hand_backward_applies(query, key, dtype: torch.dtype, attention_mask, dropout: float) -> bool:
    T, S = query.size(2), key.size(2)
    return (query.device.type == "cpu" and torch.is_grad_enabled() and query.requires_grad and dropout == 0.0
            and dtype in DTYPES and S <= MAX_KEYS and query.size(1) % key.size(1) == 0
            and (attention_mask is None and S == T or attention_mask is not None and attention_mask.dtype == torch.bool
                 and attention_mask.dim() == 4 and attention_mask.size(1) == 1))


def attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
              is_causal: bool | None = None, **kwargs):
    """A Hugging Face attention function (registered as ``NAME``): query (B, H, T, D), key and value
    (B, KV, S, D), attention_mask (B, 1, T, S) bool or None; returns ((B, T, H, D), None)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    dtype = _compute_dtype(query, key, value)
    if not _hand_backward_applies(query, key, dtype, attention_mask, dropout):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    scale = scaling if scaling is not None else query.size(-1) ** -0.5
    q, k, v = (t.to(dtype) for t in (query, key, value))
    o = _FlashForwardMathBackward.apply(q, k, v, attention_mask, scale)
    return o.transpose(1, 2).contiguous(), None


def register() -> str:
    """Make ``NAME`` an attention implementation Hugging Face models can use (with SDPA's masks)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME


def use_for_training(model) -> bool:
    """Switch a model on the CPU that attends through SDPA to ``NAME``; False (unchanged) for a model on another
    device or with another attention implementation."""
    config = getattr(model, "config", None)
    if next(model.parameters()).device.type != "cpu" or getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    model.set_attn_implementation(register())
    return True
