"""Every RL recipe runs with its models on a device that is not the CPU. CI has no GPU, so the
device is simulated (tests/simdevice.py): real numbers on the CPU behind tensors that report another
device, and an error for any op that mixes them with CPU tensors, as CUDA would raise."""

import pytest
import torch

from simdevice import SIM, sim_device
from test_rl_smoke import _suite


class Stop(Exception):
    pass


def run_steps(recipe, cfg, monkeypatch, steps: int = 2) -> list[dict]:
    """Run `steps` RL steps of `recipe.train(cfg)` with every model on the simulated device."""
    from postlab.models.load import load_model_and_tokenizer
    from postlab.rollout import TorchEngine
    from postlab.train.loop import TrainState

    # torch generators cannot live on the stand-in device: the engine samples from a CPU twin of the
    # initial policy and returns CPU tensors, as the real engine does.
    sampler, _ = load_model_and_tokenizer("tiny")
    monkeypatch.setattr(recipe, "TorchEngine", lambda *, model, tokenizer, **kw: TorchEngine(model=sampler, tokenizer=tokenizer))
    metrics = []

    def loop(*, step_fn, init_extra=None, **kw):  # no checkpoints: they would serialise stand-in tensors
        state = TrainState(extra=dict(init_extra or {}))
        for state.step in range(steps):
            metrics.append(step_fn(state))
        raise Stop

    monkeypatch.setattr(recipe, "run_rl_loop", loop)
    with sim_device(), pytest.raises(Stop):
        recipe.train(cfg)
    return metrics


COMMON = dict(model="tiny", device=SIM.type, reward={"source": "python:test_rl_smoke:lowercase_reward"},
              sampling={"max_new_tokens": 6, "temperature": 1.0, "seed": 0},
              checkpoint={"progress": False, "save_every": 0})


def test_ppo_runs_on_another_device(tmp_path, monkeypatch):
    from postlab.train import ppo

    cfg = ppo.PPOConfig(out_dir=str(tmp_path / "run"), suite=_suite(tmp_path), prompts_per_step=4, minibatch_size=2,
                        ppo_epochs=2, adaptive_kl=True, optim={"lr": 1e-3, "bf16": False, "micro_batch_size": 1},
                        **COMMON)
    m = run_steps(ppo, cfg, monkeypatch)
    assert all(torch.isfinite(torch.tensor(x["loss/policy_avg"])) for x in m) and m[-1]["objective/kl"] != 0


@pytest.mark.parametrize("variant", [
    dict(advantage="grpo", num_iterations=2),
    dict(advantage="rloo", kl_in_reward=True),
    dict(advantage="grpo", lora={"enabled": True, "r": 2}),
    dict(loss_type="dapo", epsilon_high=0.28, dynamic_sampling=True, mask_truncated_completions=True, num_iterations=2,
         reward={"source": "python:test_rl_smoke:half_constant_reward"}),
    dict(loss_type="dr_grpo", scale_rewards=False),
], ids=["grpo-iterations", "rloo-kl-in-reward", "grpo-lora", "dapo", "dr-grpo"])
def test_grpo_runs_on_another_device(tmp_path, monkeypatch, variant):
    from postlab.train import grpo

    cfg = grpo.GRPOConfig(out_dir=str(tmp_path / "run"), suite=_suite(tmp_path), k=2, prompts_per_step=2,
                          kl_coef=0.04, optim={"lr": 1e-3, "bf16": False, "micro_batch_size": 3}, **{**COMMON, **variant})
    m = run_steps(grpo, cfg, monkeypatch)
    assert all(torch.isfinite(torch.tensor(x["loss"])) for x in m)
    if variant.get("dynamic_sampling"):
        assert any(x["dynamic_sampling/rounds"] > 1 for x in m)  # refills were sampled and joined on the device


FACTORIES = {"tensor", "as_tensor", "zeros", "ones", "full", "empty", "arange", "rand", "randn", "randint", "linspace", "eye"}


def test_rl_math_and_recipes_build_every_tensor_on_a_named_device():
    """Static companion of the runs above, for branches they do not take: in the RL math and recipes
    every torch factory call names its device (the `*_like` forms inherit it)."""
    import ast
    from pathlib import Path

    import postlab

    root = Path(postlab.__file__).parent
    files = [*sorted((root / "algos").glob("*.py")), *(root / "train" / f for f in ("ppo.py", "grpo.py", "rl_common.py"))]
    missing = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FACTORIES
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"
                    and not any(k.arg == "device" for k in node.keywords)):
                missing.append(f"{path.relative_to(root)}:{node.lineno} torch.{node.func.attr}")
    assert not missing, missing
