"""``postlab sweep``: which blend of SFT data categories is best? (docs/science.md, "Data-blend sweeps")

Many small SFT runs, each on ``total_examples`` template demonstrations of postlab's behaviour spec
(postlab/tasks/demos.py) mixed by category with weights drawn from a Dirichlet (seeded), beside the default
mixture of ``postlab run`` (its ``DEFAULT_DEMOS`` proportions) as a reference row. Each run is fine-tuned (LoRA or
full) and scored with the gold rater on the first ``test_items`` of the held-out test split (greedy). A
RegMix-style regression (postlab/science/blend.py) from weights to score predicts the best mixture, with a
bootstrap interval over runs; that mixture is then trained and measured beside the default one (paired on the
same items). A subset of the runs is trained again with another seed: how often do pairwise rankings hold?

Under ``out_dir``: ``sweep.json`` (what invalidates the runs), ``pool.jsonl`` (the demonstrations by category),
``runs/<id>/result.json`` (each run, written atomically when it ends), ``results.json``, ``table.txt`` and
``plots.png``. A rerun skips finished runs, redoes unfinished ones from the start, and refuses when a field that
changes what the runs are (``INVALIDATING``) differs from the finished runs'. ``workers=N`` runs N at once, each in
its own process capped at ``threads_per_worker`` torch threads (``POSTLAB_THREADS``).

Run a single run (what each worker process does): ``python -m postlab.science.sweep runs/<id>/spec.json``.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from postlab.config import Section
from postlab.errors import ConfigError, PostlabError
from postlab.machine import AutoBF16
from postlab.science import blend
from postlab.science.common import meta, plt
from postlab.train.common import DEVICE_HELP, Device, LoraConfig
from postlab.utils.io import atomic_write_text, clean_stale_tmp_tree, file_lock, finite

SUITE = "spec"
# postlab run's template answers per category (postlab.run.DEFAULT_DEMOS), kept here so the config loads
# without torch; tests/test_sweep.py checks the two agree.
DEFAULT_MIXTURE = {"instructions": 100, "chain_of_command": 100, "overrefusal": 65, "honesty": 45, "refusal": 30,
                   "knowledge": 30, "concision": 40}

# Fields that change what a run is: finished runs made under other values are refused, not mixed in.
INVALIDATING = ("model", "categories", "default_mixture", "total_examples", "alpha", "seed", "test_items",
                "eval_max_new_tokens", "lr", "epochs", "batch_size", "max_seq_len", "lora", "bf16")


class SweepConfig(Section):
    """postlab sweep: SFT data-blend sweep, a RegMix-style regression to the best mixture, and its check."""

    model: str = Field("smollm2-135m-instruct", description="base model of every run: built-in name, directory or hub id")
    out_dir: str = Field("sweeps/blend", description="sweep directory: each run's result, results.json, table.txt, plots.png")
    categories: list[str] = Field(default_factory=lambda: list(DEFAULT_MIXTURE),
                                  description="the mixture's components: categories of postlab's template demonstrations")
    default_mixture: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_MIXTURE),
        description="the reference row: postlab run's template answers per category (normalised to weights; "
                    "categories not listed weigh 0)")
    total_examples: int = Field(200, ge=1, description="SFT demonstrations per run, split between categories by the weights "
                                                       "(a category's first N in a fixed order, repeated if N exceeds its pool)")
    runs: int = Field(24, ge=2, description="runs on mixtures drawn from Dirichlet(alpha), beside the default mixture's")
    alpha: float = Field(1.0, gt=0, description="Dirichlet concentration (1 = uniform over the simplex; < 1 favours "
                                                "mixtures dominated by few categories)")
    seed: int = Field(0, description="seed of the mixtures, the candidates, the bootstrap and the runs' training")
    decision_runs: int = Field(6, ge=0, description="the first N runs (default first) trained again with seed + 1, for "
                                                    "decision accuracy across seeds (0 = off; 1 is too few)")
    test_items: int = Field(100, ge=1, description="held-out test items of the spec suite each run is scored on (the first N)")
    eval_max_new_tokens: int = Field(128, ge=1, description="response cap in the gold eval (greedy)")
    eval_batch_size: int = Field(64, ge=1, description="prompts generated together in the eval")
    lr: float = Field(2e-4, gt=0, description="SFT peak learning rate (2e-4 suits LoRA; full fine-tuning wants ~2e-5)")
    epochs: float = Field(2.0, gt=0, description="SFT passes over each run's demonstrations")
    batch_size: int = Field(8, ge=1, description="SFT conversations per step")
    max_seq_len: int = Field(384, ge=16, description="token cap of SFT conversations")
    lora: LoraConfig = Field(default_factory=lambda: LoraConfig(enabled=True),
                             description="LoRA adapters (enabled by default; lora.enabled=false = full fine-tuning)")
    bf16: AutoBF16 = Field("auto", validate_default=True,
                           description="bf16 autocast in training and bf16 weights in the eval; auto = the faster of fp32 "
                                       "and bf16 on this machine (postlab.machine: measured once, cached)")
    device: Device = Field("auto", description=DEVICE_HELP)
    fit: Literal["log_linear", "linear"] = Field(
        "log_linear", description="regression from weights to score: log_linear = ridge on log(w + eps) (diminishing "
                                  "returns; interior optima), linear = ridge on w (RegMix's linear model)")
    ridge: list[float] = Field(default_factory=lambda: [1e-3, 1e-2, 1e-1, 1.0, 10.0],
                               description="ridge penalties tried; the one with the least leave-one-out error is used")
    candidates: int = Field(20000, ge=1, description="candidate mixtures (same Dirichlet) the fit scores")
    top_k: int = Field(100, ge=1, description="the predicted optimum is the mean of the top-k candidates (RegMix: 100)")
    bootstrap: int = Field(500, ge=0, description="bootstrap resamples of the runs for the optimum's intervals (0 = none)")
    train_predicted: bool = Field(True, description="train the predicted mixture and measure it beside the default")
    workers: int = Field(1, ge=1, description="runs at once; above 1 each run is its own process")
    threads_per_worker: int | None = Field(None, ge=1, description="torch threads per worker process (POSTLAB_THREADS); "
                                                                   "default: the cores divided by workers")
    keep_models: bool = Field(False, description="keep each run's fine-tuned model (runs/<id>/sft/model); off = deleted "
                                                 "after its eval (a SmolLM2 copy is ~0.5 GB)")
    progress: bool = Field(False, description="progress bars inside each run")

    def check(self) -> None:
        super().check()
        if len(self.categories) < 2 or len(set(self.categories)) != len(self.categories):
            raise ConfigError(f"categories: give at least two distinct categories, got {self.categories}")
        for name in self.categories:
            if name not in DEFAULT_MIXTURE:  # the spec suite's language and math have no template answers
                raise ConfigError(f"categories: {name!r} has no template demonstrations; choose among "
                                  f"{', '.join(DEFAULT_MIXTURE)}")
        unknown = sorted(set(self.default_mixture) - set(self.categories))
        if unknown:
            raise ConfigError(f"default_mixture: {', '.join(unknown)} not in categories ({', '.join(self.categories)})")
        if any(v < 0 for v in self.default_mixture.values()) or sum(self.default_mixture.values()) <= 0:
            raise ConfigError(f"default_mixture: expected non-negative amounts, not all zero, got {self.default_mixture}")
        if not self.ridge or any(g <= 0 for g in self.ridge):
            raise ConfigError(f"ridge: expected positive penalties, got {self.ridge}")
        if self.top_k > self.candidates:
            raise ConfigError(f"top_k ({self.top_k}) must be ≤ candidates ({self.candidates})")
        if self.decision_runs == 1:
            raise ConfigError("decision_runs: 1 run has no pairs to rank; give 0 (off) or at least 2")
        if self.decision_runs > self.runs + 1:
            raise ConfigError(f"decision_runs ({self.decision_runs}) must be ≤ runs + 1 ({self.runs + 1})")

    def default_weights(self) -> np.ndarray:
        w = np.array([float(self.default_mixture.get(c, 0.0)) for c in self.categories])
        return w / w.sum()

    def fingerprint(self) -> dict:
        return {k: v for k, v in self.model_dump(mode="json").items() if k in INVALIDATING}


# --- the runs ---


def plan_runs(cfg: SweepConfig) -> list[dict]:
    """The seed's runs, in order: ``default`` then ``mix-00`` … (weights and counts per category)."""
    W = np.vstack([cfg.default_weights(), blend.draw_mixtures(len(cfg.categories), cfg.runs, cfg.alpha, cfg.seed)])
    ids = ["default"] + [f"mix-{i:02d}" for i in range(cfg.runs)]
    return [run_spec(cfg, rid, w, cfg.seed) for rid, w in zip(ids, W)]


