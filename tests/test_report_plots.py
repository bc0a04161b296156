"""The report's plots and texts on small synthetic runs (issue 17 item 11): error bars of ± SE on the
per-category bars; gold and proxy against sqrt(KL) as points coloured by RL step, not a line that
backtracks; "n/a" wherever a figure is undefined (text and plots); no empty "(kept per category: )"
and no "mean of 1" curve. The figures are caught as matplotlib objects on their way to PNG."""

import json
import math
import re

import pytest
from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer

import postlab.report.html as report

CATS = {"honesty": (0.2, 0.05, 30), "math": (0.4, 0.08, 20), "refusal": (0.6, 0.04, 50)}  # score, SE, n
STAGES = {"baseline": 0.0, "sft": 0.1, "rl": 0.15}  # added to every score
META = {"postlab_version": "0.1.0", "torch_version": "2.x", "transformers_version": "4.x", "git_hash": None,
        "date": "2026-11-30T00:00:00+00:00"}


def results(shift: float) -> dict:
    """An eval results file: overall and per category, each with its standard error and n."""
    return {"n": 100, "overall": 0.5 + shift, "overall_se": 0.03, "meta": META,
            "by_category": {c: v + shift for c, (v, _, _) in CATS.items()},
            "by_category_se": {c: se for c, (_, se, _) in CATS.items()},
            "by_category_n": {c: n for c, (_, _, n) in CATS.items()}}


def summary(run_dir) -> dict:
    gold = {stage: {"overall": 0.5 + d, "overall_se": 0.03, "n": 100, "mean_length": 40.0,
                    "by_category": {c: v + d for c, (v, _, _) in CATS.items()},
                    "results": str(run_dir / "eval" / f"{stage}.json")} for stage, d in STAGES.items()}
    return {
        "model": "tiny", "preset": "tiny", "algo": "ppo", "suite": "spec", "split": "test",
        "stages": {
            "baseline": {"gold": gold["baseline"]},
            "sft_data": {"conversations": 20, "spec_examples": 5, "template_answers": 10, "rejection_sampled": 5,
                         "rejection_prompts": 10, "rejection_acceptance": 0.5, "rejection_by_category": {"math": 5}},
            "sft": {"gold": gold["sft"]},
            "comparisons": {"prompts": 10, "pairs_compared": 40, "written": 30, "gold_decided": 20,
                            "gold_decided_share": 0.67, "agreement_with_gold": 0.9, "raters_per_pair": 3,
                            "no_consensus": 10},
            "rm": {"train_pairs": 24, "eval_pairs": 6, "accuracy_vs_labels": 0.8, "accuracy_vs_gold": 0.7,
                   "gold_clear_pairs": 5, "clear_margin": 0.3, "accuracy_vs_gold_all_pairs": 0.65,
                   "gold_clear_pairs_all": 9},
            "bon": {"rows": []},
            "rl": {"gold": gold["rl"], "proxy": 1.0, "kl": 0.5, "mean_length": 40.0, "sft_proxy": 0.2,
                   "probe": {"rl": {"prompts": 8, "kl_se": 0.1}}, "train": {}},
            "leaderboard": {"items": 100, "rows": [
                {"model": m, "elo": e, "ci_low": e - 10, "ci_high": e + 10, "mean_score": 0.5, "wins": 1, "ties": 1,
                 "losses": 1} for m, e in (("ppo", 1010.0), ("sft", 1000.0), ("base", 990.0))]},
        },
        "gain": {"sft_minus_baseline": 0.1, "final_minus_baseline": 0.15},
        "timings_s": {"sft": 60.0, "rl": 120.0, "total": 180.0},
        "machine": {"cpu": "test CPU", "cores": 2, "threads": 2, "torch": "2.x", "device": "cpu", "dtype": "fp32",
                    "dtype_why": "pinned", "flags": {"avx2": True}, "slowdown": 1.0,
                    "matmul_gflops": {"fp32": 200.0, "bf16": 900.0, "n": 1024, "cached": False},
                    "reference": {"cpu": "ref CPU", "fp32_gflops": 230.0, "bf16_gflops": 996.0, "dtype": "bf16"}},
        "scaled": {},
    }


RL_STEPS = [1, 2, 3, 4, 5, 6]
RL_KL = [0.09, 0.36, 0.16, 0.81, 0.25, 1.44]  # goes back and forth, as a noisy KL does
RL_METRICS = [{"step": s, "objective/kl": kl, "proxy/score": 0.1 * s, "gold/train_score": 0.5 - 0.02 * s}
              for s, kl in zip(RL_STEPS, RL_KL)]


