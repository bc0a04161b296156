"""``postlab env eval``: play a model through an environment's held-out episodes and measure it.

Writes ``out`` (JSON: the metrics of ``postlab.agents.metrics.summarize``, per-suite success where rows
carry a ``suite``, and the config) and ``<stem>.transcripts.jsonl`` beside it: one row per episode with
its messages, reward, turns, tool-call counts, whether it succeeded and whether it recovered.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Literal

from pydantic import Field

from postlab.config import Section
from postlab.machine import AutoDType
from postlab.rollout import SamplingParams
from postlab.utils.io import atomic_write_text, finite


class EnvEvalConfig(Section):
    """postlab env eval: success rate, mean turns, tool-call validity and recovery rate of a model."""

    env: str = Field("calculator", description="environment name (postlab env list)")
    model: str = Field("smollm2-135m-instruct", description="built-in name, local HF directory or hub id")
    episodes: int | None = Field(None, ge=1, description="play the first N tasks of the split (default: all)")
    split: Literal["train", "test"] = Field("test", description="which tasks (test: held out from training)")
    out: str = Field("env_eval/results.json", description="results JSON; transcripts go to <stem>.transcripts.jsonl")
    tools: bool = Field(True, description="offer the environment's tools (false: the same tasks without them, "
                                          "where the environment supports it: calculator)")
    max_turns: int | None = Field(None, ge=1, description="assistant turns per episode (default: the environment's)")
    max_total_tokens: int = Field(1024, ge=16, description="tokens per episode after the prompt (model + environment)")
    batch_size: int = Field(8, ge=1, description="episodes played together")
    fault_rate: float = Field(0.0, ge=0, le=1, description="share of tasks whose first valid tool call fails with a "
                              "transient fault (calculator; for measuring recovery); 0 = none")
    sandbox_tier: Literal["namespaces", "unsafe"] = Field("namespaces", description="sandbox of code-running tools "
                                                                                   "(fixcode); unsafe = no isolation")
    dtype: AutoDType = Field("auto", validate_default=True, description="weights dtype for generation")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where to generate")
    sampling: SamplingParams = Field(default_factory=lambda: SamplingParams(temperature=0.0, max_new_tokens=256, seed=0),
                                     description="per-turn sampling (greedy by default)")


def env_kwargs(cfg: EnvEvalConfig) -> dict:
    """The environment's constructor arguments that this config sets."""
    from postlab.agents.envs import env_kwargs as kwargs_for

    return kwargs_for(cfg.env, max_turns=cfg.max_turns, tools=cfg.tools, sandbox_tier=cfg.sandbox_tier,
                      fault_rate=cfg.fault_rate)


def evaluate(cfg: EnvEvalConfig, *, engine=None, log=print) -> dict:
    from postlab.agents.envs import env_rows, make_env
    from postlab.agents.metrics import summarize
    from postlab.agents.rollout import run_episodes

    rows = env_rows(cfg.env, cfg.split)[: cfg.episodes]
    kwargs = env_kwargs(cfg)
    if engine is None:
        from postlab.evals.harness import load_engine

        engine = load_engine(cfg.model, cfg.dtype, cfg.device)
    start = time.monotonic()
    episodes = []
    for i in range(0, len(rows), cfg.batch_size):
        batch = rows[i: i + cfg.batch_size]
        episodes += run_episodes(engine, [make_env(cfg.env, **kwargs) for _ in batch], batch, cfg.sampling,
                                 max_total_tokens=cfg.max_total_tokens)
        done = sum(e.state.success for e in episodes)
        log(f"{len(episodes)}/{len(rows)} episodes, {done} succeeded ({time.monotonic() - start:.0f} s)")
    result = {"env": cfg.env, "model": cfg.model, "split": cfg.split, "tools": cfg.tools,
              **summarize([e.state for e in episodes])}
    by_suite = defaultdict(list)
    for e in episodes:
        if "suite" in e.row:
            by_suite[e.row["suite"]].append(e.state.success)
    if by_suite:
        result["success_rate_by_suite"] = {k: sum(v) / len(v) for k, v in sorted(by_suite.items())}
    result["seconds"] = round(time.monotonic() - start, 1)
    result["config"] = cfg.model_dump()
    out = Path(cfg.out)
    transcripts = out.with_name(f"{out.stem}.transcripts.jsonl")
    result["transcripts"] = str(transcripts)
    atomic_write_text(transcripts, "".join(json.dumps(finite(e.to_json()), ensure_ascii=False) + "\n" for e in episodes))
    atomic_write_text(out, json.dumps(finite(result), indent=2) + "\n")
    return result


def format_summary(r: dict) -> str:
    def pct(x):
        return "n/a" if x is None else f"{100 * x:.1f}%"

    return (f"{r['env']} ({'with' if r['tools'] else 'without'} tools), {r['episodes']} episodes: success {pct(r['success_rate'])}, "
            f"mean turns {r['mean_turns']:.2f}, tool-call validity {pct(r['tool_call_validity_rate'])} "
            f"({r['tool_calls']} calls), recovery {pct(r['recovery_rate'])} "
            f"({r['episodes_with_errors']} episodes with a tool error)")
