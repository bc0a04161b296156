"""FSDP2 under torchrun (`optim.fsdp=true`, postlab.train.distributed.shard_model, docs/scaling.md): two
gloo ranks on the CPU, each holding half of every weight, take the same steps as one process (fp32: loss
curve, held-out losses and final weights within 1e-5) for `sft` and full-weight `dpo`; checkpoints keep
the single-process format, so one written by a sharded run resumes in one process and one written by
one process resumes sharded. Where FSDP is not supported, a clear error."""

import json
import shutil

import pytest
import torch

from postlab.config import load_config
from postlab.errors import ConfigError
from postlab.train import distributed
from postlab.train.distributed import World

from conftest import conv, write_jsonl
from test_distributed import COMMON, RUN_COMMANDS, STEPS, assert_same_weights, losses, pairs, torchrun


@pytest.fixture(autouse=True)
def fp32_for_auto(monkeypatch):
    monkeypatch.setenv("POSTLAB_DTYPE", "fp32")


def metrics(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_fsdp_is_refused_where_it_cannot_run(monkeypatch, tmp_path):
    from postlab.train import rm, sft

    chat = write_jsonl(tmp_path / "chat.jsonl", [conv("a?", "b.")])
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ConfigError, match="optim.fsdp: FSDP2 shards the model over the processes of a torchrun"):
        load_config(sft.SFTConfig, None, [f"data.train_file={chat}", "optim.fsdp=true"])
    monkeypatch.setenv("WORLD_SIZE", "2")  # the config checks of a torchrun rank
    with pytest.raises(ConfigError, match="optim.fsdp: not combined with optim.compile"):
        load_config(sft.SFTConfig, None, [f"data.train_file={chat}", "optim.fsdp=true", "optim.compile=true"])
    for cls, recipe, match in ((sft.SFTConfig, sft, "not combined with gold_eval"), (rm.RMConfig, rm, "not supported by rm")):
        extra = ["gold_eval.every=1"] if cls is sft.SFTConfig else []
        cfg = load_config(cls, None, [f"data.train_file={chat}", "optim.fsdp=true", f"out_dir={tmp_path / 'run'}", *extra])
        with pytest.raises(ConfigError, match=f"optim.fsdp: {match}"):
            recipe.train.__wrapped__(cfg)  # refused before anything is loaded or written
    assert not (tmp_path / "run").exists()
    lora_like = torch.nn.Linear(2, 2)
    lora_like.bias.requires_grad_(False)
    with pytest.raises(ConfigError, match="optim.fsdp: supported for full fine-tuning only.*lora"):
        distributed.check_fsdp(lora_like, World(0, 2))
    with pytest.raises(ConfigError, match="one process has nothing to shard"):
        distributed.check_fsdp(torch.nn.Linear(2, 2), World())
    for name in ("grpo", "ppo"):  # the RL recipes have no such field
        from postlab.train import grpo, ppo

        cls = {"grpo": grpo.GRPOConfig, "ppo": ppo.PPOConfig}[name]
        with pytest.raises(ConfigError, match="fsdp"):
            load_config(cls, None, ["optim.fsdp=true"])


