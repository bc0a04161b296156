"""Logits only at the target positions (postlab.models.lm_head): the same loss and gradients as the model's
own forward, for the plain model, LoRA, and a family it does not know (which falls back to the forward)."""

from __future__ import annotations

import pytest
import torch

from postlab.algos.lm import IGNORE_INDEX, target_nll_sum
from postlab.data.collate import collate
from postlab.models.lm_head import target_logits
from postlab.train.loop import LMObjective, evaluate_loss


def _examples(vocab: int, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for n, prompt in ((12, 5), (20, 9), (7, 3)):  # uneven lengths: right padding, prompts without loss
        ids = torch.randint(3, vocab, (n,), generator=g).tolist()
        out.append({"input_ids": ids, "labels": [IGNORE_INDEX] * prompt + ids[prompt:]})
    return out


def _loss_and_grads(model, objective, batch, full: bool):
    model.zero_grad(set_to_none=True)
    if full:  # the model's own forward over every position, the loss on the targets
        from postlab.algos.lm import causal_lm_loss

        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        loss, _ = causal_lm_loss(logits, batch.labels, batch.num_target_tokens)
    else:
        loss, _ = objective.loss(model, batch, batch.num_target_tokens)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _tiny(lora: bool = False):
    from postlab.models.load import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer("tiny")
    model.float().train()
    if lora:
        from postlab.models.prepare import apply_lora
        from postlab.train.common import LoraConfig

        model = apply_lora(model, LoraConfig(enabled=True, r=4, alpha=8), seed=0)
    return model, tok


@pytest.mark.parametrize("lora", [False, True])
def test_packed_loss_and_gradients_equal_the_full_forward(lora):
    torch.manual_seed(0)
    model, tok = _tiny(lora)
    vocab = model.get_output_embeddings().weight.shape[0]
    batch = collate(_examples(vocab), tok.pad_token_id)
    objective = LMObjective(tok.pad_token_id)
    packed = target_logits(model, batch.input_ids, batch.attention_mask, batch.labels)
    assert packed is not None and packed.logits.shape == (batch.num_target_tokens, vocab)
    want, want_g = _loss_and_grads(model, objective, batch, full=True)
    got, got_g = _loss_and_grads(model, objective, batch, full=False)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    assert got_g.keys() == want_g.keys() and got_g
    for name in want_g:
        torch.testing.assert_close(got_g[name], want_g[name], atol=1e-6, rtol=1e-5, msg=name)
    # the held-out loss reads the same targets
    full = sum(_loss_and_grads(model, objective, collate([e], tok.pad_token_id), full=True)[0].item()
               * collate([e], tok.pad_token_id).num_target_tokens for e in _examples(vocab))
    assert evaluate_loss(model, _examples(vocab), tok.pad_token_id, 2, False) == pytest.approx(
        full / batch.num_target_tokens, rel=1e-5)


def test_a_family_it_does_not_know_falls_back_to_its_forward():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=40, n_positions=32, n_embd=16, n_layer=1, n_head=2, bos_token_id=0,
                                       eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)).train()
    batch = collate(_examples(40), 0)
    assert target_logits(model, batch.input_ids, batch.attention_mask, batch.labels) is None
    objective = LMObjective(0)
    want, _ = _loss_and_grads(model, objective, batch, full=True)
    got, _ = _loss_and_grads(model, objective, batch, full=False)
    torch.testing.assert_close(got, want)


def test_a_compiled_model_is_not_taken_apart():
    model, tok = _tiny()
    batch = collate(_examples(model.get_output_embeddings().weight.shape[0]), tok.pad_token_id)
    assert target_logits(torch.compile(model), batch.input_ids, batch.attention_mask, batch.labels) is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_target_nll_sum_matches_cross_entropy_value_and_gradient(dtype):
    torch.manual_seed(0)
    x = (torch.randn(45, 50) * 3).to(dtype)  # (N, V), N not a multiple of the chunk
    y = torch.randint(0, 50, (45,))
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref = torch.nn.functional.cross_entropy(a.float(), y, reduction="sum")
    ours = target_nll_sum(b, y, chunk=8)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-5)
    (ref / 45).backward()
    (ours / 45).backward()
    tol = 1e-6 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(b.grad.float(), a.grad.float(), atol=tol, rtol=tol)
    with torch.no_grad():
        torch.testing.assert_close(target_nll_sum(x, y), ref.detach(), atol=1e-4, rtol=1e-5)
