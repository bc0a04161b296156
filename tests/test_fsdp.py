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


def assert_same_row(a: dict, b: dict, name: str, *, loose: tuple[str, ...] = (), nan_ok: bool = False) -> None:
    """One logged row of the sharded run (b) against one process's (a): every float within 1e-5 (abs and
    rel), the ``loose`` keys within 1e-4 relative; tokens_per_s is a speed, not compared."""
    floats = {k for k, v in a.items() if isinstance(v, float) and k not in ("tokens_per_s", *loose)}
    assert floats and {k: b[k] for k in floats} == pytest.approx({k: a[k] for k in floats}, abs=1e-5, rel=1e-5,
                                                                 nan_ok=nan_ok), name
    for k in loose:
        assert k not in a or b[k] == pytest.approx(a[k], rel=1e-4), (name, k)


def test_fsdp_is_refused_where_it_cannot_run(monkeypatch, tmp_path):
    from postlab.train import rm, sft

    chat = write_jsonl(tmp_path / "chat.jsonl", [conv("a?", "b.")])
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ConfigError, match="optim.fsdp: FSDP2 shards the model over the processes of a torchrun"):
        load_config(sft.SFTConfig, None, [f"data.train_file={chat}", "optim.fsdp=true"])
    monkeypatch.setenv("WORLD_SIZE", "2")  # the config checks of a torchrun rank
    with pytest.raises(ConfigError, match="optim.fsdp: not combined with optim.compile"):
        load_config(sft.SFTConfig, None, [f"data.train_file={chat}", "optim.fsdp=true", "optim.compile=true"])
    for cls, recipe, match in ((sft.SFTConfig, sft, "not combined with gold_eval"), (rm.RMConfig, rm, "not combined with trainable_layers")):
        extra = ["gold_eval.every=1"] if cls is sft.SFTConfig else ["trainable_layers=1"]
        cfg = load_config(cls, None, [f"data.train_file={chat}", "optim.fsdp=true", f"out_dir={tmp_path / 'run'}", *extra])
        with pytest.raises(ConfigError, match=f"optim.fsdp: {match}"):
            recipe.train.__wrapped__(cfg)  # refused before anything is loaded or written
    assert not (tmp_path / "run").exists()
    lora_like = torch.nn.Linear(2, 2)
    lora_like.bias.requires_grad_(False)
    with pytest.raises(ConfigError, match="optim.fsdp: supported for full fine-tuning and LoRA, and this model has other frozen"):
        distributed.check_fsdp(lora_like, World(0, 2))
    with pytest.raises(ConfigError, match="one process has nothing to shard"):
        distributed.check_fsdp(torch.nn.Linear(2, 2), World())
    from postlab.train import grpo, ppo

    for recipe, cls in ((grpo, grpo.GRPOConfig), (ppo, ppo.PPOConfig)):  # sharded RL: what needs a whole policy
        monkeypatch.delenv("WORLD_SIZE", raising=False)
        with pytest.raises(ConfigError, match="optim.fsdp: FSDP2 shards the model over the processes of a torchrun"):
            load_config(cls, None, ["optim.fsdp=true"])
        monkeypatch.setenv("WORLD_SIZE", "2")
        for extra, match in ((["rollout.workers=2"], "not combined with rollout.workers"),
                             (["gold_eval.every=1"], "not combined with gold_eval")):
            cfg = load_config(cls, None, ["model=tiny", "optim.fsdp=true", f"out_dir={tmp_path / 'run'}", *extra])
            with pytest.raises(ConfigError, match=f"optim.fsdp: {match}"):
                recipe.train.__wrapped__(cfg)
    assert not (tmp_path / "run").exists()


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
            assert_same_row(a, b, name)
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


def test_reward_model_sharded_takes_the_single_process_steps(tmp_path):
    """The reward model's objective calls its body and its score head one by one (not the model), so
    each is sharded as its own root: losses, held-out metrics, the reward offset and the final weights
    are one process's (full fine-tuning and LoRA), and a one-process checkpoint resumes sharded."""
    from postlab.train import rm

    from test_distributed import pairs

    train_file = write_jsonl(tmp_path / "train.jsonl", pairs(24, 0))
    eval_file = write_jsonl(tmp_path / "eval.jsonl", pairs(6, 1))
    args = [*COMMON, f"data.train_file={train_file}", f"data.eval_file={eval_file}", "optim.batch_size=4",
            "optim.lr=3e-3", "checkpoint.eval_every=2", "checkpoint.save_every=2"]
    rm.train(load_config(rm.RMConfig, None, [*args, f"out_dir={tmp_path / 'rm1'}"]))
    script = tmp_path / "run_commands.py"
    script.write_text(RUN_COMMANDS)
    shutil.copytree(tmp_path / "rm1", tmp_path / "rm3")  # resumed sharded from the one-process step 4
    shutil.rmtree(tmp_path / "rm3" / "checkpoints" / f"step-{STEPS:07d}")
    shutil.rmtree(tmp_path / "rm3" / "model")
    lora = ["lora.enabled=true", "lora.r=4"]  # adapters, and the score head trained whole
    rm.train(load_config(rm.RMConfig, None, [*args, *lora, f"out_dir={tmp_path / 'lora1'}"]))
    p = torchrun([str(script), json.dumps([["rm", *args, "optim.fsdp=true", f"out_dir={tmp_path / 'rm2'}"],
                                           ["rm", *args, "optim.fsdp=true", "checkpoint.resume=true", f"out_dir={tmp_path / 'rm3'}"],
                                           ["rm", *args, *lora, "optim.fsdp=true", f"out_dir={tmp_path / 'lora2'}"]])])
    assert p.returncode == 0, p.stderr[-3000:]
    one, two = tmp_path / "rm1", tmp_path / "rm2"
    m1, m2 = metrics(one), metrics(two)
    assert [m["step"] for m in m2] == [m["step"] for m in m1] and any("eval_loss" in m for m in m2[:-1])
    for a, b in zip(m1, m2):
        assert_same_row(a, b, "rm", nan_ok=True)  # no gold margins in these pairs: accuracy vs gold is NaN
    assert len(losses(two)) == STEPS and losses(two)[-1] < losses(two)[0]
    worst = assert_same_weights(one, two)
    r1, r2 = (json.loads((run / "rm_results.json").read_text()) for run in (one, two))
    floats = {k for k, v in r1.items() if isinstance(v, float)}  # held-out accuracy, loss, reward offset
    assert {k: r2[k] for k in floats} == pytest.approx({k: r1[k] for k in floats}, rel=1e-5, abs=1e-5)
    for name in ("rm", "lora"):
        a, b = tmp_path / f"{name}1", tmp_path / f"{name}2"
        assert losses(b) == pytest.approx(losses(a), abs=1e-5, rel=0), name
        assert_same_weights(a, b)  # the merged final reward models
    assert "rm: resuming from step-0000004" in p.stderr
    assert_same_weights(tmp_path / "rm1", tmp_path / "rm3")
    print(f"rm sharded: loss {losses(two)[0]:.3f} -> {losses(two)[-1]:.3f}; weights {worst:.1e}")


