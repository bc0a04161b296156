"""The fixed reward probe during RL (postlab/evals/probe.py): its summary by hand, and in GRPO — the same
prompts and seeds at every point, KL exactly 0 before the first update, and training unchanged by it."""

import json

import pytest
from safetensors.torch import load_file

from postlab.errors import ConfigError
from postlab.evals.probe import read_probe, summarise
from test_rl_smoke import _suite


def test_summary_by_hand():
    # two prompts, two samples each
    row = summarise(3, ["a", "b"], gold=[1.0, 0.0, 0.0, 0.0], proxy=[2.0, 0.0, 1.0, 1.0], kl=[0.2, 0.4, 0.0, 0.0],
                    samples=2)
    assert row["step"] == 3
    assert row["per_prompt"] == {"a": {"gold": 0.5, "proxy": 1.0, "kl": pytest.approx(0.3)},
                                 "b": {"gold": 0.0, "proxy": 1.0, "kl": 0.0}}
    assert row["gold"] == 0.25 and row["gold_se"] == pytest.approx(0.25)  # sd of (0.5, 0) = 0.3536, / sqrt(2)
    assert row["proxy"] == 1.0 and row["proxy_se"] == 0.0
    assert row["kl"] == pytest.approx(0.15) and row["kl_se"] == pytest.approx(0.15)


def test_a_resumed_runs_repeat_of_a_step_replaces_the_first(tmp_path):
    rows = [{"step": 0, "gold": 0.1}, {"step": 2, "gold": 0.2}, {"step": 2, "gold": 0.3}, {"step": 4, "gold": 0.4}]
    (tmp_path / "probe.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [r["gold"] for r in read_probe(tmp_path)] == [0.1, 0.3, 0.4]
    assert read_probe(tmp_path / "nowhere") == []


def _cfg(tmp_path, name, probe_every):
    from postlab.train.grpo import GRPOConfig

    return GRPOConfig(model="tiny", out_dir=str(tmp_path / name), suite=_suite(tmp_path), k=4, prompts_per_step=2,
                      steps=4, kl_coef=0.0, reward={"source": "python:test_rl_smoke:lowercase_reward"},
                      sampling={"max_new_tokens": 10, "temperature": 1.0, "seed": 0},
                      optim={"lr": 1e-2, "bf16": False}, checkpoint={"progress": False, "save_every": 0},
                      probe={"every": probe_every, "limit": 3, "samples": 2})


def test_grpo_probes_the_same_prompts_every_n_steps_without_changing_training(tmp_path):
    from postlab.train import grpo

    grpo.train(_cfg(tmp_path, "probed", 2))
    rows = read_probe(tmp_path / "probed")
    assert [r["step"] for r in rows] == [0, 2, 4]
    assert all(list(r["per_prompt"]) == ["p0", "p1", "p2"] for r in rows)  # the first `limit` prompts, each time
    # Before any update the policy is its reference (a copy loaded for the probe, as β = 0 loads none): KL is 0.
    assert rows[0]["kl"] == 0.0 and all(p["kl"] == 0.0 for p in rows[0]["per_prompt"].values())
    assert rows[-1]["kl"] != 0.0  # lr 1e-2 moved the policy
    for r in rows:
        assert 0.0 <= r["gold"] <= 1.0 and 0.0 <= r["proxy"] <= 1.0
    metrics = [json.loads(x) for x in (tmp_path / "probed" / "metrics.jsonl").read_text().splitlines()]
    probed = [m["step"] for m in metrics if "probe/gold" in m]
    assert probed == [2, 4]
    assert next(m for m in metrics if m["step"] == 4)["probe/kl"] == rows[-1]["kl"]
    # The probe draws from its own seeds: the run trains exactly as without it.
    grpo.train(_cfg(tmp_path, "plain", 0))
    a, b = (load_file(str(tmp_path / d / "model" / "model.safetensors")) for d in ("probed", "plain"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert not (tmp_path / "plain" / "probe.jsonl").exists()


def test_probe_metrics_are_logged_on_steps_that_log_every_skips(tmp_path):
    """log_every thins an RL run's metrics lines; what a callback measured (a probe, a held-out eval) is written
    whatever the step. (Every step was written before: the gold monitor's `gold/train_score` matched the
    held-out evals' `gold/` prefix.)"""
    from postlab.train import grpo

    cfg = _cfg(tmp_path, "sparse", 2)
    cfg.checkpoint.log_every = 3
    grpo.train(cfg)
    metrics = [json.loads(x) for x in (tmp_path / "sparse" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "probe/gold" in m] == [2, 4]
    assert [m["step"] for m in metrics] == [2, 3, 4]  # 3: log_every; 2 and 4: the probe


def test_probe_with_a_sharded_policy_is_refused(tmp_path):
    from postlab.config import load_config
    from postlab.train.grpo import GRPOConfig

    with pytest.raises(ConfigError, match="probe.every"):
        load_config(GRPOConfig, None, ["model=tiny", "probe.every=2", "optim.fsdp=true"])
