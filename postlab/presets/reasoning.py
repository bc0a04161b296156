"""``postlab run --preset reasoning``: a verifiable capability taught by SFT on worked solutions and then by
RL on the answer's correctness, with the controls that keep the claim honest.

    fetch → baseline eval → worked-solution SFT data → SFT → SFT eval → [STaR rounds] → for each seed:
    GRPO on the verifiable reward, and the same run with a random reward and with a format-only reward
    (controls), each evaluated → test-time compute (pass@k, maj@k) of the RL policy → summary, report

Suite: ``reasoning`` (``arith`` + ``countdown``, alternating; postlab/tasks/reasoning.py). Evals take the
test split's first ``eval_limit`` items (its harder levels are held out of training), greedy. The reward
is the gold rater on these items: 1 when the final answer is right, else 0; the controls' rewards are in
``postlab.presets.rewards``. Every RL arm starts from the same policy with the same seed, steps, prompts
and sampling, so the arms differ only in the reward. Stages are resumable as in ``postlab run``
(``postlab.run.Stages``); a rerun with other knobs redoes the stages they affect. Docs: docs/reasoning.md.
"""

from __future__ import annotations

import functools
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from postlab.config import Section, overlay_knobs, with_optional_knobs
from postlab.data.chat import completion_text
from postlab.data.jsonl import read_jsonl
from postlab.errors import ConfigError
from postlab.evals import harness
from postlab.evals.metrics import mean_se, paired_difference, sample_scores
from postlab.models.load import resolve_model
from postlab.rollout import SamplingParams
from postlab.run import (Stages, _Stop, announce, budget_plan, in_run_directory, preset_paced, replay_pace, run_paced,
                         start_run, stopped)
from postlab.run_state import invalidate_changed_stages
from postlab.tasks.reasoning import fresh_demos, worked_demos
from postlab.tasks.suite import load_suite
from postlab.utils.io import atomic_write_text, finite

SUITE = "reasoning"
CONTROLS = {"random": "python:postlab.presets.rewards:random_reward",
            "format": "python:postlab.presets.rewards:format_reward"}


