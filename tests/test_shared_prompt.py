"""Rows that share a prompt run it once (train/shared_prompt.py): the same log-probs and gradients as one
plain forward over every (prompt, response) row."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from postlab.models.load import load_model_and_tokenizer
from postlab.rollout import SamplingParams, TorchEngine
from postlab.rollout.types import cat_rollouts
from postlab.train.rl_common import response_logprobs
from postlab.train.shared_prompt import distinct_prompts, positions, response_logits

PROMPTS = [[{"role": "user", "content": "Name a colour."}],
           [{"role": "user", "content": "What is the capital of France? Answer briefly."}]]


def _plain_logits(model, r) -> torch.Tensor:
    """One forward over every whole row, the logits at the positions that score the response: (B, R, V)."""
    mask = r.attention_mask
    logits = model(input_ids=r.input_ids, attention_mask=mask, position_ids=positions(mask)).logits
    P = r.prompt_ids.size(1)
    return logits[:, P - 1 : -1]


@pytest.fixture(scope="module")
def groups():
    """3 responses to each of 2 prompts of different lengths (left-padded), responses of different lengths."""
    torch.manual_seed(0)
    model, tok = load_model_and_tokenizer("tiny")
    model.float().eval()
    engine = TorchEngine(model=model, tokenizer=tok)
    r = engine.generate([p for p in PROMPTS for _ in range(3)], SamplingParams(temperature=1.0, max_new_tokens=12, seed=5))
    assert r.prompt_mask[:3, 0].tolist() == [0, 0, 0]  # the first prompt is shorter: really left-padded
    ids, mask = r.response_ids.clone(), r.response_mask.clone()
    for b, n in ((1, 5), (4, 8)):  # responses that ended early: right-padded after them
        ids[b, n:], mask[b, n:] = r.pad_id, 0
    return model, dataclasses.replace(r, response_ids=ids, response_mask=mask)


def test_distinct_prompts_finds_the_groups(groups):
    _, r = groups
    first, inverse = distinct_prompts(r)
    assert sorted(first.tolist()) == [0, 3]
    assert torch.equal(r.prompt_ids[first[inverse]], r.prompt_ids)
    assert inverse.tolist()[:3] == [inverse[0].item()] * 3 and inverse[3] != inverse[0]


def test_same_logits_as_the_plain_forward(groups):
    model, r = groups
    with torch.no_grad():
        shared, plain = response_logits(model, r), _plain_logits(model, r)
    assert shared.shape == plain.shape == (6, r.response_ids.size(1), model.config.vocab_size)
    keep = r.response_mask.bool()
    torch.testing.assert_close(shared[keep], plain[keep], atol=1e-5, rtol=1e-5)


def test_same_gradient_as_the_plain_forward(groups):
    """Backward through the shared prompt pass sums the k rows' gradients: the plain pass's weight gradients."""
    model, r = groups
    weights = torch.linspace(-1, 1, r.response_ids.numel()).view_as(r.response_ids) * r.response_mask

    def grads(logits_fn):
        model.zero_grad()
        logp = torch.log_softmax(logits_fn(model, r).float(), -1).gather(-1, r.response_ids[..., None]).squeeze(-1)
        (logp * weights).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    shared, plain = grads(response_logits), grads(_plain_logits)
    for name in plain:
        torch.testing.assert_close(shared[name], plain[name], atol=1e-5, rtol=1e-4, msg=name)
    assert any(g.abs().sum() > 0 for n, g in shared.items() if "layers.0." in n)  # the prompt pass got its share


def _rows(r, order):
    """The rollout's rows in this order (rows may repeat)."""
    fields = ("prompt_ids", "prompt_mask", "response_ids", "response_mask", "logprobs", "finished")
    return dataclasses.replace(r, **{f: getattr(r, f)[order] for f in fields}, texts=[r.texts[i] for i in order])


def test_rows_sharing_a_prompt_need_not_be_adjacent(groups):
    """A batch in any order (prompts interleaved, as after shuffling or dynamic sampling's refills): the same
    log-probs and gradients as the plain pass."""
    model, r = groups
    mixed = _rows(r, [4, 0, 3, 1, 5, 2])
    first, inverse = distinct_prompts(mixed)
    assert first.numel() == 2 and inverse.tolist() != sorted(inverse.tolist())  # really interleaved
    weights = torch.linspace(-1, 1, mixed.response_ids.numel()).view_as(mixed.response_ids) * mixed.response_mask

    def grads(logits_fn):
        model.zero_grad()
        logits = logits_fn(model, mixed)
        logp = torch.log_softmax(logits.float(), -1).gather(-1, mixed.response_ids[..., None]).squeeze(-1)
        (logp * weights).sum().backward()
        return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    (shared, g_shared), (plain, g_plain) = grads(response_logits), grads(_plain_logits)
    keep = mixed.response_mask.bool()
    torch.testing.assert_close(shared[keep], plain[keep], atol=1e-5, rtol=1e-5)
    for name in g_plain:
        torch.testing.assert_close(g_shared[name], g_plain[name], atol=1e-5, rtol=1e-4, msg=name)


