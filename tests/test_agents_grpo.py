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