class Knobs(Section):
    """Every knob of the reasoning preset; in the run's config each is optional (None = the preset's value)."""

    model: str = Field(..., description="base model: built-in name, directory or hub id")
    bf16: bool | Literal["auto"] = Field("auto", description="bf16 autocast in training and bf16 sampling: true, false, or auto = the faster on this machine")
    budget_minutes: float = Field(30.0, ge=0, description="time budget: on a slower machine RL steps, then test-time items, then eval items (never below 100) are cut to fit, each cut listed in summary.json's `scaled`; 0 = run as set")
    eval_limit: int | None = Field(150, ge=1, description="test items per eval (the first N of the split: both suites in equal shares, every level; null = all 300)")
    eval_max_new_tokens: int = Field(256, ge=1, description="response cap in evals (greedy; arith's column work takes ~140 tokens at level 4, ~210 at 5, ~280 at 6)")
    batch_size: int = Field(64, ge=1, description="prompts generated together in evals")
    sft_demos: int | None = Field(None, ge=1, description="worked-solution demonstrations from the train split (the first N; null = all 620)")
    sft_fresh_demos: int = Field(0, ge=0, description="more worked-solution demonstrations, drawn anew at the train levels (distinct, none a prompt of either split: postlab.tasks.reasoning.fresh_problems), fine-tuned on beside the train split's; 320 fresh arith demonstrations seen once instead of the split's seen twice scored -1.3 ± 1.6 points: docs/results.md)")
    sft_lr: float = Field(5e-5, gt=0, description="SFT peak learning rate")
    sft_epochs: float = Field(2.0, gt=0, description="SFT passes over the demonstrations")
    sft_batch_size: int = Field(8, ge=1, description="SFT conversations per step")
    max_seq_len: int = Field(384, ge=16, description="token cap for SFT sequences")
    star_rounds: int = Field(0, ge=0, description="STaR / expert iteration after SFT: rounds of sampling star_k chains per train prompt and fine-tuning on those whose final answer is right (0 = off)")
    star_prompts: int = Field(300, ge=1, description="train prompts sampled per STaR round")
    star_k: int = Field(4, ge=1, description="chains sampled per prompt in a STaR round")
    rl_algo: Literal["grpo", "rloo"] = Field("grpo", description="advantage estimator of the RL stage (postlab grpo's `advantage`)")
    rl_steps: int = Field(10, ge=1, description="RL steps (each: sample, score, update); the controls run as many")
    rl_prompts_per_step: int = Field(4, ge=1, description="prompts per RL step")
    rl_k: int = Field(8, ge=2, description="samples per prompt (group size)")
    rl_lr: float = Field(1e-5, gt=0, description="RL learning rate (3e-5 lost 3.3 ± 1.7 points to SFT in 16 steps on SmolLM2, 1e-5 lost 1.3 ± 1.3: docs/results.md)")
    rl_kl_coef: float = Field(0.0, ge=0, description="β: KL penalty to the SFT policy (0: none, as DAPO)")
    rl_loss_type: Literal["grpo", "bnpo", "dapo", "dr_grpo", "rloo"] | None = Field("dapo", description="loss aggregation (postlab grpo's loss_type)")
    rl_epsilon_high: float | None = Field(0.28, gt=0, description="clip-higher ε_high (DAPO; null = ε)")
    rl_max_new_tokens: int = Field(192, ge=1, description="response cap for RL rollouts")
    rl_temperature: float = Field(1.0, gt=0, description="sampling temperature of RL rollouts")
    controls: list[Literal["random", "format"]] = Field(default_factory=lambda: ["random", "format"], description="control arms run beside the real reward with the same budget and seeds: random (a coin flip blind to correctness), format (1 for a well-formed final answer, right or wrong)")
    seeds: list[int] = Field(default_factory=lambda: [0], description="RL seeds; each runs every arm (report mean and spread over seeds)")
    test_time_samples: int = Field(16, ge=1, description="samples per item for test-time compute (pass@k, maj@k) of the RL policy")
    test_time_limit: int = Field(24, ge=1, description="test items for test-time compute (the first N)")
    test_time_temperature: float = Field(0.7, gt=0, description="sampling temperature for test-time compute")

    @field_validator("seeds", "controls")
    @classmethod
    def _distinct(cls, v: list, info):
        if len(set(v)) != len(v) or (info.field_name == "seeds" and not v):
            raise ValueError(f"{info.field_name}: expected distinct values{' (at least one)' if info.field_name == 'seeds' else ''}, got {v}")
        return v


PRESETS: dict[str, Knobs] = {
    # SmolLM2-135M-Instruct on the 2-core CPU, sized to 30 minutes (docs/results.md, "Reasoning").
    "reasoning": Knobs(model="smollm2-135m-instruct"),
    # The tiny random model: every stage runs in about a minute; for tests.
    "reasoning-tiny": Knobs(model="tiny", bf16=False, budget_minutes=0, eval_limit=12, eval_max_new_tokens=16,
                            batch_size=16, sft_demos=16, sft_lr=3e-3, sft_epochs=1.0, max_seq_len=128, star_prompts=8,
                            star_k=2, rl_steps=2, rl_prompts_per_step=2, rl_k=2, rl_lr=1e-4, rl_max_new_tokens=12,
                            test_time_samples=4, test_time_limit=6),
}


class _RunOptions(Section):
    """postlab run --preset reasoning: SFT on worked solutions, then RL on verifiable answers with controls."""

    preset: Literal["reasoning", "reasoning-tiny"] = Field("reasoning", description="reasoning = SmolLM2-135M-Instruct; reasoning-tiny = random test model")
    out_dir: str | None = Field(None, description="run directory (default runs/<preset>)")
    progress: bool = Field(True, description="show progress bars")
    stop_after: str | None = Field(None, description="stop after this stage")

    def knobs(self) -> Knobs:
        return overlay_knobs(Knobs, PRESETS[self.preset], self, self.preset)

    def check(self) -> None:
        super().check()
        names = stage_names(self.knobs())
        if self.stop_after is not None and self.stop_after not in names:
            raise ConfigError(f"stop_after: unknown stage {self.stop_after!r}; one of {', '.join(names)}")

    def directory(self) -> Path:
        return Path(self.out_dir or f"runs/{self.preset}")


RunConfig = with_optional_knobs("ReasoningRunConfig", _RunOptions, Knobs)


