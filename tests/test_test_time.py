"""Test-time compute: pass@k, maj@k, best-of-k and token budgets (docs/algorithms/test_time_compute.md)."""

import itertools
import json
import math
from fractions import Fraction

import pytest

from postlab.config import load_config
from postlab.errors import ConfigError
from postlab.evals import test_time as tt
from postlab.evals.generate import generate_responses
from postlab.evals.harness import EvalConfig, evaluate, grade, load_engine, samples_path
from postlab.tasks.suite import load_suite, make_item, write_suite
from postlab.train.bon import best_of_n_expectation

# pass@k for n = 4 samples with c correct, by hand: 1 − C(4−c, k)/C(4, k)
PASS_AT_K_N4 = {  # c: [k=1, k=2, k=3, k=4]
    0: [0, 0, 0, 0],
    1: [1 / 4, 1 - 3 / 6, 1 - 1 / 4, 1],
    2: [2 / 4, 1 - 1 / 6, 1, 1],
    3: [3 / 4, 1, 1, 1],
    4: [1, 1, 1, 1],
}


@pytest.mark.parametrize("c", range(5))
def test_pass_at_k_by_hand_closed_form_and_enumeration(c):
    n = 4
    flags = [True] * c + [False] * (n - c)
    for k in range(1, n + 1):
        subsets = list(itertools.combinations(flags, k))
        brute = sum(any(s) for s in subsets) / len(subsets)
        closed = 1 - math.comb(n - c, k) / math.comb(n, k)
        assert tt.pass_at_k(n, c, k) == pytest.approx(PASS_AT_K_N4[c][k - 1], abs=1e-12)
        assert tt.pass_at_k(n, c, k) == pytest.approx(closed, abs=1e-12) == pytest.approx(brute, abs=1e-12)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        tt.pass_at_k(4, 1, 5)
    with pytest.raises(ValueError):
        tt.pass_at_k(4, 5, 1)


@pytest.mark.parametrize("p", [Fraction(1, 3), Fraction(1, 2), Fraction(9, 10)])
def test_pass_at_k_is_unbiased_by_exhaustive_enumeration(p):
    """Over every outcome of n = 5 Bernoulli(p) samples, E[estimate] = 1 − (1 − p)^k exactly; the plug-in
    1 − (1 − c/n)^k is biased low (Chen et al. 2021's point)."""
    n = 5
    for k in range(1, n + 1):
        expected = expected_plugin = 0.0
        for outcome in itertools.product([0, 1], repeat=n):
            c = sum(outcome)
            weight = float(p**c * (1 - p) ** (n - c))
            expected += weight * tt.pass_at_k(n, c, k)
            expected_plugin += weight * (1 - (1 - c / n) ** k)
        truth = float(1 - (1 - p) ** k)
        assert expected == pytest.approx(truth, abs=1e-12)
        if 1 < k:
            assert expected_plugin < truth - 1e-6


def test_majority_ignores_unparsable_and_breaks_ties_by_first_occurrence():
    assert tt.majority(["4", "4", "5"]) == "4"
    assert tt.majority(["5", "4", "4", "5"]) == "5"  # 2–2: the first to occur wins
    assert tt.majority(["4", "5", "5", "4"]) == "4"
    assert tt.majority([None, None, "3"]) == "3"  # unparsable answers cast no vote
    assert tt.majority([None, None]) is None
    assert tt.majority_correct([None, None], [False, False]) == 0.0  # no answer is a wrong answer
    assert tt.majority_correct([None, "7", None], [False, True, False]) == 1.0


def test_maj_at_k_by_hand():
    # samples: A (right), A (right), B (wrong), no answer
    answers, correct = ["A", "A", "B", None], [True, True, False, False]
    assert tt.maj_at_k(answers, correct, 1) == pytest.approx(2 / 4)
    # pairs: {A,A} {A,B}* {A,-} {A,B}* {A,-} {B,-}; * a tie that A wins by occurring first
    assert tt.maj_at_k(answers, correct, 2) == pytest.approx(5 / 6)
    assert tt.maj_at_k(answers, correct, 3) == 1.0
    assert tt.maj_at_k(answers, correct, 4) == 1.0
    # the same samples in another order: the two A/B ties now go to B
    answers, correct = ["B", "A", "A", None], [False, True, True, False]
    assert tt.maj_at_k(answers, correct, 2) == pytest.approx(3 / 6)
    assert tt.maj_at_k(answers, correct, 3) == pytest.approx(2 / 4)  # {B,A,A} {B,A,-}* {B,A,-}* {A,A,-}
    assert tt.maj_at_k([None] * 4, [False] * 4, 2) == 0.0


def test_maj_at_k_subsamples_with_a_fixed_seed_when_subsets_are_many():
    answers = ["A", "B", "A", "C", "A", "B", "B", None, "A", "C"]
    correct = [a == "A" for a in answers]
    exact = tt.maj_at_k(answers, correct, 5)  # C(10, 5) = 252 subsets
    drawn = tt.maj_at_k(answers, correct, 5, max_subsets=200)
    assert drawn == tt.maj_at_k(answers, correct, 5, max_subsets=200)  # reproducible
    assert drawn == pytest.approx(exact, abs=0.1)


