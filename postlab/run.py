"""``postlab run``: the whole recipe on a preset, resumable, ending in ``summary.json`` and ``report.html``.

    fetch → baseline eval → SFT data (spec examples + template answers + rejection sampling against the
    gold rater) → SFT → SFT eval → sample K per prompt → simulated raters label pairs → reward model →
    best-of-n curve → RL (ppo | grpo | rloo | dpo) → final eval → KL/proxy probe → Elo leaderboard → report

Every stage writes its outputs under the run directory and then ``stages/<name>.json`` (its result and
wall time) atomically; a rerun of the same command skips stages whose file exists, and the training
stages (SFT, RM, RL) resume from their newest checkpoint. A rerun with other knobs redoes the stages they
affect, and every later one (``postlab.run_state``). Evals use the held-out test split of the
built-in ``spec`` suite (the first ``eval_limit`` items: a fair sample, fixed order), greedy decoding.
Knobs are the preset's unless overridden (``postlab run --preset tiny rl_steps=3``).

The run is machine-aware (``plan``): ``bf16=auto`` picks the faster dtype here (``postlab.machine``), and
``budget_minutes`` cuts samples, steps, SFT and (last, never below 100) eval items when the stage
times predicted from the reference run and this machine's measured speed exceed it (``postlab.budget``).
What was measured, chosen and cut goes to ``machine.json``, ``summary.json`` and the report.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from postlab import budget, machine
from postlab.config import Section, overlay_knobs, save_config, set_knobs, with_optional_knobs
from postlab.data.chat import completion_text
from postlab.data.jsonl import read_jsonl
from postlab.errors import ConfigError
from postlab.evals import harness
from postlab.evals.callback import GoldEvalConfig
from postlab.evals.elo import leaderboard
from postlab.evals.metrics import paired_difference, sample_scores
from postlab.models.load import load_model_and_tokenizer, resolve_model
from postlab.raters import label as labeling
from postlab.raters.gold import GoldRater, ruler_version
from postlab.rollout import SamplingParams, TorchEngine
from postlab.run_state import FIRST_STAGE, changed_knobs, invalidate_changed_stages, portable, resolve, stale_stages
from postlab.tasks import demos
from postlab.tasks.suite import load_suite
from postlab.train import bon, sft
from postlab.train.common import CheckpointConfig, LoraConfig, OptimConfig
from postlab.train.sample import SampleConfig, sample
from postlab.utils.io import atomic_write_text, clean_stale_tmp_tree, file_lock, finite

SUITE = "spec"
STAGES = ("fetch", "baseline", "sft_data", "sft", "sft_eval", "sample", "label", "rm", "bon", "rl", "rl_eval",
          "probe", "leaderboard", "report")


# Template answers per category in the default SFT mix: enough refusals to learn the behaviour, more
# look-alikes than refusals so the model does not learn to refuse everything that sounds dangerous.
DEFAULT_DEMOS = {"instructions": 100, "chain_of_command": 100, "overrefusal": 65, "honesty": 45, "refusal": 30,
                 "knowledge": 30, "concision": 40}


class Knobs(Section):
    """Every preset knob; in RunConfig each is optional and None means "the preset's value"."""

    model: str = Field(..., description="base model: built-in name, directory or hub id")
    algo: Literal["ppo", "grpo", "rloo", "dpo", "dpo_rm", "bon_sft", "bon"] = Field("bon_sft", description="RL algorithm after SFT: ppo, grpo, rloo (online, against the reward model), dpo (on the labelled pairs), dpo_rm (DPO on the sampled candidates ranked by the reward model: best vs worst per prompt), bon_sft (best-of-n distillation: fine-tune on the reward model's best of the SFT policy's own samples of each prompt, Llama 2's rejection-sampling fine-tuning), bon (best-of-n at inference: the reward model picks among the SFT policy's greedy answer and bon_n − 1 samples; no weight update; postlab.evals.bon_policy)")
    bf16: bool | Literal["auto"] = Field("auto", description="bf16 autocast in training and bf16 sampling: true, false, or auto = the faster of fp32 and bf16 on this machine (measured once, cached; bf16 on CUDA when supported)")
    budget_minutes: float = Field(30.0, ge=0, description="time budget in minutes (default preset 30, tiny 0): on a machine slower than the reference, samples and steps, then SFT data and epochs, then eval items (never below 100) are cut so the predicted time fits; summary.json's `scaled` lists every cut; 0 = run the preset as it is")
    eval_limit: int | None = Field(None, ge=1, description="test items per eval (the first N: a fair sample; null = all 417)")
    eval_max_new_tokens: int = Field(160, ge=1, description="response cap in evals (greedy)")
    batch_size: int = Field(64, ge=1, description="prompts generated together in evals and sampling")
    demos_per_category: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_DEMOS),
        description="template answers per category at most (train split); categories not listed get none")
    rs_prompts: int = Field(250, ge=1, description="train prompts for rejection sampling (and the comparisons)")
    rs_k: int = Field(4, ge=1, description="samples per prompt for rejection sampling")
    rs_max_new_tokens: int = Field(128, ge=1, description="response cap for rejection sampling")
    sft_lr: float = Field(2e-5, gt=0, description="SFT peak learning rate")
    sft_epochs: float = Field(4.0, gt=0, description="SFT passes over the demonstrations (4: two more passes from 2 gave +8.3 ± 1.9 held-out gold on SmolLM2, docs/results.md)")
    sft_batch_size: int = Field(8, ge=1, description="SFT conversations per step")
    sft_lora: bool = Field(False, description="LoRA adapters instead of full fine-tuning in SFT")
    max_seq_len: int = Field(384, ge=16, description="token cap for SFT and DPO sequences")
    sample_prompts: int = Field(250, ge=1, description="train prompts whose SFT samples are compared (≤ rs_prompts; the base model's rejection-sampling candidates join them)")
    sample_k: int = Field(4, ge=2, description="SFT samples per prompt for comparisons (and best-of-n)")
    sample_max_new_tokens: int = Field(128, ge=1, description="response cap for comparison samples")
    pairs_per_prompt: int = Field(28, ge=1, description="compared pairs per prompt at most (all pairs of 4 SFT + 4 base candidates = 28)")
    panel_raters: int = Field(5, ge=1, le=5, description="simulated raters who judge each pair (a panel; 1 = one rater, every verdict kept)")
    panel_min_votes: int = Field(5, ge=1, le=5, description="keep a pair only when this many of the panel chose its winner (5 of 5 = unanimous)")
    panel_min_strength: float = Field(0.7, ge=0, description="keep a pair only when the panel's mean margin toward the winner is at least this")
    rm_held_out: float = Field(0.25, gt=0, lt=1, description="fraction of the labelled prompts held out whole from the reward model (and DPO) to measure it")
    rm_lr: float = Field(3e-4, gt=0, description="reward-model learning rate (top layers + a fresh head: 3e-4 reached 0.59 vs gold where 3e-5 stayed at 0.49; docs/results.md)")
    rm_epochs: float = Field(2.0, gt=0, description="reward-model passes over the pairs")
    rm_max_seq_len: int = Field(256, ge=16, description="token cap for reward-model pairs (longer pairs are skipped)")
    rm_trainable_layers: int = Field(4, ge=0, description="reward model: train only the top N layers + head, the "
                                                          "frozen bottom's activations cached (0 = full fine-tuning)")
    rm_length_control: bool = Field(False, description="reward model: Bradley–Terry with a learned length term and the reward kept uncorrelated with length (postlab rm length_control; docs/algorithms/reward_model.md), so the panel's taste for longer answers is not in the reward")
    bon_replay: bool | list[str] = Field(False, description="bon_sft: replay the SFT demonstrations beside the best-of-n ones (what the reward model cannot see is not unlearned): true = all of them, a list of categories = the train items' demonstrations of those categories only (e.g. [refusal])")
    bon_keep: float = Field(0.5, gt=0, le=1, description="bon_sft: share of the prompts that give a demonstration, those whose best candidate the reward model scores highest (its confident picks)")
    bon_n: int = Field(4, ge=2, description="bon: candidates per held-out prompt, the greedy answer and bon_n − 1 samples")
    bon_temperature: float = Field(0.7, gt=0, description="bon: sampling temperature of the extra candidates")
    rl_steps: int = Field(10, ge=1, description="RL steps (DPO: optimizer steps)")
    rl_prompts_per_step: int = Field(8, ge=1, description="prompts per RL step (GRPO/RLOO: times group size 4)")
    rl_lr: float = Field(3e-6, gt=0, description="RL learning rate")
    rl_kl_coef: float = Field(0.05, ge=0, description="β: KL penalty (DPO: β of the DPO loss)")
    rl_max_new_tokens: int = Field(96, ge=1, description="response cap for RL rollouts")
    rl_gold_every: int = Field(5, ge=0, description="held-out gold eval every N RL steps (0 = off)")
    rl_gold_limit: int = Field(36, ge=1, description="held-out items in those evals")
    probe_prompts: int = Field(32, ge=1, description="test prompts sampled to measure KL(π‖π_SFT) and the proxy reward")
    report_samples: int = Field(12, ge=0, description="answers shown side by side in the report")
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples for the leaderboard CIs")
    seed: int = Field(0, ge=0, description="seed of every random choice in the run: samples, the panel's draws, data order, the reward model's held-out split and head; rerun with another seed to see the run-to-run spread")


PRESETS: dict[str, Knobs] = {
    # SmolLM2-135M-Instruct, full fine-tuning; sized to the 30-minute budget on 2 CPU cores (docs/results.md).
    "default": Knobs(model="smollm2-135m-instruct"),
    # The tiny random model: every stage runs, in well under 5 minutes; for CI and smoke tests.
    "tiny": Knobs(model="tiny", algo="ppo", bf16=False, budget_minutes=0, eval_limit=60, eval_max_new_tokens=24, batch_size=16,
                  demos_per_category={k: 4 for k in DEFAULT_DEMOS}, rs_prompts=24, rs_k=2, rs_max_new_tokens=24, sft_lr=3e-3, sft_epochs=1.0,
                  max_seq_len=256, sample_prompts=24, sample_k=2, sample_max_new_tokens=24, rm_lr=1e-3,
                  rl_steps=4, rl_prompts_per_step=8, rl_lr=1e-4, rl_max_new_tokens=16, rl_gold_every=2,
                  rl_gold_limit=9, probe_prompts=9, report_samples=4, bootstrap=100, rm_trainable_layers=1,
                  pairs_per_prompt=6, panel_raters=3, panel_min_votes=2, panel_min_strength=0.0),
}


class _RunOptions(Section):
    """postlab run: the end-to-end recipe on a preset (every knob below defaults to the preset's value)."""

    preset: Literal["default", "tiny"] = Field("default", description="default = SmolLM2-135M-Instruct; tiny = random test model")
    out_dir: str | None = Field(None, description="run directory (default runs/<preset>)")
    progress: bool = Field(True, description="show progress bars")
    stop_after: str | None = Field(None, description=f"stop after this stage (one of {', '.join(STAGES)})")

    def check(self) -> None:
        super().check()
        if self.stop_after is not None and self.stop_after not in STAGES:
            raise ConfigError(f"stop_after: unknown stage {self.stop_after!r}; one of {', '.join(STAGES)}")
        k = self.knobs()
        if k.sample_prompts > k.rs_prompts:
            raise ConfigError(f"sample_prompts ({k.sample_prompts}) must be ≤ rs_prompts ({k.rs_prompts})")
        if isinstance(k.bon_replay, list):
            known = {it.category for it in load_suite(SUITE, split="train")}
            if set(k.bon_replay) - known:
                raise ConfigError(f"bon_replay: unknown categories {sorted(set(k.bon_replay) - known)}; the "
                                  f"{SUITE} suite's are {', '.join(sorted(known))}")

    def knobs(self) -> Knobs:
        """The preset's knobs with this config's non-None values on top (validated: errors name the knob)."""
        return overlay_knobs(Knobs, PRESETS[self.preset], self, self.preset)

    def directory(self) -> Path:
        return Path(self.out_dir or f"runs/{self.preset}")


# RunConfig = the options above + every knob of Knobs as an optional field (None = the preset's value).
RunConfig = with_optional_knobs("RunConfig", _RunOptions, Knobs)


# --- stage bookkeeping ---


# Stage wall times (seconds) of a reference run of each preset on a quiet 2-core CPU
# (budget.REFERENCE_MACHINE), in the dtype it ran (REFERENCE_DTYPE), with the knobs it ran (REFERENCE_KNOBS). The ETA and the budget start from
# them, scaled to this machine's measured speed and the knobs (budget.predict_seconds); the ETA then
# follows how fast this run has been so far.
REFERENCE_DTYPE = {"default": "bf16", "tiny": "fp32"}
# The default reference run is run d6 (`make demo` with this preset, 2026-11-30, 32.5 minutes), except the RL
# stage's time: that is PPO's, 6 steps, from an earlier reference run (bon_sft is timed by budget.bon_sft_seconds).
REFERENCE_KNOBS = {"default": PRESETS["default"].model_copy(update={"algo": "ppo", "rl_steps": 6, "rs_prompts": 300,
                                                                   "sample_prompts": 300, "probe_prompts": 48}),
                   "tiny": PRESETS["tiny"].model_copy(update={"pairs_per_prompt": 2, "panel_raters": 1})}
REFERENCE_SECONDS = {
    "default": {"fetch": 1, "baseline": 105, "sft_data": 275, "sft": 527, "sft_eval": 57, "sample": 169, "label": 9,
                "rm": 339, "bon": 24, "rl": 108, "rl_eval": 59, "probe": 76, "leaderboard": 1, "report": 1},
    "tiny": {"fetch": 1, "baseline": 1, "sft_data": 1, "sft": 1, "sft_eval": 1, "sample": 1, "label": 1, "rm": 1,
             "bon": 1, "rl": 2, "rl_eval": 1, "probe": 1, "leaderboard": 1, "report": 1},
}


class Stages:
    """Runs each stage once: its result and wall time go to ``stages/<name>.json`` atomically."""

    def __init__(self, out: Path, stop_after: str | None, reference: dict[str, float] | None = None,
                 names: tuple[str, ...] = STAGES):
        self.names = names  # every stage of the recipe, in order (a preset module passes its own)
        self.out, self.dir = out, out / "stages"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stop_after = stop_after
        self.t0 = time.perf_counter()
        self.reference = reference or {}
        self.ran: dict[str, float] = {}  # stages run by this invocation -> seconds

    def eta(self, name: str) -> str:
        """Time left for this and later stages: reference times scaled by this run's pace so far."""
        if not self.reference:
            return ""
        ref_done = sum(self.reference.get(n, 0) for n in self.ran)
        # pace from this run's own stages once they cover enough reference time to be telling
        pace = sum(self.ran.values()) / ref_done if ref_done >= 0.05 * sum(self.reference.values()) else 1.0
        left = pace * sum(self.reference.get(n, 0) for n in self.names[self.names.index(name):] if not self.done(n))
        return f"; about {left / 60:.0f} min to go" if left >= 60 else "; under a minute to go"

    def done(self, name: str) -> bool:
        return (self.dir / f"{name}.json").exists()

    def result(self, name: str) -> dict:
        return resolve(json.loads((self.dir / f"{name}.json").read_text())["result"], self.out)

    def run(self, name: str, fn) -> dict:
        k, n = self.names.index(name) + 1, len(self.names)
        if self.done(name):
            print(f"[{k}/{n} {name}] done already, skipping", file=sys.stderr)
            result = self.result(name)
        else:
            elapsed = time.perf_counter() - self.t0
            print(f"[{k}/{n} {name}] running ({elapsed / 60:.1f} min so far{self.eta(name)})", file=sys.stderr)
            t = time.perf_counter()
            result = finite(fn())
            seconds = round(time.perf_counter() - t, 2)
            self.ran[name] = seconds
            atomic_write_text(self.dir / f"{name}.json",
                              json.dumps({"result": portable(result, self.out), "seconds": seconds}, indent=2,
                                         ensure_ascii=False) + "\n")
            print(f"[{k}/{n} {name}] finished in {seconds / 60:.1f} min", file=sys.stderr)
        if name == self.stop_after:
            raise _Stop
        return result

    def timings(self) -> dict[str, float]:
        return {n: json.loads((self.dir / f"{n}.json").read_text())["seconds"] for n in self.names if self.done(n)}


class _Stop(Exception):
    pass


# --- stages ---


def _gold(results: dict) -> dict:
    """The G block of summary.json from eval results."""
    return {"overall": results["overall"], "overall_se": results["overall_se"], "by_category": results["by_category"],
            "n": results["n"], "mean_length": results["mean_length"]}


def _evaluate(model: str, out: Path, name: str, k: Knobs, progress: bool) -> dict:
    cfg = harness.EvalConfig(model=model, suite=SUITE, split="test", limit=k.eval_limit,
                             out=str(out / "eval" / f"{name}.json"), batch_size=k.batch_size,
                             dtype="bf16" if k.bf16 else "fp32", progress=progress, overwrite=True,
                             sampling=SamplingParams(temperature=0.0, max_new_tokens=k.eval_max_new_tokens, seed=0))
    results = harness.evaluate(cfg)  # overwrite: a stage that is (re)run replaces its own eval
    print(harness.format_results(results), file=sys.stderr)
    return {**_gold(results), "results": cfg.out, "samples": results["samples"], "ruler": ruler_version()}


EVAL_STAGES = ("baseline", "sft_eval", "rl_eval")


def regrade_stale_evals(out: Path, stages: Stages, k: Knobs, names: tuple[str, ...] = EVAL_STAGES,
                        after: tuple[str, ...] = ("leaderboard", "report")) -> list[str]:
    """Finished evals whose gold scores came from another version of the gold rater (an upgrade between a run
    and its rerun) are regraded from their saved answers, and the stages built on their scores are redone,
    so a summary never mixes two rulers. Returns the regraded stages."""
    now, redone = ruler_version(), []
    for name in names:
        if not stages.done(name) or (old := stages.result(name)).get("ruler") == now:
            continue
        cfg = harness.EvalConfig(suite=SUITE, split="test", limit=k.eval_limit, responses=old["samples"],
                                 out=old["results"], overwrite=True, progress=False)
        results = harness.evaluate(cfg)
        new = {**old, **_gold(results), "ruler": now}
        record = json.loads((stages.dir / f"{name}.json").read_text())
        atomic_write_text(stages.dir / f"{name}.json", json.dumps({**record, "result": portable(new, out)}, indent=2,
                                                                  ensure_ascii=False) + "\n")
        print(f"regraded {name}: the gold rater changed ({old.get('ruler', 'unrecorded')} -> {now}); gold "
              f"{old['overall']:.3f} -> {new['overall']:.3f} on the same answers", file=sys.stderr)
        redone.append(name)
    if redone:
        for name in after:
            (stages.dir / f"{name}.json").unlink(missing_ok=True)
        (out / "summary.json").unlink(missing_ok=True)
    return redone


def _sample(model: str, path: Path, limit: int, n: int, max_new_tokens: int, temperature: float, k: Knobs,
            progress: bool) -> Path:
    return sample(SampleConfig(model=model, suite=SUITE, split="train", limit=limit, out=str(path), k=n,
                               batch_size=k.batch_size, dtype="bf16" if k.bf16 else "fp32", progress=progress,
                               sampling=SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens, seed=k.seed)))


