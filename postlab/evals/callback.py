"""Gold evals during training, with jump alarms: a ``train_loop`` callback any recipe can run.

Every ``every`` optimizer steps the live model answers a fixed held-out slice of the named suites
(greedy, through a ``TorchEngine`` reused between evals), the gold rater grades the answers and the
step's metrics get ``gold/score`` and ``gold/<category>`` (and ``gold/<suite>/score`` with more than
one suite). Each eval's summary is appended to ``run_dir/gold_evals.jsonl``.

Between two consecutive evals a category (or the overall score) *jumps* when

    |after − before| > alarm_se · max(√(se_before² + se_after²), alarm_floor)

where se is the standard error of the category's mean item score. The floor keeps categories whose
items all score alike (standard error 0: all passing, all failing, a single item) from alarming on
small moves. A jump adds ``alarm/<category>`` (the signed change in standard-error units) to the
step's metrics and prints an ``ALARM`` line to stderr, also appended to ``run_dir/alarms.log``.

Recipes call ``start()`` before ``train_loop`` (step-0 baseline when ``at_start``, nothing on a
resumed run) and ``evaluate_now(final_step)`` after it (a no-op when that step was just evaluated).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field
from tqdm.auto import tqdm

from postlab.config import Section
from postlab.errors import ConfigError
from postlab.evals.generate import generate_responses
from postlab.evals.harness import grade
from postlab.evals.metrics import mean_se
from postlab.rollout import SamplingParams, TorchEngine
from postlab.tasks.suite import BUILTIN_SUITES, Item, load_suite
from postlab.utils.io import atomic_write_text

GOLD_EVALS = "gold_evals.jsonl"
ALARMS = "alarms.log"


class GoldEvalConfig(Section):
    """Gold-rated evals of the live model during training, with alarms on sudden per-category jumps."""

    every: int = Field(0, ge=0, description="evaluate every N optimizer steps (0 = off)")
    suites: list[str] = Field(default_factory=lambda: ["spec"], description="built-in suite names or suite JSONL files, evaluated together")
    split: Literal["train", "test"] = Field("test", description="which split of each suite to take the held-out slice from")
    limit: int | None = Field(64, ge=1, description="held-out slice: N items per suite, taken round-robin over its categories in file order (null = all)")
    max_new_tokens: int = Field(128, ge=1, description="response length cap (greedy decoding)")
    batch_size: int = Field(32, ge=1, description="prompts generated together")
    alarm_se: float = Field(3.0, gt=0, description="alarm when a category's score moves by more than this many combined standard errors between two consecutive evals")
    alarm_floor: float = Field(0.05, ge=0, description="lower bound on the combined standard error, so categories with zero variance alarm only on moves above alarm_se * alarm_floor")
    at_start: bool = Field(True, description="also evaluate before the first step (step 0), so the first interval has a baseline")

    def check(self) -> None:
        if not self.every:
            return
        if not self.suites:
            raise ConfigError("gold_eval.suites: name at least one suite when gold_eval.every > 0")
        for s in self.suites:
            if s not in BUILTIN_SUITES and not Path(s).is_file():
                raise ConfigError(f"gold_eval.suites: {s!r} is not a built-in suite ({', '.join(BUILTIN_SUITES)}) or a file")


def held_out_slice(items: list[Item], limit: int | None) -> list[Item]:
    """Up to ``limit`` items, stratified: round-robin over categories (in order of first appearance),
    each category's items in file order; returned in file order. Deterministic."""
    if limit is None or len(items) <= limit:
        return list(items)
    by_cat: dict[str, list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        by_cat[it.category].append(i)
    queues = list(by_cat.values())
    chosen: list[int] = []
    depth = 0
    while len(chosen) < limit:
        for q in queues:
            if depth < len(q) and len(chosen) < limit:
                chosen.append(q[depth])
        depth += 1
    return [items[i] for i in sorted(chosen)]


@dataclass(frozen=True)
class Jump:
    category: str  # "score" for the overall gold score
    before: float
    after: float
    z: float  # signed change in combined standard errors (floored)
    threshold: float  # the |change| that alarms: alarm_se * max(combined se, floor)


def detect_jumps(prev: dict, cur: dict, alarm_se: float, floor: float) -> list[Jump]:
    """Categories (and the overall score) whose mean moved by more than
    ``alarm_se · max(√(se_prev² + se_cur²), floor)`` between two summaries in ``summarize``'s format
    (``by_category``, ``by_category_se``, optionally ``overall``/``overall_se``). Categories present
    in only one summary, or with a NaN, are skipped."""
    pairs = [(c, prev["by_category"][c], prev["by_category_se"][c], cur["by_category"][c], cur["by_category_se"][c])
             for c in cur.get("by_category", {}) if c in prev.get("by_category", {})]
    if "overall" in prev and "overall" in cur:
        pairs.insert(0, ("score", prev["overall"], prev.get("overall_se", 0.0), cur["overall"], cur.get("overall_se", 0.0)))
    jumps = []
    for cat, m1, s1, m2, s2 in pairs:
        if any(math.isnan(x) for x in (m1, s1, m2, s2)):
            continue
        scale = max(math.sqrt(s1 * s1 + s2 * s2), floor)
        delta = m2 - m1
        if scale > 0 and abs(delta) > alarm_se * scale:
            jumps.append(Jump(cat, m1, m2, delta / scale, alarm_se * scale))
        elif scale == 0 and delta != 0:  # floor 0 and no variance: any move is a jump
            jumps.append(Jump(cat, m1, m2, math.copysign(math.inf, delta), 0.0))
    return jumps


def format_alarm(step: int, j: Jump, alarm_se: float) -> str:
    return (f"ALARM step {step}: gold/{j.category} {j.before:.3f} -> {j.after:.3f} "
            f"({j.after - j.before:+.3f} = {j.z:+.1f} SE; threshold {alarm_se:g} SE = {j.threshold:.3f})")


def _suite_name(suite: str) -> str:
    return suite if suite in BUILTIN_SUITES else Path(suite).stem


class GoldEvalCallback:
    """``train_loop`` callback: gold evals of the live model every ``cfg.every`` steps (see module doc)."""

    def __init__(self, *, model, tokenizer, cfg: GoldEvalConfig, run_dir: str | Path):
        self.model, self.cfg, self.run_dir = model, cfg, Path(run_dir)
        self.engine = TorchEngine(model=model, tokenizer=tokenizer)
        self.sampling = SamplingParams(temperature=0.0, max_new_tokens=cfg.max_new_tokens, seed=0)
        self.items: list[Item] = []
        self.item_suite: list[str] = []
        for s in cfg.suites:
            part = held_out_slice(load_suite(s, split=cfg.split), cfg.limit)
            if not part:
                raise ConfigError(f"gold_eval.suites: {s!r} has no items in split {cfg.split!r}")
            self.items += part
            self.item_suite += [_suite_name(s)] * len(part)
        self.prev: dict | None = None  # the last eval's summary: the baseline for jump detection
        self.last: tuple[int, dict] | None = None  # (step, metrics) of the last eval
        self._pending: dict | None = None  # step-0 metrics waiting for the loop to set up metrics.jsonl
        self._synced = False  # gold_evals.jsonl reconciled with the step the loop starts from
        self._called = False  # the loop has called us (so metrics.jsonl is set up)

    @property
    def path(self) -> Path:
        return self.run_dir / GOLD_EVALS

    def start(self) -> None:
        """Before ``train_loop``. A fresh run (no checkpoints in run_dir) starts gold_evals.jsonl and
        alarms.log anew and, with ``at_start``, evaluates step 0. A run that will resume evaluates
        nothing now: on the first step, rows after the resumed step are dropped and the last one
        kept becomes the baseline."""
        from postlab.train.loop import Checkpointer

        if Checkpointer(self.run_dir, 1).latest() is not None:
            return
        for name in (GOLD_EVALS, ALARMS):
            (self.run_dir / name).unlink(missing_ok=True)
        self._synced = True
        if self.cfg.at_start:
            self.evaluate_now(0)

    def __call__(self, state, metrics: dict) -> None:
        self._called = True
        if not self._synced:
            self._sync(state.step)
        if self._pending is not None:  # the loop has (re)created metrics.jsonl by now: add the baseline line
            self._append_metrics_line(self._pending)
            self._pending = None
        if self.cfg.every and state.step % self.cfg.every == 0:
            metrics.update(self._evaluate(state.step))

    def evaluate_now(self, step: int) -> dict:
        """Evaluate at ``step`` outside the loop's metric logging (the baseline before it, the final
        step after it); returns the gold/alarm metrics and logs them to metrics.jsonl as a line of
        their own. A step already evaluated is not evaluated again."""
        if self.last is not None and self.last[0] == step:
            return self.last[1]
        out = self._evaluate(step)
        line = {"step": step, **out}
        if self._called:
            self._append_metrics_line(line)  # after the loop started: metrics.jsonl is set up
        else:
            self._pending = line  # before the loop, which may still reset metrics.jsonl
        return out

    # internals

    def _append_metrics_line(self, line: dict) -> None:
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")

    def _sync(self, step: int) -> None:
        """First call of this process at ``step``: keep the rows of earlier steps, the last as baseline."""
        self._synced = True
        if self.prev is not None or not self.path.exists():
            return
        rows = [json.loads(ln) for ln in self.path.read_text().splitlines() if ln.strip()]
        kept = [r for r in rows if r.get("step", 0) < step]
        if len(kept) != len(rows):
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        if kept:
            self.prev = kept[-1]

    def _evaluate(self, step: int) -> dict:
        t0 = time.perf_counter()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        was_training = self.model.training
        self.model.eval()
        try:
            responses = generate_responses(self.engine, self.items, self.sampling,
                                           batch_size=self.cfg.batch_size, progress=False)
        finally:
            self.model.train(was_training)
        summary, rows = grade(self.items, responses)
        by_suite: dict[str, list[float]] = defaultdict(list)
        for suite, row in zip(self.item_suite, rows):
            by_suite[suite].append(row["score"])
        suite_stats = {s: mean_se(v) for s, v in by_suite.items()}
        metrics = {"gold/score": summary["overall"]}
        metrics.update({f"gold/{c}": v for c, v in summary["by_category"].items()})
        if len(by_suite) > 1:
            metrics.update({f"gold/{s}/score": m for s, (m, _) in suite_stats.items()})

        jumps = detect_jumps(self.prev, summary, self.cfg.alarm_se, self.cfg.alarm_floor) if self.prev else []
        for j in jumps:
            metrics[f"alarm/{j.category}"] = j.z
            line = format_alarm(step, j, self.cfg.alarm_se)
            tqdm.write(line, file=sys.stderr)
            with open(self.run_dir / ALARMS, "a") as f:
                f.write(line + "\n")

        row = {"step": step, "suites": list(self.cfg.suites), "split": self.cfg.split, **summary,
               "by_suite": {s: m for s, (m, _) in suite_stats.items()},
               "by_suite_se": {s: se for s, (_, se) in suite_stats.items()},
               "alarms": [asdict(j) for j in jumps], "seconds": time.perf_counter() - t0}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        self.prev, self.last = summary, (step, metrics)
        return metrics


def start_gold_eval(cfg: GoldEvalConfig, *, model, tokenizer, run_dir: str | Path) -> GoldEvalCallback | None:
    """The callback every recipe runs, already started (step-0 baseline unless resuming), or None
    when `cfg.every` is 0. Recipes pass it to their loop and call `evaluate_now(final_step)` after."""
    if not cfg.every:
        return None
    callback = GoldEvalCallback(model=model, tokenizer=tokenizer, cfg=cfg, run_dir=run_dir)
    callback.start()
    return callback
