"""One row's decode step compiled by PyTorch's inductor (``TorchEngine(single_row="compiled")``).

Why: a server answering one request decodes one row at a time, a matrix-vector product per weight. On a
2-core CPU the eager step (``LlamaDecoder.step``) reads the weights through oneDNN at ~21 GB/s and spends a
third of its time in ~800 small calls and their Python; llama.cpp's whole token is faster than its products
alone. Inductor with ``freezing`` (weights become constants, pre-packed once) and ``max_autotune`` (its C++
GEMM template, tuned per shape) reads them at ~40 GB/s here and fuses the norms, RoPE and attention into a few
C++ kernels, so the step has no Python per op (docs/benchmarks.md, ``benchmarks/single_stream.py``).

The step is a pure function: it takes the row's token, position and KV columns so far and returns the logits and
this token's keys and values, which the caller writes into its buffer; nothing inside is mutated, which keeps the
compiled graph simple. Attention weighs the cached columns and the new one together (one softmax). The number of
columns varies from step to step and is a dynamic dimension, so the graph compiles once per engine (the first
call, about a minute on a 2-core CPU with autotuning; inductor caches it on disk for the next process).
"""

from __future__ import annotations

import shutil
import threading

import torch
import torch.nn.functional as F
from torch import nn

from postlab.rollout.llama_decode import base_causal_lm, linear_weight, rms_norm

_COMPILE_LOCK = threading.Lock()  # inductor's config is global: one compile at a time


def compiler_available() -> bool:
    """Inductor's CPU code needs a C++ compiler on the PATH."""
    return any(shutil.which(c) for c in ("g++", "c++", "clang++"))


class RowStep(nn.Module):
    """The weights of a Llama-style model, laid out as ``DecodeWeights`` lays them (q/k/v and gate/up fused), as
    frozen parameters of a module that ``torch.compile`` can constant-fold."""

    def __init__(self, model, dtype: torch.dtype | None = None):
        super().__init__()
        model = base_causal_lm(model)
        cfg = model.config
        cast = (lambda t: t.detach().to(dtype)) if dtype is not None else (lambda t: t.detach())

        def param(t: torch.Tensor) -> nn.Parameter:
            return nn.Parameter(cast(t).contiguous().clone(), requires_grad=False)

        self.L, self.Hq, self.Hkv = cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads
        self.D = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.Hq
        self.eps = cfg.rms_norm_eps
        self.rope_scale = float(getattr(model.model.rotary_emb, "attention_scaling", 1.0))
        self.register_buffer("inv_freq", model.model.rotary_emb.inv_freq.detach().float().clone(), persistent=False)
        self.embed = param(model.model.embed_tokens.weight)
        self.final_norm = param(model.model.norm.weight)
        self.lm_head = param(linear_weight(model.lm_head))
        self.ln1, self.qkv, self.o, self.ln2, self.gu, self.down = (nn.ParameterList() for _ in range(6))
        W = linear_weight  # a LoRA model's adapters merged in
        for layer in model.model.layers:
            a, m = layer.self_attn, layer.mlp
            self.ln1.append(param(layer.input_layernorm.weight))
            self.qkv.append(param(torch.cat([W(a.q_proj), W(a.k_proj), W(a.v_proj)])))
            self.o.append(param(W(a.o_proj)))
            self.ln2.append(param(layer.post_attention_layernorm.weight))
            self.gu.append(param(torch.cat([W(m.gate_proj), W(m.up_proj)])))
            self.down.append(param(W(m.down_proj)))

    def forward(self, token: torch.Tensor, position: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """token, position: (1,) long; k, v: (L, Hkv, S, D) the row's cached keys (after RoPE) and values;
        valid: (S,) bool, the columns it attends to. Returns logits (1, V) in the weights' dtype, and this
        token's keys and values (L, Hkv, D)."""
        Hq, Hkv, D = self.Hq, self.Hkv, self.D
        g = Hq // Hkv
        x = F.embedding(token, self.embed)  # (1, C)
        freqs = position.float()[:, None] * self.inv_freq  # (1, D/2)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = (emb.cos() * self.rope_scale).to(x.dtype), (emb.sin() * self.rope_scale).to(x.dtype)  # (1, D)
        bias = torch.zeros(valid.shape, dtype=torch.float32, device=valid.device).masked_fill(~valid, float("-inf"))
        new_k, new_v = [], []
        for i in range(self.L):
            qkv = F.linear(rms_norm(x, self.ln1[i], self.eps), self.qkv[i])[0]  # ((Hq + 2·Hkv)·D,)
            qk = qkv[: (Hq + Hkv) * D].view(Hq + Hkv, D)
            half = D // 2
            qk = qk * cos + torch.cat((-qk[:, half:], qk[:, :half]), dim=-1) * sin  # RoPE, rotate-half
            q, kn = qk[:Hq].view(Hkv, g, D), qk[Hq:]  # (Hkv, g, D), (Hkv, D)
            vn = qkv[(Hq + Hkv) * D:].view(Hkv, D)
            scale = D ** -0.5
            # Products and sums, not matmuls: inductor fuses them into loops over the cache as it lies (a batched
            # matmul would first copy the non-contiguous columns of every layer, every step: ~11% slower at bf16).
            old = (q[:, :, None, :].float() * k[i][:, None].float()).sum(-1) * scale + bias  # (Hkv, g, S)
            cur = (q.float() * kn[:, None, :].float()).sum(-1, keepdim=True) * scale  # (Hkv, g, 1)
            p = torch.softmax(torch.cat([old, cur], dim=-1), dim=-1)  # fp32
            attn = ((p[..., :-1, None] * v[i][:, None].float()).sum(-2) + p[..., -1:] * vn[:, None, :].float()).to(x.dtype)
            x = x + F.linear(attn.reshape(1, Hq * D), self.o[i])
            gate, up = F.linear(rms_norm(x, self.ln2[i], self.eps), self.gu[i]).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, self.down[i])
            new_k.append(kn)
            new_v.append(vn)
        logits = F.linear(rms_norm(x, self.final_norm, self.eps), self.lm_head)
        return logits, torch.stack(new_k), torch.stack(new_v)


