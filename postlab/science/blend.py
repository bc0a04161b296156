"""The math of ``postlab sweep`` (docs/science.md, "Data-blend sweeps"): mixtures, a regression from mixture
weights to score, its predicted optimum with a bootstrap interval, and decision accuracy across seeds.

Shapes: n runs, K components (data categories), M candidate mixtures. ``W`` (n, K) holds each run's mixture
weights (rows on the simplex: w_k ≥ 0, Σ_k w_k = 1), ``y`` (n,) each run's held-out gold score.

The regression follows RegMix (Liu et al. 2024, "RegMix: Data Mixture as Regression for Language Model
Pre-training", §2): fit y ≈ f(w) on small runs, predict f on many candidate mixtures drawn from the same prior,
and take the mean of the top-k candidates' mixtures as the predicted optimum (their §3.3 averages the top 100).
f is a ridge regression on features φ(w):

    linear:      φ(w) = w                        (RegMix's linear model; on the simplex its argmax is a vertex,
                                                  so only the candidate search keeps the optimum interior)
    log_linear:  φ(w) = log(w + ε)               (diminishing returns of each component: the first examples of a
                                                  category teach its behaviour, more of them add less; with
                                                  positive slopes b_k the argmax over the simplex is interior,
                                                  w_k ∝ b_k as ε → 0)

    ŷ = b₀ + φ(w)·b,      (b₀, b) = argmin Σ_i (y_i − b₀ − φ(w_i)·b)² + λ‖b‖²   (b₀ not penalised)

λ is chosen from a grid by leave-one-out error, which for a ridge fit needs no refit: with the hat matrix
H = A (AᵀA + P)⁻¹ Aᵀ (A = [1, φ(W)], P = diag(0, λ, …, λ)), the LOO residual is e_i / (1 − H_ii).
"""

from __future__ import annotations

import math

import numpy as np


