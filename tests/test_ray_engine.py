"""Rollouts on Ray workers (issue 20): the same rows as the in-process engine, the trainer's weights pushed
with a version, stale shards refused, a killed worker replaced. A local Ray instance with two workers."""

import pytest
import torch

ray = pytest.importorskip("ray")

from postlab.rollout.ray_engine import RayEngine, per_row_params, shards  # noqa: E402


def test_shards_split_rows_contiguously_and_evenly():
    assert [list(s) for s in shards(5, 2)] == [[0, 1, 2], [3, 4]]
    assert [list(s) for s in shards(2, 4)] == [[0], [1]]
    assert [len(s) for s in shards(10, 3)] == [4, 3, 3]


@pytest.fixture(scope="module")
def pool():
    engine = RayEngine("tiny", workers=2)
    yield engine
    engine.close()
    ray.shutdown()


@pytest.fixture(scope="module")
def local():
    from postlab.models.load import load_model_and_tokenizer
    from postlab.rollout import TorchEngine

    model, tok = load_model_and_tokenizer("tiny")
    return model, TorchEngine(model=model, tokenizer=tok)


def _prompts(engine, n=5):
    return engine.encode_prompts([[{"role": "user", "content": f"Say something about {i} " + "please " * i}]
                                  for i in range(n)])


def _same(a, b):
    assert torch.equal(a.response_ids, b.response_ids) and torch.equal(a.response_mask, b.response_mask)
    assert torch.equal(a.prompt_ids, b.prompt_ids) and torch.equal(a.finished, b.finished)
    assert torch.allclose(a.logprobs, b.logprobs, atol=1e-5) and a.texts == b.texts


def test_two_workers_sample_what_the_in_process_engine_samples(pool, local):
    model, engine = local
    params = per_row_params(__import__("postlab.rollout", fromlist=["SamplingParams"]).SamplingParams(
        temperature=1.0, max_new_tokens=12, seed=3), 5)
    prompts = _prompts(engine)
    _same(pool.generate_ids(prompts, params), engine.generate_ids(prompts, params))
    assert pool.last_versions == [0] * 5
    # one worker or two: the same rows (each row draws from its own generator)
    _same(pool.generate_ids(prompts[:2], params[:2]), engine.generate_ids(prompts[:2], params[:2]))


def test_pushed_weights_are_what_the_workers_sample_with(pool, local):
    from postlab.rollout import SamplingParams

    model, engine = local
    prompts = _prompts(engine)
    params = per_row_params(SamplingParams(temperature=1.0, max_new_tokens=10, seed=7), 5)
    before = pool.generate_ids(prompts, params)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)  # a large change: the samples must follow it
    version = pool.push_weights(model)
    after = pool.generate_ids(prompts, params)
    assert version == pool.version and pool.last_versions == [version] * 5
    assert not torch.equal(before.response_ids, after.response_ids)
    _same(after, engine.generate_ids(prompts, params))


def test_a_stale_shard_is_refused_and_sampled_again_with_the_current_weights(pool, local):
    from postlab.rollout import SamplingParams

    model, engine = local
    prompts = _prompts(engine, 4)
    params = per_row_params(SamplingParams(temperature=1.0, max_new_tokens=8, seed=11), 4)
    pool.push_weights(model)
    # worker 1 falls behind: it is given older weights (version 0's numbers) behind the engine's back
    from postlab.models.load import load_model_and_tokenizer

    old, _ = load_model_and_tokenizer("tiny")
    ray.get(pool._actors[1].load.remote({k: v for k, v in old.state_dict().items()}, 0))
    got = pool.generate_ids(prompts, params)
    assert pool.last_versions == [pool.version] * 4
    _same(got, engine.generate_ids(prompts, params))


def test_a_killed_worker_is_replaced_and_the_rows_are_unchanged(pool, local):
    from postlab.rollout import SamplingParams

    model, engine = local
    pool.push_weights(model)
    prompts = _prompts(engine, 4)
    params = per_row_params(SamplingParams(temperature=1.0, max_new_tokens=8, seed=5), 4)
    pid = ray.get(pool._actors[0].pid.remote())
    ray.kill(pool._actors[0])
    got = pool.generate_ids(prompts, params)
    assert pool.restarts >= 1 and ray.get(pool._actors[0].pid.remote()) != pid
    _same(got, engine.generate_ids(prompts, params))


