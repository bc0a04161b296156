"""`postlab overopt`: the Gao et al. forms fitted exactly, curves centred per prompt by hand, the RL
recipes' prompt order as the centring assumes, the tiny preset end to end, reruns skip finished stages."""

import importlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from postlab.config import load_config
from postlab.errors import ConfigError
from postlab.overopt import OveroptConfig, Stages, bon_curve, fit_form, form_value, rl_curve

ROOT = Path(__file__).resolve().parents[1]


def postlab(*args):
    return subprocess.run([sys.executable, "-m", "postlab", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)


# --- fits ---


@pytest.mark.parametrize("form", ["bon", "rl"])
def test_points_made_from_known_alpha_beta_give_them_back(form):
    alpha, beta = 0.37, 0.11
    d = np.sqrt([math.log(n) - (n - 1) / n for n in (1, 2, 4, 8, 16, 32, 64)])  # starts at d = 0
    R = d * (alpha - beta * d) if form == "bon" else np.concatenate([[0.0], d[1:] * (alpha - beta * np.log(d[1:]))])
    f = fit_form(d, R, form)
    assert f["alpha"] == pytest.approx(alpha, abs=1e-9) and f["beta"] == pytest.approx(beta, abs=1e-9)
    assert f["r2"] == pytest.approx(1.0, abs=1e-12)
    assert f["points"] == 6  # d = 0 carries no information about (α, β) and is left out
    np.testing.assert_allclose(form_value(d, alpha, beta, form), R, atol=1e-15)


def test_two_points_by_hand():
    # bon: α − β = 1 (d = 1, R = 1) and 2α − 4β = 0 (d = 2, R = 0) → α = 2, β = 1; peak at α/2β = 1, R = 1
    f = fit_form([0.0, 1.0, 2.0], [0.0, 1.0, 0.0], "bon")
    assert (f["alpha"], f["beta"]) == pytest.approx((2.0, 1.0), abs=1e-12)
    assert (f["d_peak"], f["kl_peak"], f["peak"]) == pytest.approx((1.0, 1.0, 1.0))
    # rl: R(1) = α = 1, R(e) = e(α − β) = 0 → β = 1; peak at exp(α/β − 1) = 1, R = 1·(1 − log 1) = 1
    f = fit_form([1.0, math.e], [1.0, 0.0], "rl")
    assert (f["alpha"], f["beta"]) == pytest.approx((1.0, 1.0), abs=1e-12)
    assert (f["d_peak"], f["peak"]) == pytest.approx((1.0, 1.0))


def test_fits_that_cannot_be_made_say_so():
    assert fit_form([0.0, 0.5], [0.0, 0.2], "bon")["alpha"] is None  # one point with d > 0
    assert fit_form([0.5, 0.5], [0.1, 0.2], "rl")["alpha"] is None  # one distinct d
    flat = fit_form([0.0, 0.5, 1.0], [0.0, 0.0, 0.0], "rl")
    assert flat["alpha"] == 0.0 and flat["beta"] == 0.0 and flat["r2"] is None  # nothing to explain
    rising = fit_form([1.0, 2.0], [1.0, 3.0], "bon")  # α − β = 1, 2α − 4β = 3 → β = −1/2: no peak
    assert rising["beta"] == pytest.approx(-0.5) and rising["d_peak"] is None


# --- curves ---


def test_bon_curve_is_centred_per_prompt(tmp_path):
    rows = [("p", 0, 0.1, 1.0), ("p", 1, 0.9, 0.0),  # the proxy prefers the gold-worse sample
            ("q", 0, 2.0, 0.5), ("q", 1, 1.0, 0.5)]
    (tmp_path / "s.jsonl").write_text("".join(
        json.dumps({"id": i, "sample_index": s, "response": "x", "proxy": p, "gold": g}) + "\n" for i, s, p, g in rows))
    c = bon_curve(str(tmp_path / "s.jsonl"), [1, 2])
    assert c["gold"] == pytest.approx([0.0, (-0.5 + 0.0) / 2])  # best of 2: p's gold 0 (mean 0.5), q's 0.5 (mean 0.5)
    assert c["proxy"] == pytest.approx([0.0, (0.4 + 0.5) / 2])
    assert c["kl"] == pytest.approx([0.0, math.log(2) - 0.5]) and c["sqrt_kl"][1] == pytest.approx(math.sqrt(c["kl"][1]))
    assert c["base_gold"] == pytest.approx(0.5) and c["base_proxy"] == pytest.approx(1.0)


def test_downturn_by_hand():
    from postlab.overopt import downturn

    gold = [[0.0, 0.0, 0.0], [0.4, 0.2, 0.3], [0.1, 0.0, 0.2]]  # point 1 peaks (mean 0.3), then falls
    proxy = [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [2.0, 1.5, 3.0]]
    t = downturn(gold, proxy)
    assert t["peak_point"] == 1 and t["last_point"] == 2 and t["prompts"] == 3
    # D = (0.3, 0.2, 0.1): mean 0.2, sd 0.1, SE 0.1/sqrt(3); U = (1.0, 0.5, 2.0): mean 7/6
    assert t["gold_drop"] == pytest.approx(0.2) and t["gold_drop_se"] == pytest.approx(0.1 / math.sqrt(3))
    assert t["z"] == pytest.approx(2 * math.sqrt(3)) and t["proxy_rise"] == pytest.approx(7 / 6)
    flat = downturn([[0.0, 0.0], [0.1, 0.1]], [[0.0, 0.0], [1.0, 1.0]])  # still rising: the peak is the end
    assert flat["peak_point"] == flat["last_point"] == 1 and flat["gold_drop"] == 0.0 and flat["z"] is None


def test_downturn_at_a_named_peak_by_hand():
    from postlab.overopt import downturn

    gold = [[0.0, 0.0, 0.0], [0.4, 0.2, 0.3], [0.1, 0.0, 0.2]]
    proxy = [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [2.0, 1.5, 3.0]]
    t = downturn(gold, proxy, peak=0)  # named before looking: point 0, not the data's peak (point 1)
    assert t["peak_point"] == 0 and t["peak_named"] is True
    # D = gold[0] − gold[2] = (−0.1, 0.0, −0.2): mean −0.1, sd 0.1; U = (2.0, 1.5, 3.0): mean 13/6
    assert t["gold_drop"] == pytest.approx(-0.1) and t["gold_drop_se"] == pytest.approx(0.1 / math.sqrt(3))
    assert t["z"] == pytest.approx(-math.sqrt(3)) and t["proxy_rise"] == pytest.approx(13 / 6)
    assert downturn(gold, proxy)["peak_named"] is False
    with pytest.raises(ValueError, match="peak point 3"):
        downturn(gold, proxy, peak=3)


def test_bon_named_downturn_and_its_knob(tmp_path):
    from postlab.errors import ConfigError
    from postlab.overopt import OveroptConfig, bon_named_downturn

    rows = [("p", 0, 0.0, 1.0), ("p", 1, 1.0, 0.0), ("q", 0, 0.0, 0.6), ("q", 1, 1.0, 0.2)]
    (tmp_path / "s.jsonl").write_text("".join(
        json.dumps({"id": i, "sample_index": k, "response": "x", "proxy": p, "gold": g}) + "\n" for i, k, p, g in rows))
    t = bon_named_downturn(str(tmp_path / "s.jsonl"), [1, 2], 1)  # the same drop as the data's peak gives here
    assert t["peak_named"] and t["gold_drop"] == pytest.approx(0.35) and t["gold_drop_se"] == pytest.approx(0.15)
    with pytest.raises(ConfigError, match="bon_named_peak"):
        bon_named_downturn(str(tmp_path / "s.jsonl"), [1, 2], 2)  # the last point has nothing after it
    with pytest.raises(ConfigError, match="bon_named_peak: 3"):
        OveroptConfig(preset="tiny", bon_named_peak=3).check()  # not one of the tiny preset's bon_n
    OveroptConfig(preset="tiny", bon_named_peak=4).check()


def test_bon_curve_downturn_pairs_best_of_n_per_prompt(tmp_path):
    # two prompts; at n = 2 the proxy picks each prompt's gold-worse sample, so gold peaks at n = 1 and falls
    rows = [("p", 0, 0.0, 1.0), ("p", 1, 1.0, 0.0), ("q", 0, 0.0, 0.6), ("q", 1, 1.0, 0.2)]
    (tmp_path / "s.jsonl").write_text("".join(
        json.dumps({"id": i, "sample_index": k, "response": "x", "proxy": p, "gold": g}) + "\n" for i, k, p, g in rows))
    t = bon_curve(str(tmp_path / "s.jsonl"), [1, 2])["downturn"]
    assert t["peak_point"] == 0 and t["prompts"] == 2
    assert t["gold_drop"] == pytest.approx((0.5 + 0.2) / 2) and t["gold_drop_se"] == pytest.approx(0.15)
    assert t["proxy_rise"] == pytest.approx(0.5)


def test_proxy_gaps_pair_the_proxies_picks_on_the_same_samples(tmp_path):
    from postlab.errors import DataError
    from postlab.overopt import proxy_gaps

    gold = {"p": [1.0, 0.0], "q": [0.6, 0.2]}

    def write(name, proxy):
        (tmp_path / name).write_text("".join(
            json.dumps({"id": i, "sample_index": k, "response": "x", "proxy": proxy[i][k], "gold": g}) + "\n"
            for i in gold for k, g in enumerate(gold[i])))
        return str(tmp_path / name)

    big = write("big.jsonl", {"p": [1.0, 0.0], "q": [0.0, 1.0]})  # picks p's better and q's worse sample
    small = write("small.jsonl", {"p": [0.0, 1.0], "q": [0.0, 1.0]})  # picks both worse samples
    (g,) = proxy_gaps({450: big, 50: small}, [1, 2])
    assert g["pairs"] == 450 and g["against"] == 50 and g["prompts"] == 2
    one, two = g["rows"]
    assert one == {"n": 1, "gold_gap": 0.0, "gold_gap_se": 0.0}  # n = 1 is a random sample under either proxy
    # n = 2: p 1.0 − 0.0, q 0.2 − 0.2: Δ = (1, 0), mean 0.5, SE 0.5
    assert two["n"] == 2 and two["gold_gap"] == pytest.approx(0.5) and two["gold_gap_se"] == pytest.approx(0.5)
    other = {"p": [0.0, 1.0], "q": [0.6, 0.2]}
    (tmp_path / "other.jsonl").write_text("".join(
        json.dumps({"id": i, "sample_index": k, "response": "x", "proxy": 0.0, "gold": v}) + "\n"
        for i in other for k, v in enumerate(other[i])))
    with pytest.raises(DataError, match="samples differ"):
        proxy_gaps({450: big, 50: str(tmp_path / "other.jsonl")}, [1, 2])


class _It:
    def __init__(self, id):
        self.id = id


def test_rl_curve_centres_each_step_by_its_prompts_and_averages_steps():
    batches = {0: ["a", "b"], 1: ["b", "b"], 2: ["a", "a"]}  # step s + 1 was logged after sampling batch s
    base_gold, base_proxy = {"a": 0.2, "b": 0.6}, {"a": 1.0, "b": -1.0}
    metrics = [{"step": 3, "gold/train_score": 0.3, "proxy/score": 2.0, "objective/kl": 5.0},
               {"step": 1, "gold/train_score": 0.5, "proxy/score": 0.5, "objective/kl": 0.0},
               {"step": 2, "gold/train_score": 0.7, "proxy/score": 0.0, "objective/kl": 3.0},
               {"step": 2, "gold/score": 0.9}]  # a held-out eval line: not a step's samples
    c = rl_curve(metrics, lambda s: [_It(i) for i in batches[s]], base_gold, base_proxy, 2)
    assert c["step"] == [0, 2, 3]
    assert c["gold"] == pytest.approx([0.0, ((0.5 - 0.4) + (0.7 - 0.6)) / 2, 0.3 - 0.2])
    assert c["proxy"] == pytest.approx([0.0, ((0.5 - 0.0) + (0.0 + 1.0)) / 2, 2.0 - 1.0])
    assert c["kl"] == pytest.approx([0.0, 1.5, 5.0]) and c["sqrt_kl"] == pytest.approx([0.0, math.sqrt(1.5), math.sqrt(5)])
    assert c["gold_se"][1] == pytest.approx(0.0) and c["gold_se"][2] is None
    neg = rl_curve([{"step": 1, "gold/train_score": 0.2, "proxy/score": 1.0, "objective/kl": -0.1}],
                   lambda s: [_It("a")], base_gold, base_proxy, 1)
    assert neg["sqrt_kl"] == [0.0, 0.0]  # a negative k1 estimate is d = 0


def test_probe_curve_centres_every_prompt_by_its_pi_init_mean():
    from postlab.overopt import probe_curve

    base_gold, base_proxy = {"a": 0.2, "b": 0.6}, {"a": 1.0, "b": -1.0}
    rows = [{"step": 0, "kl": 0.0, "per_prompt": {"a": {"gold": 0.25, "proxy": 1.0, "kl": 0.0},
                                                  "b": {"gold": 0.55, "proxy": -1.0, "kl": 0.0}}},
            {"step": 5, "kl": 2.0, "per_prompt": {"a": {"gold": 0.5, "proxy": 2.0, "kl": 1.0},
                                                  "b": {"gold": 0.6, "proxy": 1.0, "kl": 3.0}}},
            {"step": 10, "kl": -0.25, "per_prompt": {"a": {"gold": 0.2, "proxy": 1.0, "kl": -0.5},
                                                     "b": {"gold": 0.6, "proxy": -1.0, "kl": 0.0}}}]
    c = probe_curve(rows, base_gold, base_proxy)
    assert c["step"] == [0, 5, 10]
    assert c["gold"] == pytest.approx([0.0, (0.3 + 0.0) / 2, 0.0])
    assert c["gold_se"] == pytest.approx([0.05, 0.15, 0.0])  # sd over the two prompts / sqrt(2)
    assert c["proxy"] == pytest.approx([0.0, (1.0 + 2.0) / 2, 0.0]) and c["proxy_se"][1] == pytest.approx(0.5)
    assert c["kl"] == [0.0, 2.0, -0.25] and c["sqrt_kl"] == pytest.approx([0.0, math.sqrt(2.0), 0.0])
    # gold peaks at step 5 (mean 0.55 against 0.40 and 0.40); from there to step 10: a 0.3 and 0.0 drop, proxy −1, −2
    t = c["downturn"]
    assert t["peak_point"] == 1 and t["gold_drop"] == pytest.approx(0.15) and t["gold_drop_se"] == pytest.approx(0.15)
    assert t["proxy_rise"] == pytest.approx(-1.5) and t["prompts"] == 2


SEEN: list[list[str]] = []


def record_prompts(item, response):
    """reward.source=python:test_overopt:record_prompts — remembers which prompts each call scored."""
    SEEN.append(item.id)
    return float(len(response) % 3)


@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_rl_recipes_sample_the_prompts_the_centring_assumes(tmp_path, algo):
    """rl_curve's centring relies on step s sampling prompt_batches(items, prompts_per_step, seed, 0)(s)."""
    from postlab.tasks.suite import load_suite, write_suite
    from postlab.train import grpo, ppo
    from postlab.train.rl_common import prompt_batches

    items = load_suite("spec", split="train", limit=5)
    write_suite(items, tmp_path / "p.jsonl")
    seen = importlib.import_module("test_overopt").SEEN
    seen.clear()
    common = dict(model="tiny", out_dir=str(tmp_path / algo), suite=str(tmp_path / "p.jsonl"), steps=3, kl_coef=0.01,
                  reward={"source": "python:test_overopt:record_prompts"},
                  sampling={"temperature": 1.0, "max_new_tokens": 4, "seed": 0},
                  optim={"lr": 1e-3, "bf16": False, "seed": 3}, checkpoint={"progress": False})
    if algo == "grpo":
        grpo.train(grpo.GRPOConfig(**common, k=2, prompts_per_step=2))
        per_step, copies = 2, 2
    else:
        ppo.train(ppo.PPOConfig(**common, prompts_per_step=2, minibatch_size=2, ppo_epochs=1))
        per_step, copies = 2, 1
    batch_at = prompt_batches(load_suite(str(tmp_path / "p.jsonl"), split="train"), per_step, 3, 0)
    expected = [it.id for s in range(3) for it in batch_at(s) for _ in range(copies)]
    assert seen == expected


# --- the command ---


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("overopt") / "tiny"
    r = postlab("overopt", "--preset", "tiny", "--out", out, "progress=false")
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r


def test_tiny_preset_writes_curves_fits_and_plots(tiny_run):
    out, r = tiny_run
    res = json.loads((out / "overopt.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert sorted({(c["method"], c["pairs"]) for c in res["curves"]}) == [(m, n) for m in ("bon", "rl") for n in (4, 8, 16)]
    for c in res["curves"]:
        assert len(c["kl"]) == len(c["gold"]) == len(c["proxy"]) == len(c["sqrt_kl"]) >= 3
        assert c["kl"][0] == 0.0
        if c["method"] == "bon":
            assert c["gold"][0] == pytest.approx(0.0) and c["proxy"][0] == pytest.approx(0.0)
            assert c["n"] == [1, 2, 4, 8]
            assert c["kl"] == pytest.approx([math.log(n) - (n - 1) / n for n in c["n"]])
        else:  # the fixed probe every 2 steps; its step 0 is π_init's own samples, centred by its best-of-n samples
            assert c["step"] == [0, 2, 4, 6]
            probe = [json.loads(x) for x in (out / "rl" / str(c["pairs"]) / "probe.jsonl").read_text().splitlines()]
            assert [row["step"] for row in probe] == [0, 2, 4, 6] and [row["kl"] for row in probe] == c["kl"]
            assert all(len(row["per_prompt"]) == 6 for row in probe)  # every policy prompt of the tiny preset
    assert len(res["fits"]) == 12  # (bon, rl) × 3 proxies × (gold, proxy)
    for f in res["fits"]:
        assert {"alpha", "beta", "r2", "form", "target", "method", "pairs"} <= set(f)
    assert all(isinstance(f["alpha"], float) for f in res["fits"] if f["method"] == "bon")
    assert [p["pairs"] for p in res["proxies"]] == [4, 8, 16] and all(p["train_pairs"] == p["pairs"] for p in res["proxies"])
    assert "centred per prompt" in res["plotted"]
    for c in res["curves"]:  # paired peak-to-end figures, over every policy prompt of the tiny preset
        t = c["downturn"]
        assert t["prompts"] == 6 and 0 <= t["peak_point"] <= t["last_point"] == len(c["gold"]) - 1
        assert t["gold_drop"] == pytest.approx(c["gold"][t["peak_point"]] - c["gold"][-1], abs=1e-9)
    assert "gold from its peak to the last point" in r.stdout
    # best-of-n under the largest proxy against each smaller one, paired on the same samples at every n
    gaps = res["bon_proxy_gaps"]
    assert [(g["pairs"], g["against"]) for g in gaps] == [(16, 4), (16, 8)]
    bon = {c["pairs"]: c for c in res["curves"] if c["method"] == "bon"}
    for g in gaps:
        assert [row["n"] for row in g["rows"]] == [1, 2, 4, 8] and g["prompts"] == 6
        for row, a, b in zip(g["rows"], bon[16]["gold"], bon[g["against"]]["gold"]):
            assert row["gold_gap"] == pytest.approx(a - b, abs=1e-9)  # the curves' difference, now with its paired SE
    assert "the largest proxy against each smaller one" in r.stdout
    for png in ("bon.png", "rl.png", "gold.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob("*/*/checkpoints"))  # finished stages keep their models, not optimizer state
    assert "[13/13 rl-16] running" in r.stderr and "gold and proxy gain over π_init" in r.stdout
    # the held-out prompts behind the proxies' accuracy are counted, and too few of them are said to be too few
    label = res["label"]
    assert label["eval_pairs"] == res["proxies"][0]["eval_pairs"] and 0 < label["eval_prompts"] <= label["eval_pairs"]
    assert label["train_prompts"] >= 1 and label["train_pairs"] >= 16
    assert ("held-out prompts only" in r.stdout) == (label["eval_prompts"] < 10)


def test_rerun_skips_finished_stages(tiny_run):
    out, _ = tiny_run
    before = {p.name: p.read_bytes() for p in (out / "stages").iterdir()}
    again = postlab("overopt", "--preset", "tiny", "--out", out, "progress=false")
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("done already, skipping") == 13 and "running" not in again.stderr
    assert "warning" not in again.stderr
    assert {p.name: p.read_bytes() for p in (out / "stages").iterdir()} == before


def test_a_named_peak_is_added_by_a_rerun_without_redoing_a_stage(tiny_run, tmp_path):
    src, _ = tiny_run
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    again = postlab("overopt", "--preset", "tiny", "--out", out, "progress=false", "bon_named_peak=2")
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("done already, skipping") == 13 and "warning" not in again.stderr
    res = json.loads((out / "overopt.json").read_text())
    named = [c["downturn_named"] for c in res["curves"] if c["method"] == "bon"]
    assert len(named) == 3 and all(t["peak_named"] and t["peak_point"] == 1 for t in named)
    assert "from the n named in advance" in again.stdout and "n = 2 → 8" in again.stdout


def test_finished_stages_made_with_other_knobs_are_flagged(tmp_path, capsys):
    st = Stages(tmp_path, ["a"], {"rl_lr": 1e-3})
    st.run("a", lambda: {"x": 1})
    Stages(tmp_path, ["a"], {"rl_lr": 2e-3})
    assert "rl_lr 0.001 → 0.002" in capsys.readouterr().err


def test_presets_validate_and_bad_options_are_rejected():
    default = load_config(OveroptConfig, None, ["preset=default"]).knobs()
    assert default.model == "smollm2-135m-instruct" and default.rm_pairs == sorted(default.rm_pairs)
    for bad, field in [(["preset=huge"], "preset"), (["rm_pairs=[96,32]"], "rm_pairs"), (["rl_algo=sarsa"], "rl_algo"),
                       (["rl_steps=4", "rl_steps_per_point=8"], "rl_steps_per_point"), (["bon_n=[0,2]"], "bon_n"),
                       (["rl_kl_coef=0"], "rl_kl_coef"), (["rm_prompts=1300", "policy_prompts=100"], "rm_prompts"),
                       (["nonsense=1"], "nonsense")]:
        with pytest.raises(ConfigError, match=field):
            load_config(OveroptConfig, None, bad)


def test_default_preset_samples_and_trains_in_the_machines_faster_dtype(monkeypatch):
    """bf16 was always on in the default preset: on a CPU without fast bf16 (1 GFLOP/s against 140 in fp32 on an
    AVX2 EPYC) every stage crawled. It is `auto` now, resolved as `postlab run` resolves it; a setting stays."""
    from postlab.overopt import resolve_dtype

    default = load_config(OveroptConfig, None, ["preset=default"]).knobs()
    assert default.bf16 == "auto"
    for forced, expected in (("fp32", False), ("bf16", True)):
        monkeypatch.setenv("POSTLAB_DTYPE", forced)
        assert resolve_dtype(default).bf16 is expected
    monkeypatch.setenv("POSTLAB_DTYPE", "fp32")
    assert resolve_dtype(load_config(OveroptConfig, None, ["preset=default", "bf16=true"]).knobs()).bf16 is True
    assert load_config(OveroptConfig, None, ["preset=tiny"]).knobs().bf16 is False


def test_bad_option_on_the_command_line_is_a_clear_error(tmp_path):
    r = postlab("overopt", "--preset", "tiny", "--out", tmp_path / "x", "rm_pairs=[16,4]")
    assert r.returncode == 2 and "rm_pairs" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()


def test_too_few_decided_pairs_is_a_clear_error_and_a_lower_rm_pairs_reuses_the_samples(tiny_run, tmp_path):
    """The default preset asked for an 800-pair proxy while the audited gold rater decides about 1 pair in 9 of
    SmolLM2's samples (~640 from its 400 prompts, ~590 of them for training): the run stopped after sampling, telling the user to start over
    in a new directory. Lowering rm_pairs in the same directory keeps the samples and the labels."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(tiny_run[0], out)
    for stale in ("rm", "bon", "rl"):
        shutil.rmtree(out / stale)
    for f in (out / "stages").glob("[rb]*-*.json"):
        f.unlink()
    decided = json.loads((out / "stages" / "label.json").read_text())["result"]["train_pairs"]
    r = postlab("overopt", "--preset", "tiny", "--out", out, "progress=false", f"rm_pairs=[4,{decided + 1}]")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"decided only {decided} training pairs" in r.stderr
    assert f"rm_pairs up to {decided}" in r.stderr and "samples and labels are kept" in r.stderr
    again = postlab("overopt", "--preset", "tiny", "--out", out, "progress=false", f"rm_pairs=[4,{decided}]")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "[3/10 sample] done already" in again.stderr and "[4/10 label] done already" in again.stderr


def test_the_default_preset_asks_for_no_more_pairs_than_smollm2s_samples_give():
    """Run overopt3 (docs/results.md): gold decided 321 of the 2,990 pairs it compared of SmolLM2's samples on 200 prompts. At
    that rate the default preset's 400 prompts give ~640; its largest proxy must leave room for the held-out ones."""
    default = load_config(OveroptConfig, None, ["preset=default"]).knobs()
    expected = default.rm_prompts * default.pairs_per_prompt * 321 / 2990
    assert default.rm_pairs[-1] <= 0.75 * expected