def write_run(run_dir, edit=None, rl_metrics=RL_METRICS, rm_steps=12) -> None:
    s = summary(run_dir)
    if edit:
        edit(s)
    (run_dir / "eval").mkdir(parents=True)
    for stage, d in STAGES.items():
        (run_dir / "eval" / f"{stage}.json").write_text(json.dumps(results(d)))
    (run_dir / "summary.json").write_text(json.dumps(s))
    for stage, rows in (("rl", rl_metrics),
                        ("rm", [{"step": k, "rewards/accuracies": 0.5 + 0.01 * k} for k in range(1, rm_steps + 1)])):
        (run_dir / stage).mkdir()
        (run_dir / stage / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in rows))


@pytest.fixture
def figures(monkeypatch):
    """Every figure build_report draws, kept instead of encoded as PNG."""
    caught = []

    def keep(fig):
        caught.append(fig)
        return ""

    monkeypatch.setattr(report, "_png", keep)
    yield caught
    for fig in caught:
        report._plt().close(fig)


def figure_with(figures, xlabel: str):
    found = [f for f in figures if any(xlabel in ax.get_xlabel() for ax in f.axes)]
    assert len(found) == 1, [[ax.get_xlabel() for ax in f.axes] for f in figures]
    return found[0]


def error_bars(bars: BarContainer) -> list:
    """(centre, half length) of each bar's vertical error bar (y - SE to y + SE), None where it has none."""
    segments = bars.errorbar.lines[2][0].get_segments()
    return [((seg[0][1] + seg[1][1]) / 2, (seg[1][1] - seg[0][1]) / 2) if len(seg) else None for seg in segments]


def test_category_bars_have_plus_minus_se_error_bars(tmp_path, figures):
    write_run(tmp_path)
    report.build_report(tmp_path)
    [ax] = [ax for f in figures for ax in f.axes if ax.get_ylabel() == "gold score (held-out test)"]
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [b.get_label() for b in bars] == ["base", "sft", "ppo"]
    for stage_bars, d in zip(bars, STAGES.values()):
        assert stage_bars.errorbar is not None, stage_bars.get_label()
        expected = [(0.5 + d, 0.03)] + [(v + d, se) for v, se, _ in CATS.values()]  # overall, then by category
        assert error_bars(stage_bars) == [pytest.approx(e) for e in expected]


def test_a_missing_standard_error_leaves_that_bar_without_an_error_bar(tmp_path, figures):
    write_run(tmp_path)
    res = json.loads((tmp_path / "eval" / "sft.json").read_text())
    del res["by_category_se"]["math"]
    (tmp_path / "eval" / "sft.json").write_text(json.dumps(res))
    report.build_report(tmp_path)
    [ax] = [ax for f in figures for ax in f.axes if ax.get_ylabel() == "gold score (held-out test)"]
    sft_bars = [c for c in ax.containers if isinstance(c, BarContainer)][1]
    bars = error_bars(sft_bars)
    assert len(bars) == 4 and bars[2] is None and bars[1] == pytest.approx((0.3, 0.05))


def test_gold_and_proxy_against_sqrt_kl_are_points_coloured_by_step(tmp_path, figures):
    write_run(tmp_path)
    report.build_report(tmp_path)
    fig = figure_with(figures, "sqrt(KL")
    for ax in fig.axes:  # no line joins the points: sorted by KL or by step, a noisy KL makes it backtrack
        assert not [ln for ln in ax.get_lines() if ln.get_linestyle() not in ("None", "") and len(ln.get_xdata()) > 1]
    clouds = {ax.get_ylabel(): c for ax in fig.axes for c in ax.collections if isinstance(c, PathCollection)}
    assert set(clouds) == {"proxy reward (RM) on RL rollouts", "gold score on RL rollouts"}
    for label, key in (("proxy reward (RM) on RL rollouts", "proxy/score"), ("gold score on RL rollouts", "gold/train_score")):
        points = clouds[label]
        assert list(points.get_array()) == RL_STEPS  # the colour is the step
        assert [pytest.approx(tuple(p)) for p in points.get_offsets()] == \
            [(math.sqrt(m["objective/kl"]), m[key]) for m in RL_METRICS]
    assert any(ax.get_ylabel() == "RL step" for ax in fig.axes)  # the colour bar says what the colour means