class CompiledRowStep:
    """``RowStep`` through ``torch.compile`` (inductor, freezing, max-autotune with its C++ GEMM template).

    Call with the same arguments as ``RowStep.forward`` inside ``torch.no_grad()`` or ``inference_mode``."""

    def __init__(self, model, dtype: torch.dtype | None = None):
        if not compiler_available():
            raise RuntimeError("a compiled decode step needs a C++ compiler (g++) on the PATH for inductor")
        self.module = RowStep(model, dtype).eval()
        self._compiled = torch.compile(self.module, dynamic=False)
        self.calls = 0

    def __call__(self, token, position, k, v, valid):
        import torch._inductor.config as inductor

        for t, dim in ((k, 2), (v, 2), (valid, 0)):  # the columns so far: one graph for every length
            torch._dynamo.mark_dynamic(t, dim)
        # The settings hold for any recompile too (a KV buffer of another shape); inductor's config is global.
        with _COMPILE_LOCK, inductor.patch(freezing=True, max_autotune=True,
                                           max_autotune_gemm_backends="CPP,ATEN"):
            out = self._compiled(token, position, k, v, valid)
        self.calls += 1
        return out

    def step_into(self, k: torch.Tensor, v: torch.Tensor, slot: int, token: torch.Tensor, position: torch.Tensor,
                  valid: torch.Tensor) -> torch.Tensor:
        """One step of a row whose KV buffers ``k, v`` (L, Hkv, S, D) hold its columns before ``slot`` (``valid``
        (slot,) bool says which it attends to); writes this token's keys and values at column ``slot`` and returns
        the logits (1, V)."""
        logits, k_new, v_new = self(token, position, k[:, :, :slot], v[:, :, :slot], valid)
        k[:, :, slot] = k_new
        v[:, :, slot] = v_new
        return logits