def run_spec(cfg: SweepConfig, rid: str, w: np.ndarray, seed: int) -> dict:
    counts = blend.counts_from_weights(w, cfg.total_examples)
    return {"id": rid, "seed": seed, "weights": dict(zip(cfg.categories, map(float, w))),
            "counts": dict(zip(cfg.categories, counts))}


def build_pool(out: Path, categories: list[str]) -> dict[str, list[dict]]:
    """Template demonstrations of the train split by category, each passing all its gold checks
    (``demos.template_demos``; in the suite's fixed shuffled order), kept in ``out/pool.jsonl`` once built."""
    path = out / "pool.jsonl"
    if path.exists():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        from postlab.tasks import demos

        rows, _ = demos.template_demos(None)
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    pool: dict[str, list[dict]] = {c: [] for c in categories}
    for r in rows:
        cat = r["id"].split("-")[0]
        if cat in pool:
            pool[cat].append(r)
    empty = [c for c, rs in pool.items() if not rs]
    if empty:
        raise ConfigError(f"categories: no template demonstrations for {', '.join(empty)} in {path}")
    return pool


def run_data(pool: dict[str, list[dict]], counts: dict[str, int]) -> tuple[list[dict], dict[str, int]]:
    """A run's demonstrations: each category's first n (cycling through its pool when n exceeds it), and
    how many of each category's are repeats."""
    rows, repeats = [], {}
    for cat, n in counts.items():
        rows += [pool[cat][i % len(pool[cat])] for i in range(n)]
        repeats[cat] = max(0, n - len(pool[cat]))
    return rows, repeats


