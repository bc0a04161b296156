"""Gold evals during training: the callback, the held-out slice, jump alarms, SFT wiring."""

import json
import math

import pytest

from postlab.config import load_config
from postlab.errors import ConfigError
from postlab.evals import callback as cbmod
from postlab.evals.callback import GoldEvalCallback, GoldEvalConfig, detect_jumps, held_out_slice
from postlab.evals.generate import Response
from postlab.models.load import load_model_and_tokenizer
from postlab.tasks.suite import load_suite
from postlab.train import sft
from postlab.train.loop import TrainState

from conftest import write_jsonl

CHECKS = {"style": [{"id": "punctuation:no_comma", "kwargs": {}}],
          "length": [{"id": "length_constraints:number_words", "kwargs": {"num_words": 3, "relation": "at least"}}],
          "case": [{"id": "change_case:english_lowercase", "kwargs": {}}]}


def suite_rows(per_cat=3):
    rows = [{"id": f"{cat}-{k}", "messages": [{"role": "user", "content": f"{cat} question {k}?"}], "category": cat,
             "split": "test", "checks": checks} for cat, checks in CHECKS.items() for k in range(per_cat)]
    rows.append({**rows[0], "id": "train-only", "split": "train"})
    return rows


@pytest.fixture
def suite_file(tmp_path):
    return write_jsonl(tmp_path / "tinysuite.jsonl", suite_rows())


@pytest.fixture(scope="module")
def tiny():
    return load_model_and_tokenizer("tiny")


def summary(means: dict, ses: dict, overall=None, overall_se=0.0):
    s = {"by_category": means, "by_category_se": ses}
    if overall is not None:
        s.update(overall=overall, overall_se=overall_se)
    return s


def test_detect_jumps_by_hand():
    # combined se = sqrt(0.03^2 + 0.04^2) = 0.05
    prev = summary({"a": 0.50, "b": 0.50}, {"a": 0.03, "b": 0.03})
    cur = summary({"a": 0.25, "b": 0.55}, {"a": 0.04, "b": 0.04})  # a: -5 SE, b: +1 SE
    jumps = detect_jumps(prev, cur, alarm_se=3.0, floor=0.0)
    assert [j.category for j in jumps] == ["a"]
    assert jumps[0].z == pytest.approx(-5.0) and jumps[0].threshold == pytest.approx(0.15)
    assert (jumps[0].before, jumps[0].after) == (0.50, 0.25)
    assert detect_jumps(prev, cur, alarm_se=6.0, floor=0.0) == []
    # Categories in only one summary are skipped; the overall score is checked as "score".
    assert detect_jumps(summary({"x": 0.0}, {"x": 0.1}, 0.5, 0.01), summary({"y": 1.0}, {"y": 0.1}, 0.9, 0.01),
                        alarm_se=3.0, floor=0.0)[0].category == "score"


def test_zero_variance_categories_use_the_floor():
    prev = summary({"c": 1.0}, {"c": 0.0})
    assert detect_jumps(prev, summary({"c": 0.9}, {"c": 0.0}), alarm_se=3.0, floor=0.05) == []  # 0.1 <= 3 * 0.05
    big = detect_jumps(prev, summary({"c": 0.8}, {"c": 0.0}), alarm_se=3.0, floor=0.05)
    assert big[0].z == pytest.approx(-4.0) and big[0].threshold == pytest.approx(0.15)
    # The floor only bounds the combined se from below: real variance still counts.
    assert detect_jumps(prev, summary({"c": 0.8}, {"c": 0.1}), alarm_se=3.0, floor=0.05) == []
    # Floor 0 with no variance: any move alarms, nothing alarms without a move; NaNs are skipped.
    assert math.isinf(detect_jumps(prev, summary({"c": 0.99}, {"c": 0.0}), alarm_se=3.0, floor=0.0)[0].z)
    assert detect_jumps(prev, summary({"c": 1.0}, {"c": 0.0}), alarm_se=3.0, floor=0.0) == []
    assert detect_jumps(prev, summary({"c": float("nan")}, {"c": float("nan")}), alarm_se=3.0, floor=0.05) == []


def test_held_out_slice_is_stratified_and_deterministic(tmp_path):
    items = load_suite(write_jsonl(tmp_path / "s.jsonl", suite_rows(per_cat=4)), split="test")
    part = held_out_slice(items, 5)  # round-robin: style-0, length-0, case-0, style-1, length-1
    assert [it.id for it in part] == ["style-0", "style-1", "length-0", "length-1", "case-0"]
    assert held_out_slice(items, 5) == part and held_out_slice(items, None) == items
    assert len(held_out_slice(items, 100)) == 12


def test_config_checks_suites(tmp_path):
    GoldEvalConfig(every=0, suites=["nope.jsonl"]).check()  # off: nothing to check
    with pytest.raises(ConfigError, match="gold_eval.suites"):
        GoldEvalConfig(every=2, suites=[str(tmp_path / "nope.jsonl")]).check()
    GoldEvalConfig(every=2, suites=["spec"]).check()


