"""Leaderboards: a Bradley–Terry fit of pairwise verdicts, on the Elo scale, with bootstrap CIs.

Verdicts come from per-item scores (the gold rater's, usually): on every item, every pair of models
plays one game; the higher score wins, equal scores tie, and a tie counts as half a win for each.

Bradley–Terry: P(i beats j) = p_i / (p_i + p_j), p_i = exp(θ_i). The maximum-likelihood p solves
Hunter's (2004) minorisation–maximisation fixed point

    p_i ← W_i / Σ_{j≠i} N_ij / (p_i + p_j),

with W_i = wins of i (ties as halves) and N_ij = games between i and j. A model that never wins would
get p_i = 0 (θ = −∞), so `prior` adds that many virtual games per pair, split as ties (a weak pull
toward equal strength; 0 disables it). θ is centred to mean 0 and reported as

    Elo_i = 400 · θ_i / ln 10 + 1000     (conventions.md)

so a 400-point gap means 10:1 odds. Confidence intervals: resample items with replacement, refit,
and take the 2.5% and 97.5% quantiles of each model's Elo.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from pydantic import Field

from postlab.config import Section
from postlab.errors import ConfigError
from postlab.machine import AutoDType
from postlab.utils.io import atomic_write_text

ELO_SCALE = 400.0 / math.log(10.0)
ELO_BASE = 1000.0


def item_outcomes(scores: np.ndarray) -> np.ndarray:
    """(items, models) scores -> (items, models, models) outcomes: O[k, i, j] = 1 if i beat j on
    item k, 0.5 on a tie, 0 on a loss; the diagonal is 0."""
    s = np.asarray(scores, dtype=float)
    diff = s[:, :, None] - s[:, None, :]
    out = np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))
    idx = np.arange(s.shape[1])
    out[:, idx, idx] = 0.0
    return out


def bradley_terry(wins: np.ndarray, games: np.ndarray, prior: float = 0.5, iters: int = 1000,
                  tol: float = 1e-10) -> np.ndarray:
    """θ (mean 0) from a (M, M) matrix of wins (W[i, j] = wins of i over j, ties as halves) and of
    games played (symmetric, zero diagonal), by Hunter's MM iteration; see the module docstring."""
    W = np.asarray(wins, dtype=float)
    N = np.asarray(games, dtype=float)
    M = W.shape[0]
    off = 1.0 - np.eye(M)
    W = W + prior / 2 * off
    N = N + prior * off
    w = W.sum(1)
    p = np.ones(M)
    for _ in range(iters):
        denom = (N / (p[:, None] + p[None, :])).sum(1)
        new = np.where(denom > 0, w / np.maximum(denom, 1e-300), p)
        new = new / np.exp(np.log(np.maximum(new, 1e-300)).mean())  # fix the scale: geometric mean 1
        if np.max(np.abs(new - p)) < tol:
            p = new
            break
        p = new
    theta = np.log(np.maximum(p, 1e-300))
    return theta - theta.mean()


def to_elo(theta: np.ndarray) -> np.ndarray:
    return ELO_SCALE * np.asarray(theta) + ELO_BASE


def leaderboard(names: list[str], scores: np.ndarray, *, bootstrap: int = 1000, prior: float = 0.5,
                seed: int = 0) -> list[dict]:
    """Rows sorted by Elo: {model, elo, ci_low, ci_high, mean_score, wins, ties, losses, games}.
    `scores` is (items, models): each model's score on the same items."""
    s = np.asarray(scores, dtype=float)
    if s.ndim != 2 or s.shape[1] != len(names):
        raise ValueError(f"scores must be (items, {len(names)}), got {s.shape}")
    if len(names) < 2:
        raise ValueError("a leaderboard needs at least two models")
    O = item_outcomes(s)  # (K, M, M)
    K, M = s.shape[0], s.shape[1]
    games = np.full((M, M), float(K)) * (1 - np.eye(M))
    elo = to_elo(bradley_terry(O.sum(0), games, prior))
    rng = np.random.default_rng(seed)
    boots = np.empty((bootstrap, M))
    for b in range(bootstrap):
        counts = np.bincount(rng.integers(0, K, K), minlength=K).astype(float)  # resample items
        boots[b] = to_elo(bradley_terry(np.einsum("k,kij->ij", counts, O), games, prior))
    lo, hi = (np.quantile(boots, [0.025, 0.975], axis=0) if bootstrap else (elo, elo))
    rows = []
    for i, name in enumerate(names):
        wins = float((O[:, i, :] == 1).sum())
        ties = float((O[:, i, :] == 0.5).sum())
        rows.append({"model": name, "elo": float(elo[i]), "ci_low": float(lo[i]), "ci_high": float(hi[i]),
                     "mean_score": float(s[:, i].mean()), "wins": int(wins), "ties": int(ties),
                     "losses": int(K * (M - 1) - wins - ties), "games": int(K * (M - 1))})
    return sorted(rows, key=lambda r: -r["elo"])