def draw_mixtures(k: int, n: int, alpha: float, seed: int) -> np.ndarray:
    """(n, K) mixtures from a symmetric Dirichlet(α); drawn one at a time, so the first n of a longer sweep
    are the same mixtures (a sweep can be extended without redoing its runs)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.dirichlet(np.full(k, alpha)) for _ in range(n)]) if n else np.zeros((0, k))


def counts_from_weights(w: np.ndarray, total: int) -> list[int]:
    """Examples per component: ``total`` split by ``w`` with largest remainders (floors first, then one more
    to the largest fractional parts, ties to the earlier component); the counts sum to ``total``."""
    raw = np.asarray(w, dtype=float) / float(np.sum(w)) * total
    counts = np.floor(raw).astype(int)
    order = sorted(range(len(raw)), key=lambda j: (-(raw[j] - counts[j]), j))
    for j in order[: total - int(counts.sum())]:
        counts[j] += 1
    return [int(c) for c in counts]


def features(W: np.ndarray, kind: str, eps: float) -> np.ndarray:
    """φ(W): the weights themselves (``linear``) or log(W + ε) (``log_linear``)."""
    W = np.atleast_2d(np.asarray(W, dtype=float))
    if kind == "linear":
        return W
    if kind == "log_linear":
        return np.log(W + eps)
    raise ValueError(f"unknown fit {kind!r}")


def _design(F: np.ndarray) -> np.ndarray:
    return np.hstack([np.ones((F.shape[0], 1)), F])  # A = [1, φ(W)]: (n, K + 1)


def fit_ridge(F: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """θ = (b₀, b₁, …, b_K) minimising ‖y − Aθ‖² + λ‖b‖² (intercept not penalised): θ = (AᵀA + P)⁻¹ Aᵀ y."""
    A = _design(F)
    P = lam * np.eye(A.shape[1])
    P[0, 0] = 0.0
    return np.linalg.solve(A.T @ A + P, A.T @ np.asarray(y, dtype=float))


def predict(theta: np.ndarray, F: np.ndarray) -> np.ndarray:
    return _design(np.atleast_2d(F)) @ theta


def loo_residuals(F: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """Leave-one-out residuals of the ridge fit, y_i − ŷ_(−i) = e_i / (1 − H_ii), without refitting."""
    A = _design(F)
    P = lam * np.eye(A.shape[1])
    P[0, 0] = 0.0
    H = A @ np.linalg.solve(A.T @ A + P, A.T)  # (n, n)
    e = np.asarray(y, dtype=float) - H @ y
    return e / np.maximum(1.0 - np.diag(H), 1e-9)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); nan when either side is constant."""
    ra, rb = _ranks(np.asarray(a, float)), _ranks(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    for v in np.unique(x):  # ties share their mean rank
        tie = x == v
        ranks[tie] = ranks[tie].mean()
    return ranks


def fit(W: np.ndarray, y: np.ndarray, *, kind: str, eps: float, grid: list[float]) -> dict:
    """Choose λ from ``grid`` by leave-one-out mean squared error and fit on every run. Returns the fit
    (``theta`` = [b₀, b…]), the chosen λ and the LOO figures: R² = 1 − SSE_loo / SST and the rank correlation
    between LOO predictions and the measured scores (RegMix's measure: does the fit order mixtures right?)."""
    F, y = features(W, kind, eps), np.asarray(y, dtype=float)
    loo = {lam: loo_residuals(F, y, lam) for lam in grid}
    lam = min(grid, key=lambda g: (float(np.mean(loo[g] ** 2)), -g))  # ties: the stronger penalty
    e = loo[lam]
    sst = float(np.sum((y - y.mean()) ** 2))
    return {"kind": kind, "eps": eps, "lambda": lam, "theta": fit_ridge(F, y, lam),
            "loo_rmse": float(np.sqrt(np.mean(e ** 2))),
            "loo_r2": 1.0 - float(np.sum(e ** 2)) / sst if sst > 0 else float("nan"),
            "loo_spearman": spearman(y - e, y),
            "loo_mse_by_lambda": {str(g): float(np.mean(loo[g] ** 2)) for g in grid}}


def optimum(theta: np.ndarray, C: np.ndarray, *, kind: str, eps: float, top_k: int) -> np.ndarray:
    """RegMix's predicted best mixture: the mean of the ``top_k`` candidates (rows of C) the fit scores highest."""
    pred = predict(theta, features(C, kind, eps))
    top = np.argsort(-pred, kind="stable")[:top_k]
    return C[top].mean(axis=0)


def bootstrap_optimum(W: np.ndarray, y: np.ndarray, C: np.ndarray, w_ref: np.ndarray, *, kind: str, eps: float,
                      lam: float, top_k: int, resamples: int, seed: int) -> dict:
    """Intervals over runs: resample the runs with replacement, refit (λ fixed), and recompute the optimum
    w*_b, the predicted score there ŷ_b(w*_b), and the predicted gain over the reference mixture
    ŷ_b(w*_b) − ŷ_b(w_ref). Returns the 2.5 % and 97.5 % quantiles of each (weights: per component)."""
    if resamples <= 0:
        return {}
    rng = np.random.default_rng(seed)
    n = len(y)
    y = np.asarray(y, dtype=float)
    opts, scores, gains = [], [], []
    for _ in range(resamples):
        idx = rng.integers(0, n, size=n)
        theta = fit_ridge(features(W[idx], kind, eps), y[idx], lam)
        w = optimum(theta, C, kind=kind, eps=eps, top_k=top_k)
        at = predict(theta, features(np.stack([w, w_ref]), kind, eps))
        opts.append(w)
        scores.append(at[0])
        gains.append(at[0] - at[1])

    def q(x) -> list:
        return np.quantile(np.asarray(x), [0.025, 0.975], axis=0).T.tolist()

    return {"resamples": resamples, "weights_ci": q(opts), "predicted_score_ci": q(scores),
            "predicted_gain_ci": q(gains)}


def decision_accuracy(a: list[float], b: list[float]) -> tuple[float, int]:
    """How often two measurements of the same runs (e.g. two training seeds) order a pair the same way:
    over every pair i < j, 1 when sign(a_i − a_j) = sign(b_i − b_j), ½ when exactly one of them is a tie,
    0 when they disagree. Returns (mean over pairs, number of pairs); nan for fewer than two runs."""
    pairs = [(i, j) for i in range(len(a)) for j in range(i + 1, len(a))]
    if not pairs:
        return float("nan"), 0
    agree = 0.0
    for i, j in pairs:
        sa, sb = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
        agree += 1.0 if sa == sb else (0.5 if sa == 0 or sb == 0 else 0.0)
    return agree / len(pairs), len(pairs)


def seed_noise(a: list[float], b: list[float]) -> float:
    """Standard deviation of one run's score from the training seed alone: sd(a − b) / √2 over runs measured
    under both seeds (nan for fewer than two)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    return float(d.std(ddof=1) / math.sqrt(2)) if len(d) > 1 else float("nan")