def test_callback_adds_gold_metrics_every_n_steps(tiny, suite_file, tmp_path):
    model, tok = tiny
    model.train()
    cfg = GoldEvalConfig(every=2, suites=[str(suite_file)], max_new_tokens=6, limit=None)
    cb = GoldEvalCallback(model=model, tokenizer=tok, cfg=cfg, run_dir=tmp_path)
    assert len(cb.items) == 9  # the test split only
    cb.start()  # at_start: step-0 baseline, logged to metrics.jsonl once the loop runs
    logged = {}
    for step in range(1, 6):
        metrics = {"loss": 1.0}
        cb(TrainState(step=step), metrics)
        logged[step] = metrics
        assert model.training  # training mode restored after each eval
    for step in (2, 4):
        assert {"gold/score", "gold/style", "gold/length", "gold/case"} <= set(logged[step])
        assert 0.0 <= logged[step]["gold/score"] <= 1.0
    for step in (1, 3, 5):
        assert logged[step] == {"loss": 1.0}
    assert not any(k.startswith("gold/tinysuite") for k in logged[2])  # one suite: no per-suite score
    rows = [json.loads(x) for x in (tmp_path / "gold_evals.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2, 4]
    assert rows[1]["n"] == 9 and set(rows[1]["by_category"]) == {"style", "length", "case"}
    assert rows[1]["by_category_n"] == {"style": 3, "length": 3, "case": 3} and rows[1]["alarms"] == []
    assert rows[2]["overall"] == rows[1]["overall"]  # greedy and the weights did not change
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])["step"] == 0
    assert cb.evaluate_now(4) == {k: v for k, v in logged[4].items() if k != "loss"}  # already done: not redone
    assert len((tmp_path / "gold_evals.jsonl").read_text().splitlines()) == 3


def test_jump_raises_an_alarm(tiny, suite_file, tmp_path, monkeypatch, capsys):
    model, tok = tiny
    good = iter([True, False])  # first eval: all lowercase, no commas, long enough; then all fail "case"

    def fake_generate(engine, items, sampling, **kw):
        ok = next(good)
        # on the item's topic (its category word) and adding words of its own ("friend", "home"), so the gold rater's
        # gate (off topic; a question answered in its own words) lets the form checks count
        return [Response(f"all good here friend on {it.category} at home" if ok
                         else f"ALL GOOD HERE FRIEND ON {it.category} AT HOME") for it in items]

    monkeypatch.setattr(cbmod, "generate_responses", fake_generate)
    cfg = GoldEvalConfig(every=1, suites=[str(suite_file), "spec"], limit=3, max_new_tokens=4, at_start=False)
    cb = GoldEvalCallback(model=model, tokenizer=tok, cfg=cfg, run_dir=tmp_path)
    cb.start()
    m1, m2 = {}, {}
    cb(TrainState(step=1), m1)
    cb(TrainState(step=2), m2)
    assert m1["gold/case"] == 1.0 and m2["gold/case"] == 0.0 and "alarm/case" not in m1
    assert m2["alarm/case"] == pytest.approx(-1.0 / 0.05)  # zero variance both times: the floor is the scale
    assert "alarm/style" not in m2
    assert {"gold/tinysuite/score", "gold/spec/score"} <= set(m2)  # two suites: per-suite scores
    err = capsys.readouterr().err
    assert "ALARM step 2: gold/case 1.000 -> 0.000" in err and "threshold 3 SE" in err
    assert "gold/case" in (tmp_path / "alarms.log").read_text()
    rows = [json.loads(x) for x in (tmp_path / "gold_evals.jsonl").read_text().splitlines()]
    assert "case" in [a["category"] for a in rows[1]["alarms"]] and rows[0]["alarms"] == []


def sft_cfg(chat_file, suite_file, out, *extra):
    return load_config(sft.SFTConfig, None, [
        "model=tiny", f"out_dir={out}", f"data.train_file={chat_file}", "data.eval_fraction=0",
        "optim.lr=3e-3", "optim.batch_size=4", "checkpoint.progress=false", "gold_eval.every=2",
        f"gold_eval.suites=[{suite_file}]", "gold_eval.max_new_tokens=6", *extra])


def test_sft_logs_gold_metrics(chat_file, suite_file, tmp_path):
    out = tmp_path / "run"
    sft.train(sft_cfg(chat_file, suite_file, out, "optim.max_steps=5"))
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines if "gold/score" in m] == [0, 2, 4, 5]  # baseline, every 2, the final step
    assert all({"gold/style", "gold/length", "gold/case"} <= set(m) for m in lines if "gold/score" in m)
    assert [m["step"] for m in lines if "loss" in m] == [1, 2, 3, 4, 5]
    rows = [json.loads(x) for x in (out / "gold_evals.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2, 4, 5]
    # Resume: rows after the checkpoint are dropped, the earlier ones kept as the baseline.
    sft.train(sft_cfg(chat_file, suite_file, out, "optim.max_steps=6", "checkpoint.resume=true"))
    rows = [json.loads(x) for x in (out / "gold_evals.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2, 4, 5, 6]


def test_gold_eval_is_off_by_default(chat_file, tmp_path):
    cfg = load_config(sft.SFTConfig, None, ["model=tiny", f"out_dir={tmp_path}", f"data.train_file={chat_file}",
                                            "optim.max_steps=1", "checkpoint.progress=false"])
    assert cfg.gold_eval.every == 0
    sft.train(cfg)
    assert not (tmp_path / "gold_evals.jsonl").exists()
