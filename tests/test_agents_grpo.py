"""Issue 19: multi-turn GRPO over episodes (tiny model): the policy changes, and only from the model's tokens."""

import json

import pytest
import torch

from postlab.agents.env import ToolEnv
from postlab.agents.grpo import AgentGRPOConfig, train
from postlab.models.load import load_model_and_tokenizer


def echo(text: str) -> str:
    """Repeat a text.

    Args:
        text: what to repeat
    """
    return text


class Parity(ToolEnv):
    """Two turns whatever the model says (the first turn's reply is fed back), reward = parity of the
    last reply's code points: random, so groups differ and every step has signal."""

    name, max_turns, success_threshold = "parity", 2, 1.0

    def tool_functions(self):
        return [echo]

    def step(self, message):
        if self.state.turns == 0:
            message = '<tool_call>{"name": "echo", "arguments": {"text": "x"}}</tool_call>' + message
        return super().step(message)

    def score(self, answer, row, state):
        return float(sum(map(ord, answer)) % 2)


def test_agent_grpo_trains_on_multi_turn_episodes(tmp_path):
    cfg = AgentGRPOConfig(model="tiny", out_dir=str(tmp_path / "run"), env="calculator", k=4, tasks_per_step=2, steps=2,
                          max_total_tokens=96, sampling={"temperature": 1.0, "max_new_tokens": 8, "seed": 0},
                          optim={"lr": 1e-2, "micro_batch_size": 3, "bf16": False}, kl_coef=0.05)
    rows = [{"id": f"t{i}", "question": f"say {i}"} for i in range(4)]
    before, _ = load_model_and_tokenizer("tiny")
    summary = train(cfg, make=Parity, rows=rows)
    after, _ = load_model_and_tokenizer(summary["model"])
    changed = [n for (n, p), q in zip(before.named_parameters(), after.parameters()) if not torch.equal(p, q)]
    assert changed
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in lines if "reward" in m]
    assert len(steps) == 2
    for m in steps:
        assert m["mean_turns"] == 2 and m["tool_calls"] == 8 and m["tool_call_validity_rate"] == 1.0
        assert 0 < m["completions/mean_length"] <= 16 < m["episode/mean_tokens"]  # model tokens are a part of the episode
        assert m["frac_reward_zero_std"] < 1 and m["grad_norm"] > 0 and m["kl"] >= 0
    assert json.loads((tmp_path / "run" / "rl_results.json").read_text())["steps"] == 2


def test_agent_grpo_refuses_torchrun_before_writing_anything(tmp_path, monkeypatch):
    """Its ranks would neither share the episodes nor sum their gradients: one process only, said at once."""
    from postlab.errors import ConfigError
    from postlab.train import distributed
    from postlab.train.distributed import World

    monkeypatch.setattr(distributed, "world", lambda: World(0, 2))
    cfg = AgentGRPOConfig(model="tiny", out_dir=str(tmp_path / "run"), env="calculator", k=4, tasks_per_step=2, steps=1)
    with pytest.raises(ConfigError, match="without torchrun"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_per_token_advantages_equal_per_response_ones_when_constant():
    """The GRPO-family token objective takes (B,) or (B, R) advantages; a (B, R) tensor that repeats each
    response's advantage gives the same loss, and one that differs within a response weighs its tokens."""
    from postlab.algos.pg import BatchTotals, grpo_loss

    logp = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -0.7, -1.1]], requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    totals = BatchTotals.of(mask, 3)
    adv = torch.tensor([0.5, -1.0])
    kw = dict(epsilon=0.2, epsilon_high=0.2, kl_coef=0.0)
    a, _ = grpo_loss(logp, logp.detach(), None, adv, mask, totals, **kw)
    b, _ = grpo_loss(logp, logp.detach(), None, adv[:, None].expand(2, 3), mask, totals, **kw)
    assert torch.allclose(a, b)
    # ratio = 1: the loss is −(1/G) Σ_i mean_t A_it over each response's masked tokens
    per_token = torch.tensor([[0.5, 1.5, 9.0], [-1.0, -1.0, 2.0]])
    c, _ = grpo_loss(logp, logp.detach(), None, per_token, mask, totals, **kw)
    assert c.item() == pytest.approx(-((0.5 + 1.5) / 2 + (-1.0 - 1.0 + 2.0) / 3) / 2)


def test_turn_outcomes_mark_each_model_turn_in_the_batch():
    from postlab.agents.rollout import Episode, collate_episodes, turn_outcome

    assert turn_outcome({"tool_calls": 1, "invalid_calls": 0, "tool_errors": 0}) == 1
    assert turn_outcome({"tool_calls": 1, "invalid_calls": 1}) == -1
    assert turn_outcome({"tool_calls": 1, "tool_errors": 1}) == -1
    assert turn_outcome({"tool_calls": 0}) == 0 and turn_outcome({}) == 0
    # a first turn (tokens 0-2) whose call failed, 2 environment tokens, a final answer (tokens 5-6)
    ep = Episode(row={}, prompt_ids=[1, 2], ids=[5, 6, 7, 8, 9, 10, 11], loss_mask=[1, 1, 1, 0, 0, 1, 1],
                 logprobs=[0.0] * 7, turn_spans=[(0, 3), (5, 7)], turn_outcomes=[-1, 0])
    ok = Episode(row={}, prompt_ids=[1], ids=[5, 6], loss_mask=[1, 1], logprobs=[0.0] * 2, turn_spans=[(0, 2)],
                 turn_outcomes=[1])
    batch = collate_episodes([ep, ok], pad_id=0)
    assert batch.turn_signal.tolist() == [[-1, -1, -1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0]]


def test_agent_grpo_with_turn_shaping_trains_on_the_turns_signal(tmp_path):
    """With equal episode rewards no row carries an advantage, but shaping gives the turns that called a tool
    one: those rows are trained on, and the metric says what the turns did."""
    cfg = AgentGRPOConfig(model="tiny", out_dir=str(tmp_path / "run"), env="calculator", k=2, tasks_per_step=2, steps=2,
                          turn_shaping=0.5, max_total_tokens=96, sampling={"max_new_tokens": 24, "temperature": 1.0, "seed": 0},
                          optim={"lr": 1e-4, "bf16": False}, checkpoint={"progress": False, "save_every": 0})
    train(cfg)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if x.strip()]
    rows = [r for r in rows if "reward" in r]
    assert len(rows) == 2 and all("shaping/turn_outcome_mean" in r for r in rows)
    assert all(-1.0 <= r["shaping/turn_outcome_mean"] <= 1.0 for r in rows)


def test_shaped_advantages_by_hand():
    from postlab.agents.grpo import shaped_advantages

    adv = torch.tensor([0.0, 0.0, 1.0])  # two episodes without an advantage, one with
    signal = torch.tensor([[-1.0, -1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 1, 0]])
    shaped, live = shaped_advantages(adv, signal, mask, 0.5, [2])
    assert shaped.tolist() == [[-0.5, -0.5, 0.0], [0.0, 0.0, 0.0], [1.5, 1.0, 1.0]]
    assert live == [0, 2]  # row 0 now carries a signal; row 1 still none