def train_and_score(spec: dict) -> dict:
    """One run (in this process): SFT on ``spec['data']`` and the gold eval on the held-out split; returns its
    result (scores per item included, for paired comparisons) and writes it to ``<dir>/result.json`` atomically."""
    from postlab.evals import harness
    from postlab.evals.metrics import sample_scores
    from postlab.rollout import SamplingParams
    from postlab.train import sft
    from postlab.train.common import CheckpointConfig, LoraConfig, OptimConfig

    c, d = spec["common"], Path(spec["dir"])
    t0 = time.perf_counter()
    cfg = sft.SFTConfig(
        model=c["model"], out_dir=str(d / "sft"), device=c["device"],
        data=sft.SFTDataConfig(train_file=str(d / "data.jsonl"), eval_fraction=0.0, max_seq_len=c["max_seq_len"]),
        optim=OptimConfig(lr=c["lr"], epochs=c["epochs"], batch_size=c["batch_size"], warmup_steps=5, bf16=c["bf16"],
                          seed=spec["seed"], group_by_length=True),
        lora=LoraConfig(**c["lora"]), checkpoint=CheckpointConfig(progress=c["progress"]))
    trained = sft.train(cfg)
    train_s = time.perf_counter() - t0
    ecfg = harness.EvalConfig(model=str(d / "sft" / "model"), suite=SUITE, split="test", limit=c["test_items"],
                              out=str(d / "eval.json"), batch_size=c["eval_batch_size"],
                              dtype="bf16" if c["bf16"] else "fp32", device=_eval_device(c["device"]),
                              progress=c["progress"], overwrite=True,
                              sampling=SamplingParams(temperature=0.0, max_new_tokens=c["eval_max_new_tokens"], seed=0))
    ev = harness.evaluate(ecfg)
    result = {k: spec[k] for k in ("id", "seed", "weights", "counts", "repeats")}
    result.update({"score": ev["overall"], "se": ev["overall_se"], "n": ev["n"], "by_category": ev["by_category"],
                   "item_scores": sample_scores(ev["samples"]), "steps": trained.state.step,
                   "last_loss": trained.train_losses[-1] if trained.train_losses else None,
                   "train_seconds": round(train_s, 1), "seconds": round(time.perf_counter() - t0, 1)})
    if not c["keep_models"]:
        shutil.rmtree(d / "sft" / "model", ignore_errors=True)
        shutil.rmtree(d / "sft" / "checkpoints", ignore_errors=True)
    atomic_write_text(d / "result.json", json.dumps(finite(result), indent=2) + "\n")
    return result


