"""postlab calibration (issue 21 §1): metrics against hand-computed values, option scoring on the tiny model,
the MMLU-like file format, the reward model's calibration, and the command end to end."""

import json
import math

import pytest
import yaml

from postlab.errors import ConfigError, DataError
from postlab.science import metrics as M
from postlab.science.calibration import reward_model_calibration
from postlab.science.mc_suite import builtin_mc_suite, load_mc_file, load_mc_suite
from postlab.science.options import (average_over_orders, cyclic_orders, model_label, normalise_logprobs,
                                     prompts_for_orders)

from conftest import write_jsonl

C = [0.9, 0.9, 0.6, 0.3]
Y = [1, 0, 1, 0]


def test_equal_width_ece_by_hand():
    # bins (0.8, 0.9]: 2 items, acc 0.5 vs 0.9; (0.5, 0.6]: acc 1 vs 0.6; (0.2, 0.3]: acc 0 vs 0.3 (0.3·10 is not 3 in floats)
    bins = M.reliability_bins(C, Y, 10, "width")
    assert [(round(b["lo"], 1), round(b["hi"], 1), b["n"]) for b in bins] == [(0.2, 0.3, 1), (0.5, 0.6, 1), (0.8, 0.9, 2)]
    assert M.ece(C, Y, 10, "width") == pytest.approx(2 / 4 * 0.4 + 1 / 4 * 0.4 + 1 / 4 * 0.3)  # 0.375


def test_equal_count_ece_by_hand():
    # sorted by confidence: (0.3, 0), (0.6, 1) | (0.9, 1), (0.9, 0): |0.5 − 0.45| and |0.5 − 0.9|, half the items each
    assert M.ece(C, Y, 2, "count") == pytest.approx(0.5 * 0.05 + 0.5 * 0.4)
    assert [b["n"] for b in M.reliability_bins(C, Y, 2, "count")] == [2, 2]


def test_perfectly_calibrated_bins_have_zero_ece():
    c = [0.75] * 4 + [0.5] * 2
    y = [1, 1, 1, 0, 1, 0]
    assert M.ece(c, y, 10, "width") == pytest.approx(0.0)


def test_ece_floor():
    # confidence 1 (or 0.5 with a single bin of many items) leaves no room for noise, or almost none
    assert M.ece_floor([1.0] * 20) == 0.0
    assert M.ece_floor([0.5] * 4000, sims=20) < 0.02
    # one item at confidence 0.5: the outcome is 0 or 1, so the ECE is always 0.5
    assert M.ece_floor([0.5]) == pytest.approx(0.5)
    # fewer items, higher floor
    assert M.ece_floor([0.6] * 10) > M.ece_floor([0.6] * 1000, sims=50)


def test_brier_nll_accuracy_by_hand():
    probs, answers = [[0.7, 0.2, 0.1], [0.5, 0.5]], [0, 1]
    assert M.brier(probs, answers) == pytest.approx(((0.09 + 0.04 + 0.01) + (0.25 + 0.25)) / 2)  # 0.32
    assert M.nll(probs, answers) == pytest.approx(-(math.log(0.7) + math.log(0.5)) / 2)
    assert M.accuracy(probs, answers) == 0.5  # a tie goes to the first option, which is wrong here
    c, correct = M.confidence_and_correct(probs, answers)
    assert c.tolist() == [0.7, 0.5] and correct.tolist() == [1.0, 0.0]


def test_temperature_scaling_and_fit_by_hand():
    assert M.scale_temperature([[0.8, 0.2]], 2.0)[0] == pytest.approx([2 / 3, 1 / 3])  # sqrt(0.8) / sqrt(0.2) = 2
    assert M.scale_temperature([[0.8, 0.2]], 1.0)[0] == pytest.approx([0.8, 0.2])
    # 3 of 4 identical 0.8-confident answers right: the NLL optimum puts 0.75 on them, 4^(1/T) = 3
    probs, answers = [[0.8, 0.2]] * 4, [0, 0, 0, 1]
    assert M.fit_temperature(probs, answers) == pytest.approx(math.log(4) / math.log(3), rel=1e-3)
    # always right: sharpen as far as allowed; right half the time: flatten as far as allowed
    assert M.fit_temperature([[0.6, 0.4]] * 3, [0, 0, 0]) == pytest.approx(0.05, rel=1e-2)
    assert M.fit_temperature([[0.6, 0.4]] * 2, [0, 1]) == pytest.approx(20.0, rel=1e-2)


