"""Data-parallel training under torchrun (postlab.train.distributed, docs/scaling.md): two gloo ranks on
the CPU, each running half of every global batch, take the same steps as one process running all of it
(fp32: loss curve and final weights within 1e-5); a rank killed mid-run ends the job instead of hanging,
and its checkpoint resumes in a single process. Also: the `device` field every training command shares."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from postlab.config import load_config
from postlab.errors import ConfigError
from postlab.train import distributed
from postlab.train.distributed import World

from conftest import conv, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
STEPS = 5
# AdamW divides by √v: an element whose gradient nearly cancels over the batch (|g| ~ 1e-6) turns the
# fp32 noise of a different summation order (~1e-8) into a 1% change of its update (lr·1%: 3e-5 here).
# A larger ε bounds that amplification; elements with ordinary gradients (|g| ~ 1e-2) step as before.
COMMON = ["model=tiny", "optim.max_steps=5", "optim.bf16=false", "optim.warmup_steps=0", "optim.adam_eps=1e-4",
          "checkpoint.progress=false"]


@pytest.fixture(autouse=True)
def fp32_for_auto(monkeypatch):
    monkeypatch.setenv("POSTLAB_DTYPE", "fp32")


def torchrun(args: list[str], *, timeout: float = 180, env: dict | None = None) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node 2 <args>` with this checkout first on the path."""
    from postlab.models.load import load_model_and_tokenizer

    load_model_and_tokenizer("tiny")  # built once here, not by two ranks at the same time
    env = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def losses(run: Path) -> list[float]:
    return [m["loss"] for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in m]


