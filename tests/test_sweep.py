"""`postlab sweep`: the regression math by hand, the output keys of a tiny sweep, resume / skip / refuse, a
worker process, and config errors that name the field."""

import json
import math

import numpy as np
import pytest

from postlab.config import load_config
from postlab.errors import ConfigError
from postlab.science import blend
from postlab.science.sweep import DEFAULT_MIXTURE, SweepConfig, run

# --- the math, by hand ---


def test_ridge_fit_by_hand():
    # x = [0, 1, 2], y = [1, 3, 5]: centred x = [-1, 0, 1], Σx² = 2, Σxy = 4, so b = 4 / (2 + λ);
    # λ = 2 gives b = 1 and b₀ = ȳ − x̄·b = 3 − 1 = 2 (the intercept is not penalised).
    F, y = np.array([[0.0], [1.0], [2.0]]), np.array([1.0, 3.0, 5.0])
    assert blend.fit_ridge(F, y, 2.0) == pytest.approx([2.0, 1.0])
    assert blend.fit_ridge(F, y, 1e-12) == pytest.approx([1.0, 2.0])  # λ → 0: the exact line
    assert blend.predict(np.array([2.0, 1.0]), np.array([[4.0]])) == pytest.approx([6.0])


def test_loo_residuals_match_refitting():
    rng = np.random.default_rng(0)
    F, y = rng.normal(size=(7, 3)), rng.normal(size=7)
    e = blend.loo_residuals(F, y, 0.5)
    for i in range(7):
        keep = np.arange(7) != i
        theta = blend.fit_ridge(F[keep], y[keep], 0.5)
        assert e[i] == pytest.approx(y[i] - blend.predict(theta, F[i : i + 1])[0])


def test_fit_picks_the_penalty_with_least_loo_error_and_finds_the_optimum():
    # scores rise with component 0's weight: the optimum leans to component 0, the ranking is recovered
    W = blend.draw_mixtures(3, 12, 1.0, seed=0)
    y = 0.2 + 0.5 * W[:, 0]
    f = blend.fit(W, y, kind="linear", eps=0.01, grid=[1e-6, 10.0])
    assert f["lambda"] == 1e-6 and f["loo_r2"] > 0.99 and f["loo_spearman"] > 0.99
    assert f["theta"][1] - f["theta"][2] == pytest.approx(0.5, abs=1e-3)
    C = blend.draw_mixtures(3, 2000, 1.0, seed=1)
    w = blend.optimum(f["theta"], C, kind="linear", eps=0.01, top_k=10)
    assert w.sum() == pytest.approx(1.0) and w[0] > 0.9


def test_log_linear_optimum_is_proportional_to_the_slopes():
    # ŷ = Σ b_k log w_k is maximised on the simplex at w_k = b_k / Σ b (Lagrange): b = (3, 1) → (0.75, 0.25)
    theta = np.array([0.0, 3.0, 1.0])
    C = np.stack([np.linspace(0.01, 0.99, 99), 1 - np.linspace(0.01, 0.99, 99)], axis=1)
    w = blend.optimum(theta, C, kind="log_linear", eps=1e-9, top_k=1)
    assert w == pytest.approx([0.75, 0.25])


def test_counts_by_largest_remainder():
    assert blend.counts_from_weights(np.array([0.5, 0.3, 0.2]), 7) == [4, 2, 1]  # 3.5, 2.1, 1.4 → one more to 0
    assert blend.counts_from_weights(np.array([1 / 3, 1 / 3, 1 / 3]), 10) == [4, 3, 3]  # ties to the earlier
    assert sum(blend.counts_from_weights(np.array([0.07, 0.93]), 200)) == 200


def test_mixtures_are_a_prefix_of_longer_sweeps():
    a, b = blend.draw_mixtures(4, 3, 0.5, seed=2), blend.draw_mixtures(4, 6, 0.5, seed=2)
    assert np.array_equal(a, b[:3]) and np.allclose(b.sum(axis=1), 1.0)


def test_decision_accuracy_by_hand():
    # pairs (0,1), (0,2), (1,2): alike, alike, opposite → 2/3; a tie on one side counts ½
    assert blend.decision_accuracy([1, 2, 3], [1, 3, 2]) == (pytest.approx(2 / 3), 3)
    assert blend.decision_accuracy([1, 1], [1, 2]) == (0.5, 1)
    assert math.isnan(blend.decision_accuracy([1], [1])[0])
    assert blend.seed_noise([1.0, 2.0], [1.0, 4.0]) == pytest.approx(math.sqrt(2) / math.sqrt(2))


