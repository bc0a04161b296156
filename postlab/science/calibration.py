"""``postlab calibration``: does post-training break a model's calibration? (docs/science.md)

For each multiple-choice question (postlab/science/mc_suite.py) the model's distribution over the options comes
from its next-token probabilities of the option letters, averaged over cyclic orders of the options
(postlab/science/options.py); its confidence is the top probability. Reported per model (several models side by
side: base vs SFT vs RL): accuracy, ECE with equal-width and equal-count bins, Brier, NLL, mean confidence, each
with a 95% bootstrap interval over questions; the temperature minimising NLL and ECE after temperature scaling
(cross-fitted on halves); the mass on option letters; per-category figures. Optionally the reward model's
calibration on held-out preference pairs (``reward_model_calibration``). Writes ``out`` (JSON),
``<stem>.items.jsonl`` (each question's distribution per model) and ``<stem>.png`` (reliability diagrams).
``run=R`` scores a ``postlab run`` directory's checkpoints into its report instead (postlab/science/calibration_run.py).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field

from postlab.config import Section
from postlab.errors import ConfigError, DataError
from postlab.machine import AutoDType
from postlab.science.common import check_models, check_out, each_model, meta, plt, wilson_interval
from postlab.science.metrics import calibration_metrics, confidence_and_correct, ece, paired_differences
from postlab.science.mc_suite import INSTRUCTION, MCItem, load_mc_suite
from postlab.science.options import answer_logprobs, normalise_logprobs, option_distributions, prompts_for_orders
from postlab.utils.io import atomic_write_text, finite


class CalibrationConfig(Section):
    """postlab calibration: multiple-choice calibration of one or more models (and optionally a reward model)."""

    models: list[str] = Field(default_factory=lambda: ["smollm2-135m-instruct"],
                              description="models side by side: built-in names, directories or hub ids, each optionally "
                                          "labelled as label=model (a .../NAME/model directory is labelled NAME)")
    suite: str = Field("builtin", description="builtin | builtin:CATEGORY (capitals, arithmetic, units, facts) | a JSONL "
                                              "file of {question, choices, answer} (docs/science.md)")
    limit: int | None = Field(None, ge=1, description="only the first N questions")
    scoring: Literal["letters", "cloze"] = Field(
        "letters", description="letters = the options listed with letters, P(next token = letter), averaged over "
                               "option orders; cloze = P(the reply is exactly the option's text), options not shown")
    orders: int | None = Field(None, ge=1, description="letters: option orders averaged per question (cyclic shifts); "
                                                       "null = all of them (one per option)")
    bins: int = Field(10, ge=1, description="bins for ECE and the reliability diagram")
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples for the 95% intervals (0 = none)")
    seed: int = Field(0, description="seed of the built-in suite, the bootstrap and the temperature halves")
    batch_size: int = Field(16, ge=1, description="prompts per forward pass")
    dtype: AutoDType = Field("fp32", validate_default=True, description="weights dtype: fp32 | bf16 | auto")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where to run the models")
    out: str = Field("calibration/results.json", description="results JSON; <stem>.png and <stem>.items.jsonl beside it")
    overwrite: bool = Field(False, description="replace an existing out file")
    progress: bool = Field(True, description="show a progress bar")
    rm: str | None = Field(None, description="also the calibration of this reward model directory (postlab rm's "
                                             "<out>/model) on held-out preference pairs")
    rm_pairs: str | None = Field(None, description="preference pairs for rm=; default: the reward model's own training "
                                                   "file (<rm>/../config.yaml), of which its held-out prompts are used")
    rm_split: Literal["heldout", "all"] = Field(
        "heldout", description="heldout = the prompts the reward model held out in training (its config.yaml's "
                               "eval_fraction and seed); all = every pair of rm_pairs (a file it never saw)")
    rm_limit: int | None = Field(None, ge=1, description="score only the first N of those pairs")
    rm_gold_margin: float = Field(0.3, ge=0, description="pairs with |gold_margin| at least this are also scored "
                                                         "against gold (as postlab rm's accuracy_vs_gold)")
    run: str | None = Field(None, description="a finished `postlab run` directory: score its base, SFT and RL "
                                              "checkpoints (and its reward model, see run_rm) into <run>/calibration.json "
                                              "and rebuild <run>/report.html with their reliability diagrams; models, out "
                                              "and rm come from the run. Resumable: a rerun scores only the checkpoints "
                                              "not yet scored with these settings (overwrite=true: all of them)")
    run_rm: bool = Field(True, description="run=: also the run's reward model on its held-out pairs")

    def check(self) -> None:
        super().check()
        if self.run is not None:
            from postlab.science.calibration_run import check_run_dir

            given = sorted({"models", "out", "rm", "rm_pairs", "rm_split"} & self.model_fields_set)
            if given:
                raise ConfigError(f"run: {', '.join(given)} come from the run directory {self.run}; drop "
                                  f"{'it' if len(given) == 1 else 'them'} or drop run=")
            check_run_dir(Path(self.run))
            return
        check_out(self.out, self.overwrite)
        check_models(self.models, allow_none=self.rm is not None)  # models=[] rm=DIR: the reward model alone
        if self.rm is not None:
            if not Path(self.rm).is_dir():
                raise ConfigError(f"rm: not a directory: {self.rm}")
            if self.rm_split == "heldout" and not _rm_train_config(self.rm).is_file():
                raise ConfigError(f"rm_split=heldout needs the reward model's training config "
                                  f"{_rm_train_config(self.rm)}; give rm_pairs= with rm_split=all instead")
            if self.rm_split == "all" and self.rm_pairs is None:
                raise ConfigError("rm_split=all: give rm_pairs= (a file of pairs the reward model did not train on)")
            if self.rm_pairs is not None and not Path(self.rm_pairs).exists():
                raise ConfigError(f"rm_pairs: file not found: {self.rm_pairs}")


def _rm_train_config(rm: str) -> Path:
    return Path(rm).resolve().parent / "config.yaml"


def score_items(model, tokenizer, items: list[MCItem], *, orders: int | None, batch_size: int, scoring: str = "letters",
                progress: bool = False, desc: str = "calibration") -> tuple[list[list[float]], list[float]]:
    """(distribution over each item's choices, option mass per item): ``letters`` averages the letter
    probabilities over option orders; ``cloze`` normalises P(reply = choice) over the choices."""
    if scoring == "cloze":
        convs = [[{"role": "user", "content": it.question}] for it in items for _ in it.choices]
        logps = answer_logprobs(model, tokenizer, convs, [c for it in items for c in it.choices],
                                batch_size=batch_size, progress=progress, desc=desc)
        out, at = [], 0
        for it in items:
            out.append(normalise_logprobs(logps[at : at + len(it.choices)]))
            at += len(it.choices)
        return [p for p, _ in out], [m for _, m in out]
    prompts = [prompts_for_orders(it.question, it.choices, instruction=INSTRUCTION, n_orders=orders) for it in items]
    scored = option_distributions(model, tokenizer, prompts, batch_size=batch_size, progress=progress, desc=desc)
    return [p for p, _ in scored], [m for _, m in scored]


def model_report(items: list[MCItem], probs: list[list[float]], mass: list[float], *, bins: int, bootstrap: int,
                 seed: int) -> dict:
    """The calibration figures of one model (``calibration_metrics``), its letter mass and per-category figures."""
    from postlab.science.metrics import bootstrap_interval

    answers = [it.answer for it in items]
    out = calibration_metrics(probs, answers, n_bins=bins, resamples=bootstrap, seed=seed)
    out["option_mass"] = sum(mass) / len(mass)
    out["option_mass_ci"] = list(bootstrap_interval(lambda idx: float(sum(mass[i] for i in idx) / len(idx)),
                                                    len(mass), resamples=bootstrap, seed=seed + 50))
    c, correct = confidence_and_correct(probs, answers)
    by_cat: dict[str, dict] = {}
    for cat in sorted({it.category for it in items}):
        idx = [i for i, it in enumerate(items) if it.category == cat]
        by_cat[cat] = {"n": len(idx), "accuracy": float(correct[idx].mean()),
                       "mean_confidence": float(c[idx].mean()), "ece": ece(c[idx], correct[idx], bins, "width"),
                       "option_mass": sum(mass[i] for i in idx) / len(idx)}
    out["by_category"] = by_cat
    return out


def reward_model_calibration(margins: list[float], *, gold_margins: list[float | None] | None = None,
                             gold_threshold: float = 0.3, bins: int = 10, bootstrap: int = 1000, seed: int = 0) -> dict:
    """Calibration of a Bradley–Terry reward model on pairs: predicted P(chosen) = σ(r_c − r_r) against the label
    (the rater chose ``chosen``: the outcome is always option 0 of [chosen, rejected]) and, where a pair's gold
    margin is at least ``gold_threshold`` in size, against gold's verdict. Confidence = max(P, 1 − P), correct =
    the reward model's pick agrees; so this is ``calibration_metrics`` on two-option distributions."""
    def two_way(d: float) -> list[float]:
        p = 1 / (1 + math.exp(-d)) if d >= 0 else math.exp(d) / (1 + math.exp(d))
        return [p, 1 - p]

    probs = [two_way(d) for d in margins]
    out = {"vs_labels": calibration_metrics(probs, [0] * len(probs), n_bins=bins, resamples=bootstrap, seed=seed)}
    if gold_margins is not None:
        keep = [i for i, g in enumerate(gold_margins) if g is not None and abs(g) >= gold_threshold]
        if keep:
            out["vs_gold"] = calibration_metrics([probs[i] for i in keep], [0 if gold_margins[i] > 0 else 1 for i in keep],
                                                 n_bins=bins, resamples=bootstrap, seed=seed)
            out["vs_gold"]["gold_threshold"] = gold_threshold
    return out


def heldout_pairs(cfg: CalibrationConfig):
    """The preference pairs to score the reward model on (see the rm_* fields)."""
    from postlab.data.preferences import load_preferences
    from postlab.train.rm import split_by_prompt

    if cfg.rm_split == "all":
        return load_preferences(cfg.rm_pairs), {"split": "all", "pairs_file": cfg.rm_pairs}
    train_cfg = yaml.safe_load(_rm_train_config(cfg.rm).read_text(encoding="utf-8")) or {}
    data, optim = train_cfg.get("data") or {}, train_cfg.get("optim") or {}
    if data.get("eval_file"):
        path = cfg.rm_pairs or data["eval_file"]
        return load_preferences(path), {"split": "eval_file", "pairs_file": path}
    path = cfg.rm_pairs or data.get("train_file")
    if not path or not Path(path).exists():
        raise DataError(f"{_rm_train_config(cfg.rm)}: data.train_file {path!r} not found; give rm_pairs=")
    fraction, seed = float(data.get("eval_fraction", 0.1)), int(optim.get("seed", 0))
    _, held = split_by_prompt(load_preferences(path), fraction, seed)
    if not held:
        raise DataError(f"{path}: the reward model held out no prompts (eval_fraction {fraction}); "
                        "use rm_split=all with a file it did not train on")
    return held, {"split": "heldout", "pairs_file": path, "eval_fraction": fraction, "seed": seed}


def score_rm_pairs(cfg: CalibrationConfig) -> dict:
    """The reward model's margins r_c − r_r on the pairs ``heldout_pairs`` picks, with each pair's gold margin."""
    from postlab.raters.reward_model import RewardModelRater

    pairs, source = heldout_pairs(cfg)
    pairs = pairs[: cfg.rm_limit]
    rater = RewardModelRater(cfg.rm, batch_size=cfg.batch_size)
    chosen = rater.score_texts([p.prompt for p in pairs], [p.chosen for p in pairs])
    rejected = rater.score_texts([p.prompt for p in pairs], [p.rejected for p in pairs])
    return {"model": cfg.rm, "pairs": len(pairs), **source, "margins": [c - r for c, r in zip(chosen, rejected)],
            "gold_margins": [p.gold_margin for p in pairs]}


def rm_report(scored: dict, *, gold_threshold: float, bins: int, bootstrap: int, seed: int) -> dict:
    """``reward_model_calibration`` of ``score_rm_pairs``'s margins, beside where the pairs came from."""
    about = {k: v for k, v in scored.items() if k not in ("margins", "gold_margins", "key")}
    return {**about, **reward_model_calibration(scored["margins"], gold_margins=scored["gold_margins"],
                                                gold_threshold=gold_threshold, bins=bins, bootstrap=bootstrap,
                                                seed=seed)}


def _score_rm(cfg: CalibrationConfig) -> dict:
    return rm_report(score_rm_pairs(cfg), gold_threshold=cfg.rm_gold_margin, bins=cfg.bins, bootstrap=cfg.bootstrap,
                     seed=cfg.seed)


def _interval(x: float, ci: list[float]) -> str:
    return f"{x:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def plot_reliability(panels: list[tuple[str, dict]], path: Path, bins: int) -> None:
    """``reliability_figure`` saved as a PNG at ``path``."""
    fig = reliability_figure(panels, bins)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt().close(fig)


def reliability_figure(panels: list[tuple[str, dict]], bins: int):
    """One column per model: accuracy per equal-width confidence bin (95% Wilson intervals) against the
    diagonal, above a histogram of the confidences. ``panels``: (title, ``calibration_metrics`` output)."""
    pyplot = plt()
    fig, axes = pyplot.subplots(2, len(panels), figsize=(3.6 * len(panels), 5.2), squeeze=False,
                                gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    width = 1 / bins
    for col, (title, m) in enumerate(panels):
        ax, hist = axes[0][col], axes[1][col]
        ax.plot([0, 1], [0, 1], color="#999999", lw=1, ls="--")
        for b in m["bins"]:
            centre = (b["lo"] + b["hi"]) / 2
            lo, hi = wilson_interval(b["accuracy"] * b["n"], b["n"])
            ax.bar(centre, b["accuracy"], width=width * 0.9, color="#1f77b4", alpha=0.75, edgecolor="#1f4e79")
            ax.errorbar(centre, b["accuracy"], yerr=[[b["accuracy"] - lo], [hi - b["accuracy"]]], color="black",
                        capsize=2, lw=1)
            ax.plot(b["confidence"], b["accuracy"], "o", color="#d62728", ms=3)
            hist.bar(centre, b["n"], width=width * 0.9, color="#7f7f7f")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{title}\nECE {_interval(m['ece'], m['ece_ci'])}\nacc {m['accuracy']:.3f}, "
                     f"conf {m['mean_confidence']:.3f}, T* {m['temperature']:.2f}", fontsize=8)
        hist.set_xlabel("confidence (top probability)")
        if col == 0:
            ax.set_ylabel("accuracy (95% Wilson CI)")
            hist.set_ylabel("items")
    fig.tight_layout()
    return fig


def format_table(results: dict) -> str:
    keys = ("accuracy", "ece", "ece_equal_count", "brier", "nll", "mean_confidence", "option_mass")
    lines = [f"{'model':<12} " + " ".join(f"{k:>24}" for k in keys) + f" {'ECE floor':>10} {'T*':>6} {'ECE after T':>12}"]
    for label, m in results["models"].items():
        lines.append(f"{label:<12} " + " ".join(f"{_interval(m[k], m[k + '_ci']):>24}" for k in keys)
                     + f" {m['ece_floor']:>10.3f} {m['temperature']:>6.2f} {m['ece_after_temperature']:>12.3f}")
    for pair, d in results.get("differences", {}).items():
        lines.append(f"{pair}: " + ", ".join(f"{k} {_interval(d[k], d[k + '_ci'])}" for k in keys if k in d))
    return "\n".join(lines)


def compare_models(items: list[MCItem], scored: dict[str, tuple[str, list[list[float]], list[float]]], *, bins: int,
                   bootstrap: int, seed: int) -> dict:
    """``models`` (each model's ``model_report``) and, for two or more, ``differences``: each model against the
    first (base), paired on the same questions. ``scored``: label -> (model spec, distributions, option mass)."""
    out: dict = {"models": {label: {"model": name, **model_report(items, probs, mass, bins=bins, bootstrap=bootstrap,
                                                                   seed=seed)}
                            for label, (name, probs, mass) in scored.items()}}
    labels = list(scored)
    if len(labels) > 1:
        answers = [it.answer for it in items]
        out["differences"] = {
            f"{label} - {labels[0]}": paired_differences(scored[labels[0]][1], scored[label][1], answers, n_bins=bins,
                                                         resamples=bootstrap, seed=seed)
            for label in labels[1:]}
    return out


def run(cfg: CalibrationConfig) -> dict:
    started = time.time()
    items = load_mc_suite(cfg.suite, cfg.seed)[: cfg.limit]
    out = Path(cfg.out)
    results: dict = {"suite": cfg.suite, "n_items": len(items), "scoring": cfg.scoring,
                     "orders": (cfg.orders or "all") if cfg.scoring == "letters" else None}
    rows = [{"id": it.id, "category": it.category, "answer": it.answer, "choices": it.choices} for it in items]
    scored = {}
    for label, name, model, tok in each_model(cfg.models, cfg.dtype, cfg.device):
        probs, mass = score_items(model, tok, items, orders=cfg.orders, batch_size=cfg.batch_size,
                                  scoring=cfg.scoring, progress=cfg.progress, desc=label)
        scored[label] = (name, probs, mass)
        for row, p, m in zip(rows, probs, mass):
            row.setdefault("probs", {})[label] = [round(x, 6) for x in p]
            row.setdefault("option_mass", {})[label] = round(m, 6)
    results.update(compare_models(items, scored, bins=cfg.bins, bootstrap=cfg.bootstrap, seed=cfg.seed))
    panels = list(results["models"].items())
    if cfg.rm is not None:
        results["reward_model"] = _score_rm(cfg)
        panels.append(("reward model vs labels", results["reward_model"]["vs_labels"]))
    figure = out.with_suffix(".png")
    plot_reliability(panels, figure, cfg.bins)
    results["figure"] = str(figure)
    results["meta"] = meta(cfg.model_dump(mode="json"), started)
    atomic_write_text(out.with_name(out.stem + ".items.jsonl"), "".join(json.dumps(r) + "\n" for r in rows))
    atomic_write_text(out, json.dumps(finite(results), indent=2) + "\n")
    return results


def main(cfg: CalibrationConfig) -> None:
    if cfg.run is not None:
        from postlab.science import calibration_run

        results = calibration_run.run(cfg)
        written = [str(Path(cfg.run) / name) for name in (calibration_run.CALIBRATION_FILE, "calibration.png")]
        written.append(results["report"])
    else:
        results = run(cfg)
        written = [cfg.out, results["figure"]]
    print(format_table(results))
    if "reward_model" in results:
        rm = results["reward_model"]
        for key in ("vs_labels", "vs_gold"):
            if key in rm:
                m = rm[key]
                print(f"reward model {key} ({m['n']} pairs): accuracy {_interval(m['accuracy'], m['accuracy_ci'])}, "
                      f"ECE {_interval(m['ece'], m['ece_ci'])}, T* {m['temperature']:.2f}")
    print("wrote " + ", ".join(written))
