"""Pairwise win rates: raw with its standard error, and length-controlled.

Each item gives an outcome o_i ∈ {0, ½, 1} for "A beat B" (ties count half). The win rate is the
mean of o_i and its standard error std(o)/√n.

Length-controlled win rate (the idea of AlpacaEval 2's LC win rate, Dubois et al. 2024, without its
per-instruction term): fit a logistic model of the outcome on the length difference,

    P(A wins | Δ_i) = σ(θ + φ · tanh(Δ_i / s)),   Δ_i = |a_i| − |b_i|,  s = std(Δ),

by maximum likelihood with the soft labels o_i, then report σ(θ): the win rate A would have if its
answers were as long as B's. Its standard error comes from a seeded bootstrap over items.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from postlab.evals.metrics import mean_se


@dataclass(frozen=True)
class WinRate:
    n: int
    wins: float  # count, ties as ½
    win_rate: float
    se: float
    lc_win_rate: float
    lc_se: float
    length_coef: float  # φ: > 0 means longer answers win more


def _fit_length_logit(o: np.ndarray, x: np.ndarray, l2: float = 1e-3, iters: int = 50) -> tuple[float, float]:
    """(θ, φ) maximising Σ o log p + (1−o) log(1−p) − l2/2·(θ² + φ²), p = σ(θ + φx); Newton steps."""
    X = np.stack([np.ones_like(x), x], axis=1)  # (n, 2)
    w = np.zeros(2)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(X @ w)))
        grad = X.T @ (o - p) - l2 * w
        hess = -(X.T * (p * (1 - p))) @ X - l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w = w - step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


def _lc(o: np.ndarray, delta: np.ndarray) -> tuple[float, float]:
    s = delta.std()
    if s == 0:  # no length difference to control for
        return float(o.mean()), 0.0
    theta, phi = _fit_length_logit(o, np.tanh(delta / s))
    return 1 / (1 + math.exp(-theta)), phi


def win_rate(outcomes: list[float], len_a: list[int], len_b: list[int], *, bootstrap: int = 200,
             seed: int = 0) -> WinRate:
    """Win rate of A over B from per-item outcomes (1 A wins, 0 B wins, ½ tie) and answer lengths."""
    if not outcomes or not (len(outcomes) == len(len_a) == len(len_b)):
        raise ValueError("need one outcome and two lengths per item, at least one item")
    if any(o not in (0, 0.5, 1) for o in outcomes):
        raise ValueError("outcomes must be 0, 0.5 or 1")
    o = np.asarray(outcomes, dtype=float)
    delta = np.asarray(len_a, dtype=float) - np.asarray(len_b, dtype=float)
    rate, se = mean_se(list(outcomes))
    lc, phi = _lc(o, delta)
    rng = random.Random(seed)
    boots = []
    for _ in range(bootstrap):
        idx = np.asarray([rng.randrange(len(o)) for _ in range(len(o))])
        boots.append(_lc(o[idx], delta[idx])[0])
    lc_se = float(np.std(boots, ddof=1)) if bootstrap > 1 else 0.0
    return WinRate(len(o), float(o.sum()), rate, se, lc, lc_se, phi)
