"""Calibration metrics as small pure functions (docs/science.md has the equations).

Shapes: N items; item i has K_i options and a probability vector ``p_i`` over them (summing to 1) and the
index ``y_i`` of the right option. Confidence c_i = max_k p_ik, correct_i = [argmax_k p_ik = y_i].
Every function takes plain Python sequences (or NumPy arrays) and returns floats or small dicts, so
each can be checked against numbers worked out by hand (tests/test_calibration.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

Probs = Sequence[Sequence[float]]  # N rows, each a distribution over that item's options


def confidence_and_correct(probs: Probs, answers: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(c, correct): the top probability of each item and whether its top option is the answer (ties go to the
    first option, as argmax does)."""
    c = np.array([max(p) for p in probs], dtype=float)
    correct = np.array([int(np.argmax(p)) == y for p, y in zip(probs, answers)], dtype=float)
    return c, correct


def reliability_bins(confidence: Sequence[float], correct: Sequence[float], n_bins: int = 10,
                     scheme: str = "width") -> list[dict]:
    """Bins of items by confidence: ``width`` = equal-width bins over [0, 1] (bin b holds c in (b/B, (b+1)/B],
    the first also c = 0); ``count`` = equal-count bins (items sorted by confidence, split into B nearly equal
    runs, np.array_split). Each bin: lo, hi (its confidence range), n, confidence (mean c), accuracy (mean
    correct). Empty bins are left out."""
    c = np.asarray(confidence, dtype=float)
    y = np.asarray(correct, dtype=float)
    if scheme == "width":
        # round first: 0.3 * 10 is 3.0000000000000004 in floating point, and 0.3 belongs to (0.2, 0.3]
        idx = np.clip(np.ceil(np.round(c * n_bins, 9)).astype(int) - 1, 0, n_bins - 1)
        groups = [np.flatnonzero(idx == b) for b in range(n_bins)]
        edges = [(b / n_bins, (b + 1) / n_bins) for b in range(n_bins)]
    elif scheme == "count":
        order = np.argsort(c, kind="stable")
        groups = [g for g in np.array_split(order, min(n_bins, len(c))) if len(g)]
        edges = [(float(c[g].min()), float(c[g].max())) for g in groups]
    else:
        raise ValueError(f"scheme must be 'width' or 'count', got {scheme!r}")
    return [{"lo": lo, "hi": hi, "n": int(len(g)), "confidence": float(c[g].mean()), "accuracy": float(y[g].mean())}
            for g, (lo, hi) in zip(groups, edges) if len(g)]


def ece(confidence: Sequence[float], correct: Sequence[float], n_bins: int = 10, scheme: str = "width") -> float:
    """Expected calibration error (Guo et al. 2017, eq. 3): Σ_b (n_b / N) · |acc_b − conf_b|."""
    bins = reliability_bins(confidence, correct, n_bins, scheme)
    n = sum(b["n"] for b in bins)
    return sum(b["n"] / n * abs(b["accuracy"] - b["confidence"]) for b in bins)


def ece_floor(confidence: Sequence[float], n_bins: int = 10, scheme: str = "width", *, sims: int = 200,
              seed: int = 0) -> float:
    """The ECE a perfectly calibrated model with these confidences would show on this many items: the mean ECE
    when each outcome is drawn as Bernoulli(c_i). ECE is biased upward on finite samples (|acc_b − conf_b| > 0 by
    noise alone); a measured ECE at or below this floor shows no detectable miscalibration."""
    c = np.asarray(confidence, dtype=float)
    rng = np.random.default_rng(seed)
    return float(np.mean([ece(c, (rng.random(len(c)) < c).astype(float), n_bins, scheme) for _ in range(sims)]))


def brier(probs: Probs, answers: Sequence[int]) -> float:
    """Multi-class Brier score (Brier 1950): mean over items of Σ_k (p_ik − [k = y_i])²; 0 is perfect, 2 the worst."""
    total = 0.0
    for p, y in zip(probs, answers):
        total += sum((pk - (k == y)) ** 2 for k, pk in enumerate(p))
    return total / len(answers)