def test_parsed_answers_follow_the_reasoning_parsers():
    arith = make_item("a", [{"role": "user", "content": "What is 6 * 7?"}], "arith", "test",
                      [("reasoning:final_answer", {"answer": 42})], level=1)
    assert tt.parsed_answer(arith, "6 * 7 = 42\nAnswer: 42") == Fraction(42)
    assert tt.parsed_answer(arith, "\\boxed{6 \\times 7 = 42}") == tt.parsed_answer(arith, "Answer: 42.0")
    assert tt.parsed_answer(arith, "It is 42.") is None
    countdown = make_item("c", [{"role": "user", "content": "Use 3, 4 and 5 to make 17."}], "countdown", "test",
                          [("countdown:reaches_target", {"numbers": [3, 4, 5], "target": 17}), ], level=1)
    assert tt.parsed_answer(countdown, "Answer: 3 * 4 + 5") == tt.parsed_answer(countdown, "Answer: 5 + 4 * 3") == 17
    assert tt.parsed_answer(countdown, "Answer: 3 * 5 + 2") is None  # 2 is not given: no value under the rules
    assert tt.parsed_answer(countdown, "Answer: 5 / 3") is None  # not a whole-number division
    spec = make_item("s", [{"role": "user", "content": "Hi"}], "concision", "test",
                     [("length_constraints:number_words", {"num_words": 30, "relation": "less than"})])
    assert not tt.has_parser(spec) and tt.parsed_answer(spec, "Answer: 42") is None


def test_ks_and_summary_by_hand():
    assert tt.ks_up_to(1) == [1] and tt.ks_up_to(4) == [1, 2, 4] and tt.ks_up_to(6) == [1, 2, 4, 6]
    items = [make_item(f"q{i}", [{"role": "user", "content": f"q{i}"}], "arith", "test",
                       [("reasoning:final_answer", {"answer": 1})], level=1) for i in range(2)]
    correct = [[True, False, False, False], [True, True, True, False]]
    answers = [[1, 2, 2, None], [1, 1, 1, 3]]
    rm = [[0.5, 0.9, 0.1, 0.0], [0.1, 0.2, 0.3, 0.9]]
    out = tt.summarize(items, correct, answers, rm)
    assert out["ks"] == [1, 2, 4] and out["samples"] == 4
    assert out["pass_at_k"]["1"] == pytest.approx((1 / 4 + 3 / 4) / 2)
    assert out["pass_at_k"]["4"] == 1.0 and out["pass_at_k_se"]["4"] == 0.0
    # item 0's majority is the wrong 2 from k = 2 on, except for pairs that hold the 1 and no 2
    assert out["maj_at_k"]["4"] == pytest.approx((0 + 1) / 2) and out["maj_at_k_n"] == 2
    assert out["maj_at_k"]["2"] == pytest.approx((3 / 6 + 1) / 2)  # item 0: {1,2}* {1,2}* {1,-}; * tie to the first
    bon = [best_of_n_expectation(r, [float(x) for x in c], 2) for r, c in zip(rm, correct)]
    assert out["bon_at_k"]["2"] == pytest.approx(sum(bon) / 2)
    assert out["bon_at_k"]["4"] == pytest.approx((0 + 0) / 2)  # the RM's favourite is wrong in both
    assert set(out) >= {"pass_at_k_se", "maj_at_k_se", "bon_at_k_se"}


def test_vote_census_by_hand():
    """Four items of 4 samples: never right, always right, a vote won at p = 3/4 (+1/4) and a vote lost at
    p = 1/4 to a wrong answer given twice (−1/4): maj@4 − pass@1 = (1/4 − 1/4) / 4 = 0, ceiling (1/4 + 3/4) / 4."""
    answers = [[2, 3, None, 5], [1, 1, 1, 1], [1, 1, 1, 7], [1, 2, 2, 9]]
    correct = [[False] * 4, [True] * 4, [True, True, True, False], [True, False, False, False]]
    v = tt.vote_census(answers, correct)
    assert (v["never_frac"], v["always_frac"], v["won_frac"], v["lost_frac"]) == (0.25, 0.25, 0.25, 0.25)
    assert v["gain"] == pytest.approx(0.25 / 4) and v["loss"] == pytest.approx(0.25 / 4)
    assert v["ceiling"] == pytest.approx((0.25 + 0.75) / 4)
    assert v["lost_right_share"] == pytest.approx(0.25) and v["lost_top_wrong_share"] == pytest.approx(0.5)
    # the decomposition is exact: maj@N − pass@1 = gain − loss, and the ceiling is pass@N − pass@1
    items = [make_item(f"q{i}", [{"role": "user", "content": f"q{i}"}], "arith", "test",
                       [("reasoning:final_answer", {"answer": 1})], level=1) for i in range(4)]
    out = tt.summarize(items, correct, answers)
    assert out["maj_at_k"]["4"] - out["pass_at_k"]["1"] == pytest.approx(v["gain"] - v["loss"])
    assert out["pass_at_k"]["4"] - out["pass_at_k"]["1"] == pytest.approx(v["ceiling"])
    assert out["vote_census"] == v and "lost_right_share" not in tt.vote_census([[1, 1]], [[True, True]])
    assert "0.062 won − 0.062 lost, at most pass@4 − pass@1 = 0.250" in tt.format_test_time(out)
    with pytest.raises(ValueError, match="same items"):
        tt.vote_census([[1]], [])


