"""What serving adds to the rollout engine (per-row sampling params, the per-step callback, sessions
that rows join and leave between decode steps) and the text side of streaming (incremental
detokenisation, stop strings)."""

import random

import pytest
import torch

from postlab.models.load import load_model_and_tokenizer
from postlab.rollout import SamplingParams, TorchEngine
from postlab.serve.stream import TextAssembler

PROMPTS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Tell me a longer story, please."}],
    [{"role": "user", "content": "2+2?"}],
]


@pytest.fixture(scope="module", params=[True, False], ids=["fast-decode", "hf-forward"])
def engine(request):
    model, tok = load_model_and_tokenizer("tiny")
    return TorchEngine(model=model, tokenizer=tok, fast_decode=request.param)


def tokens(r, b):
    return r.response_ids[b, : int(r.response_lengths[b])].tolist()


def test_per_row_params_equal_to_shared_params_give_the_same_rollout(engine):
    greedy = SamplingParams(temperature=0, max_new_tokens=12)
    shared = engine.generate(PROMPTS, greedy)
    per_row = engine.generate(PROMPTS, [greedy] * len(PROMPTS))
    assert torch.equal(shared.response_ids, per_row.response_ids)
    torch.testing.assert_close(shared.logprobs, per_row.logprobs)
    seeded = SamplingParams(temperature=1.0, max_new_tokens=12, seed=11)
    alone_shared = engine.generate(PROMPTS[:1], seeded)  # one row: the same single uniform stream
    assert torch.equal(alone_shared.response_ids, engine.generate(PROMPTS[:1], [seeded]).response_ids)


def test_seeded_row_samples_the_same_whatever_shares_its_batch(engine):
    seeded = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=16, seed=42)
    alone = engine.generate([PROMPTS[1]], [seeded])
    crowd = engine.generate(PROMPTS, [SamplingParams(temperature=0.7, max_new_tokens=5), seeded,
                                      SamplingParams(temperature=0, max_new_tokens=16, seed=3)])
    assert tokens(crowd, 1) == tokens(alone, 0)
    greedy_alone = engine.generate([PROMPTS[2]], SamplingParams(temperature=0, max_new_tokens=16))
    assert tokens(crowd, 2) == tokens(greedy_alone, 0)  # a greedy row beside sampled ones stays greedy
    other = engine.generate([PROMPTS[1]], [seeded.model_copy(update={"seed": 43})])
    assert tokens(other, 0) != tokens(alone, 0)


def test_per_row_max_new_tokens_and_stop_at_eos(engine):
    r = engine.generate(PROMPTS, [SamplingParams(temperature=0, max_new_tokens=n, stop_at_eos=False) for n in (3, 9, 5)])
    assert r.response_lengths.tolist() == [3, 9, 5] and r.finish_reasons() == ["length"] * 3
    assert r.response_ids.size(1) == 9 and (r.response_ids[0, 3:] == engine.pad_id).all()


def test_on_step_sees_every_token_and_can_end_rows(engine):
    seen: dict[int, list[int]] = {0: [], 1: [], 2: []}

    def on_step(rows, toks):
        for row, tok in zip(rows, toks):
            seen[row].append(tok)
        return [1] if len(seen[1]) == 4 else None  # end row 1 after its fourth token

    params = SamplingParams(temperature=0, max_new_tokens=10, stop_at_eos=False)
    r = engine.generate(PROMPTS, params, on_step=on_step)
    assert r.response_lengths.tolist() == [10, 4, 10] and not r.finished[1]
    for b in range(3):
        assert seen[b] == tokens(r, b)
    full = engine.generate(PROMPTS, params)
    assert tokens(r, 1) == tokens(full, 1)[:4] and tokens(r, 0) == tokens(full, 0)


def test_per_row_params_count_must_match_prompts(engine):
    with pytest.raises(ValueError, match="2 SamplingParams for 3 prompts"):
        engine.generate(PROMPTS, [SamplingParams()] * 2)


@pytest.fixture(scope="module")
def tokenizer():
    return load_model_and_tokenizer("tiny")[1]


def feed(assembler, ids):
    deltas = [assembler.push(i) for i in ids]
    return deltas, assembler.finish()


def test_multibyte_characters_are_never_split(tokenizer):
    text = "héllo wörld — 日本語 🙂!"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(text)  # byte-level: several tokens per character
    deltas, tail = feed(TextAssembler(tokenizer), ids + [tokenizer.eos_token_id])
    assert "".join(deltas) + tail == text
    assert all("\ufffd" not in d for d in deltas)


