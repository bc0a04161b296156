"""Issue 19: multi-turn rollouts keep the model's token ids end to end; the loss mask is 1 exactly on the
model's tokens; the batch's positions line up under padding (teacher-forced log-probs = sampling ones)."""

import json
import random

import pytest
import torch

from postlab.agents.envs import env_rows, make_env
from postlab.data.chat import render_chat
from postlab.agents.rollout import collate_episodes, environment_ids, run_episodes
from postlab.models.load import load_model_and_tokenizer
from postlab.rollout import SamplingParams, TorchEngine
from postlab.rollout.types import Rollout
from postlab.train.rl_common import response_logprobs


@pytest.fixture(scope="module")
def tiny():
    return load_model_and_tokenizer("tiny")


class Recording(TorchEngine):
    """The real engine, remembering every context it was given and every token it drew, per call."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.calls = []

    def generate_ids(self, prompts, params, *, on_step=None):
        out = super().generate_ids(prompts, params, on_step=on_step)
        drawn = [out.response_ids[b, : int(out.response_mask[b].sum())].tolist() for b in range(len(prompts))]
        self.calls.append(([list(p) for p in prompts], drawn, out.finished.tolist()))
        return out


class Scripted(TorchEngine):
    """Answers with scripted texts (one list per episode, in turn order), scoring them with the model
    (teacher-forced log-probs at temperature 1), so tool calls happen with a random tiny model."""

    def __init__(self, scripts, **kw):
        super().__init__(**kw)
        self.scripts = {tuple(k): list(v) for k, v in scripts}

    def generate_ids(self, prompts, params, *, on_step=None):
        responses = []
        for p, prm in zip(prompts, params):
            key = next(k for k in self.scripts if tuple(p[: len(k)]) == k)
            text = self.scripts[key].pop(0)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][: prm.max_new_tokens - 1]
            responses.append(ids + [self.tokenizer.eos_token_id])
        from postlab.rollout.engine import left_pad

        prompt_ids, prompt_mask = left_pad(prompts, self.pad_id)
        R = max(len(r) for r in responses)
        resp = torch.full((len(prompts), R), self.pad_id)
        mask = torch.zeros((len(prompts), R), dtype=torch.long)
        for b, r in enumerate(responses):
            resp[b, : len(r)], mask[b, : len(r)] = torch.tensor(r), 1
        rollout = Rollout(prompt_ids, prompt_mask, resp, mask, torch.zeros(resp.shape), torch.ones(len(prompts), dtype=torch.bool),
                          [], self.pad_id)
        with torch.no_grad():
            logp, _ = response_logprobs(self.model, rollout, 1.0)
        rollout.logprobs = logp
        return rollout


class Chatter:
    """A protocol-only environment (not a ToolEnv): it replies to every turn until ``turns`` turns."""

    name, tools = "chatter", []

    def __init__(self, turns):
        self.turns = turns

    def reset(self, row):
        self.messages, self.k = [{"role": "user", "content": row["question"]}], 0
        return list(self.messages)

    def step(self, message):
        from postlab.agents.env import EpisodeState

        self.k += 1
        self.messages.append({"role": "assistant", "content": message})
        done = self.k >= self.turns
        out = [] if done else [{"role": "user", "content": f"go on ({self.k})"}]
        self.messages += out
        return out, float(done), done, {"state": EpisodeState(turns=self.k, done=done, reward=float(done))}

    def truncate(self):
        return 0.0


def opening_ids(tok, env, row):
    text = render_chat(tok, env.reset(row), add_generation_prompt=True, tools=env.tools)
    return tok(text, add_special_tokens=False)["input_ids"]


def check_episode_tokens(ep, tok):
    """Every model turn is a run of mask-1 tokens; everything else is mask 0; the turns' texts are the
    transcript's assistant messages."""
    assert len(ep.ids) == len(ep.loss_mask) == len(ep.logprobs)
    covered = [0] * len(ep.ids)
    for a, b in ep.turn_spans:
        assert all(m == 1 for m in ep.loss_mask[a:b])
        covered[a:b] = [1] * (b - a)
    assert covered == ep.loss_mask
    assert all(lp == 0.0 for lp, m in zip(ep.logprobs, ep.loss_mask) if m == 0)
    said = [m["content"] for m in ep.messages if m["role"] == "assistant"]
    assert said == [tok.decode(ep.ids[a:b], skip_special_tokens=True) for a, b in ep.turn_spans]


