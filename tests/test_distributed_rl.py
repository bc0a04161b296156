"""Data-parallel RL under torchrun (docs/scaling.md): two gloo ranks on the CPU, each sampling and scoring
half of every step's prompts and training on half of its rows, take the steps of one process over the
whole step (fp32: weights within 1e-5), log the same metrics (rewards exactly: the rows are seeded one by
one, so they sample the same tokens on either rank), write once, and resume from one process."""

import json
import os
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from postlab.config import load_config
from postlab.errors import ConfigError
from postlab.tasks.suite import make_item, write_suite
from postlab.train import distributed
from postlab.train.distributed import World

from test_distributed import assert_same_weights, torchrun

STEPS = 3
TESTS = Path(__file__).resolve().parent
# Elements whose gradient nearly cancels make AdamW amplify summation-order noise (test_distributed.py): ε = 1e-4.
COMMON = ["model=tiny", f"steps={STEPS}", "optim.bf16=false", "optim.lr=1e-2", "optim.adam_eps=1e-4",
          "optim.micro_batch_size=3", "sampling.max_new_tokens=8", "sampling.temperature=1.0",
          "checkpoint.progress=false", "checkpoint.save_every=0"]


def lowercase_reward(item, response: str) -> float:
    """The share of lowercase ASCII letters: a dense signal on the tiny random model."""
    return sum("a" <= c <= "z" for c in response) / max(len(response), 1)


def half_constant_reward(item, response: str) -> float:
    """0 for half the prompts whatever the response (groups without signal: their rows are skipped, so
    the ranks train on unequal numbers of rows), lowercase_reward for the others."""
    return 0.0 if item.id in ("p0", "p2", "p4") else lowercase_reward(item, response)


@pytest.fixture(autouse=True)
def fp32_for_auto(monkeypatch):
    monkeypatch.setenv("POSTLAB_DTYPE", "fp32")


def suite(tmp: Path) -> Path:
    items = [make_item(f"p{i}", [{"role": "user", "content": f"Write something, number {i}." + " More." * (i % 3)}],
                       "synthetic", "train", [("keywords:existence", {"keywords": ["a"]})]) for i in range(8)]
    write_suite(items, tmp / "suite.jsonl")
    return tmp / "suite.jsonl"


SAME_ROLLOUTS = {"grpo": ("reward", "reward_std", "frac_reward_zero_std", "completions/mean_length", "proxy/score",
                          "gold/train_score", "episode", "frac_rows_skipped"),
                 "ppo": ("proxy/score", "gold/train_score", "completions/mean_length", "val/num_eos_tokens", "episode")}
LOSSES = {"grpo": ("loss", "kl", "grad_norm"), "ppo": ("loss/policy_avg", "loss/value_avg", "objective/kl", "grad_norm")}