def _candidates(path: Path) -> dict[str, list[tuple[str, str | None]]]:
    out: dict[str, list[tuple[str, str | None]]] = {}
    for lineno, row in read_jsonl(path):
        text = completion_text(row, f"{path}:{lineno}")
        out.setdefault(row["prompt_id"], []).append((text.strip(), row.get("finish_reason")))
    return out


def build_sft_data(base: str, out: Path, k: Knobs, progress: bool) -> dict:
    data = out / "data"
    templates, per_category = demos.template_demos(k.demos_per_category)
    examples = [{**row, "source": "spec_example"} for row in demos.spec_example_demos()]
    cands_path = _sample(base, data / "base_candidates.jsonl", k.rs_prompts, k.rs_k, k.rs_max_new_tokens, 0.8, k,
                         progress)
    items = load_suite(SUITE, split="train", limit=k.rs_prompts)
    accepted = demos.select_best(items, _candidates(cands_path))
    rows = examples + templates + accepted
    atomic_write_text(data / "sft.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    by_cat: dict[str, int] = {}
    for r in accepted:
        cat = r["id"].split("-")[0]
        by_cat[cat] = by_cat.get(cat, 0) + 1
    return {"file": str(data / "sft.jsonl"), "conversations": len(rows), "spec_examples": len(examples),
            "template_answers": len(templates), "template_by_category": per_category,
            "rejection_sampled": len(accepted), "rejection_prompts": len(items),
            "rejection_acceptance": len(accepted) / len(items), "rejection_by_category": by_cat,
            "base_candidates": str(cands_path)}


def train_sft(base: str, data_file: str, out: Path, k: Knobs, progress: bool, max_seconds: float | None = None) -> dict:
    """The SFT stage; ``max_seconds`` (the budget's allowance, ``budget.stage_allowance``) ends it early, at the
    step its pace allows, though never below the budget's floor of SFT epochs."""
    limit = max(1.0, max_seconds) if max_seconds is not None else 0.0
    cfg = sft.SFTConfig(
        model=base, out_dir=str(out / "sft"),
        data=sft.SFTDataConfig(train_file=data_file, eval_fraction=0.05, max_seq_len=k.max_seq_len),
        optim=OptimConfig(lr=k.sft_lr, epochs=k.sft_epochs, batch_size=k.sft_batch_size, warmup_steps=5,
                          bf16=k.bf16, group_by_length=True, seed=k.seed, max_seconds=limit,
                          max_seconds_floor=min(1.0, budget.FLOORS["sft_epochs"] / k.sft_epochs)),
        lora=LoraConfig(enabled=k.sft_lora),
        checkpoint=CheckpointConfig(save_every=50, resume=True, progress=progress))
    result = sft.train(cfg)
    losses = _train_losses(out / "sft")
    return {"model": str(out / "sft" / "model"), "conversations": result.num_examples, "steps": result.state.step,
            "planned_steps": result.planned_steps, "max_seconds": round(limit, 1) if limit else None,
            "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
            "eval_loss": result.eval_loss}


def sft_allowance(cfg: RunConfig, k: Knobs, stages: Stages, scaled: dict) -> float | None:
    """Seconds the SFT stage may take (``budget.stage_allowance``); None without a budget or where sft_epochs
    was set on the command line (a knob set there is never cut)."""
    if cfg.sft_epochs is not None:
        return None
    return budget.stage_allowance(
        k, REFERENCE_KNOBS[cfg.preset], REFERENCE_SECONDS[cfg.preset], slow=scaled["slowdown"],
        budget_s=60 * (k.budget_minutes or 0), test_items=_test_items(), order=STAGES, stage="sft",
        seconds=stages.timings(), first_stage=FIRST_STAGE, fixed=set_knobs(Knobs, cfg))


def note_time_limited(scaled: dict, stage: str, result: dict) -> None:
    """A stage its time allowance ended early, recorded with the budget's other cuts (for the summary, the report)."""
    if result.get("planned_steps") and result["steps"] < result["planned_steps"]:
        scaled["changes"] = [*scaled["changes"], {
            "knob": f"{stage}_steps", "from": result["planned_steps"], "to": result["steps"], "after": stage,
            "why": f"the {stage} stage ran slower than predicted and stopped at its share of the budget "
                   f"({result['max_seconds'] / 60:.1f} min), the learning-rate schedule ending there"}]


def _train_losses(run_dir: Path) -> list[float]:
    """Every step's training loss from ``run_dir/metrics.jsonl``: the whole run's, also after a resume
    (``TrainResult.train_losses`` has only the steps the resuming process ran, none when it resumed at the end)."""
    return [m["loss"] for _, m in read_jsonl(run_dir / "metrics.jsonl") if "loss" in m]


def sample_comparisons(policy: str, base_candidates: str, out: Path, k: Knobs, progress: bool) -> dict:
    data = out / "data"
    sft_path = _sample(policy, data / "sft_candidates.jsonl", k.sample_prompts, k.sample_k, k.sample_max_new_tokens,
                       1.0, k, progress)
    keep = {it.id for it in load_suite(SUITE, split="train", limit=k.sample_prompts)}
    rows = [row for _, row in read_jsonl(sft_path)]
    rows += [{**row, "sample_index": row["sample_index"] + k.sample_k, "policy": "base"}
             for _, row in read_jsonl(base_candidates) if row["prompt_id"] in keep]
    merged = data / "candidates.jsonl"
    atomic_write_text(merged, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return {"sft_candidates": str(sft_path), "candidates": str(merged), "prompts": len(keep), "rows": len(rows)}


def label_pairs(candidates: str, out: Path, k: Knobs) -> dict:
    cfg = labeling.LabelConfig(candidates=candidates, suite=SUITE, rater="simulated", out=str(out / "data" / "prefs.jsonl"),
                               max_pairs_per_prompt=k.pairs_per_prompt, raters_per_pair=k.panel_raters,
                               min_votes=min(k.panel_min_votes, k.panel_raters), min_strength=k.panel_min_strength, seed=k.seed)
    stats = labeling.label(cfg)
    return {**stats, "file": cfg.out}


def train_rm(policy: str, prefs: str, candidates: str, out: Path, k: Knobs, progress: bool) -> dict:
    from postlab.train import rm

    cfg = rm.RMConfig(model=policy, out_dir=str(out / "rm"), margin="strength",
                      data=rm.RMDataConfig(train_file=prefs, eval_fraction=k.rm_held_out, max_seq_len=k.rm_max_seq_len),
                      trainable_layers=k.rm_trainable_layers, length_control=k.rm_length_control,
                      optim=OptimConfig(lr=k.rm_lr, epochs=k.rm_epochs, batch_size=8, warmup_steps=5, bf16=k.bf16,
                                        group_by_length=True, seed=k.seed),
                      checkpoint=CheckpointConfig(save_every=50, resume=True, progress=progress))
    result = rm.train(cfg)
    return {**result, **rm_all_pairs_accuracy(result["model"], prefs, candidates, k)}


def _held_out_prompts(prefs: str, k: Knobs) -> set[str]:
    """The prompts the reward model held out (its split: optim.seed = the run's seed)."""
    from postlab.data.preferences import load_preferences
    from postlab.train.rm import split_by_prompt

    _, held = split_by_prompt(load_preferences(prefs), k.rm_held_out, k.seed)
    return {p.prompt_id for p in held}


def rm_all_pairs_accuracy(rm_dir: str, prefs: str, candidates: str, k: Knobs, clear: float = 0.3) -> dict:
    """The reward model against gold on every pair of candidates of its held-out prompts whose gold margin
    is at least `clear`, labelled or not: the pairs a best-of-n or RL step would meet (the labelled
    held-out pairs are only those the panel agreed on, an easier set)."""
    from postlab.raters.reward_model import RewardModelRater

    held = _held_out_prompts(prefs, k)
    right, total, prompts = all_pairs_agreement(RewardModelRater(rm_dir, bf16=k.bf16).score_texts, held, candidates, clear)
    return {"accuracy_vs_gold_all_pairs": right / total if total else None, "gold_clear_pairs_all": total,
            "held_out_prompts": prompts}


def all_pairs_agreement(score_texts, prompt_ids: set[str], candidates: str, clear: float = 0.3) -> tuple[int, int, int]:
    """(pairs where ``score_texts(prompts, texts)`` orders two candidates as gold does, pairs whose gold margin is at
    least `clear`, prompts with candidates) over every pair of the distinct candidates of `prompt_ids` (train items)."""
    import itertools

    items = {it.id: it for it in load_suite(SUITE, split="train") if it.id in prompt_ids}
    gold, right, total, prompts = GoldRater(), 0, 0, 0
    for pid, c in _candidates(Path(candidates)).items():
        if pid not in items:
            continue
        prompts += 1
        ts = list(dict.fromkeys(t for t, _ in c if t))
        proxy = score_texts([items[pid].messages] * len(ts), ts)
        golds = [gold.score(items[pid], t) for t in ts]
        for (p1, g1), (p2, g2) in itertools.combinations(zip(proxy, golds), 2):
            if abs(g1 - g2) >= clear:
                total += 1
                right += (p1 > p2) == (g1 > g2)
    return right, total, prompts


def best_of_n(rm_dir: str, sft_candidates: str, prefs: str, out: Path, k: Knobs) -> dict:
    """Best-of-n of the SFT policy on prompts the reward model never trained on (its held-out prompts)."""
    from postlab.raters.reward_model import RewardModelRater

    held_ids = _held_out_prompts(prefs, k)
    items = {it.id: it for it in load_suite(SUITE, split="train") if it.id in held_ids}
    by_prompt: dict[str, list[str]] = {}
    for lineno, row in read_jsonl(sft_candidates):
        if row["prompt_id"] in items:
            by_prompt.setdefault(row["prompt_id"], []).append(completion_text(row, f"{sft_candidates}:{lineno}").strip())
    ids = [pid for pid, texts in by_prompt.items() if len(texts) >= k.sample_k]
    if not ids:
        return {"rows": [], "prompts": 0}
    rater, gold = RewardModelRater(rm_dir, bf16=k.bf16), GoldRater()
    proxy = [rater.score_texts([items[pid].messages] * k.sample_k, by_prompt[pid][: k.sample_k]) for pid in ids]
    golds = [[gold.score(items[pid], t) for t in by_prompt[pid][: k.sample_k]] for pid in ids]
    ns = [n for n in (1, 2, 4, 8, 16, 32) if n <= k.sample_k]
    rows = bon.summarize(proxy, golds, ns)
    atomic_write_text(out / "bon.json", json.dumps({"prompts": len(ids), "rows": rows}, indent=2) + "\n")
    return {"rows": rows, "prompts": len(ids)}


def rm_ranked_pairs(rm_dir: str, candidates: str, out: Path, k: Knobs) -> str:
    """``algo=dpo_rm``'s data: every sampled candidate (SFT and base) of the train prompts scored by the
    reward model, best against worst and second-best against second-worst per prompt (train.rm_ranked)."""
    from postlab.raters.reward_model import RewardModelRater
    from postlab.train.rm_ranked import rank_pairs

    items = {it.id: it for it in load_suite(SUITE, split="train")}
    cands = {pid: [t for t, _ in c] for pid, c in _candidates(Path(candidates)).items()}
    pairs, st = rank_pairs(RewardModelRater(rm_dir, bf16=k.bf16).score_texts, items, cands, pairs_per_prompt=2)
    path = out / "data" / "rm_ranked.jsonl"
    atomic_write_text(path, "".join(json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in pairs))
    print(f"dpo_rm: {st.pairs} reward-model-ranked pairs from {st.prompts} prompts (mean reward margin "
          f"{st.mean_margin:.2f})", file=sys.stderr)
    return str(path)


def train_rl(policy: str, rm_dir: str, prefs: str, candidates: str, own_candidates: str, sft_data: str, out: Path,
             k: Knobs, progress: bool) -> dict:
    """The RL stage by ``k.algo``. ``candidates``: every compared candidate (the SFT policy's samples and the base
    model's); ``own_candidates``: the SFT policy's samples alone, which bon_sft picks from."""
    from postlab.train.rl_common import RewardConfig, RLOptimConfig

    rl_dir = out / "rl"
    gold_eval = GoldEvalConfig(every=k.rl_gold_every, limit=k.rl_gold_limit, max_new_tokens=min(k.eval_max_new_tokens, 128),
                               batch_size=k.batch_size)
    ckpt = CheckpointConfig(save_every=10, resume=True, progress=progress)  # policy + value + Adam: ~3 GB each
    sampling = SamplingParams(temperature=1.0, max_new_tokens=k.rl_max_new_tokens, seed=k.seed)
    if k.algo == "ppo":
        from postlab.train import ppo

        cfg = ppo.PPOConfig(model=policy, out_dir=str(rl_dir), suite=SUITE, split="train",
                            prompts_per_step=k.rl_prompts_per_step, minibatch_size=min(8, k.rl_prompts_per_step),
                            steps=k.rl_steps, kl_coef=k.rl_kl_coef, ppo_epochs=2,
                            reward=RewardConfig(source=f"rm:{rm_dir}", missing_eos_penalty=1.0),
                            sampling=sampling, optim=RLOptimConfig(lr=k.rl_lr, bf16=k.bf16, seed=k.seed),
                            checkpoint=ckpt, gold_eval=gold_eval)
        result = ppo.train(cfg)
    elif k.algo in ("grpo", "rloo"):
        from postlab.train import grpo

        cfg = grpo.GRPOConfig(model=policy, out_dir=str(rl_dir), suite=SUITE, split="train", advantage=k.algo,
                              k=4, prompts_per_step=max(1, k.rl_prompts_per_step // 4), steps=k.rl_steps,
                              kl_coef=k.rl_kl_coef, reward=RewardConfig(source=f"rm:{rm_dir}", missing_eos_penalty=1.0),
                              sampling=sampling, optim=RLOptimConfig(lr=k.rl_lr, bf16=k.bf16, seed=k.seed),
                              checkpoint=ckpt, gold_eval=gold_eval)
        result = grpo.train(cfg)
    elif k.algo == "bon_sft":
        return {**bon_sft_stage(policy, rm_dir, own_candidates, sft_data, out, k, progress), "algo": k.algo}
    elif k.algo == "bon":  # nothing to train: the policy is the SFT policy with best-of-n at inference (rl_eval)
        return {"algo": k.algo, "model": policy, "n": k.bon_n, "temperature": k.bon_temperature}
    else:
        from postlab.train import dpo
        from postlab.train.rm import RMDataConfig

        held_out = k.rm_held_out
        if k.algo == "dpo_rm":
            prefs, held_out = rm_ranked_pairs(rm_dir, candidates, out, k), 0.05
        cfg = dpo.DPOConfig(model=policy, out_dir=str(rl_dir), beta=max(k.rl_kl_coef, 1e-3),
                            data=RMDataConfig(train_file=prefs, eval_fraction=held_out, max_seq_len=k.max_seq_len),
                            optim=OptimConfig(lr=k.rl_lr, max_steps=k.rl_steps, batch_size=8, warmup_steps=2, bf16=k.bf16,
                                              group_by_length=True, seed=k.seed),
                            checkpoint=ckpt, gold_eval=gold_eval)
        result = dpo.train(cfg)
    return {**result, "algo": k.algo, "model": str(rl_dir / "model"), "metrics": str(rl_dir / "metrics.jsonl")}


def evaluate_bon(policy: str, rm_dir: str, sft_samples: str, out: Path, k: Knobs, progress: bool) -> dict:
    """``algo=bon``'s held-out eval: best-of-n against the reward model over the SFT policy's greedy answer
    (from the sft_eval stage) and bon_n − 1 samples, graded by gold like every other eval."""
    from postlab.evals.bon_policy import evaluate_bon_policy

    results = evaluate_bon_policy(policy, rm_dir, sft_samples, out / "eval" / "rl.json", suite=SUITE, n=k.bon_n,
                                  temperature=k.bon_temperature, max_new_tokens=k.eval_max_new_tokens,
                                  batch_size=k.batch_size, limit=k.eval_limit, dtype="bf16" if k.bf16 else "fp32",
                                  bf16_rm=k.bf16, progress=progress, seed=k.seed)
    print(harness.format_results(results), file=sys.stderr)
    return {**_gold(results), "results": str(out / "eval" / "rl.json"), "samples": results["samples"],
            "bon": results["bon"], "ruler": ruler_version()}


def bon_probe(rl_eval: dict) -> dict:
    """``algo=bon``'s probe: the reward of the picks and of the greedy answers on the eval's own prompts, and
    best-of-n's analytic KL (no sampling: nothing was trained)."""
    b = rl_eval["bon"]
    common = {"kl_se": 0.0, "gold_sampled": None, "mean_tokens": None, "prompts": rl_eval["n"]}
    return {"sft": {**common, "kl": 0.0, "proxy": b["proxy_greedy"]},
            "rl": {**common, "kl": b["kl_analytic"], "proxy": b["proxy_picks"],
                   "kl_kind": "analytic best-of-n value log n − (n − 1)/n, not measured"}}


def replayed(sft_rows: list[dict], items: dict, replay: bool | list[str]) -> list[dict]:
    """The SFT demonstrations ``bon_replay`` replays: all (true), none (false), or those of the train items of the
    listed categories (rows without a train item's id, such as the spec's own examples, are not replayed then;
    unknown categories are refused up front, in ``_RunOptions.check``)."""
    if isinstance(replay, bool):
        return list(sft_rows) if replay else []
    return [r for r in sft_rows if r.get("id") in items and items[r["id"]].category in replay]


def _fmt_share(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def bon_sft_stage(policy: str, rm_dir: str, candidates: str, sft_data: str, out: Path, k: Knobs, progress: bool) -> dict:
    """``algo=bon_sft``: the reward model's best finished candidate of each compared prompt among the SFT
    policy's own samples (``candidates``) as a demonstration, the SFT demonstrations replayed beside them
    (``bon_replay``), and the policy fine-tuned on both as the SFT stage was (sft_lr, sft_epochs); gold of
    the picks, beside a random pick's and the gold rater's own pick's on the same prompts, is recorded, not
    used (``bon_sft.pick_quality``). The base model's candidates, compared beside them for the reward
    model, are no picks: best-of-n of the policy's own samples is what stays within log n − (n − 1)/n nats
    of it, and in run f1 the base model's style, 35 of 125 picks, took refusals from 0.95 to 0.60."""
    from postlab.raters.reward_model import RewardModelRater
    from postlab.train import bon_sft

    items = {it.id: it for it in load_suite(SUITE, split="train")}
    cands = _candidates(Path(candidates))
    rows, st = bon_sft.select_best(RewardModelRater(rm_dir, bf16=k.bf16).score_texts, items, cands, keep=k.bon_keep)
    quality = bon_sft.pick_quality(rows, items, cands, GoldRater().score)
    replay = replayed([row for _, row in read_jsonl(sft_data)], items, k.bon_replay)
    path = out / "data" / "bon_sft.jsonl"
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows + replay))
    print(f"bon_sft: {st.kept} best-of-n demonstrations from {st.prompts} prompts ({st.candidates} candidates; "
          f"mean reward {st.mean_best:+.2f} against {st.mean_reward:+.2f} for all), {len(replay)} SFT "
          f"demonstrations replayed; gold of the picks {_fmt_share(quality['gold_of_picks'])}, of a random pick "
          f"{_fmt_share(quality['gold_of_samples'])}, of gold's own pick {_fmt_share(quality['gold_of_oracle'])}",
          file=sys.stderr)
    steps = math.ceil(len(rows + replay) * k.sft_epochs / k.sft_batch_size)
    cfg = sft.SFTConfig(
        model=policy, out_dir=str(out / "rl"),
        data=sft.SFTDataConfig(train_file=str(path), eval_fraction=0.0, max_seq_len=k.max_seq_len),
        optim=OptimConfig(lr=k.sft_lr, epochs=k.sft_epochs, batch_size=k.sft_batch_size, warmup_steps=5,
                          bf16=k.bf16, group_by_length=True, seed=k.seed),
        checkpoint=CheckpointConfig(save_every=50, resume=True, progress=progress),
        gold_eval=GoldEvalConfig(every=max(1, steps // 4) if k.rl_gold_every else 0, limit=k.rl_gold_limit,
                                 max_new_tokens=min(k.eval_max_new_tokens, 128), batch_size=k.batch_size))
    result = sft.train(cfg)
    losses = _train_losses(out / "rl")
    return {"model": str(out / "rl" / "model"), "metrics": str(out / "rl" / "metrics.jsonl"),
            "demonstrations": st.kept, "prompts": st.prompts, "candidates_scored": st.candidates,
            "mean_reward_best": st.mean_best, "mean_reward_all": st.mean_reward,
            "gold_of_picks": quality["gold_of_picks"], "gold_of_samples": quality["gold_of_samples"],
            "gold_of_oracle": quality["gold_of_oracle"], "share_of_lift": quality["share_of_lift"],
            "picks_by_category": quality["by_category"],
            "replayed": len(replay), "steps": result.state.step,
            "last_loss": losses[-1] if losses else None}


@torch.no_grad()
def probe(policy: str, reference: str, rm_dir: str, k: Knobs) -> dict:
    """KL(π‖π_ref) and proxy reward of a policy on held-out test prompts: one sample per prompt at
    temperature 1, KL ≈ mean over samples of Σ_t log π − log π_ref (k1, unbiased for the sequence KL)."""
    from postlab.raters.reward_model import RewardModelRater
    from postlab.train.rl_common import response_logprobs

    items = load_suite(SUITE, split="test", limit=k.probe_prompts)
    pol, tok = load_model_and_tokenizer(policy)
    ref, _ = load_model_and_tokenizer(reference)
    engine = TorchEngine(model=pol, tokenizer=tok, decode_dtype=torch.bfloat16 if k.bf16 else None)
    r = engine.generate([it.messages for it in items], SamplingParams(temperature=1.0, max_new_tokens=k.rl_max_new_tokens, seed=k.seed + 1))
    mask = r.response_mask.float()
    logp = response_logprobs(pol, r, 1.0)[0]
    ref_logp = response_logprobs(ref, r, 1.0)[0]
    kl = ((logp - ref_logp) * mask).sum(1)
    proxy = RewardModelRater(rm_dir, bf16=k.bf16).score_texts([it.messages for it in items], r.texts)
    gold = GoldRater()
    return {"kl": float(kl.mean()), "kl_se": float(kl.std() / math.sqrt(len(items))),
            "proxy": sum(proxy) / len(proxy), "gold_sampled": sum(gold.score(it, t) for it, t in zip(items, r.texts)) / len(items),
            "mean_tokens": float(r.response_lengths.float().mean()), "prompts": len(items)}


def build_leaderboard(evals: dict[str, dict], out: Path, k: Knobs) -> dict:
    """Elo of the stage checkpoints from their answers to the same test items, judged by the gold rater."""
    import numpy as np

    names = list(evals)
    columns = []
    for name in names:
        rows = {row["id"]: row["score"] for _, row in read_jsonl(evals[name]["samples"])}
        columns.append(rows)
    ids = sorted(set.intersection(*(set(c) for c in columns)))
    scores = np.array([[c[i] for c in columns] for i in ids])
    rows = leaderboard(names, scores, bootstrap=k.bootstrap)
    result = {"judge": "gold", "items": len(ids), "rows": rows}
    atomic_write_text(out / "leaderboard.json", json.dumps(result, indent=2) + "\n")
    return result


# --- the machine and the budget ---


def machine_record(out: Path, measure: bool) -> dict:
    """This machine (``machine.probe``), kept in ``out/machine.json`` from the run's first start, so a
    rerun resolves ``auto`` and the budget exactly as the run began. The matmul speed is measured again at
    that start and the highest figure seen on this machine is used (``machine.best_seen``): a cached figure
    taken while other work shared the cores would cut the run for a slowness that is not there."""
    path = out / "machine.json"
    if path.exists():
        rec = json.loads(path.read_text())
        if rec.get("matmul_gflops") or not measure:
            return rec
    rec = machine.probe(measure=measure, refresh=measure)
    atomic_write_text(path, json.dumps(rec, indent=2) + "\n")
    return rec


def resolve_machine(k, rec: dict, ref_dtype: str) -> tuple:
    """(knobs with ``bf16=auto`` resolved on the machine ``rec``, the ``machine`` section, the slowdown against
    the reference machine in the dtype chosen); ``k`` is any preset's knobs with a ``bf16`` field."""
    if k.bf16 == "auto":
        dtype, why = machine.decide(rec)
        why = f"auto: {why}"
    else:
        dtype, why = ("bf16" if k.bf16 else "fp32"), f"bf16={str(k.bf16).lower()} (set by the preset or the command line)"
    mm = rec.get("matmul_gflops")
    slow = budget.slowdown(mm and mm.get(dtype), budget.REFERENCE_MACHINE[f"{ref_dtype}_gflops"])
    mach = {**rec, "dtype": dtype, "dtype_why": why, "slowdown": round(slow, 3),
            "reference": {**budget.REFERENCE_MACHINE, "dtype": ref_dtype}}
    return k.model_copy(update={"bf16": dtype == "bf16"}), mach, slow


def scaled_section(budget_minutes: float, slow: float, unscaled: dict[str, float], predicted: dict[str, float],
                   changes: list[dict]) -> dict:
    """summary.json's ``scaled``: the budget, the predictions before and after the cuts, and the cuts."""
    total = sum(predicted.values())
    return {"budget_minutes": budget_minutes or None, "slowdown": round(slow, 3),
            "predicted_minutes_unscaled": round(sum(unscaled.values()) / 60, 1),
            "predicted_minutes": round(total / 60, 1),
            "fits": None if not budget_minutes else total <= 60 * budget_minutes + 1e-6,
            "changes": changes, "predicted_s": {n: round(t, 1) for n, t in predicted.items()}}


def budget_plan(cfg, rec: dict, knobs_cls, ref_dtype: str, predict, fit) -> tuple:
    """A preset's plan (the agent and reasoning presets'): ``bf16=auto`` resolved on the machine ``rec``, the
    knobs cut to the time budget by ``fit(k, slow, budget_s, fixed)`` (never those set on the command line),
    and ``predict(k, slow)``'s stage seconds before and after in the ``scaled`` section."""
    k, mach, slow = resolve_machine(cfg.knobs(), rec, ref_dtype)
    unscaled = predict(k, slow)
    changes: list[dict] = []
    if k.budget_minutes > 0:
        k, changes = fit(k, slow, 60 * k.budget_minutes, set_knobs(knobs_cls, cfg))
    return k, mach, scaled_section(k.budget_minutes, slow, unscaled, predict(k, slow), changes)


def plan(cfg: RunConfig, rec: dict, held: dict | None = None) -> tuple[Knobs, dict, dict]:
    """(knobs to run with, the ``machine`` section, the ``scaled`` section) on the machine ``rec``:
    ``bf16=auto`` resolved, knobs cut to the time budget (never those set on the command line, nor those in
    ``held``: knob -> the value a finished stage ran with, ``plan_around_finished_stages``), and each stage's
    predicted seconds for the ETA."""
    k, mach, slow = resolve_machine(cfg.knobs(), rec, REFERENCE_DTYPE[cfg.preset])
    ref_k, ref_seconds = REFERENCE_KNOBS[cfg.preset], REFERENCE_SECONDS[cfg.preset]
    test_items = _test_items()
    unscaled = budget.predict_seconds(k, ref_k, ref_seconds, slow, test_items)
    held = held or {}
    changes = [{"knob": n, "from": getattr(k, n), "to": v, "why": f"as the finished {FIRST_STAGE[n]} stage ran with it "
                "(a rerun with other knobs fits the budget with the stages still to run)"}
               for n, v in held.items() if getattr(k, n) != v]
    k = k.model_copy(update=held)
    if k.budget_minutes > 0:
        k, cuts = budget.fit_budget(k, ref_k, ref_seconds, slow=slow, budget_s=60 * k.budget_minutes,
                                    test_items=test_items, fixed=set_knobs(Knobs, cfg) | set(held))
        changes += cuts
    predicted = budget.predict_seconds(k, ref_k, ref_seconds, slow, test_items)
    return k, mach, scaled_section(k.budget_minutes, slow, unscaled, predicted, changes)


def finished_stage_knobs(out: Path, cfg: RunConfig, k: Knobs) -> dict:
    """The knobs a budget cuts whose first stage this run directory has finished and will keep, at the values
    recorded in ``resolved_config.json`` (those the stages ran with), less the ones the command line sets. A stage
    is kept unless a knob that the budget does not decide (or that the command line sets) changed for it or an
    earlier one (``k``: the knobs now)."""
    record = out / "resolved_config.json"
    if not record.exists():
        return {}
    ran, given = json.loads(record.read_text()), set_knobs(Knobs, cfg)
    cut = {n for _, _, names in budget.TIERS for n in names}
    changed = [n for n in changed_knobs(ran, k.model_dump(mode="json")) if n not in cut or n in given]
    redone = stale_stages(changed, STAGES)
    return {n: ran[n] for n in cut if n in ran and n not in given and FIRST_STAGE[n] not in redone
            and (out / "stages" / f"{FIRST_STAGE[n]}.json").exists()}


def plan_around_finished_stages(cfg: RunConfig, out: Path, k: Knobs, stages: "Stages", scaled: dict) -> tuple:
    """(knobs, scaled, held) for a run directory, after ``plan``: the pace checks of its finished stages replayed over
    their recorded times (``paced``), and then, where that moves a knob a finished stage ran with (a changed knob
    such as the panel or the RL algorithm changes the predicted times, so the budget cuts samples differently),
    planned again with every such knob held at what its stage ran with, so the change redoes only the stages it
    affects. An unchanged rerun is planned exactly as the run was. ``held``: the finished stages' knobs
    (``finished_stage_knobs``), which the run's own pace checks must not cut either."""
    def replay(kk: Knobs, sc: dict, held: dict) -> Knobs:
        return replay_pace(stages, STAGES, kk, lambda k2, upto, say: paced(cfg, k2, upto, stages, sc, say=say,
                                                                           held=held))

    k = replay(k, scaled, {})
    held = finished_stage_knobs(out, cfg, k)
    if all(getattr(k, n) == v for n, v in held.items()):
        return k, scaled, held
    k, _, scaled = plan(cfg, machine_record(out, measure=False), held)
    stages.reference = scaled["predicted_s"]
    fits = "" if scaled["fits"] is None else (
        " (fits)" if scaled["fits"] else " (over the budget: the stages still to run are at their floors)")
    print(f"budget: planned again around the finished stages, whose knobs stay as they ran; predicted "
          f"{_minutes(scaled['predicted_minutes'])}{fits}: "
          + ", ".join(f"{c['knob']} {_show_knob(c['from'])} -> {_show_knob(c['to'])}" for c in scaled["changes"]),
          file=sys.stderr)
    return replay(k, scaled, held), scaled, held


def _minutes(m: float) -> str:
    return f"{m:.1f} min" if m < 10 else f"{m:.0f} min"


def start_run(cfg, out: Path, plan_fn) -> tuple:
    """Every preset's first steps: save the run's config, read (or measure) the machine, size the knobs to
    the budget with the preset's ``plan_fn(cfg, machine_record)`` and print the plan. Returns (knobs,
    machine, scaled)."""
    save_config(cfg, out / "run_config.yaml")
    requested = cfg.knobs()
    rec = machine_record(out, measure=requested.bf16 == "auto" or requested.budget_minutes > 0)
    k, mach, scaled = plan_fn(cfg, rec)
    _print_plan(mach, scaled)
    return k, mach, scaled


def _print_plan(mach: dict, scaled: dict) -> None:
    def say(msg: str) -> None:
        print(msg, file=sys.stderr)

    say(f"machine: {machine.describe(mach)}")
    say(f"dtype: {mach['dtype']} ({mach['dtype_why']})")
    pace = (f"{scaled['slowdown']:.2f}x the reference machine's stage times" if mach.get("matmul_gflops")
            else "the reference machine's stage times (speed not measured)")
    if not scaled["budget_minutes"]:
        say(f"budget: none; predicted {_minutes(scaled['predicted_minutes'])} at {pace}")
        return
    head = f"budget: {scaled['budget_minutes']:g} min; predicted {_minutes(scaled['predicted_minutes_unscaled'])} at {pace}"
    if not scaled["changes"]:
        say(f"{head}: fits, nothing scaled")
        return
    say(f"{head}: scaled down to {_minutes(scaled['predicted_minutes'])}"
        + ("" if scaled["fits"] else " (the most the floors allow: over budget)") + ":")
    for c in scaled["changes"]:
        say(f"  {c['knob']}: {_show_knob(c['from'])} -> {_show_knob(c['to'])} ({c['why'].split('; ')[-1]})")


def _show_knob(value) -> str:
    """A knob's value in one line: demos_per_category as its total (the full dicts are in summary.json)."""
    return f"{sum(value.values())} template answers" if isinstance(value, dict) else str(value)


# --- the recipe ---


def run(cfg: RunConfig) -> dict:
    return in_run_directory(cfg, _run)


def in_run_directory(cfg, body) -> dict:
    """``body(cfg, out)`` in ``out = cfg.directory()``, which one run at a time may use: a rerun first removes
    what the atomic writes of an interrupted one left there (``.tmp-*``, ``.old-*``)."""
    out = cfg.directory()
    out.mkdir(parents=True, exist_ok=True)
    with file_lock(out, wait=False) as mine:  # the directory itself: no lock file in it
        if not mine:
            raise ConfigError(f"{out}: another postlab run is using this directory; wait for it to end or choose "
                              "another --out")
        clean_stale_tmp_tree(out)
        return body(cfg, out)


@functools.cache
def _test_items() -> int:
    """Items in the spec suite's test split (read once: plan and every stage's pace check use it)."""
    return len(load_suite(SUITE, split="test"))


def paced(cfg: RunConfig, k: Knobs, upto: str, stages: Stages, scaled: dict, *, say: bool = True,
          held: dict | None = None) -> Knobs:
    """After stage ``upto``: the knobs cut to keep the run inside its budget at its own pace so far
    (``budget.keep_to_pace``; never those set on the command line or ``held``), the cuts added to ``scaled``
    and the ETA's stage times updated. A rerun replays it over the recorded stage times (``say=False``), so
    it resolves the knobs the run ran with."""
    test_items = _test_items()
    ref_k, ref_seconds = REFERENCE_KNOBS[cfg.preset], REFERENCE_SECONDS[cfg.preset]
    cut, changes, pace = budget.keep_to_pace(
        k, ref_k, ref_seconds, slow=scaled["slowdown"], budget_s=60 * (k.budget_minutes or 0), test_items=test_items,
        order=STAGES, upto=upto, seconds=stages.timings(), first_stage=FIRST_STAGE,
        fixed=set_knobs(Knobs, cfg) | set(held or {}))
    return _kept_to_pace(k, cut, changes, pace, upto, stages, scaled, say,
                         lambda kk: budget.predict_seconds(kk, ref_k, ref_seconds, scaled["slowdown"], test_items))


def preset_paced(cfg, k, upto: str, stages: Stages, scaled: dict, *, order: Sequence[str], predict, fit,
                 first_stage: dict[str, str | None], say: bool = True):
    """``paced`` for a preset with its own plan (agent, reasoning; ``budget.keep_preset_to_pace``):
    ``predict(k, slow)`` gives its stages' seconds, ``fit(k, total, budget_s, fixed)`` cuts its knobs."""
    cut, changes, pace = budget.keep_preset_to_pace(
        k, predict, fit, slow=scaled["slowdown"], budget_s=60 * (k.budget_minutes or 0), order=order, upto=upto,
        seconds=stages.timings(), first_stage=first_stage, fixed=set_knobs(type(k), cfg))
    return _kept_to_pace(k, cut, changes, pace, upto, stages, scaled, say, lambda kk: predict(kk, scaled["slowdown"]))


def replay_pace(stages: Stages, names: Sequence[str], k, pace):
    """The cuts that a run's pace made after each of its finished stages, replayed in order with
    ``pace(k, stage, say=False)``: a rerun resolves the knobs the run ran with."""
    for name in names:
        if not stages.done(name):
            break
        k = pace(k, name, False)
    return k


def run_paced(stages: Stages, name: str, fn, k, pace, write) -> tuple[dict, object]:
    """Stage ``name``, then the budget kept at the run's pace (``pace(k, name, say=True)``): (its result, the
    knobs the later stages run with); ``write(knobs)`` records them when a cut changed them."""
    result = stages.run(name, fn)
    cut = pace(k, name, True)
    if cut != k:
        write(cut)
    return result, cut


def _kept_to_pace(k, cut, changes: list[dict], pace: float | None, upto: str, stages: Stages, scaled: dict, say: bool,
                  predict):
    """Record a pace check in ``scaled`` (its pace; its cuts and the stage times they predict, which the ETA
    follows), say the cuts, and return the knobs to run the rest with."""
    if pace is not None:
        scaled["pace"] = {"after": upto, "pace": round(pace, 3)}
    if not changes:
        return k
    predicted = predict(cut)
    scaled["changes"] = [*scaled["changes"], *changes]
    scaled["predicted_s"] = {n: round(t, 1) for n, t in predicted.items()}
    stages.reference = predicted  # the ETA's stage times, under the knobs as cut
    if say:
        print(f"budget: after {upto} this run is going at {pace:.2f}x its predicted stage times; to stay within "
              f"{k.budget_minutes:g} min, the stages still to run are scaled down:", file=sys.stderr)
        for c in changes:
            print(f"  {c['knob']}: {_show_knob(c['from'])} -> {_show_knob(c['to'])}", file=sys.stderr)
    return cut


def _run(cfg: RunConfig, out: Path) -> dict:
    k, mach, scaled = start_run(cfg, out, plan)
    stages = Stages(out, cfg.stop_after, scaled["predicted_s"])
    k, scaled, held = plan_around_finished_stages(cfg, out, k, stages, scaled)

    def pace(kk: Knobs, upto: str, say: bool) -> Knobs:
        return paced(cfg, kk, upto, stages, scaled, say=say, held=held)

    def write_resolved(kk: Knobs) -> None:
        atomic_write_text(out / "resolved_config.json", json.dumps(kk.model_dump(mode="json"), indent=2) + "\n")

    invalidate_changed_stages(out, k.model_dump(mode="json"), STAGES)
    regrade_stale_evals(out, stages, k)
    p = cfg.progress

    def run_stage(name: str, fn) -> dict:
        """The stage, then the budget kept at the run's pace (``paced``): later stages read the knobs as cut."""
        nonlocal k
        result, k = run_paced(stages, name, fn, k, pace, write_resolved)
        return result

    write_resolved(k)
    try:
        base = run_stage("fetch", lambda: {"path": resolve_model(k.model)})["path"]
        baseline = run_stage("baseline", lambda: _evaluate(base, out, "baseline", k, p))
        data = run_stage("sft_data", lambda: build_sft_data(base, out, k, p))
        sft_res = run_stage("sft", lambda: train_sft(base, data["file"], out, k, p, sft_allowance(cfg, k, stages, scaled)))
        note_time_limited(scaled, "sft", sft_res)
        policy = sft_res["model"]
        sft_eval = run_stage("sft_eval", lambda: _evaluate(policy, out, "sft", k, p))
        cands = run_stage("sample", lambda: sample_comparisons(policy, data["base_candidates"], out, k, p))
        prefs = run_stage("label", lambda: label_pairs(cands["candidates"], out, k))
        rm_res = run_stage("rm", lambda: train_rm(policy, prefs["file"], cands["candidates"], out, k, p))
        run_stage("bon", lambda: best_of_n(rm_res["model"], cands["sft_candidates"], prefs["file"], out, k))
        rl = run_stage("rl", lambda: train_rl(policy, rm_res["model"], prefs["file"], cands["candidates"],
                                               cands["sft_candidates"], data["file"], out, k, p))
        if k.algo == "bon":
            rl_eval = run_stage("rl_eval", lambda: evaluate_bon(policy, rm_res["model"], sft_eval["samples"], out, k, p))
            run_stage("probe", lambda: bon_probe(rl_eval))
        else:
            rl_eval = run_stage("rl_eval", lambda: _evaluate(rl["model"], out, "rl", k, p))
            run_stage("probe", lambda: {"sft": probe(policy, policy, rm_res["model"], k),
                                        "rl": probe(rl["model"], policy, rm_res["model"], k)})
        run_stage("leaderboard", lambda: build_leaderboard({"base": baseline, "sft": sft_eval, f"{k.algo}": rl_eval}, out, k))
        summary = write_summary(cfg, k, out, stages, mach, scaled)
        run_stage("report", lambda: {"path": str(_report(out))})
    except _Stop:
        return stopped(cfg)
    return announce(summary, out, print_summary)


def stopped(cfg) -> dict:
    """What a run that stopped after ``cfg.stop_after`` returns, with its one line."""
    print(f"stopped after stage {cfg.stop_after!r} as asked; rerun without stop_after to continue", file=sys.stderr)
    return {}


def announce(summary: dict, out: Path, print_summary) -> dict:
    """A finished run's last words: its summary table and where its files are."""
    print_summary(summary)
    print(f"\nsummary: {out / 'summary.json'}\nreport:  {out / 'report.html'}")
    return summary


def _report(out: Path) -> Path:
    from postlab.report import build_report

    return build_report(out)


def write_summary(cfg: RunConfig, k: Knobs, out: Path, stages: Stages, mach: dict, scaled: dict) -> dict:
    r = stages.result
    probe_res = r("probe")
    summary = {
        "model": k.model, "preset": cfg.preset, "algo": k.algo, "suite": SUITE, "split": "test",
        "stages": {
            "baseline": {"gold": r("baseline")},
            "sft_data": r("sft_data"),
            "sft": {"gold": r("sft_eval"), "train": r("sft")},
            "comparisons": {**r("label"), "candidates": r("sample")["rows"]},
            "rm": r("rm"),
            "bon": r("bon"),
            "rl": {"gold": r("rl_eval"), "proxy": probe_res["rl"]["proxy"], "kl": probe_res["rl"]["kl"],
                   "mean_length": r("rl_eval")["mean_length"], "sft_proxy": probe_res["sft"]["proxy"],
                   "probe": probe_res, "train": r("rl")},
            "leaderboard": r("leaderboard"),
        },
        "gain": {"sft_minus_baseline": r("sft_eval")["overall"] - r("baseline")["overall"],
                 "final_minus_baseline": r("rl_eval")["overall"] - r("baseline")["overall"]},
        "timings_s": stages.timings(),
        "machine": mach,
        "scaled": scaled,
    }
    # Paired on the same held-out items: the gain of each stage over the one before, with its standard error.
    scores = {s: sample_scores(r(s)["samples"]) for s in ("baseline", "sft_eval", "rl_eval")}
    for stage, after, before, name in (("sft", "sft_eval", "baseline", "gain_over_base"),
                                       ("rl", "rl_eval", "sft_eval", "gain_over_sft")):
        mean, se, n = paired_difference(scores[after], scores[before])
        summary["stages"][stage].update({name: mean, f"{name}_se": se, f"{name}_n": n})
    summary["timings_s"]["total"] = round(sum(summary["timings_s"].values()), 2)
    summary = finite(summary)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


def print_summary(s: dict) -> None:
    st = s["stages"]
    print(f"\n=== postlab run: {s['model']} ({s['preset']} preset, RL = {s['algo']}) — held-out gold score "
          f"({st['baseline']['gold']['n']} test items) ===")
    cats = sorted(st["baseline"]["gold"]["by_category"])
    head = f"{'':18s} {'base':>7s} {'sft':>7s} {s['algo']:>7s}"
    print(head)
    for cat in ["overall", *cats]:
        vals = [st["baseline"]["gold"], st["sft"]["gold"], st["rl"]["gold"]]
        get = (lambda g: g["overall"]) if cat == "overall" else (lambda g, c=cat: g["by_category"].get(c, float("nan")))
        print(f"{cat:18s} " + " ".join(f"{get(v):7.3f}" for v in vals))
    rm = st["rm"]
    print(f"reward model: accuracy vs labels {rm.get('accuracy_vs_labels')}, vs gold {rm.get('accuracy_vs_gold')} "
          f"({rm.get('gold_clear_pairs')} clear-margin held-out pairs); on every clear pair of the held-out prompts' "
          f"candidates {rm.get('accuracy_vs_gold_all_pairs')} ({rm.get('gold_clear_pairs_all')} pairs)")
    print(f"paired on the same items: SFT − base {100 * st['sft']['gain_over_base']:+.1f} ± "
          f"{100 * st['sft']['gain_over_base_se']:.1f} points, {s['algo']} − SFT {100 * st['rl']['gain_over_sft']:+.1f} ± "
          f"{100 * st['rl']['gain_over_sft_se']:.1f}")
    print(f"RL: proxy {st['rl']['proxy']:+.3f} (SFT {st['rl']['sft_proxy']:+.3f}), KL {st['rl']['kl']:.2f} nats, "
          f"mean length {st['rl']['mean_length']:.1f} words")
    print(f"gain over baseline: {100 * s['gain']['final_minus_baseline']:+.1f} points (SFT alone "
          f"{100 * s['gain']['sft_minus_baseline']:+.1f}); total {s['timings_s']['total'] / 60:.1f} min "
          f"(predicted {_minutes(s['scaled']['predicted_minutes'])})")
    m, sc = s["machine"], s["scaled"]
    print(f"machine: {m['cpu'] if m['device'] == 'cpu' else m['device_name']}, dtype {m['dtype']} ({m['dtype_why']})")
    if sc["changes"]:
        print(f"scaled down for the {sc['budget_minutes']:g}-minute budget: "
              + ", ".join(f"{c['knob']} {c['from']} -> {c['to']}" for c in sc["changes"] if c["knob"] != "demos_per_category")
              + (", template answers per category" if any(c["knob"] == "demos_per_category" for c in sc["changes"]) else ""))
