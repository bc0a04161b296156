"""Eval harness, suite files (postlab and IFEval formats), win rates."""

import json

import pytest

from postlab.errors import DataError
from postlab.evals.compare import judge
from postlab.evals.generate import Response, read_responses
from postlab.evals.harness import EvalConfig, evaluate, grade, samples_path
from postlab.evals.winrate import win_rate
from postlab.tasks.suite import load_suite, make_item, parse_item, write_suite

from conftest import write_jsonl

IFEVAL_ROWS = [
    {"key": 1000, "prompt": "Write a haiku about rain. Do not use any commas.",
     "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
    # The Hugging Face copy fills unused kwargs with None; those are ignored.
    {"key": 1001, "prompt": "Describe Paris in at least 12 words, wrapped in double quotes.",
     "instruction_id_list": ["length_constraints:number_words", "startend:quotation"],
     "kwargs": [{"num_words": 12, "relation": "at least", "keyword": None}, {"num_words": None}]},
]


def _items():
    return [parse_item(row, f"x:{i}") for i, row in enumerate(IFEVAL_ROWS, 1)]


def test_ifeval_rows_parse_as_items():
    a, b = _items()
    assert a.id == "1000" and a.category == "ifeval" and a.split is None and a.prompt == IFEVAL_ROWS[0]["prompt"]
    assert [c.id for c in b.checks] == ["length_constraints:number_words", "startend:quotation"]
    assert b.checks[0].kwargs["num_words"] == 12


@pytest.mark.parametrize("row,message", [
    ({"key": 1, "prompt": "x", "instruction_id_list": ["punctuation:no_coma"], "kwargs": [{}]}, "punctuation:no_comma"),
    ({"key": 1, "prompt": "x", "instruction_id_list": ["punctuation:no_comma"], "kwargs": []}, "equal length"),
    ({"key": 1, "prompt": "x", "instruction_id_list": ["length_constraints:number_words"], "kwargs": [{"num_words": 5}]},
     "'relation'"),
    ({"id": "a", "messages": [{"role": "user", "content": "hi"}], "category": "c"}, "'checks'"),
    ({"id": "a", "messages": [{"role": "user", "content": "hi"}], "category": "c", "split": "dev",
      "checks": [{"id": "punctuation:no_comma"}]}, "split"),
    ({"id": "a", "messages": [{"role": "assistant", "content": "hi"}], "category": "c",
      "checks": [{"id": "punctuation:no_comma"}]}, "last message must be the user"),
])
def test_bad_suite_rows_name_the_line_and_field(tmp_path, row, message):
    path = write_jsonl(tmp_path / "s.jsonl", [IFEVAL_ROWS[0], row])
    with pytest.raises(DataError, match=f"s.jsonl:2: .*{message}"):
        load_suite(path)


def test_suite_file_round_trip_and_split_filter(tmp_path):
    items = [make_item(f"i{k}", [{"role": "user", "content": f"q{k}"}], "c", split, [("punctuation:no_comma", {})])
             for k, split in enumerate(["train", "test", None])]
    path = tmp_path / "suite.jsonl"
    write_suite(items, path)
    assert load_suite(path) == items
    assert [it.id for it in load_suite(path, split="test")] == ["i1", "i2"]  # unsplit items always kept
    assert [it.id for it in load_suite(path, split="train", limit=1)] == ["i0"]
    with pytest.raises(DataError, match="not a built-in suite"):
        load_suite(tmp_path / "missing.jsonl")


def test_grade_computes_ifeval_accuracies_by_hand():
    items = _items()
    responses = [Response("Rain on the roof\nsoft and steady"),  # 1/1
                 Response('Sure:\n"Paris is a city of light and art and cafes along the river Seine."')]  # words ok, quote loose only
    summary, rows = grade(items, responses)
    assert summary["prompt_level_strict_acc"] == 0.5 and summary["inst_level_strict_acc"] == pytest.approx(2 / 3)
    assert summary["prompt_level_loose_acc"] == 1.0 and summary["inst_level_loose_acc"] == 1.0
    assert summary["overall"] == pytest.approx((1 + 0.5) / 2)
    assert summary["by_check"] == {"length_constraints:number_words": 1.0, "punctuation:no_comma": 1.0,
                                   "startend:quotation": 0.0}
    assert rows[1]["follow_instruction_list"] == [True, False]
    assert rows[1]["follow_instruction_list_loose"] == [True, True]
    assert summary["mean_length"] == pytest.approx((6 + 16) / 2)  # "Sure" + 15 words


def test_read_responses_by_prompt_or_id(tmp_path):
    items = _items()
    path = write_jsonl(tmp_path / "r.jsonl", [{"prompt": IFEVAL_ROWS[1]["prompt"], "response": "two"},
                                               {"id": "1000", "response": "one"}])
    assert [r.text for r in read_responses(path, items)] == ["one", "two"]
    partial = write_jsonl(tmp_path / "p.jsonl", [{"prompt": IFEVAL_ROWS[1]["prompt"], "response": "two"}])
    with pytest.raises(DataError, match="no response for item '1000'"):
        read_responses(partial, items)


def test_evaluate_given_responses_writes_results_and_samples(tmp_path):
    suite = write_jsonl(tmp_path / "ifeval.jsonl", IFEVAL_ROWS)
    responses = write_jsonl(tmp_path / "resp.jsonl", [
        {"prompt": IFEVAL_ROWS[0]["prompt"], "response": "Rain falls, softly."},
        {"prompt": IFEVAL_ROWS[1]["prompt"], "response": '"Paris is the capital of France and a city full of museums."'}])
    out = tmp_path / "res" / "results.json"
    res = evaluate(EvalConfig(suite=str(suite), responses=str(responses), out=str(out), split="all"))
    saved = json.loads(out.read_text())
    for key in ("model", "suite", "split", "n", "overall", "by_category", "by_check", "prompt_level_strict_acc",
                "inst_level_strict_acc", "prompt_level_loose_acc", "inst_level_loose_acc", "mean_length"):
        assert key in saved, key
    assert saved["n"] == 2 and saved["prompt_level_strict_acc"] == 0.5 and res["by_category"] == {"ifeval": 0.5}
    rows = [json.loads(line) for line in samples_path(out).read_text().splitlines()]
    assert samples_path(out).name == "results.samples.jsonl"
    assert [r["follow_instruction_list"] for r in rows] == [[False], [True, True]]
    assert rows[0]["prompt"] == IFEVAL_ROWS[0]["prompt"] and rows[0]["response"] == "Rain falls, softly."


def test_evaluate_generates_with_a_tiny_model(tmp_path):
    suite = write_jsonl(tmp_path / "ifeval.jsonl", IFEVAL_ROWS)
    out = tmp_path / "results.json"
    cfg = EvalConfig(model="tiny", suite=str(suite), out=str(out), dtype="fp32", progress=False,
                     sampling={"max_new_tokens": 8, "temperature": 0.0})
    res = evaluate(cfg)
    rows = [json.loads(line) for line in samples_path(out).read_text().splitlines()]
    assert res["n"] == 2 and len(rows) == 2 and all(1 <= r["num_tokens"] <= 8 for r in rows)
    assert 0.0 <= res["overall"] <= 1.0 and "mean_tokens" in res
    assert evaluate(cfg.model_copy(update={"overwrite": True}))["overall"] == res["overall"]  # greedy: reproducible


def test_win_rate_by_hand():
    r = win_rate([1, 0, 0.5, 1], [5, 5, 5, 5], [5, 5, 5, 5], bootstrap=0)
    assert r.win_rate == pytest.approx(0.625) and r.wins == 2.5
    assert r.se == pytest.approx((0.6875 / 3) ** 0.5 / 2)
    assert r.lc_win_rate == pytest.approx(0.625)  # no length difference: nothing to control for


def test_length_controlled_win_rate_removes_a_length_advantage():
    # A wins exactly when its answer is longer, and is longer most of the time.
    len_a = [30] * 70 + [10] * 30
    outcomes = [1] * 65 + [0] * 5 + [0] * 25 + [1] * 5
    r = win_rate(outcomes, len_a, [20] * 100, seed=0)
    assert r.win_rate == pytest.approx(0.70)
    assert r.length_coef > 0 and abs(r.lc_win_rate - 0.5) < abs(r.win_rate - 0.5)
    assert 0 < r.lc_se < 0.2
    with pytest.raises(ValueError):
        win_rate([1, 2], [1, 1], [1, 1])


def test_judge_with_simulated_raters_randomises_order():
    items = [make_item(f"k{i}", [{"role": "user", "content": "Capital of Italy?"}], "knowledge", "test",
                       [("answer:contains", {"answers": ["Rome"], "wrong": ["Milan"]})]) for i in range(200)]
    rows = judge(items, ["Rome."] * 200, ["Milan."] * 200, "simulated")
    shown_first = sum(r["a_shown_first"] for r in rows)
    assert 60 < shown_first < 140
    assert sum(r["outcome"] for r in rows) / 200 > 0.7  # clear gold margin: A mostly wins
    gold_rows = judge(items, ["Rome."] * 200, ["Milan."] * 200, "gold")
    assert all(r["outcome"] == 1.0 for r in gold_rows)


def test_paired_difference_by_hand():
    from postlab.evals.metrics import paired_difference

    after = {"a": 1.0, "b": 0.5, "c": 1.0, "only_after": 1.0}
    before = {"a": 0.0, "b": 0.5, "c": 0.5, "only_before": 0.0}
    mean, se, n = paired_difference(after, before)
    # differences 1, 0, 0.5: mean 0.5; sample variance 0.25; SE = sqrt(0.25 / 3)
    assert n == 3 and mean == pytest.approx(0.5) and se == pytest.approx((0.25 / 3) ** 0.5)
