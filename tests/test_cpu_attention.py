"""Training attention on a CPU (postlab.models.cpu_attention): the flash forward with a hand-written backward
gives SDPA's outputs and gradients, with grouped-query heads, left padding (rows with no key at all) and the
causal case without a mask; passes it does not serve go to SDPA unchanged."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from postlab.models import cpu_attention
from postlab.models.cpu_attention import _FlashForwardMathBackward


def _inputs(dtype, B=3, H=6, KV=2, T=11, D=8, padded=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, h, T, D, generator=g).to(dtype) for h in (H, KV, KV))
    allowed = torch.ones(B, 1, T, T, dtype=torch.bool).tril()
    if padded:
        allowed[0, :, :, :4] = False  # row 0 left-padded by 4: its first 4 queries see no key at all
    return q, k, v, (allowed if padded else None), torch.randn(B, H, T, D, generator=g).to(dtype)


def _grads(fn, q, k, v, do):
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    out = fn(*leaves)
    out.backward(do)
    return [out.detach().float()] + [t.grad.float() for t in leaves]


def _sdpa(allowed, scale):
    return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, is_causal=allowed is None,
                                                          scale=scale, enable_gqa=True)


def _ours(allowed, scale):
    return lambda q, k, v: _FlashForwardMathBackward.apply(q, k, v, allowed, scale)


@pytest.mark.parametrize("padded", [True, False])
def test_fp32_outputs_and_gradients_equal_sdpa(padded):
    q, k, v, allowed, do = _inputs(torch.float32, padded=padded)
    want = _grads(_sdpa(allowed, 0.3), q, k, v, do)
    got = _grads(_ours(allowed, 0.3), q, k, v, do)
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, want):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=name)
    if padded:  # queries that see no key give 0 and pass no gradient, as SDPA's
        assert (got[0][0, :, :4] == 0).all() and (got[1][0, :, :4] == 0).all()


def test_bf16_gradients_are_as_close_to_fp32_as_the_flash_kernels():
    q, k, v, allowed, do = _inputs(torch.bfloat16, B=4, H=9, KV=3, T=40, D=64)
    ref = _grads(_sdpa(allowed, 0.125), *(t.float() for t in (q, k, v)), do.float())
    flash = _grads(_sdpa(allowed, 0.125), q, k, v, do)
    ours = _grads(_ours(allowed, 0.125), q, k, v, do)
    for name, a, b, r in zip(("out", "dq", "dk", "dv"), ours, flash, ref):
        ours_err, flash_err = (a - r).norm() / r.norm(), (b - r).norm() / r.norm()
        assert ours_err <= 1.25 * flash_err + 1e-4, (name, float(ours_err), float(flash_err))


def test_a_model_trains_to_the_same_gradients_with_it(monkeypatch):
    from postlab.models.load import load_model_and_tokenizer

    monkeypatch.setattr(cpu_attention, "DTYPES", (torch.float32,))  # fp32, to compare exactly

    def grads(use_ours: bool):
        torch.manual_seed(0)
        model, _ = load_model_and_tokenizer("tiny")
        model.float().train()
        if use_ours:
            assert cpu_attention.use_for_training(model)
        ids = torch.randint(3, 200, (3, 17), generator=torch.Generator().manual_seed(1))
        mask = torch.ones_like(ids)
        mask[0, :5] = 0  # left padding
        out = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp_min(0))
        (out.logits.float().logsumexp(-1) * mask).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    want, got = grads(False), grads(True)
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-5, rtol=1e-4, msg=name)


def test_passes_it_does_not_serve_go_to_sdpa(monkeypatch):
    calls = []
    monkeypatch.setattr(_FlashForwardMathBackward, "apply", lambda *a: calls.append(a) or None)
    q, k, v, allowed, _ = _inputs(torch.bfloat16)

    class Module:
        is_causal, num_key_value_groups = True, 3

    def run(q, k, **kw):
        try:
            cpu_attention.attention(Module(), q, k, k, allowed if k.size(2) == q.size(2) else None, **kw)
        except Exception:  # noqa: BLE001 - the stub returns None; only whether it was called matters
            pass

    with torch.no_grad():
        run(q.requires_grad_(), k)  # no gradient: inference
    run(q.detach(), k)  # nothing to differentiate
    run(q.detach().requires_grad_(), k, dropout=0.1)
    long_q, long_k = torch.randn(1, 6, cpu_attention.MAX_KEYS + 1, 8, requires_grad=True), torch.randn(
        1, 2, cpu_attention.MAX_KEYS + 1, 8)
    cpu_attention.attention(Module(), long_q.bfloat16(), long_k.bfloat16(), long_k.bfloat16(), None)  # past the
    # keys where it is faster
    run(q.detach().float().requires_grad_(), k.float())  # fp32, where the flash kernel's backward is faster
    assert calls == []
    run(q.detach().requires_grad_(), k)
    assert len(calls) == 1


def test_under_bf16_autocast_a_model_gives_sdpas_outputs():
    """Autocast leaves q and k fp32 after RoPE and v bf16; like SDPA under autocast, all three run in bf16."""
    from postlab.models.load import load_model_and_tokenizer

    def run(use_ours: bool):
        torch.manual_seed(0)
        model, _ = load_model_and_tokenizer("tiny")
        model.float().train()
        if use_ours:
            cpu_attention.use_for_training(model)
        ids = torch.randint(3, 200, (2, 13), generator=torch.Generator().manual_seed(2))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(input_ids=ids).logits
        logits.float().logsumexp(-1).sum().backward()
        return logits.detach(), model.model.layers[0].self_attn.q_proj.weight.grad

    (want, want_g), (got, got_g) = run(False), run(True)
    assert torch.equal(got, want)  # the same flash forward
    torch.testing.assert_close(got_g, want_g, atol=2e-2, rtol=5e-2)