def test_stop_strings_cut_the_text_even_across_deltas(tokenizer):
    ids = tokenizer("The answer is 42. STOP here, more text", add_special_tokens=False)["input_ids"]
    a = TextAssembler(tokenizer, stops=["STOP", "never"])
    deltas, tail = feed(a, ids)
    assert a.stopped and a.text == "The answer is 42. " and "".join(deltas) + tail == a.text
    assert "S" not in "".join(deltas)  # the start of the stop string was held back, never emitted
    b = TextAssembler(tokenizer, stops=["zzz"])
    deltas, tail = feed(b, ids)
    assert not b.stopped and "".join(deltas) + tail == "The answer is 42. STOP here, more text"


def test_server_encodes_prompts_as_the_engine_does(engine):
    from postlab.serve import ServeSettings, create_app

    server = create_app(engine, ServeSettings(model_name="tiny", max_model_len=2048)).state.server
    for conversation in PROMPTS:
        assert server.encode(conversation) == engine.encode_prompts([conversation])[0]
    assert server._tokenizer is not engine.tokenizer  # its own copy, for the request thread


# --- continuous decoding: rows join and leave a running session (DecodeSession) ---

LONG = [{"role": "system", "content": "You are a patient assistant who writes long, careful answers. " * 3},
        {"role": "user", "content": "Explain, step by step, how a bicycle stays upright."}]


def run_session(session, schedule: dict[int, list[tuple[str, list[int], SamplingParams]]], drop: dict[int, str] = {}):
    """Step ``session`` until it is empty, adding ``schedule[step]`` before that step and dropping
    ``drop[step]`` after it. Returns name -> (tokens, logprobs, finish, the step that drew its last token)."""
    handles, out, step = {}, {}, 0
    while step == 0 or len(session) or any(s > step for s in schedule):
        for name, prompt, params in schedule.get(step, []):
            handles[session.add(prompt, params)] = name
            out[name] = ([], [], None, None)
        for d in session.step():
            toks, lps, _, _ = out[handles[d.handle]]
            out[handles[d.handle]] = (toks + [d.token], lps + [d.logprob], d.finish, session.steps)
        if step in drop:
            session.drop([h for h, n in handles.items() if n == drop[step]])
        step += 1
    return out


@pytest.fixture(scope="module")
def fast_engine():
    model, tok = load_model_and_tokenizer("tiny")
    return TorchEngine(model=model, tokenizer=tok)


def test_rows_that_join_a_running_session_decode_as_they_would_alone(fast_engine):
    short, long_ = fast_engine.encode_prompts([PROMPTS[0], LONG])
    assert len(long_) > 40 + len(short)  # joins with a prompt longer than the running buffer: shifts it
    greedy = SamplingParams(temperature=0, max_new_tokens=40, stop_at_eos=False)
    seeded = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=24, seed=42, stop_at_eos=False)
    mid = fast_engine.encode_prompts([PROMPTS[1]])[0]
    session = fast_engine.session()
    out = run_session(session, {
        0: [("a", short, greedy)],
        5: [("b", long_, greedy), ("c", mid, seeded)],  # prefilled together, padded to the longer prompt
        9: [("d", mid, greedy.model_copy(update={"max_new_tokens": 6}))],
    })
    for name, prompt, params in [("a", short, greedy), ("b", long_, greedy), ("c", mid, seeded),
                                 ("d", mid, greedy.model_copy(update={"max_new_tokens": 6}))]:
        alone = fast_engine.generate_ids([prompt], [params])
        tokens, logprobs, finish, _ = out[name]
        assert tokens == alone.response_ids[0].tolist(), name
        torch.testing.assert_close(torch.tensor(logprobs), alone.logprobs[0], rtol=1e-4, atol=1e-4)
        assert finish == "length"
    assert out["a"][3] == 40 and out["d"][3] == 9 + 6 and out["b"][3] == 5 + 40  # steps: each row leaves when done
    assert session.rebuilds == 2  # a new buffer for "a", a wider one for "b"; "d" fits in place