def test_cross_fitted_temperature_uses_the_other_half():
    probs, answers = [[0.8, 0.2]] * 8, [0, 0, 0, 1] * 2
    scaled, temps = M.cross_fitted_temperature(probs, answers, seed=0)
    assert len(scaled) == 8 and all(sum(p) == pytest.approx(1) for p in scaled)
    for T in temps:  # each half holds some right and some wrong answers, so neither temperature is at a bound
        assert 0.05 < T < 20


def test_bootstrap_interval():
    assert M.bootstrap_interval(lambda idx: 3.0, 10, resamples=50) == (3.0, 3.0)
    xs = [0.0, 1.0] * 50
    lo, hi = M.bootstrap_interval(lambda idx: sum(xs[i] for i in idx) / len(idx), 100, resamples=500, seed=1)
    assert 0.35 < lo < 0.5 < hi < 0.65  # the mean's SE is 0.05: the interval is about ±0.1
    assert all(math.isnan(x) for x in M.bootstrap_interval(lambda idx: 0.0, 10, resamples=0))


def test_calibration_metrics_keys_and_intervals():
    probs = [[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]]
    out = M.calibration_metrics(probs, [0, 1, 0, 0], n_bins=10, resamples=100)
    for key in ("accuracy", "ece", "ece_equal_count", "brier", "nll", "mean_confidence"):
        lo, hi = out[f"{key}_ci"]
        assert lo <= out[key] + 1e-12 and out[key] <= hi + 1e-12, key
    assert out["accuracy"] == 0.5 and out["mean_confidence"] == pytest.approx((0.9 + 0.9 + 0.6 + 0.7) / 4)
    assert out["overconfidence"] == pytest.approx(out["mean_confidence"] - 0.5)
    assert sum(b["n"] for b in out["bins"]) == 4 and out["temperature"] > 0
    assert 0 < out["ece_floor"] < 1 and 0 < out["ece_equal_count_floor"] < 1


def test_paired_differences_by_hand():
    a, b = [[0.5, 0.5], [0.6, 0.4]], [[0.9, 0.1], [0.6, 0.4]]
    d = M.paired_differences(a, b, [0, 0], resamples=50)
    assert d["accuracy"] == 0 and d["mean_confidence"] == pytest.approx((0.9 - 0.5) / 2)
    assert d["brier"] == pytest.approx(((0.01 + 0.01) - (0.25 + 0.25)) / 2)
    assert d["nll"] == pytest.approx((-math.log(0.9) + math.log(0.5)) / 2)
    lo, hi = d["brier_ci"]
    assert lo <= d["brier"] <= hi <= 0  # b is never worse on any resample
    same = M.paired_differences(a, a, [0, 1], resamples=20)
    assert all(same[k] == 0 and same[k + "_ci"] == [0.0, 0.0] for k in ("accuracy", "ece", "brier", "nll"))


def test_average_over_orders_by_hand():
    assert cyclic_orders(3) == [[0, 1, 2], [1, 2, 0], [2, 0, 1]] and cyclic_orders(3, 1) == [[0, 1, 2]]
    # order 0 shows (opt0, opt1): letters 0.6, 0.2 -> q = (0.75, 0.25); order 1 shows (opt1, opt0): 0.3, 0.3 -> (0.5, 0.5)
    p, m = average_over_orders([[0.6, 0.2], [0.3, 0.3]], [[0, 1], [1, 0]])
    assert p == pytest.approx([0.625, 0.375]) and m == pytest.approx(0.7)
    # a letter bias alone (always A) cancels to uniform
    p, _ = average_over_orders([[0.9, 0.1], [0.9, 0.1]], [[0, 1], [1, 0]])
    assert p == pytest.approx([0.5, 0.5])
    # only the first k letters count (probabilities of letters past the options are ignored)
    p, m = average_over_orders([[0.2, 0.2, 0.5]], [[0, 1]])
    assert p == pytest.approx([0.5, 0.5]) and m == pytest.approx(0.4)


def test_normalise_logprobs_by_hand():
    p, m = normalise_logprobs([math.log(0.02), math.log(0.06)])
    assert p == pytest.approx([0.25, 0.75]) and m == pytest.approx(0.08)


def test_prompts_show_every_option_under_every_letter():
    pr = prompts_for_orders("Capital of France?", ["Paris", "Rome", "Oslo"], instruction="Answer.", preamble="I am Ann.")
    texts = [m[-1]["content"] for m in pr.messages]
    assert texts[0].startswith("I am Ann.\n\nCapital of France?") and "A. Paris\nB. Rome\nC. Oslo" in texts[0]
    assert "A. Rome\nB. Oslo\nC. Paris" in texts[1] and "A. Oslo\nB. Paris\nC. Rome" in texts[2]