def assert_same_weights(a: Path, b: Path, tol: float = 1e-5) -> float:
    wa, wb = load_file(str(a / "model" / "model.safetensors")), load_file(str(b / "model" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    worst = max((wa[k] - wb[k]).abs().max().item() for k in wa)
    assert worst < tol, worst
    moved = max((wa[k] - w0).abs().max().item() for k, w0 in _start_weights(a).items() if k in wa)
    assert moved > 100 * tol, "training did not move the weights: the comparison would prove nothing"
    return worst


def _start_weights(run: Path) -> dict[str, torch.Tensor]:
    from postlab.models.load import load_model_and_tokenizer

    model, _ = load_model_and_tokenizer("tiny")
    return {k: v.detach() for k, v in model.state_dict().items()}


def pairs(n: int, seed: int) -> list[dict]:
    words = "apple river stone cloud table green quick paper music light".split()
    g = torch.Generator().manual_seed(seed)
    pick = lambda k: " ".join(words[int(i)] for i in torch.randint(len(words), (k,), generator=g))  # noqa: E731
    return [{"prompt": f"Say something {i % 5}.", "chosen": pick(3) + " zebra", "rejected": pick(2), "prompt_id": str(i)}
            for i in range(n)]


# --- pieces ------------------------------------------------------------------------------------------


def test_each_rank_takes_a_contiguous_share_of_the_global_batch_in_order():
    batch = list(range(8))
    shards = [distributed.shard(batch, World(r, 2)) for r in range(2)]
    assert shards == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert sum((distributed.shard(batch, World(r, 4)) for r in range(4)), []) == batch
    assert distributed.local_batch_size(8, World(1, 4)) == 2
    with pytest.raises(ConfigError, match="optim.batch_size: 6 is the global batch.*multiple of 4"):
        distributed.local_batch_size(6, World(0, 4))


def test_one_process_is_left_alone(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.launched() and distributed.world() == World(0, 1)
    loss = lambda model, batch, n: (model, batch, n)  # noqa: E731
    assert distributed.data_parallel_loss(loss, torch.nn.Linear(1, 1), World())("b", 3)[1:] == ("b", 3)
    assert distributed.sum_over_ranks({"a": 1}, World()) == {"a": 1}
    assert distributed.data_parallel(lambda cfg: cfg + 1)(1) == 2


def test_every_training_command_takes_the_same_device_field(monkeypatch, tmp_path):
    from postlab.models.prepare import pick_device
    from postlab.train import dpo, grpo, ppo, pretrain, rm, sft

    chat = write_jsonl(tmp_path / "chat.jsonl", [{"messages": [{"role": "user", "content": "a"},
                                                                 {"role": "assistant", "content": "b"}]}])
    text = tmp_path / "t.txt"
    text.write_text("hello")
    required = {sft.SFTConfig: [f"data.train_file={chat}"], rm.RMConfig: [f"data.train_file={chat}"],
                dpo.DPOConfig: [f"data.train_file={chat}"], pretrain.PretrainConfig: [f"data.files=[{text}]"],
                grpo.GRPOConfig: [], ppo.PPOConfig: []}
    for cls, req in required.items():
        for name in ("auto", "cpu", "cuda", "cuda:1", "mps"):
            assert load_config(cls, None, [*req, f"device={name}"]).device == name
        with pytest.raises(ConfigError, match=r"device: Value error, expected auto or a torch device"):
            load_config(cls, None, [*req, "device=gpu"])
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("cuda") == torch.device("cuda")  # one process: torch's current GPU
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert pick_device("cuda") == torch.device("cuda", 1)  # under torchrun: this process's own GPU
    assert pick_device("cuda:0") == torch.device("cuda", 0)  # an explicit index is kept
    assert pick_device("cpu") == torch.device("cpu")


# --- torchrun against one process --------------------------------------------------------------------


def sft_args(chat_file: Path) -> list[str]:
    return [*COMMON, f"data.train_file={chat_file}", "data.eval_fraction=0", "optim.lr=3e-3", "optim.batch_size=4"]


@pytest.fixture(scope="module")
def sft_one(tmp_path_factory) -> Path:
    """The single-process SFT run both torchrun SFT tests compare with."""
    from postlab.train import sft

    tmp = tmp_path_factory.mktemp("sft")
    chat_file = write_jsonl(tmp / "chat.jsonl", [conv(f"Question {i}?", f"Answer number {i} is {i * 7}.") for i in range(8)])
    sft.train(load_config(sft.SFTConfig, None, [*sft_args(chat_file), f"out_dir={tmp / 'one'}"]))
    return tmp


def test_sft_under_torchrun_takes_the_single_process_steps(sft_one, tmp_path):
    args, one = sft_args(sft_one / "chat.jsonl"), sft_one / "one"
    t0 = time.perf_counter()
    p = torchrun(["-m", "postlab", "sft", *args, f"out_dir={tmp_path / 'two'}"])
    assert p.returncode == 0, p.stderr[-3000:]
    print(f"torchrun sft, 2 ranks x batch 2, {STEPS} steps: {time.perf_counter() - t0:.1f} s")
    two = losses(tmp_path / "two")
    assert len(two) == STEPS  # rank 0 alone logged: no line twice
    assert two == pytest.approx(losses(one), abs=1e-5, rel=0)
    assert two[-1] < 0.5 * two[0]
    assert_same_weights(one, tmp_path / "two")
    assert [c.name for c in (tmp_path / "two" / "checkpoints").iterdir()] == [f"step-{STEPS:07d}"]


RUN_COMMANDS = textwrap.dedent("""
    import json, sys
    from postlab.cli import main
    for argv in json.loads(sys.argv[1]):  # one torchrun launch, several commands (sharing one process group)
        sys.argv = ["postlab", *argv]
        main()
""")


def test_reward_model_and_dpo_under_torchrun_take_the_single_process_steps(tmp_path):
    """Three recipes whose objectives reach into the model: the reward model reads its body and head
    (all weights, then only the top layer on cached hidden states), DPO trains LoRA adapters."""
    from postlab.train import dpo, rm

    train_file = write_jsonl(tmp_path / "train.jsonl", pairs(24, 0))
    eval_file = write_jsonl(tmp_path / "eval.jsonl", pairs(6, 1))
    data = [*COMMON, f"data.train_file={train_file}", f"data.eval_file={eval_file}", "optim.batch_size=4", "optim.lr=3e-3"]
    runs = {"rm": (rm, rm.RMConfig, data, "rm_results.json"),
            "rm_top": (rm, rm.RMConfig, [*data, "trainable_layers=1", "activation_cache=disk"], "rm_results.json"),
            "dpo": (dpo, dpo.DPOConfig, [*data, "beta=0.5", "lora.enabled=true", "lora.r=4"], "dpo_results.json")}
    for name, (recipe, cls, args, _) in runs.items():
        recipe.train(load_config(cls, None, [*args, f"out_dir={tmp_path / name}1"]))
    script = tmp_path / "run_commands.py"
    script.write_text(RUN_COMMANDS)
    p = torchrun([str(script), json.dumps([[name.split("_")[0], *args, f"out_dir={tmp_path / name}2"]
                                           for name, (_, _, args, _) in runs.items()])])
    assert p.returncode == 0, p.stderr[-3000:]
    for name, (_, _, _, results) in runs.items():
        one, two = tmp_path / f"{name}1", tmp_path / f"{name}2"
        assert losses(two) == pytest.approx(losses(one), abs=1e-5, rel=0) and len(losses(two)) == STEPS, name
        assert_same_weights(one, two)
        r1, r2 = json.loads((one / results).read_text()), json.loads((two / results).read_text())
        assert r2.keys() == r1.keys() and r2.pop("model") != r1.pop("model")
        floats = {k for k, v in r1.items() if isinstance(v, float)}  # held-out metrics (rank 0's), reward offset
        assert {k: r2[k] for k in floats} == pytest.approx({k: r1[k] for k in floats}, rel=1e-6, abs=1e-5), name
        assert {k: v for k, v in r2.items() if k not in floats} == {k: v for k, v in r1.items() if k not in floats}
        assert not list(two.glob("activation_cache*"))  # each rank's disk cache, deleted after training
    assert "held-out accuracy vs labels" in p.stdout and "no held-out pairs" not in p.stdout  # every rank's summary


KILL_RANK_1 = textwrap.dedent("""
    import os, signal, sys
    import torch
    if os.environ["RANK"] == "1":  # dies at its third step, after the backward, before the optimizer step
        clip, calls = torch.nn.utils.clip_grad_norm_, []
        def clip_then_die(*args, **kwargs):
            calls.append(1)
            if len(calls) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            return clip(*args, **kwargs)
        torch.nn.utils.clip_grad_norm_ = clip_then_die
    from postlab.cli import main
    sys.argv = ["postlab", *sys.argv[1:]]
    main()
""")


def test_a_killed_rank_ends_the_job_and_one_process_resumes_it(sft_one, tmp_path):
    from postlab.train import sft

    args, one = [*sft_args(sft_one / "chat.jsonl"), "checkpoint.save_every=2"], sft_one / "one"
    script = tmp_path / "kill_rank_1.py"
    script.write_text(KILL_RANK_1)
    t0 = time.perf_counter()
    p = torchrun([str(script), "sft", *args, f"out_dir={tmp_path / 'two'}"], timeout=120,
                 env={distributed.TIMEOUT_ENV: "60"})
    took = time.perf_counter() - t0
    assert p.returncode != 0, p.stdout
    assert "Signals.SIGKILL" in p.stderr or "SIGKILL" in p.stderr, p.stderr[-3000:]
    print(f"2 ranks, rank 1 killed at step 3: torchrun exited {p.returncode} after {took:.1f} s")
    assert [c.name for c in (tmp_path / "two" / "checkpoints").iterdir()] == ["step-0000002"]
    # Written by two ranks, resumed by one: the same steps as the uninterrupted single process.
    resumed = sft.train(load_config(sft.SFTConfig, None, [*args, f"out_dir={tmp_path / 'two'}", "checkpoint.resume=true"]))
    assert resumed.state.step == STEPS and resumed.state.samples_seen == STEPS * 4
    assert losses(tmp_path / "two") == pytest.approx(losses(one), abs=1e-5, rel=0)
    assert_same_weights(one, tmp_path / "two")
