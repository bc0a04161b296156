"""Seconds-long RL runs on the tiny model: a synthetic reward rises; only the policy changes."""

import json

import pytest
import torch

from postlab.tasks.suite import make_item, write_suite


def lowercase_reward(item, response: str) -> float:
    """Synthetic reward: the fraction of the response's characters that are lowercase ASCII letters
    (a random byte-level model writes them ~10% of the time: a dense signal to climb)."""
    return sum("a" <= c <= "z" for c in response) / max(len(response), 1)


def _suite(tmp_path):
    items = [make_item(f"p{i}", [{"role": "user", "content": f"Write something, number {i}."}], "synthetic", "train",
                       [("keywords:existence", {"keywords": ["a"]})]) for i in range(8)]
    write_suite(items, tmp_path / "suite.jsonl")
    return str(tmp_path / "suite.jsonl")


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("advantage", ["grpo", "rloo"])
def test_grpo_and_rloo_raise_a_synthetic_reward(tmp_path, advantage):
    from postlab.models.load import load_model_and_tokenizer
    from postlab.train.grpo import GRPOConfig, train

    cfg = GRPOConfig(model="tiny", out_dir=str(tmp_path / "run"), suite=_suite(tmp_path), advantage=advantage,
                     k=8, prompts_per_step=2, steps=20, kl_coef=0.01,
                     reward={"source": "python:test_rl_smoke:lowercase_reward"},
                     sampling={"max_new_tokens": 12, "temperature": 1.0, "seed": 0},
                     optim={"lr": 2e-2, "bf16": False, "micro_batch_size": 16},
                     checkpoint={"progress": False, "save_every": 0})
    train(cfg)
    rewards = [m["reward"] for m in _metrics(tmp_path / "run")]
    start, end = sum(rewards[:3]) / 3, sum(rewards[-3:]) / 3
    assert end > start + 0.1 and end > 2 * start, (start, end)
    before, _ = load_model_and_tokenizer("tiny")
    after, _ = load_model_and_tokenizer(str(tmp_path / "run" / "model"))
    changed = [not torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values())]
    assert any(changed)
