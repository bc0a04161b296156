"""Correctness of the rollout engine against transformers' generate and a full forward pass."""

import contextlib

import pytest
import torch

from postlab.rollout import engine as engine_module

from postlab.models.load import load_model_and_tokenizer
from postlab.rollout import SamplingParams, TorchEngine
from postlab.rollout.sampling import restrict_top_k_top_p, scaled_logprobs

PROMPTS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Tell me a much longer story, please."}],
    [{"role": "user", "content": "2+2?"}],
]


EOS = 2  # the tiny tokenizer's <|im_end|>


@pytest.fixture(scope="module", params=[True, False], ids=["fast-decode", "hf-forward"])
def engine(request):
    """Every test runs on both decode paths: the lean Llama step and the model's own forward."""
    model, tok = load_model_and_tokenizer("tiny")
    assert tok.eos_token_id == EOS
    return TorchEngine(model=model, tokenizer=tok, fast_decode=request.param)


def hf_greedy(engine, ids, n):
    out = engine.model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                max_new_tokens=n, do_sample=False, eos_token_id=engine.tokenizer.eos_token_id,
                                pad_token_id=engine.tokenizer.pad_token_id)
    return out[0, len(ids):].tolist()


def test_greedy_matches_transformers_generate(engine):
    greedy = SamplingParams(temperature=0, max_new_tokens=24)
    r = engine.generate(PROMPTS, greedy)
    for b, ids in enumerate(engine.encode_prompts(PROMPTS)):
        ours = r.response_ids[b, : int(r.response_lengths[b])].tolist()
        assert len(set(ours)) > 3  # the tiny model's outputs are not degenerate
        assert ours == hf_greedy(engine, ids, 24)[: len(ours)]


def test_batched_left_padding_equals_each_prompt_alone(engine):
    greedy = SamplingParams(temperature=0, max_new_tokens=20)
    batch = engine.generate(PROMPTS, greedy)
    assert batch.prompt_mask[:, 0].tolist().count(0) >= 1  # some rows really are left-padded
    for b, p in enumerate(PROMPTS):
        alone = engine.generate([p], greedy)
        assert batch.response_ids[b].tolist() == alone.response_ids[0].tolist()
        torch.testing.assert_close(batch.logprobs[b], alone.logprobs[0], atol=1e-4, rtol=0)


def _full_forward_logprobs(model, r, temperature: float) -> torch.Tensor:
    """log π(y_t) at the sampling temperature from one forward over prompt and response, (B, R)."""
    with torch.no_grad():
        logits = model(input_ids=r.input_ids, attention_mask=r.attention_mask,
                       position_ids=(r.attention_mask.cumsum(1) - 1).clamp_min(0)).logits
    P = r.prompt_ids.size(1)
    logp = scaled_logprobs(logits[:, P - 1 : -1].reshape(-1, logits.size(-1)), temperature).view(len(PROMPTS), -1, logits.size(-1))
    return logp.gather(-1, r.response_ids[..., None]).squeeze(-1) * r.response_mask


@pytest.mark.parametrize("temperature", [0.0, 0.7, 1.0])
def test_logprobs_equal_full_forward_pass(engine, temperature):
    r = engine.generate(PROMPTS, SamplingParams(temperature=temperature, max_new_tokens=16, seed=3))
    torch.testing.assert_close(r.logprobs, _full_forward_logprobs(engine.model, r, temperature), atol=1e-4, rtol=0)


@pytest.mark.parametrize("temperature", [0.7, 1.0])
def test_trainer_logprobs_equal_full_forward_pass(engine, temperature):
    """The RL trainer's log-probs (the LM head at the last R + 1 positions, chunked in fp32) are the full forward's."""
    from postlab.train.rl_common import response_logprobs

    r = engine.generate(PROMPTS, SamplingParams(temperature=temperature, max_new_tokens=16, seed=3))
    with torch.no_grad():
        got, _ = response_logprobs(engine.model, r, temperature)
    torch.testing.assert_close(got, _full_forward_logprobs(engine.model, r, temperature), atol=1e-5, rtol=0)