# --- stages ---

def arms(k: Knobs) -> list[str]:
    """The RL arms: the real reward, then each control."""
    return ["rl", *(f"control_{c}" for c in k.controls)]


def arm_name(arm: str, seeds: list[int], i: int) -> str:
    """Stage name of an arm for the i-th seed: the first seed's arms carry no suffix, the others their seed."""
    return arm if i == 0 else f"{arm}_s{seeds[i]}"


def stage_names(k: Knobs) -> tuple[str, ...]:
    per_seed = [name for i in range(len(k.seeds)) for arm in arms(k)
                for name in (arm_name(arm, k.seeds, i), arm_name(arm, k.seeds, i) + "_eval")]
    return ("fetch", "baseline", "sft_data", "sft", "sft_eval", "star", *per_seed, "test_time", "report")


def first_stages(k: Knobs) -> dict[str, str | None]:
    """Knob -> the first stage it affects (run_state.invalidate_changed_stages). Adding seeds or controls
    affects no finished stage (each arm of each seed is a stage of its own, named by ``arm_name``); the
    first seed names the unsuffixed arms, so changing it redoes them (the pseudo-knob ``first_seed``)."""
    rl = next(n for n in stage_names(k) if n.startswith("rl"))
    firsts = {"model": "fetch", "bf16": "baseline", "budget_minutes": None, "seeds": None, "controls": None,
              "first_seed": rl, "eval_limit": "baseline",
              "eval_max_new_tokens": "baseline", "batch_size": "baseline", "sft_demos": "sft_data", "sft_fresh_demos": "sft_data", "star_rounds": "star",
              "star_prompts": "star", "star_k": "star", "test_time_samples": "test_time", "test_time_limit": "test_time",
              "test_time_temperature": "test_time"}
    return {name: firsts.get(name, "sft" if name.startswith("sft") or name == "max_seq_len" else rl)
            for name in [*Knobs.model_fields, "first_seed"]}


def stage_outputs(k: Knobs) -> dict[str, tuple[str, ...]]:
    """Stage -> what it writes under the run directory (deleted when it is redone)."""
    outputs = {"fetch": (), "baseline": ("eval/baseline.*",), "sft_data": ("data/sft.jsonl",), "sft": ("sft",),
               "sft_eval": ("eval/sft.*",), "star": ("star",), "test_time": ("eval/test_time*",),
               "report": ("report.html",)}
    for name in stage_names(k):
        if name not in outputs:
            outputs[name] = (f"eval/{name[:-5]}.*",) if name.endswith("_eval") else (name,)
    return outputs


def _dtype(k: Knobs) -> str:
    return "bf16" if k.bf16 else "fp32"


def evaluate(model: str, out: Path, name: str, k: Knobs, progress: bool) -> dict:
    """Greedy accuracy on the test split's first eval_limit items, by suite and by difficulty level."""
    cfg = harness.EvalConfig(model=model, suite=SUITE, split="test", limit=k.eval_limit,
                             out=str(out / "eval" / f"{name}.json"), batch_size=k.batch_size, dtype=_dtype(k),
                             progress=progress, overwrite=True,
                             sampling=SamplingParams(temperature=0.0, max_new_tokens=k.eval_max_new_tokens, seed=0))
    r = harness.evaluate(cfg)
    print(harness.format_results(r), file=sys.stderr)
    keys = ("by_category", "by_category_se", "by_difficulty", "by_difficulty_se", "by_difficulty_n", "mean_tokens",
            "truncated_frac")
    return {"accuracy": r["overall"], "accuracy_se": r["overall_se"], "n": r["n"], **{x: r.get(x) for x in keys},
            "by_suite_level": by_suite_level(r["samples"]), "model": model, "results": cfg.out, "samples": r["samples"]}


def by_suite_level(samples: str) -> dict[str, dict[str, dict]]:
    """suite -> level -> {accuracy, n} from an eval's samples (the levels of arith and countdown differ in
    kind, so the preset reports them apart; the harness's by_difficulty pools them)."""
    levels = {it.id: it.level for it in load_suite(SUITE)}
    scores: dict[str, dict[str, list[float]]] = {}
    for line in Path(samples).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        scores.setdefault(row["category"], {}).setdefault(str(levels[row["id"]]), []).append(row["score"])
    return {suite: {lvl: {"accuracy": sum(v) / len(v), "n": len(v)} for lvl, v in sorted(by.items(), key=lambda x: int(x[0]))}
            for suite, by in sorted(scores.items())}


