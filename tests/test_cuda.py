"""Every training recipe on a real CUDA device (issue 20). Skipped where torch sees no GPU, as in CI;
run on a GPU machine with `pytest tests/test_cuda.py` (benchmarks/gpu_check.sh runs it there).

The supervised recipes are checked against the CPU: the same run in fp32 (TF32 off) gives the same
losses. The RL recipes sample with the device's own generator, so their samples differ from the CPU's:
they are checked to train (finite losses, a KL that moves), to checkpoint on the device and to resume."""

import json
import math
import os

import pytest
import torch

from conftest import write_jsonl
from test_dpo import _marker_pairs
from test_rl_smoke import _suite

DEVICE = os.environ.get("POSTLAB_TEST_DEVICE", "cuda")  # =cpu tries these tests' own logic on a machine without a GPU
pytestmark = pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture(autouse=True)
def exact_fp32():
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = before


def _losses(run_dir) -> list[float]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [r["loss"] for r in rows if "loss" in r]


@pytest.mark.parametrize("recipe", ["sft", "rm", "dpo"])
def test_supervised_recipes_on_cuda_match_the_cpu(tmp_path, chat_file, recipe):
    from postlab.train import dpo, rm, sft

    pairs = write_jsonl(tmp_path / "pairs.jsonl", _marker_pairs(16, 0))
    common = dict(model="tiny", optim={"lr": 1e-3, "batch_size": 4, "max_steps": 4, "bf16": False, "adam_eps": 1e-4},
                  checkpoint={"progress": False})
    make = {"sft": lambda d, dev: sft.SFTConfig(out_dir=str(d), device=dev, data={"train_file": str(chat_file)}, **common),
            "rm": lambda d, dev: rm.RMConfig(out_dir=str(d), device=dev, data={"train_file": str(pairs), "eval_fraction": 0.0},
                                             **common),
            "dpo": lambda d, dev: dpo.DPOConfig(out_dir=str(d), device=dev, data={"train_file": str(pairs)}, **common)}
    module = {"sft": sft, "rm": rm, "dpo": dpo}[recipe]
    module.train(make[recipe](tmp_path / "cpu", "cpu"))
    module.train(make[recipe](tmp_path / "cuda", DEVICE))
    cpu, cuda = _losses(tmp_path / "cpu"), _losses(tmp_path / "cuda")
    assert len(cpu) == 4 and all(math.isfinite(x) for x in cuda)
    assert cuda == pytest.approx(cpu, rel=1e-3, abs=1e-4)


def _rl_runs(recipe, make_cfg, tmp_path):
    """Two steps checkpointed on the device, then a rerun to three steps that resumes from step 2."""
    first = make_cfg(tmp_path / "run", steps=2, resume=False)
    recipe.train(first)
    assert (tmp_path / "run" / "checkpoints").is_dir()
    recipe.train(make_cfg(tmp_path / "run", steps=3, resume=True))
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [r for r in rows if "reward" in r or "loss/policy_avg" in r]


COMMON = dict(model="tiny", device=DEVICE, reward={"source": "python:test_rl_smoke:lowercase_reward"},
              sampling={"max_new_tokens": 8, "temperature": 1.0, "seed": 0})


def test_grpo_on_cuda_trains_checkpoints_and_resumes(tmp_path):
    from postlab.train import grpo

    suite = _suite(tmp_path)

    def make(out, steps, resume):
        return grpo.GRPOConfig(out_dir=str(out), suite=suite, k=4, prompts_per_step=2, steps=steps, kl_coef=0.04,
                               num_iterations=2, optim={"lr": 1e-3, "bf16": True, "micro_batch_size": 4},
                               checkpoint={"progress": False, "save_every": 1, "resume": resume}, **COMMON)

    rows = _rl_runs(grpo, make, tmp_path)
    assert len(rows) == 3 and all(math.isfinite(r["loss"]) for r in rows)
    assert any(r["kl"] != 0 for r in rows[1:])  # the policy moved away from the reference on the device


def test_ppo_on_cuda_trains_checkpoints_and_resumes(tmp_path):
    from postlab.train import ppo

    suite = _suite(tmp_path)

    def make(out, steps, resume):
        return ppo.PPOConfig(out_dir=str(out), suite=suite, prompts_per_step=4, minibatch_size=2, ppo_epochs=2, steps=steps,
                             adaptive_kl=True, optim={"lr": 1e-3, "bf16": True, "micro_batch_size": 2},
                             checkpoint={"progress": False, "save_every": 1, "resume": resume}, **COMMON)

    rows = _rl_runs(ppo, make, tmp_path)
    assert len(rows) == 3 and all(math.isfinite(r["loss/policy_avg"]) for r in rows)
    assert rows[-1]["objective/kl"] != 0


def test_cuda_graph_decoding_matches_the_eager_loop():
    """Rollouts on a GPU decode through a captured CUDA graph (postlab/rollout/static_decode.py): greedy
    tokens are the eager loop's, a seeded call repeats itself, and the sampled tokens' log-probs are a
    full forward pass's."""
    from postlab.models.load import load_model_and_tokenizer
    from postlab.rollout import SamplingParams, TorchEngine
    from postlab.rollout.sampling import row_params, scaled_logprobs
    from test_static_decode import PROMPTS

    model, tok = load_model_and_tokenizer("tiny")
    model.to(DEVICE)
    eager = TorchEngine(model=model, tokenizer=tok, static_decode=False)
    graph = TorchEngine(model=model, tokenizer=tok, static_decode=True)  # the default on CUDA
    greedy = SamplingParams(temperature=0, max_new_tokens=24, stop_at_eos=False)
    assert eager.generate(PROMPTS, greedy).response_ids.tolist() == graph.generate(PROMPTS, greedy).response_ids.tolist()
    assert (eager.last_decode, graph.last_decode) == ("eager", "cuda_graph" if DEVICE.startswith("cuda") else "static")
    params = row_params(SamplingParams(temperature=1.0, max_new_tokens=24), 7, range(len(PROMPTS)))
    r, again = graph.generate(PROMPTS, params), graph.generate(PROMPTS, params)
    assert r.response_ids.tolist() == again.response_ids.tolist() and len(set(r.texts)) == len(PROMPTS)
    ids, mask = r.input_ids.to(DEVICE), r.attention_mask.to(DEVICE)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp_min(0)).logits
    P = r.prompt_ids.size(1)
    logp = scaled_logprobs(logits[:, P - 1: -1].reshape(-1, logits.size(-1)), 1.0).view(len(PROMPTS), -1, logits.size(-1))
    full = logp.gather(-1, r.response_ids.to(DEVICE)[..., None]).squeeze(-1).cpu() * r.response_mask
    torch.testing.assert_close(r.logprobs, full, atol=1e-3, rtol=0)
