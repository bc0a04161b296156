"""``postlab run --preset agent``: a model taught to use a tool over several turns, measured before and after
on held-out tasks, and against itself without the tool.

    fetch → baseline (held-out tasks with the tool) → tool-use demonstrations → SFT on them → sft_eval
    → multi-turn GRPO on the train tasks → rl_eval → baseline_no_tools, rl_no_tools → summary.json

Environment: ``calculator`` (``arith`` + ``wordprob``, alternating; postlab/agents/envs/calculator.py): the
model may call ``calculator(expression)`` and ends by answering without a call; reward 1 for the exact final
answer. Evals play the test split's first ``eval_episodes`` tasks (its harder levels are held out of
training), greedy, and report ``postlab env eval``'s metrics (success rate, recovery rate, tool-call validity,
mean turns). The no-tools evals play the same tasks with no tool offered and one turn each (nothing to
call), the comparison of "the same model without the tool". SFT (``postlab env demos``: one call with the
task as an expression, then ``Answer: N``) teaches the call format that a 135M model lacks; ``sft_demos=0``
skips it. RL is ``postlab env train`` (postlab/agents/grpo.py): the loss only on the model's tokens. Stages
are resumable as in ``postlab run`` (``postlab.run.Stages``); a rerun with other knobs redoes the stages they
affect. Docs: docs/agents.md.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import Field

from postlab.config import Section, overlay_knobs, with_optional_knobs
from postlab.errors import ConfigError
from postlab.evals.metrics import paired_difference
from postlab.models.load import resolve_model
from postlab.rollout import SamplingParams
from postlab.run import (Stages, _Stop, budget_plan, in_run_directory, preset_paced, replay_pace, run_paced,
                         start_run, stopped)
from postlab.run_state import invalidate_changed_stages
from postlab.utils.io import atomic_write_text, finite

ENV = "calculator"
# the no-tools evals come last, so that switching them on or off redoes nothing else
STAGES = ("fetch", "baseline", "sft_data", "sft", "sft_eval", "rl", "rl_eval", "baseline_no_tools", "rl_no_tools")
# what summary.json keeps of an eval (postlab.agents.evaluate's result)
METRICS = ("success_rate", "recovery_rate", "episodes_with_errors", "tool_call_validity_rate", "tool_calls",
           "episodes_with_tool_calls", "mean_turns", "mean_reward", "truncated_rate", "success_rate_by_suite", "episodes")


class Knobs(Section):
    """Every knob of the agent preset; in the run's config each is optional (None = the preset's value)."""

    model: str = Field(..., description="base model: built-in name, directory or hub id")
    bf16: bool | Literal["auto"] = Field("auto", description="bf16 autocast in training and bf16 sampling: true, false, or auto = the faster on this machine")
    budget_minutes: float = Field(30.0, ge=0, description="time budget: on a slower machine RL steps, then eval episodes (never below 60) are cut to fit, each cut listed in summary.json's `scaled`; 0 = run as set")
    eval_episodes: int = Field(100, ge=1, description="held-out tasks per eval (the first N of the calculator test split: arith and wordprob alternating)")
    eval_max_new_tokens: int = Field(128, ge=1, description="tokens per model turn in evals (greedy)")
    eval_max_total_tokens: int = Field(384, ge=16, description="tokens per eval episode after its prompt (model + tool results)")
    max_turns: int | None = Field(None, ge=1, description="assistant turns per episode with the tool (null = the environment's, 4)")
    batch_size: int = Field(16, ge=1, description="episodes played together in evals")
    no_tools: bool = Field(True, description="also evaluate the base and the final model without the tool (one turn each) on the same tasks")
    fault_rate: float = Field(0.25, ge=0, le=1, description="share of tasks (the same in every eval, in the demonstrations and in RL) whose first valid calculator call fails with a transient fault, so that the recovery rate is measured; the demonstrations of those tasks show the same call made again; 0 = none")
    sft_demos: int = Field(320, ge=0, description="tool-use demonstrations to fine-tune on first (the first N of the 620 train tasks, `postlab env demos`); 0 = no SFT, RL starts from the base model")
    sft_lr: float = Field(1e-4, gt=0, description="SFT peak learning rate")
    sft_epochs: float = Field(1.0, gt=0, description="SFT passes over the demonstrations")
    sft_batch_size: int = Field(8, ge=1, description="SFT conversations per step")
    max_seq_len: int = Field(512, ge=16, description="token cap for SFT sequences (a demonstration is 310-417 SmolLM2 tokens)")
    rl_algo: Literal["grpo", "rloo"] = Field("grpo", description="advantage estimator (postlab env train's `advantage`)")
    rl_loss_type: Literal["grpo", "dapo", "dr_grpo"] = Field("dapo", description="loss aggregation over the model's tokens")
    rl_steps: int = Field(16, ge=1, description="RL steps (each: play k episodes of tasks_per_step train tasks, score, update)")
    rl_tasks_per_step: int = Field(4, ge=1, description="train tasks per RL step")
    rl_k: int = Field(4, ge=2, description="episodes per task (group size)")
    rl_lr: float = Field(1e-5, gt=0, description="RL learning rate")
    rl_kl_coef: float = Field(0.0, ge=0, description="β: KL penalty to the starting policy (0: none)")
    rl_turn_shaping: float = Field(0.0, ge=0, description="c: per-turn shaping of RL episodes (postlab env train's "
                                   "turn_shaping; 0: off)")
    rl_max_new_tokens: int = Field(96, ge=1, description="tokens per model turn in RL episodes")
    rl_max_total_tokens: int = Field(320, ge=16, description="tokens per RL episode after its prompt")
    rl_temperature: float = Field(1.0, gt=0, description="sampling temperature of RL episodes")
    seed: int = Field(0, description="seed of SFT's data order, RL's task order and sampling")


PRESETS: dict[str, Knobs] = {
    # SmolLM2-135M-Instruct on the 2-core CPU, sized to 30 minutes (docs/agents.md).
    "agent": Knobs(model="smollm2-135m-instruct"),
    # The tiny random model: every stage runs in seconds; for tests.
    "agent-tiny": Knobs(model="tiny", bf16=False, budget_minutes=0, eval_episodes=6, eval_max_new_tokens=12,
                        eval_max_total_tokens=48, max_turns=2, fault_rate=0.5, batch_size=6, sft_demos=8, sft_lr=3e-3,
                        max_seq_len=2048, rl_steps=2, rl_tasks_per_step=2, rl_k=2, rl_lr=1e-4, rl_max_new_tokens=12,
                        rl_max_total_tokens=48),
}


class _RunOptions(Section):
    """postlab run --preset agent: tool-use SFT and multi-turn RL on the calculator environment, before/after."""

    preset: Literal["agent", "agent-tiny"] = Field("agent", description="agent = SmolLM2-135M-Instruct; agent-tiny = random test model")
    out_dir: str | None = Field(None, description="run directory (default runs/<preset>)")
    progress: bool = Field(True, description="show progress bars")
    stop_after: str | None = Field(None, description="stop after this stage")

    def knobs(self) -> Knobs:
        return overlay_knobs(Knobs, PRESETS[self.preset], self, self.preset)

    def check(self) -> None:
        super().check()
        if self.stop_after is not None and self.stop_after not in STAGES:
            raise ConfigError(f"stop_after: unknown stage {self.stop_after!r}; one of {', '.join(STAGES)}")

    def directory(self) -> Path:
        return Path(self.out_dir or f"runs/{self.preset}")


RunConfig = with_optional_knobs("AgentRunConfig", _RunOptions, Knobs)


def first_stages() -> dict[str, str | None]:
    """Knob -> the first stage it affects (run_state.invalidate_changed_stages)."""
    firsts = {"model": "fetch", "bf16": "baseline", "budget_minutes": None, "eval_episodes": "baseline",
              "eval_max_new_tokens": "baseline", "eval_max_total_tokens": "baseline", "max_turns": "baseline",
              "batch_size": "baseline", "fault_rate": "baseline", "no_tools": "baseline_no_tools", "sft_demos": "sft_data", "seed": "sft"}
    return {name: firsts.get(name, "sft" if name.startswith("sft") or name == "max_seq_len" else "rl")
            for name in Knobs.model_fields}


OUTPUTS = {"fetch": (), "baseline": ("eval/baseline.*",), "baseline_no_tools": ("eval/baseline_no_tools.*",),
           "sft_data": ("data/demos.jsonl",), "sft": ("sft",), "sft_eval": ("eval/sft.*",), "rl": ("rl",),
           "rl_eval": ("eval/rl.*",), "rl_no_tools": ("eval/rl_no_tools.*",)}


# --- stages ---

def _dtype(k: Knobs) -> str:
    return "bf16" if k.bf16 else "fp32"


def evaluate(model: str, out: Path, name: str, k: Knobs, tools: bool = True) -> dict:
    """``postlab env eval`` on the test split's first eval_episodes tasks, greedy; without tools: one turn."""
    from postlab.agents.evaluate import EnvEvalConfig, evaluate as play, format_summary

    cfg = EnvEvalConfig(env=ENV, model=model, episodes=k.eval_episodes, split="test", out=str(out / "eval" / f"{name}.json"),
                        tools=tools, max_turns=k.max_turns if tools else 1, max_total_tokens=k.eval_max_total_tokens,
                        batch_size=k.batch_size, fault_rate=k.fault_rate, dtype=_dtype(k),
                        sampling=SamplingParams(temperature=0.0, max_new_tokens=k.eval_max_new_tokens, seed=0))
    r = play(cfg, log=lambda m: print(m, file=sys.stderr))
    print(format_summary(r), file=sys.stderr)
    return {**{m: r.get(m) for m in METRICS}, "model": model, "tools": tools, "results": cfg.out,
            "transcripts": r["transcripts"]}


