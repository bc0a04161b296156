"""The one-row decode step compiled by inductor (``TorchEngine(single_row="compiled")``): its maths equal the
eager lean step's, and compiled it draws the same tokens as the eager engine, in ``generate`` and in a session."""

import pytest
import torch

from postlab.models.load import load_model_and_tokenizer
from postlab.rollout import SamplingParams, TorchEngine, compiled_step, llama_decode
from test_serve_engine import PROMPTS, assert_one_row_sessions_agree


@pytest.fixture(scope="module")
def tiny():
    return load_model_and_tokenizer("tiny")


def test_the_row_steps_maths_equal_the_lean_decoders(tiny):
    """Uncompiled, ``RowStep`` (attention over the cached columns and the new one under one softmax, K/V
    returned, not written) gives the logits, keys and values of ``LlamaDecoder.step`` at one row, step by step,
    with left padding masked out."""
    model, tok = tiny
    ids = torch.tensor([[tok.pad_token_id] * 3 + tok.encode("a prompt to continue")])
    mask = (ids != tok.pad_token_id).long()
    P, R = ids.size(1), 6
    dec = llama_decode.LlamaDecoder(llama_decode.DecodeWeights(model, packed=False), batch=1, max_len=P + R)
    step = compiled_step.RowStep(model).eval()
    valid = torch.cat([mask[0].bool(), torch.zeros(R, dtype=torch.bool)])
    with torch.no_grad():
        token = dec.prefill(ids, mask).argmax(-1)
        k, v = dec.k[:, 0].clone(), dec.v[:, 0].clone()  # (L, Hkv, P + R, D): the row's buffers for RowStep
        for s in range(R):
            position = torch.tensor([int(mask.sum()) + s])
            valid[P + s] = True
            want = dec.step(token, position, P + s, valid[None, : P + s + 1])
            got = step.forward(token, position, k[:, :, : P + s], v[:, :, : P + s], valid[: P + s])
            torch.testing.assert_close(got[0], want, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(got[1], dec.k[:, 0, :, P + s], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(got[2], dec.v[:, 0, :, P + s], rtol=1e-5, atol=1e-5)
            k[:, :, P + s], v[:, :, P + s] = got[1], got[2]
            token = want.argmax(-1)


def test_the_compiled_layout_needs_a_compiler_and_says_so_at_start(tiny, monkeypatch):
    from postlab.serve.app import describe_layout

    monkeypatch.setattr(compiled_step, "compiler_available", lambda: False)
    with pytest.raises(ValueError, match="C\\+\\+ compiler"):
        TorchEngine(model=tiny[0], tokenizer=tiny[1], single_row="compiled")
    assert "compiled" in describe_layout({"layout": "compiled", "measured": False, "layouts": 2})


@pytest.mark.skipif(not compiled_step.compiler_available(), reason="inductor needs a C++ compiler")
def test_compiled_one_row_steps_draw_what_eager_ones_do(tiny):
    """generate's steps once one row is left, and a session's steps with one running row (alone, then beside a
    second, then alone again, across a buffer rebuild), run compiled; every row draws the tokens it draws on the
    eager engine (greedy and seeded) with log-probs equal up to the kernels' summation order."""
    model, tok = tiny
    eager = TorchEngine(model=model, tokenizer=tok, single_row="packed")
    compiled = TorchEngine(model=model, tokenizer=tok, single_row="compiled")
    assert compiled.choose_single_row()["layout"] == "compiled" and eager.row_step() is None
    compiled.warm_up()
    prompts = eager.encode_prompts(PROMPTS)
    greedy = SamplingParams(temperature=0, max_new_tokens=30, stop_at_eos=False)
    seeded = SamplingParams(temperature=1.0, max_new_tokens=20, seed=5, stop_at_eos=False)
    rows = [greedy.model_copy(update={"max_new_tokens": n}) for n in (4, 25)]
    for params in ([greedy], [seeded], rows):
        a = eager.generate_ids(prompts[: len(params)], params)
        b = compiled.generate_ids(prompts[: len(params)], params)
        assert torch.equal(a.response_ids, b.response_ids)
        torch.testing.assert_close(a.logprobs, b.logprobs, rtol=1e-4, atol=1e-4)
    assert_one_row_sessions_agree(eager, compiled, prompts, greedy, seeded)
    assert compiled.row_step().calls > 40