def test_default_mixture_is_postlab_runs():
    from postlab.run import DEFAULT_DEMOS

    assert DEFAULT_MIXTURE == DEFAULT_DEMOS


# --- a tiny sweep ---

TINY = dict(model="tiny", runs=2, total_examples=6, test_items=4, eval_max_new_tokens=6, epochs=1.0, batch_size=4,
            lr=1e-3, max_seq_len=96, decision_runs=2, candidates=200, top_k=5, bootstrap=10, device="cpu",
            eval_batch_size=8)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "s"
    res = run(SweepConfig(out_dir=str(out), **TINY))
    return out, res


def test_outputs_have_the_documented_keys(sweep_dir):
    out, res = sweep_dir
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["optimum"] == res["optimum"]
    assert [r["id"] for r in res["runs"]] == ["default", "mix-00", "mix-01"]
    for r in res["runs"] + [res["predicted_run"]]:
        assert set(r["weights"]) == set(DEFAULT_MIXTURE) and sum(r["weights"].values()) == pytest.approx(1.0)
        assert sum(r["counts"].values()) == 6 and 0 <= r["score"] <= 1 and r["se"] >= 0 and r["n"] == 4
    assert res["runs"][0]["weights"]["instructions"] == pytest.approx(100 / 410)
    f = res["fit"]
    assert {"kind", "lambda", "intercept", "coefficients", "loo_rmse", "loo_r2", "loo_spearman"} <= set(f)
    o = res["optimum"]
    assert {"weights", "weights_ci", "predicted_score", "predicted_score_ci", "predicted_default", "predicted_gain",
            "predicted_gain_ci"} <= set(o)
    assert all(lo <= hi for lo, hi in o["weights_ci"].values())
    assert res["predicted_run"]["counts"] == dict(zip(DEFAULT_MIXTURE, blend.counts_from_weights(
        np.array(list(o["weights"].values())), 6)))
    assert {"difference", "se", "n"} <= set(res["predicted_vs_default"]) and res["predicted_vs_default"]["n"] == 4
    d = res["decision"]
    assert d["runs"] == ["default", "mix-00"] and d["seeds"] == [0, 1] and d["pairs"] == 1
    assert [r["id"] for r in d["reruns"]] == ["default-seed1", "mix-00-seed1"]
    table = (out / "table.txt").read_text()
    assert "predicted optimum" in table and "decision accuracy" in table and "mix-01" in table
    assert (out / "plots.png").stat().st_size > 1000


def test_rerun_skips_finished_runs_and_a_worker_process_redoes_a_missing_one(sweep_dir, capfd):
    out, res = sweep_dir
    stamps = {p.parent.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*/result.json")}
    (out / "runs" / "mix-01" / "result.json").unlink()
    (out / "runs" / "mix-01" / "data.jsonl").write_text("half-written")  # an unfinished run starts over
    again = run(SweepConfig(out_dir=str(out), workers=2, threads_per_worker=1, **TINY))
    for name, stamp in stamps.items():
        if name != "mix-01":
            assert (out / "runs" / name / "result.json").stat().st_mtime_ns == stamp, name
    assert (out / "runs" / "mix-01" / "log.txt").exists()  # it ran in a worker process
    assert again["runs"][2]["counts"] == res["runs"][2]["counts"]
    assert "4 run(s) finished already, skipped" in capfd.readouterr().err


def test_rerun_with_a_changed_setting_is_refused(sweep_dir):
    out, _ = sweep_dir
    with pytest.raises(ConfigError, match=r"lr: 0\.001 -> 0\.002"):
        run(SweepConfig(out_dir=str(out), **{**TINY, "lr": 2e-3}))
    with pytest.raises(ConfigError, match="total_examples"):
        run(SweepConfig(out_dir=str(out), **{**TINY, "total_examples": 7}))


# --- config errors name the field ---


@pytest.mark.parametrize("override, field", [
    (["categories=[instructions,cooking]"], "categories"),
    (["categories=[instructions,math]"], "categories: 'math' has no template"),
    (["default_mixture={bogus: 1}"], "default_mixture"),
    (["decision_runs=1"], "decision_runs"),
    (["top_k=50", "candidates=10"], "top_k"),
    (["ridge=[0]"], "ridge"),
    (["runs=1"], "runs"),
    (["mixtures=3"], "mixtures"),
])
def test_bad_config_names_the_field(override, field):
    with pytest.raises(ConfigError, match=field):
        load_config(SweepConfig, None, override)