def nll(probs: Probs, answers: Sequence[int], eps: float = 1e-12) -> float:
    """Mean negative log-likelihood of the right option, −(1/N) Σ_i log p_{i, y_i} (p floored at eps)."""
    return -sum(math.log(max(p[y], eps)) for p, y in zip(probs, answers)) / len(answers)


def accuracy(probs: Probs, answers: Sequence[int]) -> float:
    return float(confidence_and_correct(probs, answers)[1].mean())


def scale_temperature(probs: Probs, T: float, eps: float = 1e-12) -> list[list[float]]:
    """Temperature scaling (Guo et al. 2017, §4.2) of distributions given as probabilities: the logits are
    z = log p, so p_T = softmax(log p / T) ∝ p^(1/T). T > 1 flattens, T < 1 sharpens."""
    out = []
    for p in probs:
        z = np.log(np.maximum(np.asarray(p, dtype=float), eps)) / T
        z -= z.max()
        e = np.exp(z)
        out.append((e / e.sum()).tolist())
    return out


def fit_temperature(probs: Probs, answers: Sequence[int], lo: float = 0.05, hi: float = 20.0, tol: float = 1e-4) -> float:
    """The T in [lo, hi] minimising nll(scale_temperature(probs, T)): golden-section search on log T (the
    NLL of temperature-scaled logits is convex in 1/T, so unimodal in log T)."""
    g = (math.sqrt(5) - 1) / 2
    a, b = math.log(lo), math.log(hi)

    def f(u: float) -> float:
        return nll(scale_temperature(probs, math.exp(u)), answers)

    x1, x2 = b - g * (b - a), a + g * (b - a)
    f1, f2 = f(x1), f(x2)
    while b - a > tol:
        if f1 <= f2:
            b, x2, f2 = x2, x1, f1
            x1 = b - g * (b - a)
            f1 = f(x1)
        else:
            a, x1, f1 = x1, x2, f2
            x2 = a + g * (b - a)
            f2 = f(x2)
    return math.exp((a + b) / 2)