@pytest.mark.parametrize("seed", [0, 1])
def test_ids_and_mask_are_what_the_model_drew_across_turns(tiny, seed):
    model, tok = tiny
    engine = Recording(model=model, tokenizer=tok)
    rng = random.Random(seed)
    turns = [rng.randint(1, 3) for _ in range(3)]
    rows = [{"question": "hi " * rng.randint(1, 9)} for _ in turns]  # prompts of different lengths: padding
    eps = run_episodes(engine, [Chatter(t) for t in turns], rows,
                       SamplingParams(max_new_tokens=rng.randint(3, 8), seed=seed), max_total_tokens=512)
    for i, ep in enumerate(eps):
        assert len(ep.turn_spans) == turns[i] and ep.state.turns == turns[i]
        check_episode_tokens(ep, tok)
    # turn k's context was the prompt + the ids so far: the model's own tokens were never re-tokenised
    for e, ep in enumerate(eps):
        seen = [(ctx, drawn, fin) for ctxs, draws, fins in engine.calls
                for ctx, drawn, fin in zip(ctxs, draws, fins) if ctx[: len(ep.prompt_ids)] == ep.prompt_ids]
        assert len(seen) == turns[e]
        for (ctx, drawn, fin), (a, b) in zip(seen, ep.turn_spans):
            assert ctx == ep.prompt_ids + ep.ids[:a] and ep.ids[a:b] == drawn
            if not fin:  # cut off at max_new_tokens: the closing stop token is the environment's
                assert ep.ids[b] == tok.eos_token_id and ep.loss_mask[b] == 0
    # the batch, padded both ways, scores the model tokens exactly as they were sampled
    batch = collate_episodes(eps, tok.pad_token_id)
    with torch.no_grad():
        logp, _ = response_logprobs(model, batch.as_rollout(), 1.0)
    m = batch.loss_mask.bool()
    assert m.sum() == sum(sum(ep.loss_mask) for ep in eps)
    torch.testing.assert_close(logp[m], batch.logprobs[m], atol=2e-4, rtol=1e-4)
    for b, ep in enumerate(eps):
        n = len(ep.ids)
        assert batch.response_ids[b, :n].tolist() == ep.ids and batch.loss_mask[b, n:].sum() == 0
        assert batch.attention_mask[b].sum() == n and batch.prompt_mask[b].sum() == len(ep.prompt_ids)


def test_tool_episodes_with_errors_recover_and_mask_tool_tokens(tiny):
    model, tok = tiny
    rows = env_rows("calculator", "test")[:2]
    envs = [make_env("calculator") for _ in rows]
    prompts = [opening_ids(tok, env, r) for env, r in zip(envs, rows)]
    expr = [r["prompt"][0]["content"].split("What is ")[1].split("?")[0] if r["suite"] == "arith" else "1+1" for r in rows]
    bad = '<tool_call>\n{"name": "calculator", "arguments": {"expr": "1"}}\n</tool_call>'
    scripts = [(prompts[0], [bad, f'<tool_call>\n{json.dumps({"name": "calculator", "arguments": {"expression": expr[0]}})}\n</tool_call>',
                             f"Answer: {rows[0]['answer']}"]),
               (prompts[1], ["Answer: 0"])]
    engine = Scripted(scripts, model=model, tokenizer=tok)
    eps = run_episodes(engine, envs, rows, SamplingParams(max_new_tokens=200), max_total_tokens=4096)
    first, second = eps
    assert (first.state.turns, first.state.invalid_calls, first.state.success, first.state.recovered) == (3, 1, True, True)
    assert (second.state.turns, second.state.success) == (1, False)
    check_episode_tokens(first, tok)
    env_text = tok.decode([t for t, m in zip(first.ids, first.loss_mask) if m == 0])
    assert "<tool_response>\nerror: calculator: missing expression; unknown expr" in env_text
    assert f"<tool_response>\n{rows[0]['answer']}\n</tool_response>" in env_text
    assert "Answer:" not in env_text  # the model's words are all mask 1
    batch = collate_episodes(eps, tok.pad_token_id)
    with torch.no_grad():
        logp, _ = response_logprobs(model, batch.as_rollout(), 1.0)
    m = batch.loss_mask.bool()
    torch.testing.assert_close(logp[m], batch.logprobs[m], atol=2e-4, rtol=1e-4)
    assert batch.rewards.tolist() == [1.0, 0.0]


def test_token_budget_truncates_and_scores_the_last_turn(tiny):
    model, tok = tiny
    row = env_rows("calculator", "test")[0]
    env = make_env("calculator")
    prompt = opening_ids(tok, env, row)
    call = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "1+1"}}\n</tool_call>'
    engine = Scripted([(prompt, [f"Answer: {row['answer']} {call}"] * 5)], model=model, tokenizer=tok)
    ep, = run_episodes(engine, [env], [row], SamplingParams(max_new_tokens=200), max_total_tokens=150)
    assert ep.done and ep.state.truncated and ep.state.success and ep.state.turns == 1 and len(ep.ids) < 150


def test_environment_ids_are_the_template_text_between_turns(tiny):
    _, tok = tiny
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
            {"role": "tool", "name": "t", "content": "r"}]
    ids = environment_ids(tok, msgs, [{"type": "function", "function": {"name": "t", "description": "d",
                                                                          "parameters": {"type": "object", "properties": {}}}}], "<|im_end|>")
    assert tok.decode(ids) == "\n<|im_start|>user\n<tool_response>\nr\n</tool_response><|im_end|>\n<|im_start|>assistant\n"


def test_episodes_of_one_task_differ_and_a_seed_replays(tiny):
    model, tok = tiny
    engine = TorchEngine(model=model, tokenizer=tok)
    rows = [{"question": "same"}] * 4
    params = SamplingParams(max_new_tokens=6, seed=3)
    first = run_episodes(engine, [Chatter(2) for _ in rows], rows, params)
    again = run_episodes(engine, [Chatter(2) for _ in rows], rows, params)
    assert len({tuple(ep.ids) for ep in first}) > 1  # the group's episodes are not copies of each other
    assert [ep.ids for ep in first] == [ep.ids for ep in again]
