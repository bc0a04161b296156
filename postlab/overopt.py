"""``postlab overopt``: reward over-optimisation, reproduced (Gao, Schulman & Hilton 2022).

    fetch → prompts → sample K per prompt from π_init → gold rater labels pairs → proxy reward models on
    N₁ < N₂ < … of those pairs → best-of-n against each proxy → RL against each proxy → fits and plots

A fixed gold reward (the gold rater) labels the comparisons the proxies learn from; best-of-n and RL
then optimise each proxy while the gold rater scores what they produce. With d = sqrt(KL(π‖π_init)),
Gao et al. find gold(d) = d(α − β·d) for best-of-n and d(α − β·log d) for RL. Both forms are linear in
(α, β), so the fit is one least-squares solve (`fit_form`). Math and how to read the plots:
docs/algorithms/overoptimization.md.

Plotted (and fitted) values are gains over π_init, centred per prompt: each prompt's mean gold (and
proxy) over max(n) samples of π_init is subtracted from that prompt's scores before averaging, so
every curve starts at (0, 0) and prompt difficulty does not add noise. Best-of-n uses the analytic
KL log n − (n − 1)/n; RL the per-response KL Σ_t log π(y_t) − log π_init(y_t) of each step's samples.

Each stage writes ``stages/<name>.json`` atomically after its outputs; a rerun skips finished stages
(the training stages also resume from their checkpoints). Results: ``overopt.json``, ``bon.png``,
``rl.png`` and ``gold.png`` in the run directory.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from postlab.config import Section, overlay_knobs, save_config, with_optional_knobs
from postlab.data.jsonl import read_jsonl
from postlab.errors import ConfigError, DataError
from postlab.evals.metrics import mean_se
from postlab.utils.io import atomic_write_text

SUITE = "spec"
MIN_EVAL_PROMPTS = 10  # fewer held-out prompts than this and print_results says the proxies' accuracy is uninformative
HELD_OUT_PROMPTS = 0.15  # fraction of the labelled prompts whose pairs measure every proxy's accuracy
FORMS = {"bon": "d(alpha - beta*d)", "rl": "d(alpha - beta*log d)"}


# --- the functional forms (Gao et al. 2022, eqs. 1 and 2) ---


def _design(d: np.ndarray, form: str) -> np.ndarray:
    """Columns multiplying (α, β): R = α·d − β·d² (bon) or α·d − β·d·log d (rl). (P,) -> (P, 2)."""
    if form == "bon":
        return np.stack([d, -d * d], axis=1)
    if form == "rl":
        return np.stack([d, -d * np.log(d)], axis=1)
    raise ValueError(f"form: expected bon or rl, got {form!r}")


def form_value(d, alpha: float, beta: float, form: str) -> np.ndarray:
    """R(d) of a fitted form; R(0) = 0 (d·log d → 0)."""
    d = np.asarray(d, dtype=np.float64)
    out = np.zeros_like(d)
    pos = d > 0
    out[pos] = _design(d[pos], form) @ np.array([alpha, beta])
    return out


def fit_form(d: Sequence[float], R: Sequence[float], form: str) -> dict:
    """Least squares of R against a form: (α, β) = argmin Σ_i (R_i − R(d_i))², R² = 1 − SS_res/SS_tot.

    Points with d = 0 are left out: both forms give R(0) = 0 whatever α and β, so they carry no
    information (and log 0 is undefined). Needs two points with distinct d > 0; otherwise α = β = None.
    R² is over the fitted points, None when they are all equal. The peak of the fitted curve, where
    it has one (β > 0): d* = α/(2β) for bon, d* = exp(α/β − 1) for rl."""
    d, R = np.asarray(d, dtype=np.float64), np.asarray(R, dtype=np.float64)
    keep = d > 0
    d, R = d[keep], R[keep]
    empty = {"form": FORMS[form], "alpha": None, "beta": None, "r2": None, "points": int(d.size),
             "d_peak": None, "kl_peak": None, "peak": None}
    if np.unique(d).size < 2:
        return empty
    X = _design(d, form)
    (alpha, beta), *_ = np.linalg.lstsq(X, R, rcond=None)
    ss_res = float(np.sum((R - X @ np.array([alpha, beta])) ** 2))
    ss_tot = float(np.sum((R - R.mean()) ** 2))
    d_peak = None
    if beta > 0:
        d_peak = alpha / (2 * beta) if form == "bon" else math.exp(min(alpha / beta - 1, 700.0))
        d_peak = d_peak if d_peak > 0 else None
    return {**empty, "alpha": float(alpha), "beta": float(beta), "r2": 1 - ss_res / ss_tot if ss_tot > 0 else None,
            "d_peak": d_peak, "kl_peak": None if d_peak is None else d_peak ** 2,
            "peak": None if d_peak is None else float(form_value([d_peak], alpha, beta, form)[0])}


def downturn(gold: Sequence[Sequence[float]], proxy: Sequence[Sequence[float]], peak: int | None = None) -> dict:
    """Did gold turn down while the proxy kept rising? Paired per prompt, over the curve's points.

    gold[t][j], proxy[t][j]: prompt j's score at point t (the same prompts at every point). The peak p is the
    point of highest mean gold; with D_j = gold[p][j] − gold[T][j] (T the last point) and
    U_j = proxy[T][j] − proxy[p][j], reports the mean and standard error over prompts of D (``gold_drop``) and
    U (``proxy_rise``) and z = mean(D)/SE(D). The peak is chosen by looking at the same data, so z is
    optimistic: read z ≈ 2 as a hint, a drop that outlives a rerun as the finding. ``peak`` names the point
    instead (fixed before the data were seen): then z is an honest paired z (``peak_named`` true)."""
    named = peak is not None
    if named and not 0 <= peak < len(gold):
        raise ValueError(f"downturn: peak point {peak} is not one of the curve's {len(gold)} points")
    peak = peak if named else int(np.argmax([float(np.mean(g)) for g in gold]))
    drop = [a - b for a, b in zip(gold[peak], gold[-1])]
    rise = [b - a for a, b in zip(proxy[peak], proxy[-1])]
    (d, d_se), (u, u_se) = mean_se(drop), mean_se(rise)
    return {"peak_point": peak, "last_point": len(gold) - 1, "gold_drop": d, "gold_drop_se": d_se,
            "z": d / d_se if d_se > 0 else None, "proxy_rise": u, "proxy_rise_se": u_se, "prompts": len(drop),
            "peak_named": named}


# --- config ---


class Knobs(Section):
    """Every preset knob; in OveroptConfig each is optional and None means "the preset's value"."""

    model: str = Field(..., description="π_init, the policy every proxy is optimised from (and the proxies' backbone)")
    bf16: bool | Literal["auto"] = Field("auto", description="bf16 sampling and bf16 autocast in training: true, false, or auto = the faster on this machine (postlab.machine)")
    batch_size: int = Field(32, ge=1, description="sequences generated together")
    max_new_tokens: int = Field(64, ge=1, description="response cap everywhere (proxy data, best-of-n, RL), so π_init is one distribution")
    rm_prompts: int = Field(200, ge=2, description="train prompts whose samples the gold rater compares (the first ones of the suite's train split)")
    sample_k: int = Field(6, ge=2, description="samples of π_init per such prompt (temperature 1)")
    template_candidates: bool = Field(False, description="also compare each prompt's template answer (passes every check), so gold decides pairs even when the policy's samples all score alike (the tiny random model's all score 0)")
    pairs_per_prompt: int = Field(15, ge=1, description="compared pairs per prompt at most (all pairs of 6 samples = 15; gold ties are dropped: on SmolLM2's samples gold decides about 1 pair in 9)")
    rm_pairs: list[int] = Field(default_factory=lambda: [32, 96, 288], description="training pairs of each proxy, increasing (nested random subsets)")
    rm_lr: float = Field(3e-4, gt=0, description="proxy learning rate (top layers + a fresh head: 3e-4, as postlab run's reward model)")
    rm_trainable_layers: int = Field(4, ge=0, description="proxies train only their top N layers + head over cached activations (0 = full fine-tuning)")
    rm_epochs: float = Field(1.0, gt=0, description="proxy passes over its pairs")
    rm_max_seq_len: int = Field(256, ge=16, description="token cap for proxy pairs (longer pairs are skipped)")
    policy_prompts: int = Field(48, ge=1, description="prompts that best-of-n and RL optimise on and are measured on (the train prompts after rm_prompts: no proxy saw them)")
    bon_n: list[int] = Field(default_factory=lambda: [1, 2, 4, 8, 16], description="values of n (1 is always added; max(n) samples per prompt are drawn once)")
    bon_named_peak: int | None = Field(None, ge=1, description="an n named before looking as best-of-n's peak: each curve also reports gold from it to the largest n, paired per prompt (`downturn_named`, an honest z; the printed `downturn` picks its peak from the data)")
    rl_algo: Literal["grpo", "rloo", "ppo"] = Field("grpo", description="RL algorithm against each proxy")
    rl_steps: int = Field(20, ge=1, description="RL steps per proxy")
    rl_prompts_per_step: int = Field(4, ge=1, description="prompts per RL step")
    rl_k: int = Field(4, ge=2, description="samples per prompt per step (PPO: one each of rl_k × rl_prompts_per_step prompts)")
    rl_lr: float = Field(2e-5, gt=0, description="RL learning rate (high, so that rl_steps move the policy far from π_init)")
    rl_kl_coef: float = Field(0.01, gt=0, description="β of the KL penalty (small: Gao et al. find it acts mostly as early stopping)")
    rl_steps_per_point: int = Field(4, ge=1, description="RL steps per point of the RL curve: the probe runs every this many steps (without it, this many steps' own samples are averaged into a point)")
    rl_probe_prompts: int = Field(32, ge=0, description="each RL curve point: gold, proxy and KL of the policy on the first N policy prompts, the same ones and seeds every time (postlab.evals.probe; grpo and rloo); 0 = from each step's own samples, a new draw of prompts every step")
    rl_probe_samples: int = Field(2, ge=1, description="samples per probe prompt")


PRESETS: dict[str, Knobs] = {
    # SmolLM2-135M-Instruct, full fine-tuning: the knobs of the run in docs/results.md ("Reward
    # over-optimisation on SmolLM2"; 69 min beside other jobs on a 2-core CPU). The field defaults gave
    # proxies of 0.53-0.63 and an RL stage that stayed near d = 0. Since the audited gate, gold decides about
    # 1 pair in 9 of SmolLM2's samples (run overopt3: 321 of 2,990), ~640 from 400 prompts: hence 400, not 800.
    "default": Knobs(model="smollm2-135m-instruct", rm_prompts=400, rm_pairs=[50, 150, 400], rm_epochs=2.0,
                     policy_prompts=96, rl_lr=6e-5, rl_steps=30, rl_steps_per_point=5),
    # The tiny random model: every stage runs in seconds; for CI and smoke tests.
    "tiny": Knobs(model="tiny", bf16=False, batch_size=16, max_new_tokens=16, rm_prompts=24, sample_k=2,
                  template_candidates=True, pairs_per_prompt=3, rm_pairs=[4, 8, 16], rm_lr=1e-3, rm_max_seq_len=1024,
                  rm_trainable_layers=1,
                  policy_prompts=6, bon_n=[1, 2, 4, 8], rl_steps=6, rl_prompts_per_step=2, rl_k=2, rl_lr=1e-3,
                  rl_steps_per_point=2),
}


class _Options(Section):
    """postlab overopt: reward over-optimisation, reproduced (every knob below defaults to the preset's value)."""

    preset: Literal["default", "tiny"] = Field("default", description="default = SmolLM2-135M-Instruct; tiny = random test model")
    out_dir: str | None = Field(None, description="run directory (default runs/overopt-<preset>)")
    progress: bool = Field(True, description="show progress bars")

    def check(self) -> None:
        super().check()
        k = self.knobs()
        if sorted(set(k.rm_pairs)) != k.rm_pairs or not k.rm_pairs or k.rm_pairs[0] < 1:
            raise ConfigError(f"rm_pairs: expected increasing positive integers, got {k.rm_pairs}")
        if not k.bon_n or min(k.bon_n) < 1:
            raise ConfigError(f"bon_n: expected positive integers, got {k.bon_n}")
        ns = sorted({1, *k.bon_n})
        if k.bon_named_peak is not None and (k.bon_named_peak not in ns or k.bon_named_peak == ns[-1]):
            raise ConfigError(f"bon_named_peak: {k.bon_named_peak} must be one of bon_n below its largest ({ns})")
        if k.rl_steps_per_point > k.rl_steps:
            raise ConfigError(f"rl_steps_per_point ({k.rl_steps_per_point}) must be ≤ rl_steps ({k.rl_steps})")
        from postlab.tasks.suite import load_suite

        available = len(load_suite(SUITE, split="train"))
        if k.rm_prompts + k.policy_prompts > available:
            raise ConfigError(f"rm_prompts + policy_prompts ({k.rm_prompts} + {k.policy_prompts}) must be ≤ the "
                              f"{available} train prompts of the {SUITE} suite")

    def knobs(self) -> Knobs:
        """The preset's knobs with this config's non-None values on top (validated: errors name the knob)."""
        return overlay_knobs(Knobs, PRESETS[self.preset], self, self.preset)

    def directory(self) -> Path:
        return Path(self.out_dir or f"runs/overopt-{self.preset}")


OveroptConfig = with_optional_knobs("OveroptConfig", _Options, Knobs)


# --- stage bookkeeping ---


class Stages:
    """Runs each named stage once: its result, wall time and knobs go to ``stages/<name>.json`` atomically."""

    def __init__(self, out: Path, names: list[str], knobs: dict):
        self.dir, self.names, self.knobs = out / "stages", names, knobs
        self.dir.mkdir(parents=True, exist_ok=True)
        self.t0 = time.perf_counter()
        self._warn_changed_knobs()

    def _warn_changed_knobs(self) -> None:
        changed: dict[str, tuple] = {}
        for path in sorted(self.dir.glob("*.json")):
            before = json.loads(path.read_text()).get("knobs", {})
            changed.update({k: (v, self.knobs.get(k)) for k, v in before.items() if self.knobs.get(k) != v})
        if changed:
            what = ", ".join(f"{k} {a} → {b}" for k, (a, b) in sorted(changed.items()))
            print(f"warning: {self.dir.parent} has finished stages made with other settings ({what}); they are kept "
                  "(delete their stages/*.json, or use another --out, to redo them)", file=sys.stderr)

    def run(self, name: str, fn: Callable[[], dict]) -> dict:
        from postlab.run import finite

        tag = f"[{self.names.index(name) + 1}/{len(self.names)} {name}]"
        path = self.dir / f"{name}.json"
        if path.exists():
            print(f"{tag} done already, skipping", file=sys.stderr)
            return json.loads(path.read_text())["result"]
        print(f"{tag} running ({(time.perf_counter() - self.t0) / 60:.1f} min so far)", file=sys.stderr)
        t = time.perf_counter()
        result = finite(fn())
        seconds = round(time.perf_counter() - t, 2)
        atomic_write_text(path, json.dumps({"result": result, "seconds": seconds, "knobs": self.knobs}, indent=2,
                                           ensure_ascii=False) + "\n")
        print(f"{tag} finished in {seconds / 60:.1f} min", file=sys.stderr)
        return result

    def done(self, name: str) -> bool:
        return (self.dir / f"{name}.json").exists()

    def timings(self) -> dict[str, float]:
        return {n: json.loads((self.dir / f"{n}.json").read_text())["seconds"] for n in self.names
                if (self.dir / f"{n}.json").exists()}


def _drop_checkpoints(run_dir: Path) -> None:
    """A finished stage needs only its final model; optimizer checkpoints are ~1.6 GB each on SmolLM2."""
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)