def test_config_checks_and_command_line_fields(tmp_path):
    cfg = load_config(EvalConfig, None, ["samples=4", "sampling.temperature=1.0", "budgets=[64,128]"])
    assert cfg.samples == 4 and cfg.budgets == [64, 128] and EvalConfig().samples is None
    with pytest.raises(ConfigError, match="temperature 0"):
        EvalConfig(samples=4).check()
    with pytest.raises(ConfigError, match="rm"):
        EvalConfig(rm=str(tmp_path)).check()
    with pytest.raises(ConfigError, match="budgets"):
        EvalConfig(budgets=[0]).check()


class LengthRM:
    """A stand-in reward model that prefers longer responses (the wiring is under test, not the RM)."""

    def __init__(self, path, **kwargs):
        pass

    def score_texts(self, prompts, responses):
        return [float(len(r)) for r in responses]


def test_eval_with_samples_on_tiny_model(tmp_path, monkeypatch):
    import postlab.raters.reward_model

    monkeypatch.setattr(postlab.raters.reward_model, "RewardModelRater", LengthRM)
    suite = tmp_path / "arith3.jsonl"
    write_suite(load_suite("arith", split="test", limit=3), suite)
    common = dict(model="tiny", suite=str(suite), split="all", dtype="fp32", progress=False, batch_size=8)

    # samples off: exactly the plain generate-and-grade result, with no test_time section
    greedy_cfg = EvalConfig(out=str(tmp_path / "greedy.json"), sampling={"max_new_tokens": 8, "temperature": 0.0}, **common)
    greedy = evaluate(greedy_cfg)
    items = load_suite(str(suite))
    summary, rows = grade(items, generate_responses(load_engine("tiny", "fp32", "cpu"), items, greedy_cfg.sampling,
                                                    batch_size=8, progress=False))
    assert "test_time" not in greedy and {k: greedy[k] for k in summary} == summary
    assert [json.loads(line) for line in samples_path(greedy_cfg.out).read_text().splitlines()] == rows
    assert not (tmp_path / "greedy.test_time.png").exists()

    cfg = EvalConfig(out=str(tmp_path / "tt.json"), samples=4, rm=str(tmp_path), budgets=[2, 4],
                     sampling={"max_new_tokens": 8, "temperature": 1.0, "seed": 0}, **common)
    res = evaluate(cfg)
    saved = json.loads((tmp_path / "tt.json").read_text())
    t = saved["test_time"]
    assert saved["n"] == 3 and t["samples"] == 4 and t["ks"] == [1, 2, 4]
    for key in ("pass_at_k", "maj_at_k", "bon_at_k"):
        assert set(t[key]) == set(t[f"{key}_se"]) == {"1", "2", "4"}
        assert all(0.0 <= v <= 1.0 for v in t[key].values())
    assert t["maj_at_k_n"] == 3 and set(t["budget"]) == set(t["budget_se"]) == {"2", "4"}
    assert all(v <= cap for cap, v in zip([2, 4], t["budget_mean_tokens"].values()))
    rows = [json.loads(line) for line in samples_path(cfg.out).read_text().splitlines()]
    assert len(rows) == 12 and [r["sample_index"] for r in rows] == [0, 1, 2, 3] * 3
    assert {"correct", "answer", "rm", "response", "score"} <= set(rows[0])
    assert [r["rm"] for r in rows] == [float(len(r["response"])) for r in rows]
    assert (tmp_path / "tt.test_time.png").stat().st_size > 1000 and t["plot"].endswith("tt.test_time.png")
    again = evaluate(cfg.model_copy(update={"overwrite": True}))  # seeded: the same samples again
    assert again["test_time"] == res["test_time"]
    assert [json.loads(line) for line in samples_path(cfg.out).read_text().splitlines()] == rows
    # the samples file regraded (e.g. with another reward model) gives the same figures, without sampling
    regraded = evaluate(EvalConfig(suite=str(suite), split="all", out=str(tmp_path / "regraded.json"), samples=4,
                                   rm=str(tmp_path), responses=str(samples_path(cfg.out))))
    assert {k: regraded["test_time"][k] for k in ("pass_at_k", "maj_at_k", "bon_at_k")} == \
        {k: res["test_time"][k] for k in ("pass_at_k", "maj_at_k", "bon_at_k")}