def sft_data(out: Path, k: Knobs) -> dict:
    rows = worked_demos(SUITE)[: k.sft_demos] + fresh_demos(SUITE, k.sft_fresh_demos)
    path = out / "data" / "sft.jsonl"
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return {"file": str(path), "conversations": len(rows)}


def fine_tune(model: str, data_file: str, out_dir: Path, k: Knobs, progress: bool, epochs: float) -> dict:
    from postlab.train import sft
    from postlab.train.common import CheckpointConfig, OptimConfig

    cfg = sft.SFTConfig(model=model, out_dir=str(out_dir),
                        data=sft.SFTDataConfig(train_file=data_file, eval_fraction=0.05, max_seq_len=k.max_seq_len),
                        optim=OptimConfig(lr=k.sft_lr, epochs=epochs, batch_size=k.sft_batch_size, warmup_steps=5,
                                          bf16=k.bf16, group_by_length=True),
                        checkpoint=CheckpointConfig(save_every=50, resume=True, progress=progress))
    result = sft.train(cfg)
    return {"model": str(out_dir / "model"), "conversations": result.num_examples, "steps": result.state.step,
            "eval_loss": result.eval_loss}


def star(policy: str, out: Path, k: Knobs, progress: bool) -> dict:
    """STaR / expert iteration (Zelikman et al. 2022; Anthony et al. 2017): each round samples star_k chains
    per train prompt from the current policy, keeps the distinct ones whose final answer is right, and
    fine-tunes the current policy on them for one epoch."""
    from postlab.raters.gold import GoldRater
    from postlab.train.sample import SampleConfig, sample

    rounds, gold = [], GoldRater()
    items = {it.id: it for it in load_suite(SUITE, split="train")}
    for r in range(k.star_rounds):
        d = out / "star" / f"round{r}"
        path = sample(SampleConfig(model=policy, suite=SUITE, split="train", limit=k.star_prompts, k=k.star_k,
                                   out=str(d / "samples.jsonl"), batch_size=k.batch_size, dtype=_dtype(k), progress=progress,
                                   sampling=SamplingParams(temperature=1.0, max_new_tokens=k.rl_max_new_tokens, seed=r)))
        kept, seen = [], set()
        for lineno, row in read_jsonl(path):
            text, item = completion_text(row, f"{path}:{lineno}").strip(), items[row["prompt_id"]]
            if (item.id, text) not in seen and gold.score(item, text) == 1.0:
                seen.add((item.id, text))
                kept.append({"messages": [*item.messages, {"role": "assistant", "content": text}]})
        right_prompts = len({pid for pid, _ in seen})
        atomic_write_text(d / "kept.jsonl", "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in kept))
        stats = {"round": r, "prompts": k.star_prompts, "kept": len(kept), "prompts_solved": right_prompts}
        if len(kept) >= 2:
            policy = fine_tune(policy, str(d / "kept.jsonl"), d / "sft", k, progress, epochs=1.0)["model"]
        rounds.append(stats)
        print(f"star round {r}: {len(kept)} right chains on {right_prompts} of {k.star_prompts} prompts", file=sys.stderr)
    return {"model": policy, "rounds": rounds}


def rl(policy: str, out: Path, name: str, reward: str, seed: int, k: Knobs, progress: bool) -> dict:
    from postlab.train import grpo
    from postlab.train.common import CheckpointConfig
    from postlab.train.rl_common import RewardConfig, RLOptimConfig

    cfg = grpo.GRPOConfig(model=policy, out_dir=str(out / name), suite=SUITE, split="train", advantage=k.rl_algo,
                          loss_type=k.rl_loss_type, k=k.rl_k, prompts_per_step=k.rl_prompts_per_step, steps=k.rl_steps,
                          epsilon_high=k.rl_epsilon_high, kl_coef=k.rl_kl_coef, reward=RewardConfig(source=reward),
                          sampling=SamplingParams(temperature=k.rl_temperature, max_new_tokens=k.rl_max_new_tokens, seed=seed),
                          optim=RLOptimConfig(lr=k.rl_lr, bf16=k.bf16, seed=seed),
                          checkpoint=CheckpointConfig(save_every=10, resume=True, progress=progress))
    result = grpo.train(cfg)
    steps = [m for m in map(json.loads, (out / name / "metrics.jsonl").read_text().splitlines()) if "reward" in m]
    first, last = steps[: max(1, len(steps) // 5)], steps[-max(1, len(steps) // 5):]  # the first and last fifth

    def mean(rows: list[dict], key: str) -> float:
        return sum(m[key] for m in rows) / len(rows)

    return {"model": str(out / name / "model"), "reward_source": reward, "seed": seed, "steps": result["steps"],
            "reward_first": mean(first, "reward"), "reward_last": mean(last, "reward"),
            "train_accuracy_first": mean(first, "gold/train_score"), "train_accuracy_last": mean(last, "gold/train_score"),
            "kl": result.get("objective/kl"), "mean_length": result.get("completions/mean_length"),
            "metrics": str(out / name / "metrics.jsonl")}


def test_time(model: str, out: Path, k: Knobs, progress: bool) -> dict:
    cfg = harness.EvalConfig(model=model, suite=SUITE, split="test", limit=k.test_time_limit, batch_size=k.batch_size,
                             out=str(out / "eval" / "test_time.json"), dtype=_dtype(k), progress=progress, overwrite=True,
                             samples=k.test_time_samples,
                             sampling=SamplingParams(temperature=k.test_time_temperature,
                                                     max_new_tokens=k.eval_max_new_tokens, seed=0))
    tt = harness.evaluate(cfg)["test_time"]
    n = str(k.test_time_samples)
    return {"model": model, "items": k.test_time_limit, "samples": k.test_time_samples,
            "temperature": k.test_time_temperature, "pass_at_1": tt["pass_at_k"]["1"],
            f"maj_at_{n}": tt["maj_at_k"][n], "pass_at_k": tt["pass_at_k"], "pass_at_k_se": tt["pass_at_k_se"],
            "maj_at_k": tt["maj_at_k"], "maj_at_k_se": tt["maj_at_k_se"], "vote_census": tt["vote_census"],
            "plot": tt["plot"], "results": cfg.out}


# --- machine, budget and summary ---

# Stage wall times (seconds) of the reference run of each preset (REFERENCE_KNOBS, in REFERENCE_DTYPE) on the
# 2-core CPU of budget.REFERENCE_MACHINE; the budget and the ETA start from them, scaled by the work the knobs ask
# for (`work`) and this machine's measured speed (budget.slowdown). The reasoning preset's are run rs1
# (2026-11-30, `postlab run --preset reasoning budget_minutes=0`, 38.2 minutes), taken BESIDE other jobs (load 4-8
# on the 2 cores): on a quiet machine the stages run faster, so the budget errs on cutting. Each RL arm has its own
# time: the random reward gives most groups a signal, so its updates forward every row (postlab.algos.pg).
REFERENCE_DTYPE = {"reasoning": "bf16", "reasoning-tiny": "fp32"}
REFERENCE_KNOBS = {**PRESETS, "reasoning": PRESETS["reasoning"].model_copy(
    update={"rl_steps": 16, "rl_lr": 3e-5, "test_time_limit": 40})}  # run rs1's knobs
REFERENCE_SECONDS: dict[str, dict[str, float]] = {
    "reasoning": {"fetch": 1, "baseline": 48, "sft_data": 1, "sft": 495, "sft_eval": 86, "star": 1, "rl": 256,
                  "rl_eval": 76, "control_random": 575, "control_random_eval": 120, "control_format": 242,
                  "control_format_eval": 65, "test_time": 328, "report": 1},
    "reasoning-tiny": {"fetch": 1, "baseline": 1, "sft_data": 1, "sft": 1, "sft_eval": 1, "star": 1, "rl": 2, "rl_eval": 1,
                       "test_time": 1, "report": 1},
}
# Cut order when a run is over budget: RL steps (every arm), then test-time items, then eval items; floors.
TIERS = (("rl_steps",), ("test_time_limit",), ("eval_limit",))
FLOORS = {"rl_steps": 4, "test_time_limit": 16, "eval_limit": 100}


@functools.cache
def _sizes() -> tuple[int, int]:
    """(test items, train demonstrations) of the suite."""
    return len(load_suite(SUITE, split="test")), len(load_suite(SUITE, split="train"))


def work(k: Knobs, stage: str) -> float:
    """Work of a stage in units proportional to its time (the RL arms and their evals as `rl`, `rl_eval`)."""
    items = min(k.eval_limit or _sizes()[0], _sizes()[0])
    demos = min(k.sft_demos or _sizes()[1], _sizes()[1]) + k.sft_fresh_demos
    return {"baseline": items * k.eval_max_new_tokens, "sft_eval": items * k.eval_max_new_tokens,
            "rl_eval": items * k.eval_max_new_tokens, "sft": demos * k.sft_epochs,
            "star": k.star_rounds * k.star_prompts * k.star_k * k.rl_max_new_tokens, "rl": k.rl_steps * k.rl_prompts_per_step * k.rl_k * k.rl_max_new_tokens,
            "test_time": k.test_time_limit * k.test_time_samples * k.eval_max_new_tokens}.get(stage, 1.0)


def predict_seconds(k: Knobs, preset: str, slow: float) -> dict[str, float]:
    """Each stage's predicted seconds on this machine under knobs k: reference seconds × slowdown × work ratio.
    STaR samples at about the RL stage's pace per token."""
    ref_k, ref = REFERENCE_KNOBS[preset], REFERENCE_SECONDS[preset]
    out = {}
    for name in stage_names(k):
        arm = re.sub(r"_s\d+(_eval)?$", r"\1", name)  # another seed's arm costs what the first seed's did
        kind = ("rl_eval" if arm.endswith("_eval") else "rl") if arm.startswith(("rl", "control_")) else arm
        seconds = ref.get(arm, ref[kind])
        if arm == "star":
            out[name] = ref["star"] + ref["rl"] * slow * work(k, "star") / work(ref_k, "rl")
        else:
            out[name] = seconds * slow * work(k, kind) / work(ref_k, kind)
    return out


def _cut(name: str, value: int, x: float) -> int:
    """value scaled by x ≤ 1, not below its floor, and never above itself (a value under its floor stays)."""
    return min(value, max(FLOORS[name], math.floor(value * x)))


def predicted_total(preset: str, slow: float) -> Callable[[Knobs], float]:
    """Knobs -> the whole run's predicted seconds on a machine ``slow`` times slower than the reference's."""
    return lambda k: sum(predict_seconds(k, preset, slow).values())


def fit(k: Knobs, total: Callable[[Knobs], float], budget_s: float, fixed: set[str]) -> tuple[Knobs, list[dict]]:
    """Knobs cut tier by tier (each tier by one factor, not below its floor) until ``total(k)``, the run's
    predicted seconds, fits."""
    changes: list[dict] = []
    for tier in TIERS:
        if total(k) <= budget_s:
            break
        names = [n for n in tier if n not in fixed]
        if not names:
            continue
        current = {n: getattr(k, n) or _sizes()[0] for n in names}
        lo, hi = 0.0, 1.0
        for _ in range(30):  # bisection on the factor: the largest that fits
            x = (lo + hi) / 2
            trial = k.model_copy(update={n: _cut(n, v, x) for n, v in current.items()})
            lo, hi = (x, hi) if total(trial) <= budget_s else (lo, x)
        new = {n: _cut(n, v, lo) for n, v in current.items()}
        for n, v in new.items():
            if v != current[n]:
                changes.append({"knob": n, "from": current[n], "to": v,
                                "why": f"predicted over the {budget_s / 60:g}-minute budget on this machine"})
        k = k.model_copy(update=new)
    return k, changes


def plan(cfg, rec: dict) -> tuple[Knobs, dict, dict]:
    """(knobs to run with, the `machine` section, the `scaled` section): bf16=auto resolved, and knobs cut
    to the time budget (never those set on the command line)."""
    return budget_plan(cfg, rec, Knobs, REFERENCE_DTYPE[cfg.preset], lambda k, slow: predict_seconds(k, cfg.preset, slow),
                       lambda k, slow, budget_s, fixed: fit(k, predicted_total(cfg.preset, slow), budget_s, fixed))


def _paired(stages: Stages, after: str, before: str) -> dict:
    mean, se, n = paired_difference(sample_scores(stages.result(after)["samples"]),
                                    sample_scores(stages.result(before)["samples"]))
    return {"gain": mean, "gain_se": se, "gain_n": n}


def write_summary(cfg, k: Knobs, out: Path, stages: Stages, mach: dict, scaled: dict) -> dict:
    r = stages.result
    evals = {"baseline": r("baseline"), "sft": r("sft_eval"), "rl": r("rl_eval")}
    st = {name: {**e, "by_suite_level": e.get("by_suite_level") or by_suite_level(e["samples"])}
          for name, e in evals.items()}
    over_base = _paired(stages, "sft_eval", "baseline")
    st["sft"].update(train=r("sft"), gain_over_base=over_base["gain"], gain_over_base_se=over_base["gain_se"],
                     gain_over_base_n=over_base["gain_n"])
    st["star"] = r("star")
    st["rl"].update(train=r("rl"))
    gain = _paired(stages, "rl_eval", "sft_eval")
    st["rl"].update(gain_over_sft=gain["gain"], gain_over_sft_se=gain["gain_se"], gain_over_sft_n=gain["gain_n"])
    controls, seeds = {}, {}
    for arm in arms(k):
        per_seed = [_paired(stages, arm_name(arm, k.seeds, i) + "_eval", "sft_eval") | {"seed": s}
                    for i, s in enumerate(k.seeds)]
        gains = [x["gain"] for x in per_seed]
        spread = {"gain_mean": sum(gains) / len(gains), "gain_spread_sd": mean_se(gains)[1] * math.sqrt(len(gains))
                  if len(gains) > 1 else None, "per_seed": per_seed}
        seeds[arm] = spread
        if arm != "rl":
            first = per_seed[0]
            controls[f"{arm.removeprefix('control_')}_reward"] = {
                "accuracy": r(arm + "_eval")["accuracy"], "gain": first["gain"], "gain_se": first["gain_se"],
                "gain_vs_real": first["gain"] / gain["gain"] if gain["gain"] > 0 else None,
                "train": r(arm), "eval": r(arm + "_eval")["results"]}
    summary = {
        "model": k.model, "preset": cfg.preset, "suite": SUITE, "split": "test", "stages": st, "controls": controls,
        "seeds": seeds, "test_time": r("test_time"),
        "gain": {"sft_minus_baseline": st["sft"]["accuracy"] - st["baseline"]["accuracy"],
                 "final_minus_baseline": st["rl"]["accuracy"] - st["baseline"]["accuracy"]},
        "timings_s": stages.timings(), "machine": mach, "scaled": scaled}
    summary["timings_s"]["total"] = round(sum(summary["timings_s"].values()), 2)
    summary = finite(summary)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


def print_summary(s: dict) -> None:
    st, c, tt = s["stages"], s["controls"], s["test_time"]
    print(f"\n=== postlab run: {s['model']} ({s['preset']} preset) — held-out accuracy on {s['suite']} "
          f"({st['baseline']['n']} test items, greedy) ===")
    cats = sorted(st["baseline"]["by_category"] or {})
    print(f"{'':12s} {'base':>7s} {'sft':>7s} {'rl':>7s}")
    for cat in ["overall", *cats]:
        get = (lambda e: e["accuracy"]) if cat == "overall" else (lambda e, c=cat: e["by_category"].get(c, float("nan")))
        print(f"{cat:12s} " + " ".join(f"{get(st[x]):7.3f}" for x in ("baseline", "sft", "rl")))
    for suite, levels in st["baseline"]["by_suite_level"].items():
        for lvl, cell in levels.items():
            print(f"{suite[:7] + ' L' + lvl:12s} " + " ".join(
                f"{st[x]['by_suite_level'][suite][lvl]['accuracy']:7.3f}" for x in ("baseline", "sft", "rl"))
                + f"   (n={cell['n']})")
    print(f"paired on the same items: SFT − base {100 * st['sft']['gain_over_base']:+.1f} ± "
          f"{100 * st['sft']['gain_over_base_se']:.1f} points; RL − SFT {100 * st['rl']['gain_over_sft']:+.1f} ± "
          f"{100 * st['rl']['gain_over_sft_se']:.1f}")
    for name, ctl in c.items():
        print(f"control {name}: RL − SFT {100 * ctl['gain']:+.1f} ± {100 * ctl['gain_se']:.1f} points")
    if len(s["seeds"]["rl"]["per_seed"]) > 1:
        for arm, x in s["seeds"].items():
            print(f"{arm}: gain over SFT {100 * x['gain_mean']:+.1f} mean over seeds, sd {100 * x['gain_spread_sd']:.1f}")
    n = tt["samples"]
    print(f"test time ({tt['items']} items, {n} samples at T={tt['temperature']}): pass@1 {tt['pass_at_1']:.3f}, "
          f"maj@{n} {tt[f'maj_at_{n}']:.3f}, pass@{n} {tt['pass_at_k'][str(n)]:.3f}")
    if "vote_census" in tt:
        from postlab.evals.test_time import vote_line

        print(vote_line(tt["vote_census"], n))
    print(f"total {s['timings_s']['total'] / 60:.1f} min (predicted {s['scaled']['predicted_minutes']:.1f}); "
          f"machine: {s['machine'].get('cpu') or s['machine'].get('device_name')}, dtype {s['machine']['dtype']}")


# --- the recipe ---

def run(cfg) -> dict:
    return in_run_directory(cfg, _run)


def _run(cfg, out: Path) -> dict:
    k, mach, scaled = start_run(cfg, out, plan)
    names = stage_names(k)
    stages, p = Stages(out, cfg.stop_after, scaled["predicted_s"], names=names), cfg.progress

    def pace(kk: Knobs, upto: str, say: bool) -> Knobs:
        """The budget kept at the run's own pace after stage ``upto`` (run.preset_paced)."""
        return preset_paced(cfg, kk, upto, stages, scaled, order=names, first_stage=first_stages(kk), say=say,
                            predict=lambda x, slow: predict_seconds(x, cfg.preset, slow), fit=fit)

    def resolved(kk: Knobs) -> dict:
        return {**kk.model_dump(mode="json"), "first_seed": kk.seeds[0]}

    def write_resolved(kk: Knobs) -> None:
        atomic_write_text(out / "resolved_config.json", json.dumps(resolved(kk), indent=2) + "\n")

    k = replay_pace(stages, names, k, pace)
    invalidate_changed_stages(out, resolved(k), names, first_stage=first_stages(k), outputs=stage_outputs(k))
    write_resolved(k)

    def run_stage(name: str, fn) -> dict:
        """The stage, then the budget kept at the run's pace: later stages read the knobs as cut."""
        nonlocal k
        result, k = run_paced(stages, name, fn, k, pace, write_resolved)
        return result

    try:
        base = run_stage("fetch", lambda: {"path": resolve_model(k.model)})["path"]
        run_stage("baseline", lambda: evaluate(base, out, "baseline", k, p))
        data = run_stage("sft_data", lambda: sft_data(out, k))
        sft_res = run_stage("sft", lambda: fine_tune(base, data["file"], out / "sft", k, p, k.sft_epochs))
        run_stage("sft_eval", lambda: evaluate(sft_res["model"], out, "sft", k, p))
        policy = run_stage("star", lambda: star(sft_res["model"], out, k, p))["model"]
        for i, seed in enumerate(k.seeds):
            for arm in arms(k):
                name = arm_name(arm, k.seeds, i)
                reward = "gold" if arm == "rl" else CONTROLS[arm.removeprefix("control_")]
                trained = run_stage(name, lambda: rl(policy, out, name, reward, seed, k, p))
                run_stage(name + "_eval", lambda: evaluate(trained["model"], out, name, k, p))
        run_stage("test_time", lambda: test_time(stages.result("rl")["model"], out, k, p))
        summary = write_summary(cfg, k, out, stages, mach, scaled)
        (out / "stages" / "report.json").unlink(missing_ok=True)  # the summary may have changed: always rebuilt
        stages.run("report", lambda: {"path": str(_report(out))})
    except _Stop:
        return stopped(cfg)
    return announce(summary, out, print_summary)


def _report(out: Path) -> Path:
    from postlab.presets.reasoning_report import build_report

    return build_report(out)
