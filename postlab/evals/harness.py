"""``postlab eval``: answer a suite's items (or read given answers), grade them with the gold rater.

Writes ``--out`` (results JSON) and ``<stem>.samples.jsonl`` beside it: one row per item with
``prompt``, ``response``, ``follow_instruction_list`` (strict, one boolean per check, in order) and
``follow_instruction_list_loose`` — IFEval's output fields — plus the item id, category, score and
the check ids.

The results follow lm-evaluation-harness where it has a convention: a ``meta`` section records what
produced them (postlab, torch and transformers versions, the git commit of the postlab checkout, the UTC
date, the hardware, the full config), and every metric with a standard error has it beside it under
lm-eval's ``_stderr`` suffix (``overall_stderr``; ``overall_se`` is kept). When items carry a difficulty
level (the reasoning suites: ``arith``, ``countdown``, ``wordprob``) the results also have ``by_difficulty``
(accuracy per level, keys ``"1"``, ``"2"``, ...) with ``by_difficulty_se`` and ``by_difficulty_n``. An
existing ``out`` is never replaced unless ``overwrite=true``.

Test-time compute (``samples=N``, ``rm=``, ``budgets=[...]``; postlab/evals/test_time.py,
docs/algorithms/test_time_compute.md) adds a ``test_time`` section: pass@k, maj@k and best-of-k for
k = 1, 2, 4, …, N, and accuracy per token cap, plotted in ``<stem>.test_time.png``. With ``samples=N``
the samples file has N rows per item (``sample_index`` 0…N−1) and the top-level metrics grade each
item's first sample. Without these fields nothing changes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import Field

from postlab.config import Section
from postlab.errors import ConfigError
from postlab.evals.generate import DTYPES, Response, generate_responses, read_responses
from postlab.evals.metrics import mean_se, summarize
from postlab.machine import AutoDType
from postlab.models.load import load_model_and_tokenizer
from postlab.models.prepare import pick_device
from postlab.raters.gold import GoldRater, GoldResult
from postlab.rollout import SamplingParams, TorchEngine
from postlab.tasks.suite import Item, load_suite
from postlab.utils.io import atomic_write_text
from postlab.utils.journal import BatchJournal, digest, model_identity, open_journal


class EvalConfig(Section):
    """postlab eval: gold-rated evaluation of a model (or of given responses) on a suite."""

    model: str = Field("smollm2-135m-instruct", description="built-in name, local HF directory or hub id (ignored with responses=)")
    suite: str = Field("spec", description="built-in suite name or JSONL file (postlab items or IFEval input rows)")
    split: Literal["train", "test", "all"] = Field("test", description="which split to evaluate (items without a split are always kept)")
    limit: int | None = Field(None, ge=1, description="evaluate only the first N items of the split")
    out: str = Field("eval/results.json", description="results JSON; samples go to <stem>.samples.jsonl beside it")
    responses: str | None = Field(None, description="JSONL of given responses ({prompt, response} as IFEval, or {id, response}) to grade instead of generating")
    batch_size: int = Field(32, ge=1, description="prompts generated together")
    dtype: AutoDType = Field("auto", validate_default=True,
                             description="weights dtype for generation; auto = the faster on this machine (postlab.machine)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where to generate")
    sampling: SamplingParams = Field(default_factory=lambda: SamplingParams(temperature=0.0, max_new_tokens=256, seed=0),
                                     description="decoding: greedy by default (temperature=0); max_new_tokens, top_p, seed")
    progress: bool = Field(True, description="show a progress bar")
    overwrite: bool = Field(False, description="replace an existing out file (and its samples); by default an earlier result is never overwritten")
    samples: int | None = Field(None, ge=1, description="test-time compute: N sampled responses per item at sampling.temperature (seeded), reported as pass@k, maj@k (and best-of-k with rm=) for k = 1, 2, 4, ..., N under test_time; off (default) = one response per item")
    rm: str | None = Field(None, description="reward model directory (from postlab rm); with samples=, adds best-of-k chosen by it (test_time.bon_at_k)")
    budgets: list[int] | None = Field(None, description="thinking budget: answer every item once per cap on new tokens (e.g. [64,128,256]) and report accuracy per cap under test_time.budget")

    def check(self) -> None:
        super().check()
        if self.responses is not None and not Path(self.responses).is_file():
            raise ConfigError(f"responses: file not found: {self.responses}")
        if not self.out.endswith(".json"):
            raise ConfigError(f"out: expected a .json path, got {self.out!r}")
        if self.budgets and self.responses is not None:
            raise ConfigError("budgets: these generate responses; they do not apply to given responses=")
        generating = self.samples is not None and self.responses is None
        if generating and self.samples > 1 and self.sampling.temperature == 0:
            raise ConfigError(f"samples: {self.samples} samples at temperature 0 are copies of the greedy answer; "
                              "set sampling.temperature (e.g. 0.7 or 1.0)")
        if generating and self.sampling.seed is None:
            raise ConfigError("sampling.seed: samples= needs a seed for reproducible samples")
        if self.rm is not None and (self.samples is None or not Path(self.rm).is_dir()):
            raise ConfigError(f"rm: needs samples= and a reward model directory, got rm={self.rm!r}, samples={self.samples}")
        if self.budgets is not None and (not self.budgets or any(b < 1 for b in self.budgets)):
            raise ConfigError(f"budgets: expected positive token caps, got {self.budgets}")


def samples_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".samples.jsonl")


def generation_journal(cfg: EvalConfig, items: list[Item], per_item: int) -> BatchJournal:
    """Where an eval's generation is journalled batch by batch (``<stem>.journal.jsonl`` beside ``out``), so the
    same command after an interruption continues it; one of other settings is refused."""
    out = Path(cfg.out)
    sampling = {f"sampling.{key}": value for key, value in cfg.sampling.model_dump(mode="json").items()}
    fingerprint = {"model": model_identity(cfg.model), "device": str(pick_device(cfg.device)), "dtype": cfg.dtype,
                   "batch_size": cfg.batch_size, "per_item": per_item, **sampling,
                   "items": f"{len(items)}, sha256 {digest([(it.id, it.messages) for it in items])[:16]}"}
    return open_journal(out.with_name(out.stem + ".journal.jsonl"), fingerprint, "eval")


PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the checkout (or site-packages) postlab runs from


def git_hash(root: Path = PACKAGE_ROOT) -> str | None:
    """The commit checked out at ``root`` when it is a git checkout of postlab, else None (never raises):
    an installed postlab inside someone else's repository must not report that repository's commit."""
    if not (root / ".git").exists():
        return None
    try:
        r = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (r.stdout.strip() or None) if r.returncode == 0 else None


def run_meta(cfg: EvalConfig) -> dict:
    """What produced a result, where and when: lm-eval's provenance fields, and postlab's own."""
    import torch
    import transformers

    from postlab import __version__, machine

    return {"postlab_version": __version__, "torch_version": torch.__version__,
            "transformers_version": transformers.__version__, "git_hash": git_hash(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "hardware": machine.probe(measure=False), "config": cfg.model_dump(mode="json")}


def with_stderr(summary: dict, stderr: dict[str, object]) -> dict:
    """``summary`` with ``<key>_stderr`` right after each key that has a standard error (lm-eval's naming)."""
    out = {}
    for key, value in summary.items():
        out[key] = value
        if key in stderr:
            out[f"{key}_stderr"] = stderr[key]
    return out


def load_engine(model: str, dtype: str = "auto", device: str = "auto") -> TorchEngine:
    """An engine over ``model`` with weights in ``dtype`` ("fp32" | "bf16" | "auto" = the faster on this machine)."""
    if dtype == "auto":
        from postlab import machine

        dtype = machine.auto_dtype()
    m, tok = load_model_and_tokenizer(model, dtype=DTYPES[dtype])
    m.to(pick_device(device))
    return TorchEngine(model=m, tokenizer=tok)


def by_difficulty(items: list[Item], results: list[GoldResult]) -> dict:
    """Accuracy (mean gold score) per difficulty level of the items that carry one, with its standard error
    and count; {} when none does, so results of other suites are unchanged."""
    scores: dict[int, list[float]] = defaultdict(list)
    for it, r in zip(items, results):
        if it.level is not None:
            scores[it.level].append(r.score)
    if not scores:
        return {}
    levels = sorted(scores)
    return {"by_difficulty": {str(k): mean_se(scores[k])[0] for k in levels},
            "by_difficulty_se": {str(k): mean_se(scores[k])[1] for k in levels},
            "by_difficulty_n": {str(k): len(scores[k]) for k in levels}}


def grade(items: list[Item], responses: list[Response]) -> tuple[dict, list[dict]]:
    """(summary metrics, sample rows) for responses to items."""
    gold = GoldRater()
    results = [gold.grade(it, r.text) for it, r in zip(items, responses)]
    rows = []
    for it, r, g in zip(items, responses, results):
        row = {"id": it.id, "category": it.category, "prompt": it.prompt, "messages": it.messages,
               "response": r.text, "score": g.score, "non_answer": g.non_answer,
               "instruction_id_list": [c.id for c in it.checks],
               "kwargs": [c.kwargs for c in it.checks],
               "follow_instruction_list": [c.passed for c in g.checks],
               "follow_instruction_list_loose": [c.passed_loose for c in g.checks]}
        if r.num_tokens is not None:
            row.update(num_tokens=r.num_tokens, finish_reason=r.finish_reason)
        rows.append(row)
    summary = summarize(items, results, [r.text for r in responses]) | by_difficulty(items, results)
    summary = with_stderr(summary, {
        "overall": summary["overall_se"], "by_category": summary["by_category_se"],
        **({"by_difficulty": summary["by_difficulty_se"]} if "by_difficulty" in summary else {}),
        "prompt_level_strict_acc": mean_se([float(g.all_passed) for g in results])[1],
        "prompt_level_loose_acc": mean_se([float(g.all_passed_loose) for g in results])[1]})
    tokens = [r.num_tokens for r in responses if r.num_tokens is not None]
    if tokens:
        summary["mean_tokens"] = sum(tokens) / len(tokens)
        summary["truncated_frac"] = sum(r.finish_reason == "length" for r in responses) / len(responses)
    return summary, rows


def evaluate(cfg: EvalConfig) -> dict:
    if Path(cfg.out).exists() and not cfg.overwrite:
        raise ConfigError(f"out: {cfg.out} already exists (an earlier result); pass overwrite=true to replace it, "
                          "or choose another out=")
    items = load_suite(cfg.suite, split=None if cfg.split == "all" else cfg.split, limit=cfg.limit)
    if not items:
        raise ConfigError(f"suite {cfg.suite!r} has no items in split {cfg.split!r}")
    if cfg.samples is not None or cfg.budgets:
        return evaluate_test_time(cfg, items)
    if cfg.responses is not None:
        responses = read_responses(cfg.responses, items)
        model = cfg.responses
    else:
        journal = generation_journal(cfg, items, 1)
        engine = load_engine(cfg.model, cfg.dtype, cfg.device)
        responses = generate_responses(engine, items, cfg.sampling, batch_size=cfg.batch_size, progress=cfg.progress,
                                       journal=journal)
        model = cfg.model
    summary, rows = grade(items, responses)
    results = {"model": model, "suite": cfg.suite, "split": cfg.split, **summary,
               "samples": str(samples_path(cfg.out)), "config": cfg.model_dump(mode="json"), "meta": run_meta(cfg)}
    atomic_write_text(samples_path(cfg.out), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    atomic_write_text(Path(cfg.out), json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    if cfg.responses is None:
        journal.remove()
    return results


def evaluate_test_time(cfg: EvalConfig, items: list[Item]) -> dict:
    """``evaluate`` with samples= and/or budgets= (module docstring). The N samples of an item are drawn
    together, as ``postlab bon`` draws them, so its ``samples=`` can reuse this samples file; with
    ``responses=`` (a samples file of an earlier run: id, sample_index, response) they are regraded
    instead, e.g. with another reward model."""
    from postlab.evals import test_time as tt

    N = cfg.samples or 1
    jobs = [it for it in items for _ in range(N)]
    if cfg.responses is not None:
        from postlab.train.bon import reuse_samples

        responses = [Response(text) for text in reuse_samples(cfg.responses, items, N)]
    else:
        journal = generation_journal(cfg, items, N)
        engine = load_engine(cfg.model, cfg.dtype, cfg.device)
        responses = generate_responses(engine, jobs, cfg.sampling, batch_size=cfg.batch_size, progress=cfg.progress,
                                       desc=f"sample {N} per item" if N > 1 else "eval", journal=journal)
    summary, rows = grade(items, responses[::N])
    section: dict = {}
    if cfg.samples is not None:
        _, rows = grade(jobs, responses)
        correct = [r["score"] == 1.0 for r in rows]
        answers = [tt.parsed_answer(it, r.text) for it, r in zip(jobs, responses)]
        for j, (row, ok, a) in enumerate(zip(rows, correct, answers)):
            row.update(sample_index=j % N, correct=ok, answer=None if a is None else str(a))
        rm_flat = None
        if cfg.rm is not None:
            from postlab.raters.reward_model import RewardModelRater

            from postlab.models.prepare import pick_device

            rater = RewardModelRater(cfg.rm, device=str(pick_device(cfg.device)), bf16=cfg.dtype == "bf16")
            rm_flat = rater.score_texts([it.messages for it in jobs], [r.text for r in responses])
            for row, s in zip(rows, rm_flat):
                row["rm"] = s
        per_item = lambda xs: [xs[i * N:(i + 1) * N] for i in range(len(items))]  # noqa: E731
        section = tt.summarize(items, per_item(correct), per_item(answers), None if rm_flat is None else per_item(rm_flat))
    if cfg.budgets:
        gold = GoldRater()
        budget, budget_se, budget_tokens, budget_truncated = {}, {}, {}, {}
        for b in sorted(set(cfg.budgets)):
            capped = generate_responses(engine, items, cfg.sampling.model_copy(update={"max_new_tokens": b}),
                                        batch_size=cfg.batch_size, progress=cfg.progress, desc=f"budget {b}")
            budget[str(b)], budget_se[str(b)] = mean_se([float(gold.grade(it, r.text).score == 1.0)
                                                         for it, r in zip(items, capped)])
            budget_tokens[str(b)] = sum(r.num_tokens for r in capped) / len(capped)
            budget_truncated[str(b)] = sum(r.finish_reason == "length" for r in capped) / len(capped)
        section |= {"budget": budget, "budget_se": budget_se, "budget_mean_tokens": budget_tokens,
                    "budget_truncated_frac": budget_truncated}
    plot_path = Path(cfg.out).with_name(Path(cfg.out).stem + ".test_time.png")
    section["plot"] = str(plot_path)
    model = cfg.model if cfg.responses is None else cfg.responses
    results = {"model": model, "suite": cfg.suite, "split": cfg.split, **summary, "test_time": section,
               "samples": str(samples_path(cfg.out)), "config": cfg.model_dump(mode="json"), "meta": run_meta(cfg)}
    atomic_write_text(samples_path(cfg.out), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    plot_path.parent.mkdir(parents=True, exist_ok=True)
    tt.plot(section, plot_path, f"{model} on {cfg.suite} ({cfg.split}, {len(items)} items)")
    atomic_write_text(Path(cfg.out), json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    if cfg.responses is None:
        journal.remove()
    return results


def format_results(results: dict) -> str:
    """A short human-readable table for the terminal."""
    lines = [f"{results['model']} on {results['suite']} ({results['split']}, n={results['n']}): "
             f"gold {results['overall']:.3f} ± {results['overall_se']:.3f}"]
    for cat, score in results["by_category"].items():
        lines.append(f"  {cat:18s} {score:.3f} ± {results['by_category_se'][cat]:.3f}  (n={results['by_category_n'][cat]})")
    if "by_difficulty" in results:
        lines.append("  by difficulty: " + "  ".join(
            f"L{k} {v:.3f} ± {results['by_difficulty_se'][k]:.3f} (n={results['by_difficulty_n'][k]})"
            for k, v in results["by_difficulty"].items()))
    lines.append(f"  prompt-level strict/loose {results['prompt_level_strict_acc']:.3f}/{results['prompt_level_loose_acc']:.3f}"
                 f"  instruction-level strict/loose {results['inst_level_strict_acc']:.3f}/{results['inst_level_loose_acc']:.3f}"
                 f"  mean length {results['mean_length']:.1f} words")
    if "test_time" in results:
        from postlab.evals.test_time import format_test_time

        lines.append(format_test_time(results["test_time"]))
    return "\n".join(lines)


def main(cfg: EvalConfig) -> None:
    results = evaluate(cfg)
    print(format_results(results))
    print(f"wrote {cfg.out} and {results['samples']}", file=sys.stderr)