def test_seed_reproducible_and_different_seeds_differ(engine):
    p = SamplingParams(temperature=1.0, max_new_tokens=16, seed=7)
    a = engine.generate(PROMPTS, p)
    b = engine.generate(PROMPTS, p)
    c = engine.generate(PROMPTS, p.model_copy(update={"seed": 8}))
    assert torch.equal(a.response_ids, b.response_ids) and a.texts == b.texts
    assert not torch.equal(a.response_ids, c.response_ids)


@contextlib.contextmanager
def biased_eos(bias):
    """Add ``bias(step)`` to the EOS logit of every row before the engine picks tokens (both decode paths)."""
    real, calls = engine_module.choose_tokens, [0]

    def biased(logits, params, generator):
        calls[0] += 1
        logits = logits.clone()
        logits[:, EOS] += bias(calls[0])
        return real(logits, params, generator)

    engine_module.choose_tokens = biased
    try:
        yield
    finally:
        engine_module.choose_tokens = real


def test_stop_at_eos_and_masks(engine):
    eos = engine.tokenizer.eos_token_id
    with biased_eos(lambda step: 100.0 if step == 2 else 0.0):  # EOS wins the second step
        r = engine.generate(PROMPTS, SamplingParams(temperature=0, max_new_tokens=10))
    assert r.finished.all()
    assert r.response_lengths.tolist() == [2, 2, 2]  # one token, then EOS (included in the mask)
    assert (r.response_ids[:, 1] == eos).all()
    assert (r.response_ids[:, 2:] == engine.pad_id).all() and (r.logprobs[:, 2:] == 0).all()
    assert r.finish_reasons() == ["stop"] * 3
    unstopped = engine.generate(PROMPTS, SamplingParams(temperature=0, max_new_tokens=10, stop_at_eos=False))
    assert unstopped.response_lengths.tolist() == [10, 10, 10]
    assert not unstopped.finished.any() and unstopped.finish_reasons() == ["length"] * 3


def test_rows_that_stop_early_leave_the_others_unchanged(engine):
    """Rows finish at different steps and are dropped from the batch and cache; the rest continue as if alone."""
    prompts = PROMPTS + [[{"role": "user", "content": f"prompt number {i}"}] for i in range(5)]
    params = SamplingParams(temperature=0, max_new_tokens=24)
    with biased_eos(lambda step: 4.0):  # EOS becomes likely, so rows stop at various steps
        batch = engine.generate(prompts, params)
        alone = [engine.generate([p], params) for p in prompts]
    lengths = batch.response_lengths.tolist()
    assert len(set(lengths)) >= 3 and batch.finished.any()
    for b, single in enumerate(alone):
        assert batch.response_ids[b].tolist() == single.response_ids[0].tolist()
        assert bool(batch.finished[b]) == bool(single.finished[0])


def test_top_k_top_p_restrict_support():
    logp = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(restrict_top_k_top_p(logp, 2, 1.0)).tolist() == [[False, False, True, True]]
    assert torch.isinf(restrict_top_k_top_p(logp, 0, 0.8)).tolist() == [[False, False, True, True]]
    assert torch.isinf(restrict_top_k_top_p(logp, 0, 0.81)).tolist() == [[False, False, False, True]]
    assert torch.isinf(restrict_top_k_top_p(logp, 0, 0.4)).tolist() == [[False, True, True, True]]


def test_top_p_applies_to_the_renormalised_top_k():
    """Top-k, then top-p over the renormalised survivors, as HF's warpers and vLLM do: with
    p = (0.4, 0.3, 0.2, 0.1) and k = 3 the survivors are (4/9, 3/9, 2/9); top-p 0.75 keeps two of
    them (4/9 + 3/9 ≥ 0.75), where the unrenormalised mass (0.4 + 0.3 < 0.75) would keep three."""
    logp = torch.log(torch.tensor([[0.4, 0.3, 0.2, 0.1]]))
    assert torch.isinf(restrict_top_k_top_p(logp, 3, 0.75)).tolist() == [[False, False, True, True]]
    assert torch.isinf(restrict_top_k_top_p(logp, 3, 0.8)).tolist() == [[False, False, False, True]]  # 7/9 < 0.8