def test_model_labels():
    assert model_label("base=smollm2-135m-instruct") == ("base", "smollm2-135m-instruct")
    assert model_label("/work/runs/d7/sft/model") == ("sft", "/work/runs/d7/sft/model")
    assert model_label("tiny") == ("tiny", "tiny")


def test_builtin_suite_is_deterministic_and_well_formed():
    items = builtin_mc_suite()
    assert len(items) == 300 and items == builtin_mc_suite()
    cats = {c: sum(it.category == c for it in items) for c in ("capitals", "arithmetic", "units", "facts")}
    assert cats == {"capitals": 60, "arithmetic": 90, "units": 60, "facts": 90}
    assert all(len(set(it.choices)) == 4 and 0 <= it.answer < 4 for it in items)
    by_q = {it.question: it for it in items}
    assert by_q["What is the capital of France?"].choices[by_q["What is the capital of France?"].answer] == "Paris"
    for it in items:
        if it.category == "arithmetic":  # the marked answer is the true result
            a, op, b = it.question[len("What is "):-1].split()
            assert int(it.choices[it.answer]) == {"+": int(a) + int(b), "-": int(a) - int(b), "×": int(a) * int(b)}[op]
    assert len({it.answer for it in items}) == 4  # the right option is not always at one letter
    assert [it.category for it in items[:8]] == ["capitals", "arithmetic", "units", "facts"] * 2  # limit=N stays balanced
    assert [it.category for it in load_mc_suite("builtin:units")] == ["units"] * 60
    with pytest.raises(DataError, match="built-in categories"):
        load_mc_suite("builtin:history")


def test_mc_file_format_and_errors(tmp_path):
    good = write_jsonl(tmp_path / "q.jsonl", [
        {"question": "2 + 2?", "choices": ["3", "4"], "answer": 1},
        {"question": "Red?", "choices": ["red", "blue", "green"], "answer": "A", "subject": "colours", "id": "c1"}])
    items = load_mc_file(good)
    assert [(it.id, it.category, it.answer) for it in items] == [("0", "file", 1), ("c1", "colours", 0)]
    cases = [({"question": "x", "choices": ["a", "b"]}, "missing 'answer'"),
             ({"question": "x", "choices": ["a"], "answer": 0}, "2 to 10"),
             ({"question": "x", "choices": ["a", "b"], "answer": 2}, "out of range"),
             ({"question": "x", "choices": ["a", "b"], "answer": "Z"}, "letter A-B"),
             ({"question": "", "choices": ["a", "b"], "answer": 0}, "non-empty")]
    for row, message in cases:
        bad = write_jsonl(tmp_path / "bad.jsonl", [{"question": "ok", "choices": ["a", "b"], "answer": 0}, row])
        with pytest.raises(DataError, match=message) as e:
            load_mc_file(bad)
        assert "bad.jsonl:2" in str(e.value)


def test_reward_model_calibration_by_hand():
    # margins ±ln 3: P(chosen) 0.75 and 0.25; confidence 0.75 both, right once
    out = reward_model_calibration([math.log(3), -math.log(3)], gold_margins=[0.5, 0.1], gold_threshold=0.3,
                                   bootstrap=20)
    v = out["vs_labels"]
    assert v["accuracy"] == 0.5 and v["mean_confidence"] == pytest.approx(0.75)
    assert v["ece"] == pytest.approx(0.25)
    assert v["brier"] == pytest.approx((2 * 0.25 ** 2 + 2 * 0.75 ** 2) / 2)
    assert v["nll"] == pytest.approx(-(math.log(0.75) + math.log(0.25)) / 2)
    assert out["vs_gold"]["n"] == 1 and out["vs_gold"]["accuracy"] == 1.0  # the 0.1 gold margin is not clear
    # gold preferring the rejected side turns the outcome around
    assert reward_model_calibration([2.0], gold_margins=[-1.0], bootstrap=0)["vs_gold"]["accuracy"] == 0.0


@pytest.fixture(scope="module")
def tiny():
    from postlab.science.options import load_scoring_model

    return load_scoring_model("tiny")


def test_letter_probabilities_do_not_depend_on_the_batch(tiny):
    from postlab.science.options import letter_probabilities

    model, tok = tiny
    short = [{"role": "user", "content": "Q?\n\nA. x\nB. y"}]
    long = [{"role": "user", "content": "A much longer question, padded to another length?\n\nA. x\nB. y\nC. z"}]
    alone = letter_probabilities(model, tok, [short])[0]
    together = letter_probabilities(model, tok, [long, short], batch_size=2)[1]
    assert together == pytest.approx(alone, abs=1e-5)
    assert len(alone) == 10 and 0 < sum(alone) <= 1