def test_an_emptied_session_starts_over_in_its_buffers(fast_engine):
    """A server answering one request at a time allocates the KV buffers once, not per request, and
    what earlier rows left in them changes nothing (here: overwritten with large values, which a row
    that joins in place has left of its prompt)."""
    first, second = fast_engine.encode_prompts([PROMPTS[0], PROMPTS[1]])
    greedy = SamplingParams(temperature=0, max_new_tokens=10, stop_at_eos=False)
    seeded = SamplingParams(temperature=1.0, max_new_tokens=8, seed=3, stop_at_eos=False)
    session = fast_engine.session()
    out = run_session(session, {0: [("a", first, greedy)]})
    assert len(session) == 0 and session.rebuilds == 1
    k = session.k
    with torch.inference_mode():
        session.k.fill_(1e4)
        session.v.fill_(-1e4)
    # "c" joins "b" in place, in a row whose columns left of its prompt hold those values
    assert len(first) <= len(second)
    out.update(run_session(session, {0: [("b", second, greedy)], 2: [("c", first, seeded)]}))
    assert session.k is k and session.rebuilds == 1 and session.reuses == 1
    for name, prompt, params in [("a", first, greedy), ("b", second, greedy), ("c", first, seeded)]:
        alone = fast_engine.generate_ids([prompt], [params])
        assert out[name][0] == alone.response_ids[0].tolist(), name
        torch.testing.assert_close(torch.tensor(out[name][1]), alone.logprobs[0], rtol=1e-4, atol=1e-4)


def test_session_rows_leave_on_a_stop_token_or_when_dropped(fast_engine):
    prompt = fast_engine.encode_prompts([PROMPTS[2]])[0]
    free = SamplingParams(temperature=0, max_new_tokens=12, stop_at_eos=False)
    reference = fast_engine.generate_ids([prompt], [free]).response_ids[0].tolist()
    engine = TorchEngine(model=fast_engine.model, tokenizer=fast_engine.tokenizer, stop_token_ids=[reference[3]])
    out = run_session(engine.session(), {0: [("eos", prompt, free.model_copy(update={"stop_at_eos": True})),
                                             ("kept", prompt, free), ("dropped", prompt, free)]}, drop={4: "dropped"})
    assert out["eos"][0] == reference[:4] and out["eos"][2] == "stop"  # its stop token ends it
    assert out["kept"][0] == reference and out["kept"][2] == "length"  # stop_at_eos=False decodes on
    assert out["dropped"][0] == reference[:5] and out["dropped"][2] is None  # nothing after the drop


def test_sessions_need_the_fast_decode_path(engine):
    assert engine.supports_sessions() == engine.fast_decode
    if not engine.fast_decode:
        with pytest.raises(ValueError, match="fast decode path"):
            engine.session()


def test_random_traffic_through_a_session_equals_each_request_alone(fast_engine):
    """Arrivals at random steps, prompts of 1-60 words, greedy and seeded rows, stop tokens on and off,
    rows dropped midway; a small buffer and little spare room, so joins go in place and by rebuilding."""
    from postlab.rollout.engine import DecodeSession

    rng = random.Random(0)
    words = "the a cat dog runs far away quickly tell me story about sea sky blue".split()
    requests = []  # (arrival step, prompt, params, tokens after which the caller drops it)
    for i in range(24):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 60)))
        seeded = rng.random() < 0.5
        params = SamplingParams(temperature=1.0 if seeded else 0, seed=i if seeded else None,
                                max_new_tokens=rng.randint(1, 40), stop_at_eos=rng.random() < 0.5)
        requests.append((rng.randint(0, 60), fast_engine.encode_prompts([[{"role": "user", "content": text}]])[0],
                         params, rng.choice([None, rng.randint(1, 20)])))
    session = DecodeSession(fast_engine, batch_hint=4, spare_columns=8)
    out, names, drop_after, step = {}, {}, {}, 0
    while step <= 60 or len(session):
        for i, (arrival, prompt, params, drop) in enumerate(requests):
            if arrival == step:
                names[h := session.add(prompt, params)], out[i] = i, []
                if drop:
                    drop_after[h] = drop
        for d in session.step():
            out[names[d.handle]].append(d.token)
        gone = [h for h, n in drop_after.items() if len(out[names[h]]) == n]
        session.drop(gone)
        for h in gone:
            del drop_after[h]
        step += 1
    assert session.rebuilds > 1 and len(session) == 0
    for i, (_, prompt, params, drop) in enumerate(requests):
        alone = fast_engine.generate_ids([prompt], [params])
        assert out[i] == alone.response_ids[0, : int(alone.response_lengths[0])].tolist()[:drop], i


def test_single_row_layout_choice_follows_the_measured_times():
    from postlab.rollout.engine import choose_single_row_layout

    assert choose_single_row_layout(35.3, 26.1) == "plain"  # this Xeon's fp32 figures (benchmarks/decode_step.py)
    assert choose_single_row_layout(21.0, 26.0) == "packed"
    assert choose_single_row_layout(30.0, 29.0) == "packed"  # under the 5% margin: keep the one copy
    with pytest.raises(ValueError, match="single_row"):
        TorchEngine(model=None, tokenizer=None, single_row="fast")


