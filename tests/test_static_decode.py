"""Decoding over fixed shapes (postlab/rollout/static_decode.py, CUDA graphs on a GPU) samples what the
eager loop samples. On the CPU the static loop runs uncaptured; tests/test_cuda.py checks the captured
graph on a GPU."""

import pytest
import torch

from postlab.models.load import load_model_and_tokenizer
from postlab.rollout import SamplingParams, TorchEngine
from postlab.rollout import static_decode
from postlab.rollout.sampling import row_params

PROMPTS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Tell me a much longer story, please."}],
    [{"role": "user", "content": "2+2?"}],
    [{"role": "user", "content": "Name three colours."}],
]


@pytest.fixture(scope="module")
def model_tok():
    return load_model_and_tokenizer("tiny")


def _engines(model_tok, **kw):
    model, tok = model_tok
    return (TorchEngine(model=model, tokenizer=tok, static_decode=False, **kw),
            TorchEngine(model=model, tokenizer=tok, static_decode=True, **kw))


def _same(a, b):
    assert a.response_ids.tolist() == b.response_ids.tolist()
    assert a.response_mask.tolist() == b.response_mask.tolist()
    assert a.finished.tolist() == b.finished.tolist()
    assert a.texts == b.texts
    torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-4, rtol=0)


def test_per_row_sampling_matches_the_eager_loop(model_tok):
    """Rows with their own seeds, temperatures (one greedy), top-k/top-p and lengths, some ending at a stop
    token early: the same tokens as the eager loop, which drops rows as they end."""
    model, tok = model_tok
    eager, static = _engines(model_tok)
    base = [SamplingParams(temperature=1.0, max_new_tokens=24), SamplingParams(temperature=0.0, max_new_tokens=9),
            SamplingParams(temperature=0.7, top_k=20, max_new_tokens=24), SamplingParams(temperature=1.2, top_p=0.8,
                                                                                          max_new_tokens=17)]
    params = [row_params(p, 3, [g])[0] for g, p in enumerate(base)]
    a = eager.generate(PROMPTS, params)
    b = static.generate(PROMPTS, params)
    _same(a, b)
    assert (eager.last_decode, static.last_decode) == ("eager", "static")  # no CUDA graph on the CPU
    lengths = a.response_lengths.tolist()
    assert lengths[1] <= 9 and lengths[3] <= 17 and len(set(a.texts)) == 4


def test_rows_ending_at_stop_tokens(model_tok):
    """Frequent stop tokens end most rows within a few steps; the static loop keeps decoding them (and
    stops once all have ended) but reports what the eager loop reports."""
    model, tok = model_tok
    probe = TorchEngine(model=model, tokenizer=tok, static_decode=False).generate(
        PROMPTS, row_params(SamplingParams(temperature=1.0, max_new_tokens=40, stop_at_eos=False), 5, range(4)))
    common = torch.bincount(probe.response_ids[probe.response_mask.bool()]).topk(6).indices.tolist()
    eager, static = _engines(model_tok, stop_token_ids=common)
    params = row_params(SamplingParams(temperature=1.0, max_new_tokens=40), 5, range(4))
    a, b = eager.generate(PROMPTS, params), static.generate(PROMPTS, params)
    _same(a, b)
    assert a.finished.any() and int(a.response_lengths.min()) < 40


def test_shared_greedy_matches_the_eager_loop(model_tok):
    eager, static = _engines(model_tok)
    greedy = SamplingParams(temperature=0, max_new_tokens=20, stop_at_eos=False)
    _same(eager.generate(PROMPTS, greedy), static.generate(PROMPTS, greedy))


def test_static_step_equals_the_lean_step(model_tok):
    """One step over all S columns under the additive mask gives the logits of ``LlamaDecoder.step`` over
    the columns written so far."""
    from postlab.rollout import llama_decode

    model, tok = model_tok
    w = llama_decode.DecodeWeights(model)
    ids = torch.tensor([[0, 5, 6, 7], [8, 9, 10, 11]])
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    with torch.inference_mode():
        lean = llama_decode.LlamaDecoder(w, batch=2, max_len=10)
        lean.prefill(ids, mask)
        fixed = llama_decode.LlamaDecoder(w, batch=2, max_len=10)
        fixed.prefill(ids, mask)
        tokens, positions = torch.tensor([12, 13]), torch.tensor([3, 4])
        want = lean.step(tokens, positions, 4, torch.cat([mask, torch.ones(2, 1, dtype=torch.long)], 1).bool())
        step = static_decode.StaticStep(fixed)
        step.mask[:, 0, 0, :4] = torch.zeros(2, 4).masked_fill(mask == 0, float("-inf"))
        step.mask[:, 0, 0, 4] = 0
        step.tokens.copy_(tokens)
        step.positions.copy_(positions)
        step.slot.fill_(4)
        got = step()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fixed.k[:, :, :, :5], lean.k[:, :, :, :5])


def test_on_step_callbacks_decode_eagerly(model_tok):
    """A caller watching every token (stop strings, a server's disconnects) gets the eager loop, which can end rows."""
    model, tok = model_tok
    static = TorchEngine(model=model, tokenizer=tok, static_decode=True)
    seen = []
    r = static.generate(PROMPTS[:2], SamplingParams(temperature=0, max_new_tokens=10, stop_at_eos=False),
                        on_step=lambda rows, toks: seen.append(list(rows)) or ([0] if len(seen) == 3 else None))
    assert int(r.response_lengths[0]) == 3 and int(r.response_lengths[1]) == 10