def test_top_k_one_is_greedy(engine):
    greedy = engine.generate(PROMPTS, SamplingParams(temperature=0, max_new_tokens=12))
    k1 = engine.generate(PROMPTS, SamplingParams(temperature=1.0, top_k=1, max_new_tokens=12, seed=0))
    assert torch.equal(greedy.response_ids, k1.response_ids)


def test_tiny_model_takes_the_fast_decode_path():
    from postlab.rollout import llama_decode

    model, _ = load_model_and_tokenizer("tiny")
    assert llama_decode.supports(model)


def test_inverse_cdf_sampling_matches_the_distribution():
    from postlab.rollout.sampling import inverse_cdf_sample

    p = torch.tensor([0.1, 0.0, 0.6, 0.3])
    g = torch.Generator().manual_seed(0)
    draws = inverse_cdf_sample(p.expand(20000, 4).contiguous(), g)
    freq = torch.bincount(draws, minlength=4).float() / 20000
    assert freq[1] == 0  # zero-probability tokens (outside top-k/top-p) are never drawn
    torch.testing.assert_close(freq, p, atol=0.015, rtol=0)


def test_decode_weights_follow_parameter_updates():
    """The engine caches fused/packed weights; an in-place update (an optimizer step) must invalidate them."""
    model, tok = load_model_and_tokenizer("tiny")
    engine = TorchEngine(model=model, tokenizer=tok)
    greedy = SamplingParams(temperature=0, max_new_tokens=12)
    before = engine.generate(PROMPTS, greedy)
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight.mul_(-3.0)
    after = engine.generate(PROMPTS, greedy)
    reference = TorchEngine(model=model, tokenizer=tok, fast_decode=False).generate(PROMPTS, greedy)
    assert not torch.equal(before.response_ids, after.response_ids)
    assert torch.equal(after.response_ids, reference.response_ids)


def _lora_policy(model, *, r: int = 2, use_dora: bool = False):
    """A LoRA policy over ``model`` whose adapters change its function (B is zero at init: set it at random)."""
    from postlab.models.prepare import apply_lora
    from postlab.train.common import LoraConfig

    if use_dora:
        from peft import LoraConfig as PeftLoraConfig, get_peft_model

        peft_model = get_peft_model(model, PeftLoraConfig(r=r, target_modules=["q_proj", "v_proj"], use_dora=True))
    else:
        peft_model = apply_lora(model, LoraConfig(enabled=True, r=r), seed=0)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return peft_model


def test_lora_policy_decodes_on_the_lean_path_with_its_adapters_merged():
    """A LoRA policy (RL with lora.enabled) samples through the lean step, with W + (α/r)·B·A in the copies: the
    same greedy tokens as its own forward through peft, and the base model's with the adapters disabled."""
    from postlab.rollout import llama_decode

    model, tok = load_model_and_tokenizer("tiny")
    greedy = SamplingParams(temperature=0, max_new_tokens=12)
    base = TorchEngine(model=model, tokenizer=tok, fast_decode=False).generate(PROMPTS, greedy)
    policy = _lora_policy(model)
    assert llama_decode.supports(policy)
    engine = TorchEngine(model=policy, tokenizer=tok)
    lean = engine.generate(PROMPTS, greedy)
    generic = TorchEngine(model=policy, tokenizer=tok, fast_decode=False).generate(PROMPTS, greedy)
    assert torch.equal(lean.response_ids, generic.response_ids)
    assert not torch.equal(lean.response_ids, base.response_ids)  # the adapters do change the answers
    torch.testing.assert_close(lean.logprobs, generic.logprobs, atol=1e-4, rtol=0)
    with policy.disable_adapter():  # the reference policy of a LoRA run: the same engine notices
        assert torch.equal(engine.generate(PROMPTS, greedy).response_ids, base.response_ids)
    assert torch.equal(engine.generate(PROMPTS, greedy).response_ids, lean.response_ids)