def test_merged_lora_state_is_merge_and_unload():
    """The final model of a sharded LoRA run is merged from the gathered tensors (the model's own
    weights are shards): the same weights as peft's merge_and_unload."""
    from postlab.models.load import load_model_and_tokenizer
    from postlab.models.prepare import apply_lora, merged_lora_state
    from postlab.train.common import LoraConfig

    model, _ = load_model_and_tokenizer("tiny")
    model = apply_lora(model, LoraConfig(enabled=True, r=4, alpha=8), seed=0)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_()  # B starts at zero: a merge would change nothing
    merged = merged_lora_state(model, model.state_dict())
    expected = model.merge_and_unload().state_dict()
    assert merged.keys() == expected.keys()
    assert max((merged[k] - expected[k]).abs().max().item() for k in expected) < 1e-6
    assert any((merged[k] - w).abs().max() > 1e-3 for k, w in load_model_and_tokenizer("tiny")[0].state_dict().items())


def test_lora_sharded_takes_the_single_process_steps(tmp_path):
    """LoRA under FSDP2: the frozen base and the adapters are sharded alike; SFT and DPO (whose reference
    is the model with its adapters off) take one process's steps, the final model is the merged one, and
    a sharded LoRA checkpoint resumes in one process."""
    from postlab.train import dpo, sft

    from test_distributed import pairs

    chat = write_jsonl(tmp_path / "chat.jsonl", [conv(f"Question {i}?", f"Answer number {i} is {i * 7}.") for i in range(8)])
    lora = ["lora.enabled=true", "lora.r=4", "optim.lr=3e-3", "optim.batch_size=4"]
    sft_args = [*COMMON, *lora, f"data.train_file={chat}", "data.eval_fraction=0", "checkpoint.save_every=2"]
    dpo_args = [*COMMON, *lora, f"data.train_file={write_jsonl(tmp_path / 'train.jsonl', pairs(24, 0))}",
                f"data.eval_file={write_jsonl(tmp_path / 'eval.jsonl', pairs(6, 1))}", "beta=0.5", "checkpoint.eval_every=2"]
    sft.train(load_config(sft.SFTConfig, None, [*sft_args, f"out_dir={tmp_path / 'sft1'}"]))
    dpo.train(load_config(dpo.DPOConfig, None, [*dpo_args, f"out_dir={tmp_path / 'dpo1'}"]))
    script = tmp_path / "run_commands.py"
    script.write_text(RUN_COMMANDS)
    p = torchrun([str(script), json.dumps([["sft", *sft_args, "optim.fsdp=true", f"out_dir={tmp_path / 'sft2'}"],
                                           ["dpo", *dpo_args, "optim.fsdp=true", f"out_dir={tmp_path / 'dpo2'}"]])])
    assert p.returncode == 0, p.stderr[-3000:]
    for name in ("sft", "dpo"):
        one, two = tmp_path / f"{name}1", tmp_path / f"{name}2"
        for a, b in zip(metrics(one), metrics(two), strict=True):
            # grad_norm sums squares over shards in another order: 1.4e-5 relative seen on DPO's adapters
            assert_same_row(a, b, name, loose=("grad_norm",))
        assert len(losses(two)) == STEPS and losses(two)[-1] < losses(two)[0], name
        worst = assert_same_weights(one, two)  # the merged final models
        print(f"{name} LoRA sharded: loss {losses(two)[0]:.3f} -> {losses(two)[-1]:.3f}; merged weights {worst:.1e}")
    # The sharded run's step-4 checkpoint (adapters and their AdamW state only), resumed by one process.
    shutil.rmtree(tmp_path / "sft2" / "checkpoints" / f"step-{STEPS:07d}")
    shutil.rmtree(tmp_path / "sft2" / "model")
    sft.train(load_config(sft.SFTConfig, None, [*sft_args, f"out_dir={tmp_path / 'sft2'}", "checkpoint.resume=true"]))
    assert_same_weights(tmp_path / "sft1", tmp_path / "sft2")