def test_shared_params_need_a_seed():
    from postlab.errors import PostlabError
    from postlab.rollout import SamplingParams

    with pytest.raises(PostlabError, match="sampling seed"):
        per_row_params(SamplingParams(seed=None), 3)


def test_grpo_with_two_rollout_workers_takes_the_in_process_steps(tmp_path, pool):
    """`rollout.workers=2` against the in-process engine with per-row seeds: the same rollouts, so the same
    rewards, losses and final weights (fp32)."""
    import json

    from postlab.train import grpo
    from test_rl_smoke import _suite

    suite = _suite(tmp_path)

    def run(name, **rollout):
        cfg = grpo.GRPOConfig(model="tiny", out_dir=str(tmp_path / name), device="cpu", suite=suite, k=2, prompts_per_step=2,
                              steps=3, kl_coef=0.04, reward={"source": "python:test_rl_smoke:lowercase_reward"},
                              sampling={"max_new_tokens": 6, "temperature": 1.0, "seed": 0},
                              optim={"lr": 1e-3, "bf16": False}, rollout=rollout, checkpoint={"progress": False, "save_every": 0})
        grpo.train(cfg)
        rows = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines() if x.strip()]
        return [r for r in rows if "reward" in r]

    local, remote = run("local", per_row_seeds=True), run("ray", workers=2, cpus_per_worker=0)  # the pool holds the CPUs
    assert [r["reward"] for r in remote] == pytest.approx([r["reward"] for r in local], abs=1e-6)
    assert [r["loss"] for r in remote] == pytest.approx([r["loss"] for r in local], abs=1e-5)
    assert [r["rollout/weights_version"] for r in remote] == [1, 2, 3]
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "local" / "model" / "model.safetensors"), load_file(tmp_path / "ray" / "model" / "model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5


def test_workers_that_cannot_be_placed_are_a_clear_error(pool, monkeypatch):
    import postlab.rollout.ray_engine as re_mod
    from postlab.errors import PostlabError

    monkeypatch.setattr(re_mod, "START_TIMEOUT_S", 3)
    with pytest.raises(PostlabError, match="did not start within 3 s: each asks for 64 CPU"):
        RayEngine("tiny", workers=1, cpus_per_worker=64)


def test_lora_policies_are_refused_with_workers(tmp_path):
    from postlab.errors import ConfigError
    from postlab.train import grpo

    with pytest.raises(ConfigError, match="rollout.workers"):
        grpo.GRPOConfig(model="tiny", out_dir=str(tmp_path), rollout={"workers": 2}, lora={"enabled": True}).check()


def test_ppo_with_two_rollout_workers_takes_the_in_process_steps(tmp_path, pool):
    """PPO seeds every row on its own: `rollout.workers=2` samples its rows, so its steps are the in-process ones."""
    import json

    from postlab.train import ppo
    from test_rl_smoke import _suite

    suite = _suite(tmp_path)

    def run(name, **rollout):
        cfg = ppo.PPOConfig(model="tiny", out_dir=str(tmp_path / name), device="cpu", suite=suite, prompts_per_step=4,
                            minibatch_size=2, ppo_epochs=1, steps=2, reward={"source": "python:test_rl_smoke:lowercase_reward"},
                            sampling={"max_new_tokens": 6, "temperature": 1.0, "seed": 0}, optim={"lr": 1e-3, "bf16": False},
                            rollout=rollout, checkpoint={"progress": False, "save_every": 0})
        ppo.train(cfg)
        rows = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines() if x.strip()]
        return [r for r in rows if "loss/policy_avg" in r]

    local, remote = run("local"), run("ray", workers=2, cpus_per_worker=0)
    for key in ("proxy/score", "loss/policy_avg", "objective/kl"):
        assert [r[key] for r in remote] == pytest.approx([r[key] for r in local], abs=1e-5), key
    assert [r["rollout/weights_version"] for r in remote] == [1, 2] and "rollout/weights_version" not in local[0]