def test_lora_decode_weights_follow_optimizer_steps_on_the_adapters():
    model, tok = load_model_and_tokenizer("tiny")
    policy = _lora_policy(model)
    engine = TorchEngine(model=policy, tokenizer=tok)
    greedy = SamplingParams(temperature=0, max_new_tokens=12)
    before = engine.generate(PROMPTS, greedy)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=0.5, fused=True)
    policy(input_ids=torch.tensor([[5, 6, 7]])).logits.sum().backward()
    opt.step()
    after = engine.generate(PROMPTS, greedy)
    reference = TorchEngine(model=policy, tokenizer=tok, fast_decode=False).generate(PROMPTS, greedy)
    assert not torch.equal(before.response_ids, after.response_ids)
    assert torch.equal(after.response_ids, reference.response_ids)


def test_dora_adapters_take_the_generic_path():
    """DoRA rescales each weight column by a learnt magnitude: not a low-rank delta the copies can add."""
    from postlab.rollout import llama_decode

    model, tok = load_model_and_tokenizer("tiny")
    policy = _lora_policy(model, use_dora=True)
    assert not llama_decode.supports(policy)
    greedy = SamplingParams(temperature=0, max_new_tokens=8)
    out = TorchEngine(model=policy, tokenizer=tok).generate(PROMPTS, greedy)
    assert out.response_ids.shape[0] == len(PROMPTS)


def test_decode_weights_follow_fused_adamw_steps():
    """Fused AdamW updates parameters without bumping their version counters; the engine must still
    notice (RL samples from the policy being trained, not from a stale copy)."""
    model, tok = load_model_and_tokenizer("tiny")
    engine = TorchEngine(model=model, tokenizer=tok)
    greedy = SamplingParams(temperature=0, max_new_tokens=12)
    before = engine.generate(PROMPTS, greedy)
    opt = torch.optim.AdamW(model.parameters(), lr=0.5, fused=True)
    versions = [p._version for p in model.parameters()]
    model(input_ids=torch.tensor([[5, 6, 7]])).logits.sum().backward()
    opt.step()
    assert [p._version for p in model.parameters()] == versions  # the trap this test guards against
    after = engine.generate(PROMPTS, greedy)
    reference = TorchEngine(model=model, tokenizer=tok, fast_decode=False).generate(PROMPTS, greedy)
    assert not torch.equal(before.response_ids, after.response_ids)
    assert torch.equal(after.response_ids, reference.response_ids)


def test_decode_dtype_samples_an_fp32_model_as_its_bf16_copy():
    model, tok = load_model_and_tokenizer("tiny")
    greedy = SamplingParams(temperature=0, max_new_tokens=16)
    cast = TorchEngine(model=model, tokenizer=tok, decode_dtype=torch.bfloat16).generate(PROMPTS, greedy)
    bf16_model, _ = load_model_and_tokenizer("tiny", dtype=torch.bfloat16)
    native = TorchEngine(model=bf16_model, tokenizer=tok).generate(PROMPTS, greedy)
    assert torch.equal(cast.response_ids, native.response_ids)
    assert next(model.parameters()).dtype == torch.float32  # the model itself is untouched