def test_a_batch_with_no_response_tokens(groups):
    """Responses of width 0 (nothing to score): empty logits, as the plain pass gives, not a crash in the tail."""
    model, r = groups
    empty = dataclasses.replace(r, response_ids=r.response_ids[:, :0], response_mask=r.response_mask[:, :0],
                                logprobs=r.logprobs[:, :0])
    with torch.no_grad():
        got = response_logits(model, empty)
    assert got.shape == (6, 0, model.config.vocab_size)


def test_distinct_prompts_take_the_plain_pass(groups):
    model, r = groups
    one_each = cat_rollouts([r, r])  # 12 rows, 2 distinct prompts
    first, _ = distinct_prompts(one_each)
    assert first.numel() == 2
    solo = _rows(r, [0, 3])
    calls = []
    hook = model.register_forward_pre_hook(lambda m, a, kw: calls.append(kw.get("cache", kw.get("past_key_values"))), with_kwargs=True)
    try:
        with torch.no_grad():
            got = response_logits(model, solo)
    finally:
        hook.remove()
    assert calls == [None]  # one plain pass, no cache
    torch.testing.assert_close(got, _plain_logits(model, solo).detach(), atol=1e-6, rtol=0)


def test_trainer_logprobs_with_lora_reference(groups):
    """LoRA policies (reference = adapters off) share the prompt pass too, in both modes."""
    peft = pytest.importorskip("peft")
    model, r = groups
    policy = peft.get_peft_model(_copy(model), peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    with torch.no_grad():
        for disable in (False, True):
            if disable:
                with policy.disable_adapter():
                    got, _ = response_logprobs(policy, r, 1.0)
                    want = _plain_logits(policy, r)
            else:
                got, _ = response_logprobs(policy, r, 1.0)
                want = _plain_logits(policy, r)
            want = torch.log_softmax(want.float(), -1).gather(-1, r.response_ids[..., None]).squeeze(-1) * r.response_mask
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def _copy(model):
    import copy

    return copy.deepcopy(model)


def test_bf16_with_the_hand_written_attention(groups):
    """Under bf16 autocast on the CPU (`cpu_attention`'s backward, queries R against keys P + R in the tail
    pass), the shared pass keeps to the plain one within bf16's rounding."""
    from postlab.models import cpu_attention

    model, r = groups
    policy = _copy(model)
    policy.set_attn_implementation(cpu_attention.register())
    calls = []
    real = cpu_attention._FlashForwardMathBackward.apply
    try:
        cpu_attention._FlashForwardMathBackward.apply = lambda *a: calls.append(a[0].shape) or real(*a)
        out = {}
        for fn in (response_logits, _plain_logits):
            policy.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = fn(policy, r)
            logp = torch.log_softmax(logits.float(), -1).gather(-1, r.response_ids[..., None]).squeeze(-1) * r.response_mask
            logp.sum().backward()
            out[fn.__name__] = logp.detach(), policy.model.layers[0].self_attn.q_proj.weight.grad.clone()
    finally:
        cpu_attention._FlashForwardMathBackward.apply = real
    assert any(shape[2] == r.response_ids.size(1) for shape in calls)  # the tail's queries went through it
    (a, ga), (b, gb) = out["response_logits"], out["_plain_logits"]
    torch.testing.assert_close(a, b, atol=0.05, rtol=0.02)
    assert torch.nn.functional.cosine_similarity(ga.flatten(), gb.flatten(), dim=0) > 0.99


def test_a_reference_copy_gives_the_policys_numbers_bit_for_bit(groups):
    """At the first step π_θ = π_ref: the frozen copy (weights without gradient, other kernels' choices)
    must give the very same log-probs, so the KL starts at exactly 0."""
    from postlab.models.prepare import load_reference, prepare_model
    from postlab.train.common import LoraConfig

    _, r = groups
    policy, _ = prepare_model("tiny", device="cpu", lora=LoraConfig(), seed=0)
    ref = load_reference("tiny", policy)
    assert ref.config._attn_implementation == policy.config._attn_implementation
    assert not any(p.requires_grad for p in ref.parameters())
    policy.train()
    with torch.no_grad():
        want, _ = response_logprobs(ref, r, 1.0)
    got, _ = response_logprobs(policy, r, 1.0)
    assert torch.equal(got.detach(), want)


def test_checkpointed_or_empty_batches_take_the_plain_pass(groups):
    """A model that checkpoints activations returns no cache (transformers' rule): it takes the plain pass; and an
    empty batch has no distinct prompt to find."""
    model, r = groups
    policy = _copy(model)
    # transformers 5.24 renamed it (the old name warns and goes in v6); older releases have only the old one.
    enable = getattr(policy, "activation_checkpointing_enable", None) or policy.gradient_checkpointing_enable
    enable()
    policy.train()
    got = response_logits(policy, r)
    got.sum().backward()
    torch.testing.assert_close(got.detach(), _plain_logits(model, r).detach(), atol=1e-5, rtol=1e-5)
    first, inverse = distinct_prompts(dataclasses.replace(r, prompt_ids=r.prompt_ids[:0], prompt_mask=r.prompt_mask[:0]))
    assert first.numel() == inverse.numel() == 0