def test_answer_logprobs_match_a_direct_forward(tiny):
    import torch

    from postlab.data.chat import render_chat
    from postlab.science.options import answer_logprobs

    model, tok = tiny
    conv = [{"role": "user", "content": "Capital of France?"}]
    got = answer_logprobs(model, tok, [conv, conv], ["Paris", "Rome is far longer"], batch_size=2)
    prompt = tok(render_chat(tok, conv, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
    ids = prompt + tok("Paris", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0], -1)
    want = sum(float(logp[t - 1, ids[t]]) for t in range(len(prompt), len(ids)))
    assert got[0] == pytest.approx(want, abs=1e-4)


def test_config_checks(tmp_path):
    from postlab.config import load_config
    from postlab.science.calibration import CalibrationConfig

    with pytest.raises(ConfigError, match="share a label"):
        load_config(CalibrationConfig, None, ["models=[tiny, tiny]", f"out={tmp_path}/r.json"])
    with pytest.raises(ConfigError, match=".json"):
        load_config(CalibrationConfig, None, ["models=[tiny]", f"out={tmp_path}/r.txt"])
    (tmp_path / "r.json").write_text("{}")
    with pytest.raises(ConfigError, match="overwrite=true"):
        load_config(CalibrationConfig, None, ["models=[tiny]", f"out={tmp_path}/r.json"])
    with pytest.raises(ConfigError, match="at least one model"):
        load_config(CalibrationConfig, None, ["models=[]", f"out={tmp_path}/s.json"])
    with pytest.raises(ConfigError, match="rm_split=all"):
        load_config(CalibrationConfig, None, ["models=[tiny]", f"out={tmp_path}/s.json", f"rm={tmp_path}",
                                              "rm_split=all"])


def _tiny_rm(tmp_path, pairs_file):
    from postlab.models.reward import load_reward_model

    model, tok = load_reward_model("tiny")
    out = tmp_path / "rm" / "model"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (tmp_path / "rm" / "config.yaml").write_text(yaml.safe_dump(
        {"data": {"train_file": str(pairs_file), "eval_file": None, "eval_fraction": 0.5}, "optim": {"seed": 0}}))
    return out


def test_command_side_by_side_with_reward_model(tmp_path):
    from postlab.cli import app

    pairs = write_jsonl(tmp_path / "prefs.jsonl", [
        {"prompt": f"Question {i}?", "chosen": f"A good answer {i}.", "rejected": "No.", "gold_margin": 0.5 - (i % 2)}
        for i in range(8)])
    rm = _tiny_rm(tmp_path, pairs)
    out = tmp_path / "cal" / "r.json"
    app(["calibration", "--models", "a=tiny,b=tiny", "--out", str(out), "limit=8", "bootstrap=20",
         "progress=false", f"rm={rm}"], standalone_mode=False)
    r = json.loads(out.read_text())
    assert list(r["models"]) == ["a", "b"] and r["n_items"] == 8 and r["orders"] == "all"
    for key in ("ece", "ece_ci", "ece_equal_count", "brier", "accuracy", "nll", "temperature", "ece_after_temperature",
                "option_mass", "by_category", "bins"):
        assert key in r["models"]["a"], key
    assert r["models"]["a"]["ece"] == r["models"]["b"]["ece"]  # the same model twice
    assert r["differences"]["b - a"]["nll"] == 0 and r["differences"]["b - a"]["ece_ci"] == [0.0, 0.0]
    assert r["reward_model"]["split"] == "heldout" and r["reward_model"]["pairs"] == 4  # half the 8 prompts
    assert r["reward_model"]["vs_labels"]["n"] == 4
    assert (tmp_path / "cal" / "r.png").stat().st_size > 1000
    rows = [json.loads(line) for line in (tmp_path / "cal" / "r.items.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and sum(rows[0]["probs"]["a"]) == pytest.approx(1, abs=1e-5)
    assert r["meta"]["config"]["models"] == ["a=tiny", "b=tiny"]


def test_command_cloze_on_a_file(tmp_path):
    from postlab.cli import app

    q = write_jsonl(tmp_path / "q.jsonl", [{"question": f"{i} + 1?", "choices": [str(i + 1), str(i + 2), "7"],
                                            "answer": 0} for i in range(5)])
    out = tmp_path / "r.json"
    app(["calibration", "--model", "tiny", "--suite", str(q), "--out", str(out), "scoring=cloze", "bootstrap=10",
         "progress=false"], standalone_mode=False)
    r = json.loads(out.read_text())
    m = r["models"]["tiny"]
    assert r["scoring"] == "cloze" and r["orders"] is None and m["n"] == 5 and 0 <= m["option_mass"] < 1