def format_leaderboard(rows: list[dict]) -> str:
    width = max(12, *(len(r["model"]) for r in rows))
    lines = [f"{'rank':>4}  {'model':<{width}}  {'Elo':>6}  {'95% CI':>15}  {'gold':>6}  {'W-T-L':>13}"]
    for k, r in enumerate(rows, 1):
        ci = f"[{r['ci_low']:.0f}, {r['ci_high']:.0f}]"
        lines.append(f"{k:>4}  {r['model']:<{width}}  {r['elo']:>6.0f}  {ci:>15}  {r['mean_score']:>6.3f}  "
                     f"{r['wins']}-{r['ties']}-{r['losses']:>3}")
    return "\n".join(lines)


class LeaderboardConfig(Section):
    """postlab leaderboard: rank models by Bradley–Terry/Elo on a suite, judged by the gold rater."""

    models: list[str] = Field(..., description="models to rank (built-in names, directories or hub ids); at least two")
    names: list[str] | None = Field(None, description="display names, one per model (default: the model strings)")
    suite: str = Field("spec", description="built-in suite name or JSONL")
    split: str = Field("test", pattern="^(train|test|all)$", description="which split")
    limit: int | None = Field(None, ge=1, description="only the first N items (a fair sample for the spec suite)")
    max_new_tokens: int = Field(256, ge=1, description="response length cap (greedy decoding)")
    batch_size: int = Field(32, ge=1, description="prompts generated together")
    dtype: AutoDType = Field("auto", validate_default=True, description="weights dtype: fp32 | bf16 | auto (the faster on this machine)")
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples of the items for the CIs")
    out: str | None = Field(None, description="write the leaderboard JSON here")
    progress: bool = Field(True, description="show progress bars")

    def check(self) -> None:
        super().check()
        if len(self.models) < 2:
            raise ConfigError("models: a leaderboard needs at least two models")
        if self.names is not None and len(self.names) != len(self.models):
            raise ConfigError(f"names: {len(self.names)} names for {len(self.models)} models")


def run_leaderboard(cfg: LeaderboardConfig) -> dict:
    import json

    from postlab.evals.generate import generate_responses
    from postlab.evals.harness import load_engine
    from postlab.raters.gold import GoldRater
    from postlab.rollout import SamplingParams
    from postlab.tasks.suite import load_suite

    items = load_suite(cfg.suite, split=None if cfg.split == "all" else cfg.split, limit=cfg.limit)
    if not items:
        raise ConfigError(f"suite {cfg.suite!r} has no items in split {cfg.split!r}")
    gold, columns = GoldRater(), []
    sampling = SamplingParams(temperature=0.0, max_new_tokens=cfg.max_new_tokens, seed=0)
    for model in cfg.models:
        engine = load_engine(model, cfg.dtype)
        responses = generate_responses(engine, items, sampling, batch_size=cfg.batch_size, progress=cfg.progress,
                                       desc=f"leaderboard {Path(model).name}")
        columns.append([gold.score(it, r.text) for it, r in zip(items, responses)])
        del engine
    names = cfg.names or cfg.models
    rows = leaderboard(names, np.array(columns).T, bootstrap=cfg.bootstrap)
    result = {"suite": cfg.suite, "split": cfg.split, "items": len(items), "judge": "gold", "rows": rows}
    if cfg.out:
        atomic_write_text(Path(cfg.out), json.dumps(result, indent=2) + "\n")
        print(f"wrote {cfg.out}", file=sys.stderr)
    return result