def _eval_device(device: str) -> str:
    """The eval's device for a training device name (the eval knows auto, cpu and cuda)."""
    return "cpu" if device == "cpu" else "cuda" if device.startswith("cuda") else "auto"


def _common(cfg: SweepConfig) -> dict:
    keys = ("model", "device", "max_seq_len", "lr", "epochs", "batch_size", "bf16", "lora", "test_items",
            "eval_batch_size", "eval_max_new_tokens", "keep_models", "progress")
    return {k: v for k, v in cfg.model_dump(mode="json").items() if k in keys}


def _result(out: Path, rid: str) -> dict | None:
    path = out / "runs" / rid / "result.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _prepare(cfg: SweepConfig, out: Path, pool: dict, spec: dict) -> dict:
    """A pending run's directory from scratch: its data and ``spec.json`` (all a worker process needs)."""
    d = out / "runs" / spec["id"]
    shutil.rmtree(d, ignore_errors=True)  # an unfinished run starts over
    rows, repeats = run_data(pool, spec["counts"])
    atomic_write_text(d / "data.jsonl", "".join(json.dumps({"messages": r["messages"], "id": r["id"]},
                                                           ensure_ascii=False) + "\n" for r in rows))
    full = {**spec, "repeats": repeats, "dir": str(d), "common": _common(cfg)}
    atomic_write_text(d / "spec.json", json.dumps(full, indent=2) + "\n")
    return full