def test_sft_dpo_and_pretrain_sharded_take_the_single_process_steps_and_checkpoints_cross_over(tmp_path):
    from postlab.train import dpo, pretrain, sft

    chat = write_jsonl(tmp_path / "chat.jsonl", [conv(f"Question {i}?", f"Answer number {i} is {i * 7}.") for i in range(8)])
    held = write_jsonl(tmp_path / "held.jsonl", [conv(f"Query {i}?", f"Reply {i} is {i * 3}.") for i in range(3)])
    sft_args = [*COMMON, f"data.train_file={chat}", f"data.eval_file={held}", "optim.lr=3e-3", "optim.batch_size=4",
                "checkpoint.eval_every=2", "checkpoint.save_every=2"]
    train_file = write_jsonl(tmp_path / "train.jsonl", pairs(24, 0))
    eval_file = write_jsonl(tmp_path / "eval.jsonl", pairs(6, 1))
    dpo_args = [*COMMON, f"data.train_file={train_file}", f"data.eval_file={eval_file}", "optim.batch_size=4",
                "optim.lr=3e-3", "beta=0.5", "checkpoint.eval_every=2"]
    text = tmp_path / "text.txt"
    text.write_text(" ".join(f"the river {i} runs past stone {i % 7} and green paper" for i in range(40)))
    pretrain_args = [*COMMON, f"data.files=[{text}]", "data.block_size=32", "data.eval_fraction=0.2",
                     "optim.batch_size=4", "optim.lr=3e-3"]
    sft.train(load_config(sft.SFTConfig, None, [*sft_args, f"out_dir={tmp_path / 'sft1'}"]))
    pretrain.train(load_config(pretrain.PretrainConfig, None, [*pretrain_args, f"out_dir={tmp_path / 'pretrain1'}"]))
    dpo.train(load_config(dpo.DPOConfig, None, [*dpo_args, f"out_dir={tmp_path / 'dpo1'}"]))
    # A one-process checkpoint (step 4) for the sharded run to resume: micro-batches of 2 accumulated twice
    # (each rank's share: 1 conversation, its gradients kept local until the second) make the same step.
    shutil.copytree(tmp_path / "sft1", tmp_path / "resumed2")
    shutil.rmtree(tmp_path / "resumed2" / "checkpoints" / f"step-{STEPS:07d}")
    shutil.rmtree(tmp_path / "resumed2" / "model")
    commands = [["sft", *sft_args, "optim.fsdp=true", f"out_dir={tmp_path / 'sft2'}"],
                ["sft", *sft_args, "optim.fsdp=true", "optim.batch_size=2", "optim.grad_accum=2",
                 "checkpoint.resume=true", f"out_dir={tmp_path / 'resumed2'}"],
                ["dpo", *dpo_args, "optim.fsdp=true", f"out_dir={tmp_path / 'dpo2'}"],
                ["pretrain", *pretrain_args, "optim.fsdp=true", f"out_dir={tmp_path / 'pretrain2'}"]]
    script = tmp_path / "run_commands.py"
    script.write_text(RUN_COMMANDS)
    p = torchrun([str(script), json.dumps(commands)], timeout=400)
    assert p.returncode == 0, p.stderr[-3000:]
    for name in ("sft", "dpo", "resumed", "pretrain"):
        one, two = tmp_path / f"{'sft' if name == 'resumed' else name}1", tmp_path / f"{name}2"
        m1, m2 = metrics(one), metrics(two)
        assert [m["step"] for m in m2] == [m["step"] for m in m1], name  # rank 0 alone logged
        for a, b in zip(m1, m2):  # losses, eval_* (every rank ran the sharded model; rank 0 logged), grad norms
            floats = {k for k, v in a.items() if isinstance(v, float) and k not in ("tokens_per_s",)}
            assert floats and {k: b[k] for k in floats} == pytest.approx({k: a[k] for k in floats}, abs=1e-5, rel=1e-5), name
        assert len(losses(two)) == STEPS and losses(two)[-1] < losses(two)[0]
        assert any("eval_loss" in m for m in m2) and (name == "pretrain" or any("eval_loss" in m for m in m2[:-1])), name
        worst = assert_same_weights(one, two)
        print(f"{name}: loss {losses(two)[0]:.3f} -> {losses(two)[-1]:.3f}; largest difference: loss "
              f"{max(abs(a - b) for a, b in zip(losses(one), losses(two))):.1e}, weights {worst:.1e}")
    # Written by two sharded ranks, in the one-process format: resumed by one process at step 4.
    ckpt1, ckpt2 = tmp_path / "sft1" / "checkpoints", tmp_path / "sft2" / "checkpoints"
    assert sorted(c.name for c in ckpt2.iterdir()) == ["step-0000004", f"step-{STEPS:07d}"]
    o1, o2 = (torch.load(c / f"step-{STEPS:07d}" / "optimizer.pt", weights_only=True) for c in (ckpt1, ckpt2))
    assert o2["param_groups"] == o1["param_groups"] and o2["state"].keys() == o1["state"].keys()
    assert max((o2["state"][i][k] - o1["state"][i][k]).abs().max().item()
               for i in o1["state"] for k in ("exp_avg", "exp_avg_sq", "step")) < 1e-6
    shutil.rmtree(ckpt2 / f"step-{STEPS:07d}")
    shutil.rmtree(tmp_path / "sft2" / "model")
    resumed = sft.train(load_config(sft.SFTConfig, None, [*sft_args, f"out_dir={tmp_path / 'sft2'}", "checkpoint.resume=true"]))
    assert resumed.state.step == STEPS and resumed.train_losses == pytest.approx(losses(tmp_path / "sft1")[-1:], abs=1e-5)
    print(f"sft, sharded checkpoint resumed by one process: weights {assert_same_weights(tmp_path / 'sft1', tmp_path / 'sft2'):.1e}")
    r1, r2 = (json.loads((tmp_path / f"dpo{i}" / "dpo_results.json").read_text()) for i in (1, 2))
    floats = {k for k, v in r1.items() if isinstance(v, float)}
    assert {k: r2[k] for k in floats} == pytest.approx({k: r1[k] for k in floats}, rel=1e-5, abs=1e-5)
