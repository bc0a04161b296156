"""A lean single-token decode step for Llama-architecture models (Llama, SmolLM2, Mistral without
sliding windows), over a preallocated KV cache.

Why: on a CPU, decoding a 135M model at batch 16 is bound by reading the weights once per step; what
transformers adds on top (cache concatenation, mask building, per-module dispatch) costs as much
again. This step fuses the q/k/v and gate/up projections into one matmul each, pre-packs every
weight once into oneDNN's blocked layout on the CPU (otherwise each matmul call re-lays the weight
out, which at decode batch sizes costs as much as the product: packed calls measured 1.3–2× faster),
writes K/V into a fixed buffer (no concatenation), and runs attention with SDPA. Numerics follow transformers' Llama
(RMSNorm in fp32, rotate-half RoPE); tests compare it with a full forward pass.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from postlab.rollout.types import distinct_rows

SUPPORTED_MODEL_TYPES = ("llama", "mistral")


def base_causal_lm(model):
    """The causal LM itself, under a peft wrapper (``PeftModel``: a LoRA policy) or not."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _lora_layer(module):
    """``module`` if it is one of peft's LoRA layers (wrapping a base layer), else None."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # peft is optional here
        return None
    return module if isinstance(module, LoraLayer) else None


def linear_supported(module) -> bool:
    """A bias-free ``nn.Linear``, or a peft LoRA layer over one whose adapters are plain low-rank deltas
    (no DoRA, no fan-in-fan-out): both apply one (out, in) matrix, ``linear_weight``."""
    lora = _lora_layer(module)
    if lora is not None:
        return isinstance(lora.base_layer, torch.nn.Linear) and lora.base_layer.bias is None and \
            not getattr(lora, "fan_in_fan_out", False) and not any(lora.use_dora.get(a) for a in lora.lora_A)
    return isinstance(module, torch.nn.Linear) and module.bias is None


def linear_weight(module) -> torch.Tensor:
    """The (out, in) matrix a supported linear layer applies now: its weight, or for a LoRA layer the base weight
    plus (α/r)·B·A of each active adapter not already merged into it (peft's ``get_delta_weight``), less the merged
    ones' while adapters are disabled (``disable_adapter()``: the reference policy)."""
    lora = _lora_layer(module)
    if lora is None:
        return module.weight
    w = lora.base_layer.weight
    if lora.disable_adapters:
        deltas, sign = lora.merged_adapters, -1.0
    else:
        deltas, sign = [a for a in lora.active_adapters if a in lora.lora_A and a not in lora.merged_adapters], 1.0
    for a in deltas:
        w = w + sign * lora.get_delta_weight(a).to(w.dtype)
    return w


def lora_state(model) -> tuple:
    """What decides a LoRA model's weights besides its parameters: per LoRA layer, whether adapters are disabled,
    which are merged and which active (empty for a model without LoRA)."""
    return tuple((m.disable_adapters, tuple(m.merged_adapters), tuple(m.active_adapters))
                 for m in model.modules() if _lora_layer(m) is not None)


def supports(model) -> bool:
    """True for Llama-style causal LMs with default RoPE and no projection biases, plain or with LoRA adapters
    (a peft policy decodes with its adapters merged into the copies: ``linear_weight``)."""
    model = base_causal_lm(model)
    cfg = model.config
    if cfg.model_type not in SUPPORTED_MODEL_TYPES or getattr(cfg, "sliding_window", None):
        return False
    rope = getattr(cfg, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        return False
    try:
        layers = model.model.layers
        embed, head = model.model.embed_tokens, model.lm_head
    except AttributeError:
        return False
    linears = [head] + [m for layer in layers for m in (
        layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj, layer.self_attn.o_proj,
        getattr(layer.mlp, "gate_proj", None), getattr(layer.mlp, "up_proj", None), getattr(layer.mlp, "down_proj", None))]
    return isinstance(embed, torch.nn.Embedding) and all(linear_supported(m) for m in linears)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """As transformers' LlamaRMSNorm: normalise in fp32, cast back, then scale (one fused op)."""
    return weight * F.rms_norm(x.float(), (x.size(-1),), eps=eps).to(x.dtype)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE, rotate-half convention. x: (b, H, D); cos/sin: (b, 1, D)."""
    half = x.size(-1) // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def onednn_supports(dtype: torch.dtype) -> bool:
    """Whether oneDNN runs ``dtype`` on this CPU: bf16 and fp16 need CPU support (AVX-512 BW/VL/DQ or
    AVX-NE-CONVERT; a CPU with AVX2 only has none, and oneDNN refuses to pack for it)."""
    if dtype == torch.bfloat16:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if dtype == torch.float16:
        return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    return True


def packs_weights(device: torch.device, dtype: torch.dtype = torch.float32) -> bool:
    """Whether ``DecodeWeights`` can pack weights of ``dtype`` for oneDNN on this device (CPU with oneDNN's
    reorder op, and oneDNN support for the dtype on this CPU)."""
    return device.type == "cpu" and torch.backends.mkldnn.is_available() and \
        hasattr(torch.ops.mkldnn, "_reorder_linear_weight") and onednn_supports(dtype)


def one_query_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """softmax(q·kᵀ/√D + mask)·v for one query per row, as two batched matmuls; the query heads share their
    key/value head in groups of Hq / Hkv (GQA). q: (b, Hq, D); k, v: (b, Hkv, S, D); mask: (b, 1, 1, S)
    additive. Returns (b, Hq, D). Scores and softmax in fp32.

    Why not ``scaled_dot_product_attention``: on a CPU at bf16 its flash kernel, blocked for long queries,
    took 0.83 ms per call for a 16-row decode step over 110 keys (3.3 ms over 400) against 0.20 (0.67) for
    this; at fp32 the two are level, and at one row SDPA is as fast or faster (benchmarks/decode_step.py,
    docs/benchmarks.md). So ``DecodeWeights.matmul_attention_rows``."""
    b, Hq, D = q.shape
    Hkv = k.size(1)
    scores = torch.matmul(q.view(b, Hkv, Hq // Hkv, D), k.transpose(-1, -2)).float() * D ** -0.5  # (b, Hkv, g, S)
    p = torch.softmax(scores + mask, dim=-1).to(v.dtype)
    return torch.matmul(p, v).view(b, Hq, D)


def _mkldnn_linear(x: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")


def _plain_linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x @ weight.T


class DecodeWeights:
    """The model's weights laid out for decoding: q/k/v and gate/up fused, packed for oneDNN on CPU.

    Built once per weight version (the engine caches it), not once per generate call.
    """

    def __init__(self, model, *, batch_hint: int = 16, dtype: torch.dtype | None = None, packed: bool | None = None):
        """`dtype` casts the copies (e.g. bf16 sampling from an fp32 policy being trained). `packed`: None packs
        for oneDNN where it can (``packs_weights``); False keeps plain row-major weights (``x @ W.T``, BLAS),
        which some CPUs run faster at one row (a matrix-vector product): see ``TorchEngine.single_row``."""
        model = base_causal_lm(model)
        cfg = model.config
        cast = (lambda t: t.detach().to(dtype)) if dtype is not None else (lambda t: t.detach())
        self.L = cfg.num_hidden_layers
        self.Hq = cfg.num_attention_heads
        self.Hkv = cfg.num_key_value_heads
        self.D = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.Hq
        self.eps = cfg.rms_norm_eps
        self.embed = cast(model.model.embed_tokens.weight)
        self.final_norm = cast(model.model.norm.weight)
        self.inv_freq = model.model.rotary_emb.inv_freq.float()
        self.rope_scale = float(getattr(model.model.rotary_emb, "attention_scaling", 1.0))
        use_mkldnn = packs_weights(self.embed.device, self.embed.dtype) and packed is not False
        self.packed = use_mkldnn
        self.linear = _mkldnn_linear if use_mkldnn else _plain_linear
        # Decode steps of at least this many rows compute attention as two matmuls (``one_query_attention``): on a
        # CPU at half precision SDPA's kernel is slow for one query per row, except at one row (None: never).
        half = self.embed.dtype in (torch.bfloat16, torch.float16)
        self.matmul_attention_rows: int | None = 2 if self.embed.device.type == "cpu" and half else None

        def prep(w: torch.Tensor) -> torch.Tensor:
            w = cast(w).contiguous()
            return torch.ops.mkldnn._reorder_linear_weight(w, batch_hint) if use_mkldnn else w

        with torch.no_grad():
            W = linear_weight  # a LoRA policy's adapters merged in
            self.lm_head = prep(W(model.lm_head))
            self.layers = []
            for layer in model.model.layers:
                a, m = layer.self_attn, layer.mlp
                self.layers.append((
                    cast(layer.input_layernorm.weight),
                    prep(torch.cat([W(a.q_proj), W(a.k_proj), W(a.v_proj)])),  # (Hq·D + 2·Hkv·D, C)
                    prep(W(a.o_proj)),
                    cast(layer.post_attention_layernorm.weight),
                    prep(torch.cat([W(m.gate_proj), W(m.up_proj)])),  # (2·F, C)
                    prep(W(m.down_proj)),
                ))

    @staticmethod
    def version_key(model) -> tuple:
        """Changes whenever any parameter is replaced or updated in place (e.g. by an optimizer step), or a LoRA
        model's adapters are disabled, merged or switched (``lora_state``).

        Version counters alone are not enough: fused AdamW (`torch._fused_adamw_`) updates parameters
        without bumping them. So the key also holds the sum of a strided sample (~4k values) of every
        parameter, which any real update changes; it costs well under a millisecond."""
        with torch.no_grad():
            sample = [p.detach().reshape(-1)[:: max(1, p.numel() // 4096)].float().sum() for p in model.parameters()]
            fingerprint = tuple(torch.stack(sample).tolist())
        return tuple((p.data_ptr(), p._version) for p in model.parameters()) + fingerprint + lora_state(model)


class LlamaDecoder:
    """The KV buffers of one generate call: a prefill over the prompts, then one token per step."""

    def __init__(self, weights: DecodeWeights, *, batch: int, max_len: int):
        self.w = weights
        dtype, device = weights.embed.dtype, weights.embed.device
        self.k = torch.zeros(weights.L, batch, weights.Hkv, max_len, weights.D, dtype=dtype, device=device)  # post-RoPE
        self.v = torch.zeros_like(self.k)

    def prefill(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
        """Run the left-padded prompts (B, P), filling KV slots 0..P-1; returns last-position logits (B, V).
        Rows holding the same prompt (an RL group's k samples) share one pass: its keys and values are copied."""
        first, inverse = distinct_rows(prompt_ids, prompt_mask)
        if first.numel() == prompt_ids.size(0):
            return self._prefill(prompt_ids, prompt_mask)
        logits = self._prefill(prompt_ids[first], prompt_mask[first])  # rows 0..U-1 of the buffers
        P = prompt_ids.size(1)
        self.k[:, :, :, :P] = self.k[:, inverse, :, :P]  # the index copies first: no row is overwritten early
        self.v[:, :, :, :P] = self.v[:, inverse, :, :P]
        return logits[inverse]

    def _prefill(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
        w, linear = self.w, self.w.linear
        B, P = prompt_ids.shape
        Hq, Hkv, D = w.Hq, w.Hkv, w.D
        positions = (prompt_mask.cumsum(dim=1) - 1).clamp_min(0)  # (B, P)
        cos, sin = self._rope(positions[:, :, None], w.embed.dtype)  # (B, P, 1, D)
        # Causal and padding mask; the diagonal stays open so padded query rows are not all -inf.
        allowed = torch.ones(P, P, dtype=torch.bool, device=prompt_ids.device).tril() & prompt_mask.bool()[:, None, :]
        allowed |= torch.eye(P, dtype=torch.bool, device=prompt_ids.device)
        mask = torch.zeros(allowed.shape, dtype=w.embed.dtype, device=prompt_ids.device).masked_fill_(~allowed, float("-inf"))
        mask = mask[:, None]  # (B, 1, P, P)
        x = F.embedding(prompt_ids, w.embed).view(B * P, -1)  # (B·P, C)
        for i, (ln1, w_qkv, w_o, ln2, w_gu, w_down) in enumerate(w.layers):
            qkv = linear(rms_norm(x, ln1, w.eps), w_qkv).view(B, P, -1)  # (B, P, (Hq + 2·Hkv)·D)
            qk = rotate(qkv[..., : (Hq + Hkv) * D].reshape(B, P, Hq + Hkv, D), cos, sin)
            q = qk[:, :, :Hq].transpose(1, 2)  # (B, Hq, P, D)
            self.k[i, :B, :, :P] = qk[:, :, Hq:].transpose(1, 2)
            self.v[i, :B, :, :P] = qkv[..., (Hq + Hkv) * D :].reshape(B, P, Hkv, D).transpose(1, 2)
            attn = F.scaled_dot_product_attention(q, self.k[i, :B, :, :P], self.v[i, :B, :, :P], attn_mask=mask,
                                                  enable_gqa=Hq != Hkv)  # (B, Hq, P, D)
            x = x + linear(attn.transpose(1, 2).reshape(B * P, Hq * D), w_o)
            gate, up = linear(rms_norm(x, ln2, w.eps), w_gu).chunk(2, dim=-1)
            x = x + linear(F.silu(gate) * up, w_down)
        last = x.view(B, P, -1)[:, -1]  # left padding: every row's last prompt token is at P-1
        return linear(rms_norm(last, w.final_norm, w.eps), w.lm_head)

    def _rope(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin for integer positions of any shape (...) -> (..., D)."""
        freqs = positions.float()[..., None] * self.w.inv_freq  # (..., D/2)
        emb = torch.cat((freqs, freqs), dim=-1)
        return (emb.cos() * self.w.rope_scale).to(dtype), (emb.sin() * self.w.rope_scale).to(dtype)

    def keep_rows(self, keep: torch.Tensor) -> None:
        """Drop finished rows from the KV buffers (one copy per event, not per step)."""
        self.k = self.k[:, keep]
        self.v = self.v[:, keep]

    def step(self, tokens: torch.Tensor, positions: torch.Tensor, slot: int, attn_mask: torch.Tensor) -> torch.Tensor:
        """One token per row. tokens, positions: (b,); attn_mask: (b, slot + 1) bool. Returns logits (b, V)."""
        w, linear = self.w, self.w.linear
        b, Hq, Hkv, D = tokens.size(0), w.Hq, w.Hkv, w.D
        x = F.embedding(tokens, w.embed)  # (b, C)
        cos, sin = self._rope(positions[:, None], x.dtype)  # (b, 1, D)
        # Additive mask built once per step (a boolean one would be converted again in every layer).
        mask = torch.zeros(attn_mask.shape, dtype=x.dtype, device=x.device).masked_fill_(~attn_mask, float("-inf"))
        mask = mask[:, None, None, :]  # (b, 1, 1, S)
        for i, (ln1, w_qkv, w_o, ln2, w_gu, w_down) in enumerate(w.layers):
            qkv = linear(rms_norm(x, ln1, w.eps), w_qkv)  # (b, (Hq + 2·Hkv)·D)
            qk = rotate(qkv[:, : (Hq + Hkv) * D].view(b, Hq + Hkv, D), cos, sin)  # RoPE on q and k at once
            q = qk[:, :Hq]  # (b, Hq, D)
            self.k[i, :, :, slot] = qk[:, Hq:]
            self.v[i, :, :, slot] = qkv[:, (Hq + Hkv) * D :].view(b, Hkv, D)
            if w.matmul_attention_rows is not None and b >= w.matmul_attention_rows:
                attn = one_query_attention(q, self.k[i, :, :, : slot + 1], self.v[i, :, :, : slot + 1], mask)  # (b, Hq, D)
            else:
                attn = F.scaled_dot_product_attention(
                    q[:, :, None, :], self.k[i, :, :, : slot + 1], self.v[i, :, :, : slot + 1],
                    attn_mask=mask, enable_gqa=Hq != Hkv)  # (b, Hq, 1, D)
            x = x + linear(attn.reshape(b, Hq * D), w_o)
            gate, up = linear(rms_norm(x, ln2, w.eps), w_gu).chunk(2, dim=-1)  # (b, F) each
            x = x + linear(F.silu(gate) * up, w_down)
        return linear(rms_norm(x, w.final_norm, w.eps), w.lm_head)  # (b, V)


def step_ms(weights: DecodeWeights, batch: int = 1, *, filled: int = 32, steps: int = 16) -> float:
    """Median wall time (ms) of one decode step of ``batch`` rows with ``filled`` KV columns already
    written (those first steps warm up and are not timed), over the next ``steps`` steps."""
    dec = LlamaDecoder(weights, batch=batch, max_len=filled + steps + 1)
    device = weights.embed.device
    tokens = torch.full((batch,), 5, device=device)
    mask = torch.ones(batch, filled + steps + 1, dtype=torch.bool, device=device)
    times = []
    with torch.inference_mode():
        for s in range(filled + steps):
            t = time.perf_counter()
            dec.step(tokens, torch.full((batch,), s, device=device), s, mask[:, : s + 1])
            if s >= filled:
                times.append(time.perf_counter() - t)
    return 1e3 * sorted(times)[len(times) // 2]