def _worker_env(threads: int) -> dict:
    import postlab

    root = str(Path(postlab.__file__).resolve().parents[1])  # the postlab this process runs, first on the path
    env = {**os.environ, "POSTLAB_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads), "POSTLAB_BUSY_WARNING": "0"}
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def _in_subprocess(spec: dict, env: dict) -> dict:
    d = Path(spec["dir"])
    with open(d / "log.txt", "w", encoding="utf-8") as log:
        rc = subprocess.run([sys.executable, "-m", "postlab.science.sweep", str(d / "spec.json")], env=env,
                            stdout=log, stderr=subprocess.STDOUT).returncode
    result = _result(d.parent.parent, spec["id"])
    if rc != 0 or result is None:
        tail = (d / "log.txt").read_text(encoding="utf-8", errors="replace")[-1500:]
        raise PostlabError(f"sweep run {spec['id']} failed (exit {rc}); its log {d / 'log.txt'} ends:\n{tail}")
    return result


def execute(cfg: SweepConfig, out: Path, pool: dict, specs: list[dict]) -> dict[str, dict]:
    """Every run of ``specs``: finished ones read back, the others run (``workers`` at once); id -> result."""
    results = {s["id"]: r for s in specs if (r := _result(out, s["id"])) is not None}
    pending = [_prepare(cfg, out, pool, s) for s in specs if s["id"] not in results]
    if results:
        print(f"sweep: {len(results)} run(s) finished already, skipped", file=sys.stderr)
    if not pending:
        return results
    print(f"sweep: {len(pending)} run(s) to do, {cfg.workers} at a time", file=sys.stderr)
    t0 = time.perf_counter()

    def done(r: dict) -> None:
        results[r["id"]] = r
        print(f"sweep: {r['id']} scored {r['score']:.3f} ± {r['se']:.3f} ({len(results)}/{len(specs)}, "
              f"{(time.perf_counter() - t0) / 60:.1f} min)", file=sys.stderr)

    if cfg.workers == 1:
        for spec in pending:
            done(train_and_score(spec))
        return results
    threads = cfg.threads_per_worker or max(1, (os.cpu_count() or 1) // cfg.workers)
    env = _worker_env(threads)
    with concurrent.futures.ThreadPoolExecutor(cfg.workers) as ex:
        futures = [ex.submit(_in_subprocess, spec, env) for spec in pending]
        for f in concurrent.futures.as_completed(futures):
            done(f.result())
    return results


# --- the state of a sweep directory ---


def check_state(cfg: SweepConfig, out: Path) -> None:
    """Refuse a sweep directory whose runs were made under other values of an ``INVALIDATING`` field;
    record this config's values otherwise."""
    path = out / "sweep.json"
    now = cfg.fingerprint()
    if path.exists():
        before = json.loads(path.read_text(encoding="utf-8"))["fingerprint"]
        changed = [k for k in INVALIDATING if before.get(k) != now.get(k)]
        if changed:
            lines = "; ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed)
            raise ConfigError(f"{out}: its finished runs were made with other settings ({lines}); these change every "
                              "run, so the results would not be comparable. Use another out_dir, or delete "
                              f"{out / 'runs'} to start the sweep over")
    atomic_write_text(path, json.dumps({"fingerprint": now, "invalidating": list(INVALIDATING)}, indent=2) + "\n")


# --- analysis and outputs ---


def analyse(cfg: SweepConfig, runs: list[dict]) -> tuple[dict, np.ndarray]:
    """The fit on the seed's runs, the predicted optimum and its bootstrap intervals; (section, w*)."""
    W = np.array([[r["weights"][c] for c in cfg.categories] for r in runs])
    y = np.array([r["score"] for r in runs])
    eps = 0.5 / cfg.total_examples  # half an example: log(0) is out of reach, and a weight below it rounds to none
    f = blend.fit(W, y, kind=cfg.fit, eps=eps, grid=cfg.ridge)
    C = blend.draw_mixtures(len(cfg.categories), cfg.candidates, cfg.alpha, cfg.seed + 1)
    w_star = blend.optimum(f["theta"], C, kind=cfg.fit, eps=eps, top_k=cfg.top_k)
    w_ref = cfg.default_weights()
    at = blend.predict(f["theta"], blend.features(np.stack([w_star, w_ref]), cfg.fit, eps))
    boot = blend.bootstrap_optimum(W, y, C, w_ref, kind=cfg.fit, eps=eps, lam=f["lambda"], top_k=cfg.top_k,
                                   resamples=cfg.bootstrap, seed=cfg.seed + 2)
    theta = f.pop("theta")
    fit_section = {**f, "features": "w" if cfg.fit == "linear" else f"log(w + {eps:g})", "runs": len(runs),
                   "intercept": float(theta[0]), "coefficients": dict(zip(cfg.categories, map(float, theta[1:])))}
    opt = {"weights": dict(zip(cfg.categories, map(float, w_star))), "predicted_score": float(at[0]),
           "predicted_default": float(at[1]), "predicted_gain": float(at[0] - at[1]),
           "candidates": cfg.candidates, "top_k": cfg.top_k}
    if boot:
        opt.update({"bootstrap": boot["resamples"],
                    "weights_ci": dict(zip(cfg.categories, boot["weights_ci"])),
                    "predicted_score_ci": boot["predicted_score_ci"], "predicted_gain_ci": boot["predicted_gain_ci"]})
    return {"fit": fit_section, "optimum": opt}, w_star


def paired(after: dict, before: dict) -> dict:
    from postlab.evals.metrics import paired_difference

    mean, se, n = paired_difference(after["item_scores"], before["item_scores"])
    return {"difference": mean, "se": se, "n": n}


def decision_section(pairs: list[tuple[dict, dict]], seed: int) -> dict:
    a, b = [p[0]["score"] for p in pairs], [p[1]["score"] for p in pairs]
    acc, n_pairs = blend.decision_accuracy(a, b)
    return {"runs": [p[0]["id"] for p in pairs], "seeds": [seed, seed + 1], "scores": [a, b],
            "accuracy": acc, "pairs": n_pairs, "seed_sd": blend.seed_noise(a, b)}


def _row(r: dict, cats: list[str]) -> dict:
    return {k: r[k] for k in ("id", "seed", "weights", "counts", "repeats", "score", "se", "n", "by_category",
                              "steps", "last_loss", "seconds")} | {"weights": {c: r["weights"][c] for c in cats}}


def _num(x: float | None, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)  # null: undefined (e.g. a rank correlation of equal scores)


def format_table(res: dict) -> str:
    cats = res["categories"]
    head = f"{'run':<14}" + "".join(f"{c[:6]:>8}" for c in cats) + f"{'score':>9}{'se':>7}"
    lines = [f"held-out gold score of SFT on {res['total_examples']} demonstrations per run ({res['model']}; "
             f"{res['test_items']} test items); weights in %", head]
    rows = res["runs"] + res["decision"].get("reruns", []) + ([res["predicted_run"]] if res.get("predicted_run") else [])
    for r in rows:
        lines.append(f"{r['id']:<14}" + "".join(f"{100 * r['weights'][c]:8.1f}" for c in cats)
                     + f"{r['score']:9.3f}{r['se']:7.3f}")
    f, o = res["fit"], res["optimum"]
    lines.append(f"fit: ridge on {f['features']}, lambda {f['lambda']:g} (least leave-one-out error), {f['runs']} runs; "
                 f"LOO R² {_num(f['loo_r2'], '.2f')}, LOO rank correlation {_num(f['loo_spearman'], '.2f')}")
    ci = o.get("weights_ci", {})
    lines.append("predicted optimum (mean of the top "
                 f"{o['top_k']} of {o['candidates']} candidates; 95% bootstrap interval over runs):")
    for c in cats:
        band = f" [{100 * ci[c][0]:.1f}, {100 * ci[c][1]:.1f}]" if c in ci else ""
        lines.append(f"  {c:<18}{100 * o['weights'][c]:6.1f}%{band}  (default {100 * res['default_weights'][c]:.1f}%)")
    g_ci = o.get("predicted_gain_ci")
    lines.append(f"predicted score {o['predicted_score']:.3f}, default {o['predicted_default']:.3f}: gain "
                 f"{o['predicted_gain']:+.3f}" + (f" [{g_ci[0]:+.3f}, {g_ci[1]:+.3f}]" if g_ci else ""))
    if res.get("predicted_vs_default"):
        p = res["predicted_vs_default"]
        lines.append(f"measured: predicted {res['predicted_run']['score']:.3f} vs default {res['runs'][0]['score']:.3f}; "
                     f"paired difference {p['difference']:+.3f} ± {p['se']:.3f} (SE, {p['n']} items)")
    d = res["decision"]
    if d.get("pairs"):
        lines.append(f"decision accuracy across seeds {d['seeds'][0]} and {d['seeds'][1]}: {d['accuracy']:.2f} of "
                     f"{d['pairs']} pairs of {len(d['runs'])} runs ordered alike; seed sd of one run's score "
                     f"{_num(d['seed_sd'], '.3f')}")
    return "\n".join(lines)


def plot(res: dict, path: Path) -> None:
    """One panel per component: each run's score (± SE) against that component's weight; the default run
    (black square), the predicted run (red star) and the optimum's weight with its bootstrap interval."""
    pyplot = plt()
    cats = res["categories"]
    cols = min(4, len(cats))
    rows = -(-len(cats) // cols)
    fig, axes = pyplot.subplots(rows, cols, figsize=(3.3 * cols, 2.8 * rows), squeeze=False, sharey=True)
    o, pred = res["optimum"], res.get("predicted_run")
    for i, c in enumerate(cats):
        ax = axes[i // cols][i % cols]
        x = [r["weights"][c] for r in res["runs"]]
        ax.errorbar(x, [r["score"] for r in res["runs"]], yerr=[r["se"] for r in res["runs"]], fmt="o", ms=3,
                    color="#1f77b4", ecolor="#9ecae1", lw=1, label="runs")
        ax.plot(x[0], res["runs"][0]["score"], "s", color="black", ms=6, label="default")
        ax.axvline(o["weights"][c], color="#d62728", ls="--", lw=1, label="predicted optimum")
        if c in o.get("weights_ci", {}):
            ax.axvspan(*o["weights_ci"][c], color="#d62728", alpha=0.12)
        if pred:
            ax.plot(pred["weights"][c], pred["score"], "*", color="#d62728", ms=11, label="predicted, measured")
        ax.set_title(c, fontsize=9)
        ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel("weight")
        if i % cols == 0:
            ax.set_ylabel("held-out gold score")
    for j in range(len(cats), rows * cols):
        axes[j // cols][j % cols].axis("off")
    axes[0][0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)


def run(cfg: SweepConfig) -> dict:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with file_lock(out, wait=False) as mine:
        if not mine:
            raise ConfigError(f"{out}: another postlab sweep is using this directory; wait for it or choose another out_dir")
        clean_stale_tmp_tree(out)
        return _sweep(cfg, out)


def _sweep(cfg: SweepConfig, out: Path) -> dict:
    started = time.time()
    check_state(cfg, out)
    pool = build_pool(out, cfg.categories)
    specs = plan_runs(cfg)
    reruns = [{**s, "id": f"{s['id']}-seed{cfg.seed + 1}", "seed": cfg.seed + 1} for s in specs[: cfg.decision_runs]]
    results = execute(cfg, out, pool, specs + reruns)
    main = [results[s["id"]] for s in specs]
    section, w_star = analyse(cfg, main)
    res: dict = {"model": cfg.model, "suite": SUITE, "split": "test", "test_items": cfg.test_items,
                 "total_examples": cfg.total_examples, "seed": cfg.seed, "categories": cfg.categories,
                 "default_weights": dict(zip(cfg.categories, map(float, cfg.default_weights()))),
                 "pool_sizes": {c: len(pool[c]) for c in cfg.categories},
                 "runs": [_row(r, cfg.categories) for r in main], **section}
    if cfg.train_predicted:
        spec = run_spec(cfg, "predicted", w_star, cfg.seed)
        before = _result(out, "predicted")
        if before is not None and before["counts"] != spec["counts"]:
            print("sweep: the predicted mixture moved since it was trained (more runs?); training it again",
                  file=sys.stderr)
            (out / "runs" / "predicted" / "result.json").unlink()
        predicted = execute(cfg, out, pool, [spec])["predicted"]
        res["predicted_run"] = _row(predicted, cfg.categories)
        res["predicted_vs_default"] = paired(predicted, main[0])
    res["decision"] = decision_section([(results[s["id"]], results[r["id"]]) for s, r in zip(specs, reruns)], cfg.seed)
    res["decision"]["reruns"] = [_row(results[r["id"]], cfg.categories) for r in reruns]
    res["figure"] = str(out / "plots.png")
    res["table"] = str(out / "table.txt")
    res["meta"] = meta(cfg.model_dump(mode="json"), started)
    res = finite(res)
    plot(res, out / "plots.png")
    atomic_write_text(out / "table.txt", format_table(res) + "\n")
    atomic_write_text(out / "results.json", json.dumps(res, indent=2, ensure_ascii=False) + "\n")
    return res


def main(cfg: SweepConfig) -> None:
    res = run(cfg)
    print(format_table(res))
    out = Path(cfg.out_dir)
    print(f"wrote {out / 'results.json'}, {out / 'table.txt'} and {out / 'plots.png'}")


if __name__ == "__main__":  # one run in a worker process: python -m postlab.science.sweep runs/<id>/spec.json
    from postlab.utils.threads import configure_threads_env

    configure_threads_env()
    from postlab.cli import _quiet_libraries

    _quiet_libraries()
    train_and_score(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