def cross_fitted_temperature(probs: Probs, answers: Sequence[int], seed: int = 0) -> tuple[list[list[float]], list[float]]:
    """Temperature scaling evaluated out of sample: items are split in two seeded halves, each half is scaled by
    the T fitted on the other. Returns the scaled distributions (item order kept) and the two temperatures."""
    n = len(answers)
    order = np.random.default_rng(seed).permutation(n)
    halves = [np.sort(order[: n // 2]), np.sort(order[n // 2:])]
    scaled: list[list[float] | None] = [None] * n
    temps = []
    for fit_idx, apply_idx in ((halves[0], halves[1]), (halves[1], halves[0])):
        T = fit_temperature([probs[i] for i in fit_idx], [answers[i] for i in fit_idx]) if len(fit_idx) else 1.0
        temps.append(T)
        for i, q in zip(apply_idx, scale_temperature([probs[i] for i in apply_idx], T)):
            scaled[i] = q
    return scaled, temps


def bootstrap_interval(stat: Callable[[np.ndarray], float], n: int, *, resamples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap (Efron & Tibshirani 1993, §13.3) over items: ``stat(idx)`` computed on B resamples of
    the item indices drawn with replacement; returns the (1−level)/2 and (1+level)/2 quantiles."""
    if resamples <= 0 or n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.array([stat(rng.integers(0, n, n)) for _ in range(resamples)])
    return float(np.quantile(values, (1 - level) / 2)), float(np.quantile(values, (1 + level) / 2))


def calibration_metrics(probs: Probs, answers: Sequence[int], *, n_bins: int = 10, resamples: int = 1000,
                        seed: int = 0) -> dict:
    """Every calibration figure of one model on one suite, each with its 95% bootstrap interval (``<key>_ci``);
    the temperature fitted on all items, and ECE/NLL/Brier after temperature scaling cross-fitted on halves."""
    probs = [list(map(float, p)) for p in probs]
    answers = list(answers)
    c, correct = confidence_and_correct(probs, answers)

    def on(idx: np.ndarray) -> tuple[list, list, np.ndarray, np.ndarray]:
        return [probs[i] for i in idx], [answers[i] for i in idx], c[idx], correct[idx]

    stats: dict[str, Callable[[np.ndarray], float]] = {
        "accuracy": lambda idx: float(correct[idx].mean()),
        "ece": lambda idx: ece(c[idx], correct[idx], n_bins, "width"),
        "ece_equal_count": lambda idx: ece(c[idx], correct[idx], n_bins, "count"),
        "brier": lambda idx: brier(*on(idx)[:2]),
        "nll": lambda idx: nll(*on(idx)[:2]),
        "mean_confidence": lambda idx: float(c[idx].mean()),
    }
    everything = np.arange(len(answers))
    out: dict = {"n": len(answers)}
    for i, (key, fn) in enumerate(stats.items()):
        out[key] = fn(everything)
        out[f"{key}_ci"] = list(bootstrap_interval(fn, len(answers), resamples=resamples, seed=seed + i))
    out["overconfidence"] = out["mean_confidence"] - out["accuracy"]
    out["ece_floor"] = ece_floor(c, n_bins, "width", seed=seed)
    out["ece_equal_count_floor"] = ece_floor(c, n_bins, "count", seed=seed)
    out["temperature"] = fit_temperature(probs, answers)
    scaled, temps = cross_fitted_temperature(probs, answers, seed)
    c_t, correct_t = confidence_and_correct(scaled, answers)
    out["temperature_halves"] = temps
    out["ece_after_temperature"] = ece(c_t, correct_t, n_bins, "width")
    out["ece_after_temperature_ci"] = list(bootstrap_interval(
        lambda idx: ece(c_t[idx], correct_t[idx], n_bins, "width"), len(answers), resamples=resamples, seed=seed + 99))
    out["nll_after_temperature"] = nll(scaled, answers)
    out["brier_after_temperature"] = brier(scaled, answers)
    out["bins"] = reliability_bins(c, correct, n_bins, "width")
    out["bins_equal_count"] = reliability_bins(c, correct, n_bins, "count")
    return out


def paired_differences(probs_a: Probs, probs_b: Probs, answers: Sequence[int], *, n_bins: int = 10,
                       resamples: int = 1000, seed: int = 0) -> dict:
    """Metric(b) − metric(a) on the same questions, each with a paired 95% bootstrap interval (one resample of the
    questions scores both models): the measured direction of a change, e.g. SFT − base. Keys as in
    ``calibration_metrics``."""
    pa, pb = [list(map(float, p)) for p in probs_a], [list(map(float, p)) for p in probs_b]
    answers = list(answers)
    ca, ya = confidence_and_correct(pa, answers)
    cb, yb = confidence_and_correct(pb, answers)

    def metric(name: str, p: list, c: np.ndarray, y: np.ndarray, idx: np.ndarray) -> float:
        if name == "accuracy":
            return float(y[idx].mean())
        if name == "mean_confidence":
            return float(c[idx].mean())
        if name in ("ece", "ece_equal_count"):
            return ece(c[idx], y[idx], n_bins, "width" if name == "ece" else "count")
        sub, ans = [p[i] for i in idx], [answers[i] for i in idx]
        return brier(sub, ans) if name == "brier" else nll(sub, ans)

    out = {}
    everything = np.arange(len(answers))
    for i, name in enumerate(("accuracy", "mean_confidence", "ece", "ece_equal_count", "brier", "nll")):
        def diff(idx: np.ndarray, name: str = name) -> float:
            return metric(name, pb, cb, yb, idx) - metric(name, pa, ca, ya, idx)

        out[name] = diff(everything)
        out[f"{name}_ci"] = list(bootstrap_interval(diff, len(answers), resamples=resamples, seed=seed + 200 + i))
    return out