def assert_one_row_sessions_agree(reference, other, prompts, greedy, seeded):
    """A session of ``other`` (whose one-row steps run another way) draws what one of ``reference`` does: a row
    alone, then beside a second, then alone again; tokens equal, log-probs up to summation order."""
    schedule = {0: [("a", prompts[0], greedy)], 12: [("b", prompts[1], seeded)]}  # alone, two, alone again
    sessions = {e: e.session(batch_hint=4) for e in (reference, other)}
    out = {e: run_session(s, schedule) for e, s in sessions.items()}
    assert sessions[other].single_row_steps > 10 and sessions[reference].single_row_steps == 0
    for name in "ab":
        assert out[other][name][0] == out[reference][name][0], name
        torch.testing.assert_close(torch.tensor(out[other][name][1]), torch.tensor(out[reference][name][1]),
                                   rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="two weight layouts need oneDNN")
def test_one_row_steps_on_plain_weights_draw_what_packed_ones_do(fast_engine):
    """single_row="plain": a session's steps with one running row, and generate's once one row is left,
    run on a second, row-major copy of the weights; every row draws the same tokens as on the packed
    weights (greedy and seeded), with log-probs equal up to the two kernels' summation order."""
    plain = TorchEngine(model=fast_engine.model, tokenizer=fast_engine.tokenizer, single_row="plain")
    assert fast_engine.single_row_weights() is None
    weights = plain.single_row_weights()
    assert weights is not None and not weights.packed and plain._decode_weights(4).packed
    prompts = fast_engine.encode_prompts(PROMPTS)
    greedy = SamplingParams(temperature=0, max_new_tokens=30, stop_at_eos=False)
    seeded = SamplingParams(temperature=1.0, max_new_tokens=20, seed=5, stop_at_eos=False)
    assert_one_row_sessions_agree(fast_engine, plain, prompts, greedy, seeded)
    rows = [[greedy.model_copy(update={"max_new_tokens": n})] for n in (4, 25)]
    a = fast_engine.generate_ids(prompts[:2], [p[0] for p in rows])  # the second row runs alone after 4 steps
    b = plain.generate_ids(prompts[:2], [p[0] for p in rows])
    assert torch.equal(a.response_ids, b.response_ids)
    torch.testing.assert_close(a.logprobs, b.logprobs, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="two weight layouts need oneDNN")
def test_auto_measures_both_layouts_once_and_keeps_a_second_copy_only_when_it_wins(monkeypatch):
    from postlab.rollout import llama_decode

    model, tok = load_model_and_tokenizer("tiny")
    for fast_layout in ("plain", "packed"):
        timed = []

        def fake_step_ms(weights, batch, **kw):
            timed.append(weights.packed)
            return 10.0 if weights.packed == (fast_layout == "packed") else 20.0

        monkeypatch.setattr(llama_decode, "step_ms", fake_step_ms)
        engine = TorchEngine(model=model, tokenizer=tok, single_row="auto")
        choice = engine.choose_single_row(4)
        assert choice == {"layout": fast_layout, "measured": True, "layouts": 2,
                          "packed_ms": 10.0 if fast_layout == "packed" else 20.0,
                          "plain_ms": 10.0 if fast_layout == "plain" else 20.0}
        assert timed == [True, False, True, False]  # interleaved, two tries each
        engine.choose_single_row(4)
        assert len(timed) == 4  # once per engine
        assert (engine.single_row_weights() is not None) == (fast_layout == "plain")
        assert (False in engine._weights) == (fast_layout == "plain")
    real = TorchEngine(model=model, tokenizer=tok, single_row="auto")
    monkeypatch.undo()
    choice = real.choose_single_row(4)  # the real measurement runs and gives times
    assert choice["measured"] and choice["packed_ms"] > 0 and choice["plain_ms"] > 0


def test_one_weight_layout_needs_no_choice_and_says_so():
    from postlab.serve.app import describe_layout

    model, tok = load_model_and_tokenizer("tiny")
    generic = TorchEngine(model=model, tokenizer=tok, fast_decode=False, single_row="auto")  # no lean decode path
    assert generic.choose_single_row() == {"layout": "packed", "measured": False, "layouts": 1}
    assert generic.single_row_weights() is None
    assert describe_layout(generic.choose_single_row()) == "the one weight layout"
    assert describe_layout({"layout": "plain", "measured": True, "layouts": 2, "packed_ms": 35.0, "plain_ms": 25.5}) == \
        "plain weights (measured: packed 35.0 ms, plain 25.5 ms per step)"