def metrics(run: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [{k: v for k, v in m.items() if not k.startswith("time/")} for m in rows]


# GRPO, each rank sampling 2 prompts x 4 samples: with a KL term (a reference model, every row trained);
# without one, so the rows of groups without signal are skipped (the ranks share what is left);
# RLOO-style DAPO with two updates per batch and dynamic sampling (refill rounds sampled in shares too);
# on LoRA adapters with the KL in the reward. PPO, each rank sampling 4 of 8 prompts, minibatches of 3
# rows (shared 2 + 1 and 1 + 1), two epochs, the adaptive KL controller.
GRPO = ["k=4", "prompts_per_step=4"]
LOWERCASE = "reward.source=python:test_distributed_rl:lowercase_reward"
RUNS = {
    "grpo": ["grpo", *GRPO, "kl_coef=0.05", LOWERCASE],
    "skip": ["grpo", *GRPO, "kl_coef=0", "reward.source=python:test_distributed_rl:half_constant_reward"],
    "dapo": ["grpo", *GRPO, "kl_coef=0", "advantage=rloo", "loss_type=dapo", "num_iterations=2", "epsilon_high=0.28",
             "dynamic_sampling=true", "reward.source=python:test_distributed_rl:half_constant_reward"],
    "lora": ["grpo", *GRPO, "kl_coef=0.05", "kl_in_reward=true", "lora.enabled=true", "lora.r=4", LOWERCASE],
    "ppo": ["ppo", "prompts_per_step=8", "minibatch_size=3", "ppo_epochs=2", "kl_coef=0.05", "adaptive_kl=true",
            "kl_horizon=100", "reward.missing_eos_penalty=0.5", "optim.lr=2e-3", LOWERCASE],
}

RUN_COMMANDS = textwrap.dedent("""
    import json, sys
    from postlab.cli import main
    for argv in json.loads(sys.argv[1]):  # one torchrun launch, several commands (sharing one process group)
        sys.argv = ["postlab", *argv]
        main()
    # A rank that ran no backward (no rows to train on) adds zeros; a parameter no rank has a gradient
    # for keeps none, as in one process (AdamW then leaves it alone).
    import torch
    from postlab.train import distributed
    w = distributed.world()
    a, b = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))
    if w.rank == 0:
        a.grad = torch.tensor([1.0, 2.0, 3.0])
    distributed.sum_gradients([a, b], w)
    assert w.size == 2 and a.grad.tolist() == [1.0, 2.0, 3.0] and b.grad is None, (a.grad, b.grad)
""")


def run_one(command: str, args: list[str]) -> None:
    from postlab.train import grpo, ppo

    recipe, cls = {"grpo": (grpo, grpo.GRPOConfig), "ppo": (ppo, ppo.PPOConfig)}[command]
    recipe.train(load_config(cls, None, args))


def one_process_then_two_ranks(tmp_path, monkeypatch, runs: dict, extra: list[str], *, timeout: float,
                               resumed: bool = False) -> list[str]:
    """Each of ``runs`` (name -> [command, *args]) in this process (out_dir <name>1), then all of them again with
    ``extra`` in one two-rank torchrun launch (out_dir <name>2); ``resumed``: that launch also runs the GRPO
    run stopped after one step (out_dir resumed), for one process to resume. Returns the runs' data args."""
    monkeypatch.syspath_prepend(str(TESTS))  # the reward functions, for the in-process runs
    data = [*COMMON, f"suite={suite(tmp_path)}"]
    for name, (command, *args) in runs.items():
        run_one(command, [*data, *args, f"out_dir={tmp_path / name}1"])
    commands = [[command, *data, *args, *extra, f"out_dir={tmp_path / name}2"] for name, (command, *args) in runs.items()]
    if resumed:
        commands.append([*RUNS["grpo"][:1], *data, *RUNS["grpo"][1:], *extra, "steps=1", f"out_dir={tmp_path / 'resumed'}"])
    script = tmp_path / "run_commands.py"
    script.write_text(RUN_COMMANDS)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    p = torchrun([str(script), json.dumps(commands)], timeout=timeout)
    assert p.returncode == 0, p.stderr[-3000:]
    return data


def test_rl_under_torchrun_takes_the_single_process_steps(tmp_path, monkeypatch):
    # The first run again on two ranks, stopped after one step, is resumed below by one process.
    data = one_process_then_two_ranks(tmp_path, monkeypatch, RUNS, [], timeout=300, resumed=True)
    worst = {}
    for name in RUNS:
        one, two = tmp_path / f"{name}1", tmp_path / f"{name}2"
        m1, m2 = metrics(one), metrics(two)
        assert len(m2) == STEPS and [m["step"] for m in m2] == list(range(1, STEPS + 1)), name  # rank 0 alone logged
        assert m2[0].keys() == m1[0].keys(), name
        for a, b in zip(m1, m2):
            for k in SAME_ROLLOUTS[RUNS[name][0]]:
                assert b[k] == a[k], (name, k)  # the same rollouts, scored the same
            assert b == pytest.approx(a, abs=1e-5, rel=1e-5, nan_ok=True), name  # fp32: grad norms ~5
        worst[name] = (max(abs(b[k] - a[k]) for a, b in zip(m1, m2) for k in LOSSES[RUNS[name][0]]),
                       assert_same_weights(one, two))
        ckpt = f"checkpoints/step-{STEPS:07d}/model.safetensors"  # all trained weights: PPO's value model too
        w1, w2 = load_file(str(one / ckpt)), load_file(str(two / ckpt))
        assert w1.keys() == w2.keys() and max((w1[k] - w2[k]).abs().max().item() for k in w1) < 1e-5
        assert [c.name for c in (two / "checkpoints").iterdir()] == [f"step-{STEPS:07d}"]
        r1, r2 = json.loads((one / "rl_results.json").read_text()), json.loads((two / "rl_results.json").read_text())
        assert r2.pop("model") != r1.pop("model") and r2 == pytest.approx(r1, abs=1e-5, rel=0)
    assert any(m["frac_rows_skipped"] > 0 for m in metrics(tmp_path / "skip2"))
    assert any(m["dynamic_sampling/rounds"] > 1 for m in metrics(tmp_path / "dapo2"))
    print("largest difference, 2 ranks vs 1 (losses, kl, grad norm; final weights):", worst)
    # Checkpointed by two ranks, resumed by one: the steps of the uninterrupted single process.
    resumed = tmp_path / "resumed"
    run_one("grpo", [*data, *RUNS["grpo"][1:], f"out_dir={resumed}", "checkpoint.resume=true"])
    m1, m2 = metrics(tmp_path / "grpo1"), metrics(resumed)
    assert len(m2) == STEPS and all(b == pytest.approx(a, abs=1e-5, rel=0, nan_ok=True) for a, b in zip(m1, m2))
    assert_same_weights(tmp_path / "grpo1", resumed)


@pytest.mark.parametrize("command", ["grpo", "ppo"])
def test_prompts_per_step_must_split_evenly_over_the_ranks(tmp_path, monkeypatch, command):
    monkeypatch.setattr(distributed, "world", lambda: World(0, 2))  # one rank of two, without the collectives
    with pytest.raises(ConfigError, match="prompts_per_step: the 3 prompts of a step are shared evenly by the 2 "
                                          "processes; choose a multiple of 2"):
        run_one(command, ["model=tiny", "prompts_per_step=3", "minibatch_size=3" if command == "ppo" else "k=2",
                          f"out_dir={tmp_path / 'run'}"])
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.parametrize("setting, error", [("rollout.per_row_seeds=false", "rollout.per_row_seeds=false: under torchrun")])
def test_grpo_settings_that_torchrun_refuses(tmp_path, monkeypatch, setting, error):
    monkeypatch.setattr(distributed, "world", lambda: World(1, 2))
    with pytest.raises(ConfigError, match=error):
        run_one("grpo", ["model=tiny", "prompts_per_step=2", "k=2", setting, f"out_dir={tmp_path / 'run'}"])
    assert not (tmp_path / "run").exists()


def test_ray_rollout_workers_under_torchrun_take_the_single_process_steps(tmp_path, monkeypatch):
    """`rollout.workers=2` under torchrun: rank 0 alone holds the Ray workers and samples every rank's rows
    (rows seeded one by one), so GRPO and PPO take the steps of one process sampling in-process."""
    pytest.importorskip("ray")
    one_process_then_two_ranks(tmp_path, monkeypatch, {name: RUNS[name] for name in ("grpo", "ppo")},
                               ["rollout.workers=2", "rollout.cpus_per_worker=0"], timeout=400)
    for name in ("grpo", "ppo"):
        one, two = tmp_path / f"{name}1", tmp_path / f"{name}2"
        m1, m2 = metrics(one), metrics(two)
        assert len(m2) == STEPS, name
        for a, b in zip(m1, m2):
            for k in SAME_ROLLOUTS[RUNS[name][0]]:
                assert b[k] == a[k], (name, k)  # the workers sampled the same rows
            assert b["rollout/weights_version"] == b["step"] and b["rollout/worker_restarts"] == 0, name
            common = {k for k in a if k in b}
            assert {k: b[k] for k in common} == pytest.approx({k: a[k] for k in common}, abs=1e-5, rel=1e-5, nan_ok=True), name
        assert_same_weights(one, two)


def test_each_rank_shares_the_rows_contiguously_even_when_they_do_not_divide():
    rows = list(range(7))
    shares = [distributed.share(rows, World(r, 3)) for r in range(3)]
    assert shares == [[0, 1, 2], [3, 4], [5, 6]]
    assert distributed.share([1], World(1, 2)) == [] and distributed.share(rows, World()) == rows


def test_sharded_ranks_pad_to_the_busiest_ranks_number_of_micro_batches():
    from postlab.train.rl_common import RankMicroBatches, rank_micro_batches

    rows = [4, 9, 1, 7, 3]  # shares of 2 ranks: [4, 9, 1] and [7, 3]; micro-batches of 2
    first, second = (rank_micro_batches(rows, 2, World(r, 2), equal=True) for r in range(2))
    assert (list(first), first.padding) == ([[4, 9], [1]], 0)
    assert (list(second), second.padding, second.filler) == ([[7, 3]], 1, [4])
    alone = rank_micro_batches([5], 2, World(1, 2), equal=True)  # no rows of its own: one pass of the filler
    assert (list(alone), alone.padding) == ([], 1)
    assert rank_micro_batches(rows, 2, World(1, 2), equal=False).padding == 0  # unsharded: no padding
    assert rank_micro_batches([], 2, World(1, 2), equal=True).padding == 0  # no rows anywhere: nothing to run
    joined = RankMicroBatches.joined([second, alone])
    assert (list(joined), joined.padding, joined.filler) == ([[7, 3]], 2, [4])


def test_sampling_is_seeded_per_row_so_the_batch_does_not_change_it():
    """What a row samples depends on its seed, not on which rows share its batch (or rank)."""
    from postlab.models.load import load_model_and_tokenizer
    from postlab.rollout import SamplingParams, TorchEngine
    from postlab.rollout.ray_engine import per_row_params
    from postlab.train.rl_common import row_sampling

    model, tok = load_model_and_tokenizer("tiny")
    engine = TorchEngine(model=model, tokenizer=tok)
    prompts = [[{"role": "user", "content": f"Say {i}." + " Yes." * i}] for i in range(4)]
    params = row_sampling(SamplingParams(temperature=1.0, max_new_tokens=10, seed=5), 7, range(4))
    assert params == per_row_params(SamplingParams(temperature=1.0, max_new_tokens=10, seed=7), 4)  # Ray workers' seeds
    whole = engine.generate(prompts, params)
    halves = [engine.generate(prompts[:2], params[:2]), engine.generate(prompts[2:], params[2:])]
    assert whole.texts == halves[0].texts + halves[1].texts
    assert len(set(whole.texts)) > 1
    torch.testing.assert_close(whole.response_ids[2:], halves[1].response_ids)


# FSDP2 (`optim.fsdp=true`): the same runs with the policy (and reference, and PPO's value model) sharded
# over the two ranks. "skip" leaves the ranks unequal rows, and so does "ppo_lora" (minibatches of 5 and
# 3 rows, one row per micro-batch): a rank with fewer pads with zero-weight micro-batches.
FSDP_RUNS = {**{name: RUNS[name] for name in ("grpo", "skip", "dapo", "lora", "ppo")},
             "ppo_lora": ["ppo", "prompts_per_step=8", "minibatch_size=5", "optim.micro_batch_size=1", "kl_coef=0.05",
                          "lora.enabled=true", "lora.r=4", "optim.lr=2e-3", LOWERCASE]}


def test_rl_sharded_by_fsdp_takes_the_single_process_steps(tmp_path, monkeypatch):
    """Each rank holds half of every weight and gathers the policy whole only to sample its rows; the
    steps, checkpoints and final weights are one process's (fp32, within 1e-5; the grad norm, summed
    over shards in another order, within 1e-4 relative), and a sharded checkpoint resumes in one process."""
    data = one_process_then_two_ranks(tmp_path, monkeypatch, FSDP_RUNS, ["optim.fsdp=true"], timeout=400, resumed=True)
    worst = {}
    for name, (command, *_) in FSDP_RUNS.items():
        one, two = tmp_path / f"{name}1", tmp_path / f"{name}2"
        m1, m2 = metrics(one), metrics(two)
        assert len(m2) == STEPS and m2[0].keys() == m1[0].keys(), name
        for a, b in zip(m1, m2):
            for k in SAME_ROLLOUTS[command]:
                assert b[k] == a[k], (name, k)  # sampled from the gathered weights: the same rollouts
            assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4), name
            assert {**b, "grad_norm": 0} == pytest.approx({**a, "grad_norm": 0}, abs=1e-5, rel=1e-5, nan_ok=True), name
        ckpt = f"checkpoints/step-{STEPS:07d}/model.safetensors"  # PPO's: the value model's weights too
        w1, w2 = load_file(str(one / ckpt)), load_file(str(two / ckpt))
        assert w1.keys() == w2.keys() and max((w1[k] - w2[k]).abs().max().item() for k in w1) < 1e-5
        worst[name] = (max(abs(b[k] - a[k]) for a, b in zip(m1, m2) for k in LOSSES[command]),
                       assert_same_weights(one, two))
    print("largest difference, 2 sharded ranks vs 1 process (losses, kl, grad norm; final weights):", worst)
    assert any(m["frac_rows_skipped"] > 0 for m in metrics(tmp_path / "skip2"))
    resumed = tmp_path / "resumed"
    run_one("grpo", [*data, *RUNS["grpo"][1:], f"out_dir={resumed}", "checkpoint.resume=true"])
    assert all(b == pytest.approx(a, abs=1e-5, rel=1e-4, nan_ok=True)
               for a, b in zip(metrics(tmp_path / "grpo1"), metrics(resumed)))
    assert_same_weights(tmp_path / "grpo1", resumed)