# --- stages ---


def write_prompts(out: Path, k: Knobs) -> dict:
    """The first rm_prompts train items for the proxies' data, the next policy_prompts for best-of-n and RL."""
    from postlab.tasks.suite import load_suite, write_suite

    items = load_suite(SUITE, split="train")
    rm_items, policy_items = items[: k.rm_prompts], items[k.rm_prompts : k.rm_prompts + k.policy_prompts]
    paths = {"rm": out / "data" / "rm_prompts.jsonl", "policy": out / "data" / "policy_prompts.jsonl"}
    write_suite(rm_items, paths["rm"])
    write_suite(policy_items, paths["policy"])
    return {"rm": str(paths["rm"]), "policy": str(paths["policy"]), "rm_prompts": len(rm_items),
            "policy_prompts": len(policy_items)}


def _sampling(k: Knobs):
    from postlab.rollout import SamplingParams

    return SamplingParams(temperature=1.0, max_new_tokens=k.max_new_tokens, seed=0)


def sample_candidates(policy: str, prompts: dict, out: Path, k: Knobs, progress: bool) -> dict:
    """sample_k temperature-1 samples of π_init per proxy prompt (+ template answers when asked)."""
    from postlab.train.sample import SampleConfig, sample

    path = sample(SampleConfig(model=policy, suite=prompts["rm"], split="train",
                               out=str(out / "data" / "samples.jsonl"), k=k.sample_k, batch_size=k.batch_size,
                               dtype="bf16" if k.bf16 else "fp32", sampling=_sampling(k), progress=progress))
    rows = [row for _, row in read_jsonl(path)]
    templates = 0
    if k.template_candidates:
        from postlab.tasks import demos

        wanted = {row["prompt_id"]: row["prompt"] for row in rows}
        answers = {r["id"]: r["messages"][-1]["content"] for r in demos.template_demos(None)[0] if r["id"] in wanted}
        rows += [{"prompt_id": pid, "sample_index": k.sample_k, "prompt": wanted[pid], "completion": [{"role": "assistant", "content": text}],
                  "policy": "template"} for pid, text in answers.items()]
        templates = len(answers)
    merged = out / "data" / "candidates.jsonl"
    atomic_write_text(merged, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return {"candidates": str(merged), "rows": len(rows), "template_answers": templates}


def label_pairs(candidates: str, prompts: dict, out: Path, k: Knobs) -> dict:
    """Gold labels every pair, then whole prompts are held out (HELD_OUT_PROMPTS) to measure each
    proxy; the rest are shuffled once, so every proxy's pairs are a prefix (nested random subsets)."""
    from postlab.data.preferences import load_preferences
    from postlab.raters import label as labeling
    from postlab.train.rm import split_by_prompt

    data = out / "data"
    cfg = labeling.LabelConfig(candidates=candidates, suite=prompts["rm"], rater="gold", out=str(data / "prefs.jsonl"),
                               max_pairs_per_prompt=k.pairs_per_prompt, seed=0)
    stats = labeling.label(cfg)
    train, held = split_by_prompt(load_preferences(cfg.out), HELD_OUT_PROMPTS, 0)
    random.Random(0).shuffle(train)
    write = lambda path, pairs: atomic_write_text(  # noqa: E731
        path, "".join(json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in pairs))
    write(data / "prefs_train.jsonl", train)
    write(data / "prefs_eval.jsonl", held)
    return {"label": stats, "train_file": str(data / "prefs_train.jsonl"), "train_pairs": len(train),
            "eval_file": str(data / "prefs_eval.jsonl"), "eval_pairs": len(held),
            "train_prompts": len({p.prompt_id for p in train}), "eval_prompts": len({p.prompt_id for p in held})}


def train_proxy(policy: str, prefs: dict, n_pairs: int, out: Path, k: Knobs, progress: bool) -> dict:
    """A Bradley–Terry reward model on the first n_pairs training pairs, from π_init's weights."""
    from postlab.train import rm
    from postlab.train.common import CheckpointConfig, OptimConfig

    lines = Path(prefs["train_file"]).read_text(encoding="utf-8").splitlines(keepends=True)
    subset = out / "data" / f"prefs_{n_pairs}.jsonl"
    atomic_write_text(subset, "".join(lines[:n_pairs]))
    steps = math.ceil(n_pairs / 8 * k.rm_epochs)
    has_eval = prefs["eval_pairs"] > 0
    cfg = rm.RMConfig(model=policy, out_dir=str(out / "rm" / str(n_pairs)), margin="none",
                      data=rm.RMDataConfig(train_file=str(subset), eval_file=prefs["eval_file"] if has_eval else None,
                                           eval_fraction=0.0, max_seq_len=k.rm_max_seq_len),
                      trainable_layers=k.rm_trainable_layers,
                      optim=OptimConfig(lr=k.rm_lr, epochs=k.rm_epochs, batch_size=8, warmup_steps=min(5, steps // 5),
                                        bf16=k.bf16, group_by_length=True),
                      checkpoint=CheckpointConfig(save_every=50, resume=True, progress=progress))
    return rm.train(cfg)


def _per_prompt(samples: str) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """prompt id -> proxy scores, gold scores of its samples (a `postlab bon` samples.jsonl)."""
    proxy: dict[str, list[float]] = {}
    gold: dict[str, list[float]] = {}
    for _, row in read_jsonl(samples):
        proxy.setdefault(row["id"], []).append(row["proxy"])
        gold.setdefault(row["id"], []).append(row["gold"])
    return proxy, gold


def _centred(scores: dict[str, list[float]]) -> list[list[float]]:
    return [[s - sum(v) / len(v) for s in v] for v in scores.values()]


def bon_curve(samples: str, ns: list[int]) -> dict:
    """Best-of-n gain over π_init for every n: postlab bon's exact all-subsets expectation applied to
    per-prompt centred scores (E_n is linear and its weights sum to 1, so E_n[v − c] = E_n[v] − c;
    the n = 1 point is 0 and the standard errors are paired)."""
    from postlab.train.bon import summarize

    proxy, gold = _per_prompt(samples)
    rows = summarize(_centred(proxy), _centred(gold), ns)
    turn = downturn(*_bon_points(samples, ns))
    return {"n": [r["n"] for r in rows], "kl": [r["kl"] for r in rows], "sqrt_kl": [r["sqrt_kl"] for r in rows],
            "gold": [r["gold"] for r in rows], "gold_se": [r["gold_se"] for r in rows],
            "proxy": [r["proxy"] for r in rows], "proxy_se": [r["proxy_se"] for r in rows],
            "base_gold": float(np.mean([np.mean(v) for v in gold.values()])),
            "base_proxy": float(np.mean([np.mean(v) for v in proxy.values()])), "prompts": len(gold),
            "downturn": turn}


def _bon_points(samples: str, ns: list[int]) -> tuple[list[list[float]], list[list[float]]]:
    """gold[t][j], proxy[t][j]: prompt j's centred best-of-n expectation at the t-th n of sorted(set(ns))."""
    from postlab.train.bon import best_of_n_expectation

    proxy, gold = _per_prompt(samples)
    P, G = _centred(proxy), _centred(gold)
    at = lambda n, v: [best_of_n_expectation(p, x, n) for p, x in zip(P, v)]  # noqa: E731
    points = sorted(set(ns))
    return [at(n, G) for n in points], [at(n, P) for n in points]


def bon_named_downturn(samples: str, ns: list[int], named: int) -> dict:
    """``downturn`` of one best-of-n curve from the n named in advance (not the data's peak) to the largest n."""
    ns = sorted(set(ns))
    if named not in ns or named == ns[-1]:
        raise ConfigError(f"bon_named_peak: {named} must be one of bon_n below its largest ({ns})")
    return downturn(*_bon_points(samples, ns), peak=ns.index(named))


def proxy_gaps(samples: dict[int, str], ns: list[int]) -> list[dict]:
    """The test that chooses nothing: best-of-n under the largest proxy against each smaller one, on the same
    samples (every proxy after the first rescores the first one's draw), paired per prompt at every n.

    For proxies a (largest) and b: Δ_j(n) = E_n[g | a](j) − E_n[g | b](j), prompt j's gold of best-of-n chosen by a
    minus chosen by b; mean ± SE over prompts. No peak or point is picked from the data; a gap that opens as n
    grows is the smaller proxy's over-optimisation (Gao et al. 2022: smaller reward models peak earlier and lower)."""
    from postlab.train.bon import best_of_n_expectation

    sizes = sorted(samples)
    per = {s: _per_prompt(samples[s]) for s in sizes}
    ids = sorted(per[sizes[-1]][1])
    if any(sorted(per[s][1]) != ids or any(per[s][1][i] != per[sizes[-1]][1][i] for i in ids) for s in sizes):
        raise DataError(f"proxy_gaps: the proxies' best-of-n samples differ ({', '.join(samples.values())}); "
                        "the comparison needs one draw scored by every proxy")

    def at(s: int, n: int) -> list[float]:
        proxy, gold = per[s]
        return [best_of_n_expectation(proxy[i], gold[i], n) for i in ids]

    gaps = []
    for small in sizes[:-1]:
        rows = []
        for n in sorted(set(ns)):
            gap, se = mean_se([a - b for a, b in zip(at(sizes[-1], n), at(small, n))])
            rows.append({"n": n, "gold_gap": gap, "gold_gap_se": se})
        gaps.append({"pairs": sizes[-1], "against": small, "prompts": len(ids), "rows": rows})
    return gaps


def _bon_config(policy: str, rm_dir: str, prompts: dict, reuse: str | None, run_dir: Path, k: Knobs, progress: bool):
    from postlab.train import bon

    return bon.BoNConfig(policy=policy, rm=rm_dir, suite=prompts["policy"], split="train", n=sorted({1, *k.bon_n}),
                         out_dir=str(run_dir), samples=reuse, batch_size=k.batch_size,
                         dtype="bf16" if k.bf16 else "fp32", sampling=_sampling(k), progress=progress)


def best_of_n(policy: str, rm_dir: str, prompts: dict, reuse: str | None, run_dir: Path, k: Knobs,
              progress: bool) -> dict:
    """postlab bon against one proxy; the first proxy's run draws the samples, later ones rescore them."""
    from postlab.train import bon

    cfg = _bon_config(policy, rm_dir, prompts, reuse, run_dir, k, progress)
    bon.run(cfg)
    return {"samples": str(run_dir / "samples.jsonl"), "curve": bon_curve(str(run_dir / "samples.jsonl"), cfg.n)}


def rl_curve(metrics: list[dict], batch_at: Callable[[int], list], base_gold: dict[str, float],
             base_proxy: dict[str, float], steps_per_point: int) -> dict:
    """RL gain over π_init from the per-step metrics (`gold/train_score`, `proxy/score`,
    `objective/kl`: means over that step's samples). Logged step s sampled the prompts batch_at(s − 1);
    each is centred by its π_init mean, then every steps_per_point consecutive steps are averaged into
    one point (KL averaged before the square root; negative k1 estimates count as d = 0). The first
    point is π_init itself, (0, 0, 0)."""
    rows = sorted((m for m in metrics if "gold/train_score" in m and "objective/kl" in m), key=lambda m: m["step"])
    gold, proxy, kl, steps = [], [], [], []
    for m in rows:
        ids = [it.id for it in batch_at(m["step"] - 1)]
        gold.append(m["gold/train_score"] - sum(base_gold[i] for i in ids) / len(ids))
        proxy.append(m["proxy/score"] - sum(base_proxy[i] for i in ids) / len(ids))
        kl.append(m["objective/kl"])
        steps.append(m["step"])
    curve: dict[str, list] = {"step": [0], "kl": [0.0], "sqrt_kl": [0.0], "gold": [0.0], "gold_se": [0.0],
                              "proxy": [0.0], "proxy_se": [0.0]}
    se = lambda xs: float(np.std(xs, ddof=1) / math.sqrt(len(xs))) if len(xs) > 1 else None  # noqa: E731
    for s in range(0, len(rows), steps_per_point):
        part = slice(s, s + steps_per_point)
        mean_kl = float(np.mean(kl[part]))
        curve["step"].append(steps[part][-1])
        curve["kl"].append(mean_kl)
        curve["sqrt_kl"].append(math.sqrt(max(mean_kl, 0.0)))
        curve["gold"].append(float(np.mean(gold[part])))
        curve["gold_se"].append(se(gold[part]))
        curve["proxy"].append(float(np.mean(proxy[part])))
        curve["proxy_se"].append(se(proxy[part]))
    return curve


def probe_curve(rows: list[dict], base_gold: dict[str, float], base_proxy: dict[str, float]) -> dict:
    """RL gain over π_init from the fixed probe (``postlab.evals.probe``): at each probed step, every probe
    prompt's mean gold and proxy minus its π_init mean, averaged over the prompts (standard errors over prompts);
    KL is the probe's mean per-response k1 estimate (a negative one counts as d = 0). The first point is π_init
    itself, measured (step 0)."""
    curve: dict = {k: [] for k in ("step", "kl", "sqrt_kl", "gold", "gold_se", "proxy", "proxy_se")}
    ids = [i for i in rows[0]["per_prompt"] if all(i in r["per_prompt"] for r in rows)] if rows else []
    for row in rows:
        per = row["per_prompt"]
        curve["step"].append(row["step"])
        curve["kl"].append(row["kl"])
        curve["sqrt_kl"].append(math.sqrt(max(row["kl"], 0.0)))
        for name, base in (("gold", base_gold), ("proxy", base_proxy)):
            mean, se = mean_se([p[name] - base[i] for i, p in per.items()])
            curve[name].append(mean)
            curve[f"{name}_se"].append(se)
    if ids:
        curve["downturn"] = downturn(*([[r["per_prompt"][i][name] for i in ids] for r in rows] for name in ("gold", "proxy")))
    return curve


def train_rl(policy: str, rm_dir: str, prompts: dict, samples: str, run_dir: Path, k: Knobs, progress: bool) -> dict:
    """RL against one proxy on the policy prompts; gold, proxy and KL to π_init on the fixed probe (grpo, rloo with
    ``rl_probe_prompts``) or from every step's own samples."""
    from postlab.evals.probe import ProbeConfig, read_probe
    from postlab.rollout import SamplingParams
    from postlab.tasks.suite import load_suite
    from postlab.train.common import CheckpointConfig
    from postlab.train.rl_common import RewardConfig, RLOptimConfig, prompt_batches

    common = dict(model=policy, out_dir=str(run_dir), suite=prompts["policy"], split="train", steps=k.rl_steps,
                  kl_coef=k.rl_kl_coef, reward=RewardConfig(source=f"rm:{rm_dir}"),
                  sampling=SamplingParams(temperature=1.0, max_new_tokens=k.max_new_tokens, seed=0),
                  optim=RLOptimConfig(lr=k.rl_lr, bf16=k.bf16),
                  checkpoint=CheckpointConfig(save_every=10, keep_last=1, resume=True, progress=progress))
    if k.rl_algo == "ppo":
        from postlab.train import ppo

        per_step = k.rl_prompts_per_step * k.rl_k
        cfg = ppo.PPOConfig(**common, prompts_per_step=per_step, minibatch_size=min(8, per_step), ppo_epochs=2)
        result = ppo.train(cfg)
    else:
        from postlab.train import grpo

        per_step = k.rl_prompts_per_step
        probe = ProbeConfig(every=k.rl_steps_per_point if probed(k) else 0, limit=max(k.rl_probe_prompts, 1),
                            samples=k.rl_probe_samples)
        cfg = grpo.GRPOConfig(**common, advantage=k.rl_algo, k=k.rl_k, prompts_per_step=per_step, probe=probe)
        result = grpo.train(cfg)
    proxy, gold = _per_prompt(samples)
    mean = lambda d: {i: sum(v) / len(v) for i, v in d.items()}  # noqa: E731
    if probed(k):
        return {"train": result, "curve": probe_curve(read_probe(run_dir), mean(gold), mean(proxy)), "probe": True}
    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    # the recipes draw each step's prompts with prompt_batches(items, prompts_per_step, optim.seed, 0)
    batch_at = prompt_batches(load_suite(prompts["policy"], split="train"), per_step, cfg.optim.seed, 0)
    return {"train": result, "curve": rl_curve(metrics, batch_at, mean(gold), mean(proxy), k.rl_steps_per_point),
            "probe": False}


def probed(k: Knobs) -> bool:
    """Whether the RL curves come from the fixed probe (grpo and rloo; PPO's come from its steps' samples)."""
    return k.rl_probe_prompts > 0 and k.rl_algo != "ppo"


# --- results ---


def build_results(k: Knobs, proxies: dict[int, dict], bons: dict[int, dict], rls: dict[int, dict],
                  prefs: dict | None = None) -> dict:
    curves, fits = [], []
    for method, runs in (("bon", bons), ("rl", rls)):
        for n_pairs, res in runs.items():
            c = res["curve"]
            curves.append({"method": method, "pairs": n_pairs, "rm": proxies[n_pairs]["model"], **c})
            for target in ("gold", "proxy"):
                fits.append({"method": method, "pairs": n_pairs, "target": target,
                             **fit_form(c["sqrt_kl"], c[target], method)})
    return {
        "model": k.model, "suite": SUITE,
        "plotted": ("gain over π_init, centred per prompt: each prompt's mean score over the best-of-n samples of "
                    "π_init is subtracted from its scores before averaging (gold: fraction of the item's checks "
                    "passed; proxy: reward-model score); x = sqrt(KL(π‖π_init)) in sqrt(nats): best-of-n "
                    "log n − (n−1)/n, RL the mean per-response k1 estimate on the fixed probe (grpo, rloo with "
                    "rl_probe_prompts > 0: the same prompts and seeds at every point) or over each point's steps' own samples"),
        "proxies": [{"pairs": n, **{key: p.get(key) for key in ("model", "train_pairs", "eval_pairs",
                                                                 "accuracy_vs_labels", "accuracy_vs_gold", "steps")}}
                    for n, p in proxies.items()],
        # the prompts the proxies' pairs come from: a held-out accuracy over a handful of prompts says little
        "label": {key: (prefs or {}).get(key) for key in ("train_pairs", "eval_pairs", "train_prompts", "eval_prompts")},
        "curves": curves, "fits": fits, "knobs": k.model_dump(mode="json"),
    }


def _axes_pair(ax, curve: dict, fits: dict, method: str):
    """Gold (left axis, green) and proxy (right axis, blue): measured points and fitted forms."""
    d = np.array(curve["sqrt_kl"])
    grid = np.linspace(0, max(d.max(), 1e-3) * 1.05, 200)
    ax2 = ax.twinx()
    for axis, target, color, marker in ((ax, "gold", "tab:green", "o"), (ax2, "proxy", "tab:blue", "s")):
        se = [s or 0.0 for s in curve[f"{target}_se"]]
        axis.errorbar(d, curve[target], yerr=se, fmt=marker, color=color, ms=4, label=f"{target} (measured)")
        f = fits[target]
        if f["alpha"] is not None:
            r2 = "—" if f["r2"] is None else f"{f['r2']:.2f}"
            label = f"{target} fit (α={f['alpha']:.3g}, β={f['beta']:.3g}, R²={r2})"
            axis.plot(grid, form_value(grid, f["alpha"], f["beta"], method), color=color,
                      ls="-" if target == "gold" else "--", label=label)
        axis.set_ylabel(f"{target} gain over π_init", color=color)
    ax.axhline(0, color="0.8", lw=0.8)
    ax.set_xlabel("d = sqrt(KL(π‖π_init))")
    lines = [h for a in (ax, ax2) for h in a.get_legend_handles_labels()[0]]
    ax.legend(lines, [h.get_label() for h in lines], fontsize=6, loc="best")


def plot(results: dict, out: Path) -> list[str]:
    """bon.png and rl.png (one panel per proxy: gold and proxy with fits) and gold.png (gold of every
    proxy, best-of-n beside RL)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fit = {(f["method"], f["pairs"], f["target"]): f for f in results["fits"]}
    acc = {p["pairs"]: p["accuracy_vs_gold"] for p in results["proxies"]}
    name = {"bon": "best-of-n", "rl": "RL"}
    written = []
    for method in ("bon", "rl"):
        curves = [c for c in results["curves"] if c["method"] == method]
        fig, axes = plt.subplots(1, len(curves), figsize=(5.2 * len(curves), 3.9), squeeze=False)
        for ax, c in zip(axes[0], curves):
            _axes_pair(ax, c, {t: fit[(method, c["pairs"], t)] for t in ("gold", "proxy")}, method)
            a = acc.get(c["pairs"])
            accuracy = f" (acc. vs gold {a:.2f})" if a is not None else ""
            ax.set_title(f"{name[method]}: proxy from {c['pairs']} pairs{accuracy}", fontsize=9)
        fig.tight_layout()
        fig.savefig(out / f"{method}.png", dpi=110)
        plt.close(fig)
        written.append(str(out / f"{method}.png"))
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4))
    for ax, method in zip(axes, ("bon", "rl")):
        for i, c in enumerate(cv for cv in results["curves"] if cv["method"] == method):
            color = plt.cm.viridis(i / max(1, len(results["proxies"]) - 1))
            ax.plot(c["sqrt_kl"], c["gold"], "o", color=color, ms=4)
            f = fit[(method, c["pairs"], "gold")]
            if f["alpha"] is not None:
                grid = np.linspace(0, max(max(c["sqrt_kl"]), 1e-3) * 1.05, 200)
                ax.plot(grid, form_value(grid, f["alpha"], f["beta"], method), color=color, label=f"{c['pairs']} pairs")
            else:
                ax.plot([], [], "o", color=color, label=f"{c['pairs']} pairs (no fit)")
        ax.axhline(0, color="0.8", lw=0.8)
        ax.set_title(f"{name[method]}: gold, fitted {FORMS[method]}", fontsize=9)
        ax.set_xlabel("d = sqrt(KL(π‖π_init))")
        ax.set_ylabel("gold gain over π_init")
        ax.legend(fontsize=7, title="proxy trained on", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "gold.png", dpi=110)
    plt.close(fig)
    return [*written, str(out / "gold.png")]


def _drop_text(t: dict) -> str:
    """One ``downturn`` as printed: gold's change with its SE and z, the proxy's, and over how many prompts."""
    z = "—" if t["z"] is None else f"{t['z']:.1f}"
    return (f"gold {-t['gold_drop']:+.3f} ± {t['gold_drop_se']:.3f} (z = {z}), proxy {t['proxy_rise']:+.3f} ± "
            f"{t['proxy_rise_se']:.3f} over {t['prompts']} prompts")


def print_results(results: dict, out: Path) -> None:
    print(f"\n=== postlab overopt: {results['model']} — gold and proxy gain over π_init against d = sqrt(KL) ===")
    print(f"{'method':6s} {'pairs':>5s} {'acc/gold':>8s} {'max d':>6s} {'gold max':>8s} {'gold end':>8s} "
          f"{'proxy end':>9s} {'α':>8s} {'β':>8s} {'R²':>5s} {'d*':>6s}")
    fit = {(f["method"], f["pairs"], f["target"]): f for f in results["fits"]}
    acc = {p["pairs"]: p["accuracy_vs_gold"] for p in results["proxies"]}
    num = lambda x, w, p: f"{x:{w}.{p}f}" if x is not None else f"{'—':>{w}s}"  # noqa: E731
    for c in results["curves"]:
        f = fit[(c["method"], c["pairs"], "gold")]
        print(f"{c['method']:6s} {c['pairs']:5d} {num(acc.get(c['pairs']), 8, 3)} {max(c['sqrt_kl']):6.2f} "
              f"{max(c['gold']):+8.3f} {c['gold'][-1]:+8.3f} {c['proxy'][-1]:+9.3f} {num(f['alpha'], 8, 3)} "
              f"{num(f['beta'], 8, 3)} {num(f['r2'], 5, 2)} {num(f['d_peak'], 6, 2)}")
    turns = [c for c in results["curves"] if c.get("downturn")]
    if turns:
        print("\ngold from its peak to the last point, paired per prompt (the peak chosen by looking: z is optimistic):")
    for c in turns:
        t = c["downturn"]
        print(f"  {c['method']:4s} {c['pairs']:5d} pairs: peak d = {c['sqrt_kl'][t['peak_point']]:.2f}, end d = "
              f"{c['sqrt_kl'][-1]:.2f}: {_drop_text(t)}")
    named = [c for c in results["curves"] if c.get("downturn_named")]
    if named:
        print("\nbest-of-n gold from the n named in advance (bon_named_peak) to the largest n, paired per prompt:")
    for c in named:
        t = c["downturn_named"]
        print(f"  {c['pairs']:5d} pairs: n = {c['n'][t['peak_point']]} → {c['n'][-1]}: {_drop_text(t)}")
    if results.get("bon_proxy_gaps"):
        print("\nbest-of-n, the largest proxy against each smaller one on the same samples (gold, paired per prompt):")
    for g in results.get("bon_proxy_gaps", []):
        cells = ", ".join(f"n={r['n']} {r['gold_gap']:+.3f} ± {r['gold_gap_se']:.3f}" for r in g["rows"] if r["n"] > 1)
        print(f"  {g['pairs']} − {g['against']} pairs: {cells}")
    held = results.get("label", {}).get("eval_prompts")
    if held is not None and held < MIN_EVAL_PROMPTS:
        print(f"\nnote: the proxies' accuracy against gold is measured on pairs of {held} held-out prompts only, too "
              "few to rank them; gold tells few samples of this π_init apart (it ties the rest). A policy whose "
              "samples pass some checks (e.g. model=RUN/sft/model) or more rm_prompts give more.")
    print(f"\nresults: {out / 'overopt.json'}\nplots:   {out / 'bon.png'}, {out / 'rl.png'}, {out / 'gold.png'}")


# --- the command ---


def resolve_dtype(k: Knobs) -> Knobs:
    """The knobs with ``bf16=auto`` made this machine's faster choice (``postlab.machine.auto_dtype``: measured
    once and cached, ``POSTLAB_DTYPE`` overrides), as ``postlab run`` does; an explicit true/false stays."""
    if k.bf16 != "auto":
        return k
    from postlab import machine

    return k.model_copy(update={"bf16": machine.auto_dtype() == "bf16"})


def run(cfg: OveroptConfig) -> dict:
    from postlab.models.load import resolve_model

    k = resolve_dtype(cfg.knobs())
    out = cfg.directory()
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "overopt_config.yaml")
    sizes = k.rm_pairs
    names = ["fetch", "prompts", "sample", "label", *(f"{s}-{n}" for s in ("rm", "bon", "rl") for n in sizes)]
    stages = Stages(out, names, k.model_dump(mode="json", exclude={"bon_named_peak"}))  # it changes no stage
    p = cfg.progress
    policy = stages.run("fetch", lambda: {"path": resolve_model(k.model)})["path"]
    prompts = stages.run("prompts", lambda: write_prompts(out, k))
    cands = stages.run("sample", lambda: sample_candidates(policy, prompts, out, k, p))
    prefs = stages.run("label", lambda: label_pairs(cands["candidates"], prompts, out, k))
    if sizes[-1] > prefs["train_pairs"]:
        raise DataError(f"the gold rater decided only {prefs['train_pairs']} training pairs (ties are dropped; "
                        f"{prefs['eval_pairs']} more are held out) but rm_pairs asks for {sizes[-1]}: rerun with rm_pairs up "
                        f"to {prefs['train_pairs']} in this directory (its samples and labels are kept), or raise "
                        "rm_prompts / sample_k in a new --out directory")
    proxies = {}
    for n in sizes:
        proxies[n] = stages.run(f"rm-{n}", lambda n=n: train_proxy(policy, prefs, n, out, k, p))
        _drop_checkpoints(out / "rm" / str(n))
    bons, first = {}, out / "bon" / str(sizes[0]) / "samples.jsonl"
    for n in sizes:
        reuse = None if n == sizes[0] else str(first)
        rest = [m for m in sizes[1:] if not stages.done(f"bon-{m}")]
        if len(rest) > 1 and n == rest[0]:  # the later proxies rescore the first's samples together (shared layers)
            from postlab.train import bon

            bon.score_reused([_bon_config(policy, proxies[m]["model"], prompts, reuse, out / "bon" / str(m), k, p)
                              for m in rest])
        bons[n] = stages.run(f"bon-{n}", lambda n=n, reuse=reuse: best_of_n(
            policy, proxies[n]["model"], prompts, reuse, out / "bon" / str(n), k, p))
    rls = {}
    for n in sizes:
        rls[n] = stages.run(f"rl-{n}", lambda n=n: train_rl(
            policy, proxies[n]["model"], prompts, bons[n]["samples"], out / "rl" / str(n), k, p))
        _drop_checkpoints(out / "rl" / str(n))
    if k.bon_named_peak is not None:  # from the stage's samples: a rerun in the same directory adds it
        for n in sizes:
            bons[n]["curve"]["downturn_named"] = bon_named_downturn(bons[n]["samples"], sorted({1, *k.bon_n}),
                                                                    k.bon_named_peak)
    from postlab.run import finite

    timings = stages.timings()
    gaps = proxy_gaps({n: bons[n]["samples"] for n in sizes}, sorted({1, *k.bon_n})) if len(sizes) > 1 else []
    results = finite({**build_results(k, proxies, bons, rls, prefs), "bon_proxy_gaps": gaps,
                      "timings_s": {**timings, "total": round(sum(timings.values()), 2)}})
    results["plots"] = plot(results, out)
    atomic_write_text(out / "overopt.json", json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print_results(results, out)
    return results