UNDEFINED_PAGE = re.compile(r"\bNone\b|\bnan\b|\bNaN\b|\binf\b")


def _undefined_everywhere(s):
    st = s["stages"]
    for key in ("train_pairs", "eval_pairs", "accuracy_vs_labels", "accuracy_vs_gold", "gold_clear_pairs",
                "clear_margin", "accuracy_vs_gold_all_pairs", "gold_clear_pairs_all"):
        st["rm"][key] = None
    st["comparisons"] = {k: None for k in st["comparisons"]}
    st["rl"]["probe"] = {"rl": {"prompts": None, "kl_se": None}}
    st["rl"].update(kl=None, proxy=None, sft_proxy=None, mean_length=None)
    st["leaderboard"]["items"] = None
    st["sft_data"].update(rejection_prompts=None, rejection_acceptance=None, rejection_sampled=None)
    s["timings_s"] = {"sft": None, "total": None}
    m = s["machine"]
    m.update(cores=None, threads=None, slowdown=None)
    m["matmul_gflops"].update(fp32=None, bf16=None)
    m["reference"].update(fp32_gflops=None, bf16_gflops=None)


def test_undefined_figures_read_n_a_in_every_text(tmp_path, figures):
    write_run(tmp_path, _undefined_everywhere)
    page = report.build_report(tmp_path).read_text()
    assert not UNDEFINED_PAGE.findall(page)
    assert "Trained on n/a simulated-rater pairs (held out: n/a pairs" in page
    assert "A panel of n/a simulated raters" not in page  # no panel recorded: no panel sentence
    assert "On n/a held-out prompts sampled at temperature 1" in page
    assert "Every pair of checkpoints plays one game per held-out item (n/a items)" in page
    assert "for n/a of n/a train prompts" in page
    assert "<div>total time<b>n/a</b></div>" in page
    assert "<td>matmul GFLOP/s (fp32 / bf16)</td><td>n/a / n/a" in page
    assert "<td>speed against the reference machine</td><td>n/a (reference: ref CPU, matmul fp32 n/a / bf16 n/a" in page
    assert "<td>sft</td><td>n/a</td><td>n/a</td>" in page  # timings


def test_undefined_rm_accuracy_is_no_bar_but_n_a(tmp_path, figures):
    def no_gold_accuracy(s):
        s["stages"]["rm"]["accuracy_vs_gold"] = None

    write_run(tmp_path, no_gold_accuracy)
    report.build_report(tmp_path)
    [ax] = [ax for f in figures for ax in f.axes if ax.get_title() == "held-out accuracy"]
    [bars] = [c for c in ax.containers if isinstance(c, BarContainer)]
    heights = [b.get_height() for b in bars]
    assert heights[0] == pytest.approx(0.8) and math.isnan(heights[1])  # not a bar of height 0
    assert [t.get_text() for t in ax.texts] == ["0.800", "n/a"]


def test_no_empty_kept_per_category_text(tmp_path, figures):
    def nothing_kept(s):
        s["stages"]["sft_data"].update(rejection_sampled=0, rejection_by_category={})

    write_run(tmp_path, nothing_kept)
    page = report.build_report(tmp_path).read_text()
    assert "kept per category" not in page
    assert "<td>rejection sampling against the gold rater</td><td>0</td>" in page


def test_kept_per_category_text_when_some_were_kept(tmp_path, figures):
    write_run(tmp_path)
    page = report.build_report(tmp_path).read_text()
    assert "<td>rejection sampling against the gold rater (kept per category: math 5)</td><td>5</td>" in page


@pytest.mark.parametrize("rm_steps,smoothed", [(12, None), (40, "mean of 4")])
def test_rm_training_curve_has_no_mean_of_1(tmp_path, figures, rm_steps, smoothed):
    write_run(tmp_path, rm_steps=rm_steps)
    report.build_report(tmp_path)
    [ax] = [ax for f in figures for ax in f.axes if ax.get_title() == "reward-model accuracy during training"]
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert "mean of 1" not in labels
    assert labels == ["train batch"] + ([smoothed] if smoothed else [])
    assert ax.get_legend() is not None


def test_rl_without_rollout_curves_says_so(tmp_path, figures):
    write_run(tmp_path, rl_metrics=[{"step": 1, "loss": 1.0}])
    page = report.build_report(tmp_path).read_text()
    assert "logs no per-step rollout curves" in page
    assert not [f for f in figures if any("sqrt(KL" in ax.get_xlabel() for ax in f.axes)]