def demos(out: Path, k: Knobs) -> dict:
    from postlab.agents.demos import calculator_demos

    rows = calculator_demos("train", k.fault_rate)[: k.sft_demos]
    path = out / "data" / "demos.jsonl"
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return {"file": str(path), "conversations": len(rows)}


def fine_tune(model: str, data_file: str, out_dir: Path, k: Knobs, progress: bool) -> dict:
    from postlab.train import sft
    from postlab.train.common import CheckpointConfig, OptimConfig

    cfg = sft.SFTConfig(model=model, out_dir=str(out_dir),
                        data=sft.SFTDataConfig(train_file=data_file, eval_fraction=0.05, max_seq_len=k.max_seq_len),
                        optim=OptimConfig(lr=k.sft_lr, epochs=k.sft_epochs, batch_size=k.sft_batch_size, warmup_steps=5,
                                          bf16=k.bf16, group_by_length=True, seed=k.seed),
                        checkpoint=CheckpointConfig(save_every=50, resume=True, progress=progress))
    result = sft.train(cfg)
    return {"model": str(out_dir / "model"), "conversations": result.num_examples, "steps": result.state.step,
            "eval_loss": result.eval_loss}


def rl(policy: str, out: Path, k: Knobs, progress: bool) -> dict:
    from postlab.agents.grpo import AgentGRPOConfig, train
    from postlab.train.common import CheckpointConfig
    from postlab.train.rl_common import RLOptimConfig

    cfg = AgentGRPOConfig(model=policy, out_dir=str(out / "rl"), env=ENV, max_turns=k.max_turns, fault_rate=k.fault_rate,
                          max_total_tokens=k.rl_max_total_tokens, advantage=k.rl_algo, loss_type=k.rl_loss_type,
                          k=k.rl_k, tasks_per_step=k.rl_tasks_per_step, steps=k.rl_steps, kl_coef=k.rl_kl_coef,
                          turn_shaping=k.rl_turn_shaping,
                          sampling=SamplingParams(temperature=k.rl_temperature, max_new_tokens=k.rl_max_new_tokens, seed=k.seed),
                          optim=RLOptimConfig(lr=k.rl_lr, bf16=k.bf16, seed=k.seed),
                          checkpoint=CheckpointConfig(save_every=10, resume=True, progress=progress))
    result = train(cfg)
    steps = [m for m in map(json.loads, (out / "rl" / "metrics.jsonl").read_text().splitlines()) if "reward" in m]
    fifth = max(1, len(steps) // 5)

    def mean(rows: list[dict], key: str) -> float | None:
        values = [m[key] for m in rows if m.get(key) is not None]
        return sum(values) / len(values) if values else None

    return {"model": str(out / "rl" / "model"), "steps": result["steps"], "episodes": result["steps"] * k.rl_tasks_per_step * k.rl_k,
            "reward_first": mean(steps[:fifth], "reward"), "reward_last": mean(steps[-fifth:], "reward"),
            "frac_reward_zero_std": mean(steps, "frac_reward_zero_std"), "metrics": str(out / "rl" / "metrics.jsonl")}


# --- machine, budget and summary ---

# Stage wall times (seconds) of each preset (REFERENCE_KNOBS, in REFERENCE_DTYPE) on the 2-core CPU of
# budget.REFERENCE_MACHINE; the budget and the ETA start from them, scaled by the work the knobs ask for (`work`) and
# this machine's measured speed (budget.slowdown). The agent preset's: run a3 (2026-11-30, docs/agents.md), the preset
# as it ships (fault_rate 0.25) on a quiet machine (only a one-minute gold-audit beside its baseline stage).
REFERENCE_DTYPE = {"agent": "bf16", "agent-tiny": "fp32"}
REFERENCE_KNOBS = dict(PRESETS)
REFERENCE_SECONDS: dict[str, dict[str, float]] = {
    "agent": {"fetch": 1, "baseline": 82, "sft_data": 1, "sft": 246, "sft_eval": 87, "rl": 261, "rl_eval": 90,
              "baseline_no_tools": 36, "rl_no_tools": 29},
    "agent-tiny": {name: 1 for name in STAGES},
}
TIERS = (("rl_steps",), ("eval_episodes",))  # cut order when a run is over budget
FLOORS = {"rl_steps": 4, "eval_episodes": 60}


def work(k: Knobs, stage: str) -> float:
    """Work of a stage in units proportional to its time."""
    tool_eval = k.eval_episodes * k.eval_max_total_tokens
    no_tools = k.eval_episodes * k.eval_max_new_tokens * k.no_tools
    return {"baseline": tool_eval, "sft_eval": tool_eval * (k.sft_demos > 0), "rl_eval": tool_eval,
            "baseline_no_tools": no_tools, "rl_no_tools": no_tools, "sft": k.sft_demos * k.sft_epochs,
            "rl": k.rl_steps * k.rl_tasks_per_step * k.rl_k * k.rl_max_total_tokens}.get(stage, 1.0)


def predict_seconds(k: Knobs, preset: str, slow: float) -> dict[str, float]:
    """Each stage's predicted seconds on this machine: reference seconds × slowdown × work ratio."""
    ref_k, ref = REFERENCE_KNOBS[preset], REFERENCE_SECONDS[preset]
    return {name: ref[name] * slow * work(k, name) / work(ref_k, name) for name in STAGES}


def predicted_total(preset: str, slow: float) -> Callable[[Knobs], float]:
    """Knobs -> the whole run's predicted seconds on a machine ``slow`` times slower than the reference's."""
    return lambda k: sum(predict_seconds(k, preset, slow).values())


def fit(k: Knobs, total: Callable[[Knobs], float], budget_s: float, fixed: set[str]) -> tuple[Knobs, list[dict]]:
    """Knobs cut tier by tier (each by one factor, not below its floor, never above itself) until ``total(k)``,
    the run's predicted seconds, fits."""
    changes: list[dict] = []
    for tier in TIERS:
        if total(k) <= budget_s:
            break
        names = [n for n in tier if n not in fixed]
        if not names:
            continue
        current = {n: getattr(k, n) for n in names}

        def cut(x: float) -> dict[str, int]:
            return {n: min(v, max(FLOORS[n], math.floor(v * x))) for n, v in current.items()}

        lo, hi = 0.0, 1.0
        for _ in range(30):  # bisection on the factor: the largest that fits
            x = (lo + hi) / 2
            fits = total(k.model_copy(update=cut(x))) <= budget_s
            lo, hi = (x, hi) if fits else (lo, x)
        new = cut(lo)
        changes += [{"knob": n, "from": current[n], "to": v,
                     "why": f"predicted over the {budget_s / 60:g}-minute budget on this machine"}
                    for n, v in new.items() if v != current[n]]
        k = k.model_copy(update=new)
    return k, changes


def plan(cfg, rec: dict) -> tuple[Knobs, dict, dict]:
    """(knobs to run with, the `machine` section, the `scaled` section): bf16=auto resolved, and knobs cut
    to the time budget (never those set on the command line)."""
    return budget_plan(cfg, rec, Knobs, REFERENCE_DTYPE[cfg.preset], lambda k, slow: predict_seconds(k, cfg.preset, slow),
                       lambda k, slow, budget_s, fixed: fit(k, predicted_total(cfg.preset, slow), budget_s, fixed))


def successes(transcripts: str) -> dict[str, float]:
    """Task id -> 1.0 / 0.0 from an eval's transcripts."""
    with open(transcripts, encoding="utf-8") as f:
        return {row["id"]: float(row["success"]) for row in (json.loads(line) for line in f if line.strip())}


def paired(after: dict, before: dict) -> dict:
    """Success-rate difference of two evals on the same tasks, with its paired standard error."""
    mean, se, n = paired_difference(successes(after["transcripts"]), successes(before["transcripts"]))
    return {"gain": mean, "gain_se": se, "n": n}


def write_summary(cfg, k: Knobs, out: Path, stages: Stages, mach: dict, scaled: dict) -> dict:
    r = stages.result
    base, rl_eval = r("baseline"), r("rl_eval")
    sft_eval = r("sft_eval") if k.sft_demos > 0 else None
    st = {"baseline": base, "sft": sft_eval and {**sft_eval, "train": r("sft")},
          "rl": {**rl_eval, "train": r("rl"), "start": "sft" if k.sft_demos > 0 else "baseline"}}
    gain = {"rl_minus_baseline": paired(rl_eval, base)}
    if sft_eval:
        gain |= {"sft_minus_baseline": paired(sft_eval, base), "rl_minus_sft": paired(rl_eval, sft_eval)}
    no_tools = None
    if k.no_tools:
        nt_base, nt_rl = r("baseline_no_tools"), r("rl_no_tools")
        no_tools = {"baseline": nt_base, "rl": nt_rl,
                    "rl_tools_minus_no_tools": paired(rl_eval, nt_rl),
                    "rl_tools_minus_baseline_no_tools": paired(rl_eval, nt_base)}
    summary = {"model": k.model, "preset": cfg.preset, "env": ENV, "split": "test", "episodes": base["episodes"],
               "stages": st, "no_tools": no_tools, "gain": gain, "timings_s": stages.timings(), "machine": mach,
               "scaled": scaled}
    summary["timings_s"]["total"] = round(sum(summary["timings_s"].values()), 2)
    summary = finite(summary)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


def _pct(x: float | None) -> str:
    return "    n/a" if x is None else f"{100 * x:6.1f}%"


def print_summary(s: dict) -> None:
    st, nt = s["stages"], s["no_tools"]
    cols = [("base", st["baseline"]), *([("sft", st["sft"])] if st["sft"] else []), ("rl", st["rl"])]
    print(f"\n=== postlab run: {s['model']} ({s['preset']} preset) on {s['env']}, {s['episodes']} held-out tasks "
          f"(greedy) ===")
    print(f"{'with the tool':24s}" + "".join(f"{name:>8s}" for name, _ in cols))
    print(f"{'success rate':24s}" + "".join(f" {_pct(e['success_rate'])}" for _, e in cols))
    for suite in sorted(st["baseline"]["success_rate_by_suite"] or {}):
        print(f"{'  ' + suite:24s}" + "".join(f" {_pct(e['success_rate_by_suite'].get(suite))}" for _, e in cols))
    print(f"{'recovery rate':24s}" + "".join(f" {_pct(e['recovery_rate'])}" for _, e in cols)
          + "   (episodes with a tool error: " + ", ".join(str(e["episodes_with_errors"]) for _, e in cols) + ")")
    print(f"{'tool-call validity':24s}" + "".join(f" {_pct(e['tool_call_validity_rate'])}" for _, e in cols))
    print(f"{'mean turns':24s}" + "".join(f" {e['mean_turns']:7.2f}" for _, e in cols))
    g = s["gain"]["rl_minus_baseline"]
    print(f"paired on the same tasks: final − base {100 * g['gain']:+.1f} ± {100 * g['gain_se']:.1f} points"
          + ("" if "rl_minus_sft" not in s["gain"] else
             f"; SFT − base {100 * s['gain']['sft_minus_baseline']['gain']:+.1f} ± "
             f"{100 * s['gain']['sft_minus_baseline']['gain_se']:.1f}; RL − SFT "
             f"{100 * s['gain']['rl_minus_sft']['gain']:+.1f} ± {100 * s['gain']['rl_minus_sft']['gain_se']:.1f}"))
    if nt:
        print(f"without the tool (one turn): base {_pct(nt['baseline']['success_rate']).strip()}, final "
              f"{_pct(nt['rl']['success_rate']).strip()}; final with − without the tool "
              f"{100 * nt['rl_tools_minus_no_tools']['gain']:+.1f} ± {100 * nt['rl_tools_minus_no_tools']['gain_se']:.1f} points")
    print(f"total {s['timings_s']['total'] / 60:.1f} min (predicted {s['scaled']['predicted_minutes']:.1f}); "
          f"machine: {s['machine'].get('cpu') or s['machine'].get('device_name')}, dtype {s['machine']['dtype']}")


# --- the recipe ---

def run(cfg) -> dict:
    return in_run_directory(cfg, _run)


def _run(cfg, out: Path) -> dict:
    k, mach, scaled = start_run(cfg, out, plan)
    stages, p = Stages(out, cfg.stop_after, scaled["predicted_s"], names=STAGES), cfg.progress

    def pace(kk: Knobs, upto: str, say: bool) -> Knobs:
        """The budget kept at the run's own pace after stage ``upto`` (run.preset_paced)."""
        return preset_paced(cfg, kk, upto, stages, scaled, order=STAGES, first_stage=first_stages(), say=say,
                            predict=lambda x, slow: predict_seconds(x, cfg.preset, slow), fit=fit)

    def write_resolved(kk: Knobs) -> None:
        atomic_write_text(out / "resolved_config.json", json.dumps(kk.model_dump(mode="json"), indent=2) + "\n")

    k = replay_pace(stages, STAGES, k, pace)
    invalidate_changed_stages(out, k.model_dump(mode="json"), STAGES, first_stage=first_stages(), outputs=OUTPUTS)
    write_resolved(k)

    def run_stage(name: str, fn) -> dict:
        """The stage, then the budget kept at the run's pace: later stages read the knobs as cut."""
        nonlocal k
        result, k = run_paced(stages, name, fn, k, pace, write_resolved)
        return result

    skipped = {"skipped": True}
    try:
        base = run_stage("fetch", lambda: {"path": resolve_model(k.model)})["path"]
        run_stage("baseline", lambda: evaluate(base, out, "baseline", k))
        data = run_stage("sft_data", lambda: demos(out, k) if k.sft_demos else skipped)
        policy = run_stage("sft", lambda: fine_tune(base, data["file"], out / "sft", k, p)
                           if k.sft_demos else {**skipped, "model": base})["model"]
        run_stage("sft_eval", lambda: evaluate(policy, out, "sft", k) if k.sft_demos else skipped)
        final = run_stage("rl", lambda: rl(policy, out, k, p))["model"]
        run_stage("rl_eval", lambda: evaluate(final, out, "rl", k))
        run_stage("baseline_no_tools", lambda: evaluate(base, out, "baseline_no_tools", k, tools=False)
                  if k.no_tools else skipped)
        run_stage("rl_no_tools", lambda: evaluate(final, out, "rl_no_tools", k, tools=False) if k.no_tools else skipped)
        summary = write_summary(cfg, k, out, stages, mach, scaled)
    except _Stop:
        return stopped(cfg)
    print_summary(summary)
    print(f"\nsummary: {out / 'summary.json'}")
    return summary