def test_bf16_weights_stay_plain_where_onednn_has_no_bf16(monkeypatch):
    """On a CPU with AVX2 only, oneDNN refuses to pack bf16 weights ("bf16 path needs the cpu support
    avx_ne_convert or avx512bw, avx512vl and avx512dq"): bf16 decoding must keep plain weights there (the
    failure this reproduces, with oneDNN's support faked away on CPUs that have it). fp32 still packs."""
    from postlab.rollout import llama_decode

    model, tok = load_model_and_tokenizer("tiny", dtype=torch.bfloat16)
    greedy = SamplingParams(temperature=0, max_new_tokens=16)
    monkeypatch.setattr(llama_decode, "onednn_supports", lambda dtype: dtype == torch.float32)
    cpu = torch.device("cpu")
    assert not llama_decode.packs_weights(cpu, torch.bfloat16)
    assert llama_decode.packs_weights(cpu, torch.float32) == llama_decode.packs_weights(cpu)
    assert not llama_decode.DecodeWeights(model).packed
    engine = TorchEngine(model=model, tokenizer=tok, single_row="auto")
    assert engine.choose_single_row()["layouts"] == 1  # one layout where bf16 cannot pack
    out = engine.generate(PROMPTS, greedy)
    assert out.response_ids.shape[0] == len(PROMPTS) and torch.isfinite(out.logprobs[out.response_mask.bool()]).all()


def test_cat_rollouts_pads_prompts_left_and_responses_right():
    from postlab.rollout.types import cat_rollouts

    model, tok = load_model_and_tokenizer("tiny")
    engine = TorchEngine(model=model, tokenizer=tok)
    a = engine.generate(PROMPTS[:1], SamplingParams(temperature=0, max_new_tokens=4))
    b = engine.generate(PROMPTS[1:], SamplingParams(temperature=0, max_new_tokens=7))
    c = cat_rollouts([a, b])
    assert c.prompt_ids.shape == (3, b.prompt_ids.size(1)) and c.response_ids.shape == (3, 7)
    assert c.texts == a.texts + b.texts and c.finished.tolist() == a.finished.tolist() + b.finished.tolist()
    n = a.prompt_ids.size(1)
    assert c.prompt_ids[0, -n:].tolist() == a.prompt_ids[0].tolist() and (c.prompt_mask[0, :-n] == 0).all()
    assert c.response_ids[0, :4].tolist() == a.response_ids[0].tolist() and (c.response_mask[0, 4:] == 0).all()
    assert torch.equal(c.logprobs[1:], b.logprobs) and torch.equal(c.attention_mask[1:], b.attention_mask)


def test_rollouts_and_rl_logprobs_run_attention_without_cudnn(monkeypatch):
    """cuDNN attention builds a plan per new shape (~1.4 ms of CPU per decode call on an H200); sampling,
    continuous decoding and RL log-probs see new shapes every call, so they must run with it off."""
    import torch.nn.functional as F

    from postlab.rollout import llama_decode
    from postlab.train.rl_common import response_logprobs

    seen = []
    real = F.scaled_dot_product_attention

    def spy(*a, **k):
        seen.append(torch.backends.cuda.cudnn_sdp_enabled())
        return real(*a, **k)

    monkeypatch.setattr(llama_decode.F, "scaled_dot_product_attention", spy)
    model, tok = load_model_and_tokenizer("tiny")
    engine = TorchEngine(model=model, tokenizer=tok)
    r = engine.generate([[{"role": "user", "content": "hi"}]] * 2, SamplingParams(max_new_tokens=3, seed=0))
    session = engine.session()
    session.add(engine.encode_prompts([[{"role": "user", "content": "hey"}]])[0], SamplingParams(max_new_tokens=2, seed=0))
    session.step()
    assert seen and not any(seen)
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    seen.clear()
    model.config._attn_implementation = "sdpa"
    response_logprobs(model, r, 1.0)
    assert seen and not any(seen)
    assert torch.backends.cuda.cudnn_sdp_enabled()  # restored afterwards


