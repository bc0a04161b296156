"""Bradley–Terry / Elo leaderboards: hand-computed fits, ties, priors and bootstrap intervals."""

import math

import numpy as np
import pytest

from postlab.evals.elo import ELO_BASE, bradley_terry, item_outcomes, leaderboard, to_elo


def test_two_models_three_wins_in_four_gives_log3():
    # MLE: p_A / p_B = 3 / 1, so θ_A − θ_B = ln 3 and the Elo gap is 400·log10(3) = 190.85.
    theta = bradley_terry(np.array([[0, 3], [1, 0]]), np.array([[0, 4], [4, 0]]), prior=0)
    assert theta[0] - theta[1] == pytest.approx(math.log(3), abs=1e-8)
    assert theta.sum() == pytest.approx(0, abs=1e-12)
    elo = to_elo(theta)
    assert elo[0] - elo[1] == pytest.approx(400 * math.log10(3), abs=1e-6)
    assert elo.mean() == pytest.approx(ELO_BASE)


def test_prior_adds_virtual_ties_and_keeps_a_winless_model_finite():
    # prior 1: one virtual game split 0.5/0.5 → wins 3.5 vs 0.5 out of 4 → ratio 7.
    theta = bradley_terry(np.array([[0, 3], [0, 0]]), np.array([[0, 3], [3, 0]]), prior=1.0)
    assert theta[0] - theta[1] == pytest.approx(math.log(7), abs=1e-8)


def test_three_models_mm_solution_satisfies_the_likelihood_equations():
    W = np.array([[0, 6, 8], [4, 0, 7], [2, 3, 0]], dtype=float)
    N = W + W.T
    theta = bradley_terry(W, N, prior=0)
    p = np.exp(theta)
    # score equations: observed wins = expected wins for every model
    expected = (N * p[:, None] / (p[:, None] + p[None, :])).sum(1)
    assert np.allclose(expected, W.sum(1), atol=1e-6)
    assert theta[0] > theta[1] > theta[2]


def test_item_outcomes_count_ties_as_halves():
    O = item_outcomes(np.array([[1.0, 0.5, 0.5]]))
    assert O[0].tolist() == [[0, 1, 1], [0, 0, 0.5], [0, 0.5, 0]]


def test_leaderboard_orders_models_with_intervals_around_the_estimate():
    rng = np.random.default_rng(0)
    scores = rng.random((200, 3))
    scores[:, 2] += 0.4  # model c is clearly best
    scores[:, 0] -= 0.4  # model a clearly worst
    rows = leaderboard(["a", "b", "c"], scores, bootstrap=200, seed=1)
    assert [r["model"] for r in rows] == ["c", "b", "a"]
    for r in rows:
        assert r["ci_low"] <= r["elo"] <= r["ci_high"]
        assert r["wins"] + r["ties"] + r["losses"] == r["games"] == 400
    assert rows[1]["ci_high"] < rows[0]["ci_low"]  # separated intervals for a clear gap


def test_identical_models_tie_at_the_base_rating():
    s = np.tile(np.linspace(0, 1, 50)[:, None], (1, 2))
    rows = leaderboard(["x", "y"], s, bootstrap=50)
    assert all(r["elo"] == pytest.approx(ELO_BASE) and r["ties"] == 50 for r in rows)


def test_leaderboard_rejects_bad_shapes():
    with pytest.raises(ValueError):
        leaderboard(["a", "b"], np.zeros((5, 3)))
    with pytest.raises(ValueError):
        leaderboard(["a"], np.zeros((5, 1)))


def test_postlab_leaderboard_loads_models_in_the_machines_faster_dtype(monkeypatch):
    """`postlab leaderboard` loaded every model in bf16 whatever the machine: on a 2-core EPYC with AVX2 only,
    bf16 matmuls run at 1 GFLOP/s against 140 in fp32. Its dtype (and load_engine's default) is `auto` now."""
    import torch

    from postlab.config import load_config
    from postlab.evals import elo
    from postlab.evals.harness import load_engine

    monkeypatch.setenv("POSTLAB_DTYPE", "fp32")
    assert next(load_engine("tiny", device="cpu").model.parameters()).dtype == torch.float32
    monkeypatch.setenv("POSTLAB_DTYPE", "bf16")
    assert next(load_engine("tiny", device="cpu").model.parameters()).dtype == torch.bfloat16
    cfg = load_config(elo.LeaderboardConfig, None, ["models=[tiny,tiny]"])
    assert cfg.dtype == "bf16"
    seen = []

    class Loaded(Exception):
        pass

    def load(model, dtype="auto", device="auto"):
        seen.append(dtype)
        raise Loaded

    monkeypatch.setattr("postlab.evals.harness.load_engine", load)
    with pytest.raises(Loaded):
        elo.run_leaderboard(load_config(elo.LeaderboardConfig, None, ["models=[tiny,tiny]", "dtype=fp32", "progress=false"]))
    assert seen == ["fp32"]