def test_overlapping_no_cudnn_passes_restore_the_setting_whatever_order_they_end_in():
    """The backend switch is process-wide: a server's decode thread and an eval overlap, and the first to
    leave must not restore a setting the other still needs, nor the last leave cuDNN off for good."""
    from postlab.models.attention import varying_shape_attention

    assert torch.backends.cuda.cudnn_sdp_enabled()
    a, b = varying_shape_attention(), varying_shape_attention()
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)  # the first one in leaves first
    assert not torch.backends.cuda.cudnn_sdp_enabled()  # b is still running
    b.__exit__(None, None, None)
    assert torch.backends.cuda.cudnn_sdp_enabled()
    torch.backends.cuda.enable_cudnn_sdp(False)  # a setting made before is what comes back
    with varying_shape_attention():
        pass
    assert not torch.backends.cuda.cudnn_sdp_enabled()
    torch.backends.cuda.enable_cudnn_sdp(True)


def test_a_groups_prompt_is_prefilled_once(monkeypatch):
    """k samples of each prompt (an RL group): the lean prefill runs each distinct prompt once and gives every row
    its keys and values, so the rows sample what a prefill of every row would have given them."""
    from postlab.rollout import llama_decode

    model, tok = load_model_and_tokenizer("tiny")
    engine = TorchEngine(model=model, tokenizer=tok)
    grouped = [PROMPTS[1]] * 3 + [PROMPTS[0]] * 3  # two distinct prompts of different lengths
    params = [SamplingParams(temperature=1.0, max_new_tokens=10, seed=s) for s in range(6)]
    rows = []
    real = llama_decode.LlamaDecoder._prefill
    monkeypatch.setattr(llama_decode.LlamaDecoder, "_prefill", lambda self, ids, mask: rows.append(ids.size(0)) or real(self, ids, mask))
    shared = engine.generate(grouped, params)
    assert rows == [2]
    monkeypatch.setattr(llama_decode, "distinct_rows", lambda ids, mask: (torch.arange(ids.size(0)), torch.arange(ids.size(0))))
    every = engine.generate(grouped, params)
    assert rows == [2, 6]
    assert torch.equal(shared.response_ids, every.response_ids)
    torch.testing.assert_close(shared.logprobs, every.logprobs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_one_query_attention_equals_sdpa(dtype, tol):
    """The decode step's matmul attention (grouped query heads, additive mask, fp32 softmax) is SDPA's."""
    import torch.nn.functional as F

    from postlab.rollout.llama_decode import one_query_attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(s, generator=g).to(dtype) for s in ((4, 9, 64), (4, 3, 30, 64), (4, 3, 30, 64)))
    mask = torch.zeros(4, 1, 1, 30, dtype=dtype)
    mask[0, ..., :7] = float("-inf")  # a left-padded row
    want = F.scaled_dot_product_attention(q[:, :, None], k, v, attn_mask=mask, enable_gqa=True)[:, :, 0]
    got = one_query_attention(q, k, v, mask)
    assert got.shape == want.shape and got.dtype == dtype
    torch.testing.assert_close(got.float(), want.float(), atol=tol, rtol=0)
    assert not torch.allclose(one_query_attention(q, k, v, torch.zeros_like(mask))[0].float(), got[0].float())


def test_bf16_batches_decode_with_matmul_attention_as_the_model_does():
    """Batched bf16 decode steps on a CPU use the matmul attention; greedy answers stay the bf16 model's own
    (transformers' forward, no cache), and one-row steps keep SDPA."""
    from postlab.rollout import llama_decode

    model, tok = load_model_and_tokenizer("tiny", dtype=torch.bfloat16)
    w = llama_decode.DecodeWeights(model)
    assert w.matmul_attention_rows == 2
    assert llama_decode.DecodeWeights(load_model_and_tokenizer("tiny")[0]).matmul_attention_rows is None  # fp32
    greedy = SamplingParams(temperature=0, max_new_tokens=12)
    fast = TorchEngine(model=model, tokenizer=tok).generate(PROMPTS, greedy)
    slow = TorchEngine(model=model, tokenizer=tok, fast_decode=False).generate(PROMPTS, greedy)
    same = (fast.response_ids == slow.response_ids).all(dim=1)
    assert int(same.sum()) >= len(PROMPTS) - 1  # bf16 rounding may flip a near-tie in one row
