"""Labeling candidates into preferences, and best-of-n: exact expectations and a tiny end-to-end run."""

import json
import math

import pytest

from postlab.raters.label import LabelConfig, label
from postlab.tasks.suite import make_item, write_suite
from postlab.train.bon import analytic_kl, best_of_n_expectation, summarize

from conftest import write_jsonl


def test_analytic_kl():
    assert analytic_kl(1) == 0.0
    assert analytic_kl(2) == pytest.approx(math.log(2) - 0.5)
    assert analytic_kl(32) == pytest.approx(math.log(32) - 31 / 32)


def test_best_of_n_expectation_by_hand():
    proxy, gold = [0.1, 0.9, 0.5], [1.0, 0.0, 0.5]
    assert best_of_n_expectation(proxy, gold, 1) == pytest.approx(0.5)  # plain mean
    # n=2: subsets {0,1}->sample 1 (gold 0), {0,2}->2 (0.5), {1,2}->1 (0)
    assert best_of_n_expectation(proxy, gold, 2) == pytest.approx(0.5 / 3)
    assert best_of_n_expectation(proxy, gold, 3) == 0.0  # the proxy-best overall
    assert best_of_n_expectation(proxy, proxy, 2) == pytest.approx((0.9 + 0.5 + 0.9) / 3)
    rows = summarize([proxy, proxy], [gold, gold], [1, 3])
    assert [r["n"] for r in rows] == [1, 3] and rows[1]["gold"] == 0.0 and rows[0]["gold_se"] == 0.0


def _suite(tmp_path):
    items = [make_item(f"q{i}", [{"role": "user", "content": f"Say the word apple {i}."}], "knowledge", "train",
                       [("keywords:existence", {"keywords": ["apple"]}), ("punctuation:no_comma", {})])
             for i in range(3)]
    path = tmp_path / "suite.jsonl"
    write_suite(items, path)
    return path


def test_label_writes_trl_rows_with_gold_margins(tmp_path):
    suite = _suite(tmp_path)
    cands = write_jsonl(tmp_path / "c.jsonl", [
        {"prompt_id": "q0", "sample_index": 0, "prompt": [], "completion": "apple"},
        {"prompt_id": "q0", "sample_index": 1, "prompt": [], "completion": "pear, plum"},
        {"prompt_id": "q0", "sample_index": 2, "prompt": [], "completion": "apple, pear"},
        {"prompt_id": "q0", "sample_index": 3, "prompt": [], "completion": "apple"},  # duplicate: compared once
        {"prompt_id": "q1", "sample_index": 0, "prompt": [], "completion": "apple"},
        {"prompt_id": "q1", "sample_index": 1, "prompt": [], "completion": "apple!"},  # gold tie: not written
    ])
    out = tmp_path / "prefs.jsonl"
    s = label(LabelConfig(candidates=str(cands), suite=str(suite), rater="gold", out=str(out)))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert s["pairs_compared"] == 4 and s["ties"] == 1 and len(rows) == 3 and s["agreement_with_gold"] == 1.0
    best = [r for r in rows if r["chosen"][0]["content"] == "apple"]
    assert len(best) == 2 and all(r["gold_margin"] > 0 for r in rows)
    assert rows[0]["prompt"] == [{"role": "user", "content": "Say the word apple 0."}]
    assert {"rater_id", "strength", "source", "prompt_id"} <= set(rows[0]) and rows[0]["source"] == "gold"
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt_id": "nope", "completion": "x"}])
    from postlab.errors import DataError
    with pytest.raises(DataError, match="bad.jsonl:1: prompt_id 'nope'"):
        label(LabelConfig(candidates=str(bad), suite=str(suite), out=str(tmp_path / "x.jsonl")))


def test_sample_label_rm_bon_end_to_end_on_tiny(tmp_path):
    from postlab.train.bon import BoNConfig, run
    from postlab.train.rm import RMConfig, train
    from postlab.train.sample import SampleConfig, sample

    suite = _suite(tmp_path)
    cands = sample(SampleConfig(model="tiny", suite=str(suite), split="train", out=str(tmp_path / "c.jsonl"), k=4,
                                batch_size=8, dtype="fp32", progress=False,
                                sampling={"max_new_tokens": 6, "temperature": 1.0, "seed": 0}))
    rows = [json.loads(line) for line in cands.read_text().splitlines()]
    assert {r["prompt_id"] for r in rows} == {"q0", "q1", "q2"} and len(rows) == 12
    prefs = tmp_path / "prefs.jsonl"
    label(LabelConfig(candidates=str(cands), suite=str(suite), rater="simulated", out=str(prefs)))
    assert prefs.read_text().strip()
    train(RMConfig(model="tiny", out_dir=str(tmp_path / "rm"), data={"train_file": str(prefs), "eval_fraction": 0.0},
                   optim={"max_steps": 2, "batch_size": 4, "bf16": False}, checkpoint={"progress": False}))
    res = run(BoNConfig(policy="tiny", rm=str(tmp_path / "rm" / "model"), suite=str(suite), split="all", n=[1, 2, 4],
                        out_dir=str(tmp_path / "bon"), dtype="fp32", progress=False,
                        sampling={"max_new_tokens": 6, "seed": 0}))
    assert [r["n"] for r in res["results"]] == [1, 2, 4] and res["samples_per_prompt"] == 4
    proxies = [r["proxy"] for r in res["results"]]
    assert proxies == sorted(proxies)  # the expected proxy-best can only grow with n
    assert (tmp_path / "bon" / "bon.png").stat().st_size > 1000
    assert len((tmp_path / "bon" / "samples.jsonl").read_text().splitlines()) == 12
    # rescoring the same samples (e.g. with another reward model) gives the same figures, no sampling
    again = run(BoNConfig(policy="tiny", rm=str(tmp_path / "rm" / "model"), suite=str(suite), split="all", n=[1, 2, 4],
                          out_dir=str(tmp_path / "bon2"), samples=str(tmp_path / "bon" / "samples.jsonl"),
                          progress=False))
    assert again["results"] == res["results"]


def test_panel_verdict_by_hand():
    from postlab.raters.base import Preference
    from postlab.raters.label import panel_verdict

    pref, won = panel_verdict([Preference("a", 0.5, "x"), Preference("a", 0.3, "y"), Preference("b", 0.2, "z")])
    assert (pref.choice, won, pref.rater_id) == ("a", 2, "x+y+z") and pref.strength == pytest.approx(0.6 / 3)
    pref, won = panel_verdict([Preference("b", 0.9, "x"), Preference("tie", 0.0, "y")])
    assert (pref.choice, won) == ("b", 1) and pref.strength == pytest.approx(0.45)
    assert panel_verdict([Preference("a", 1.0, "x"), Preference("b", 0.1, "y")])[0].choice == "tie"


def test_panel_asks_distinct_raters_and_states_every_verdict_for_a_vs_b():
    from postlab.raters.simulated import RaterPool, SimulatedRater

    # noiseless, unbiased raters: every panel member must prefer the gold-better response, whatever order it saw
    pool = RaterPool(tuple(SimulatedRater(f"r{i}", noise=0.0, verbosity=0.0, position=0.0) for i in range(5)))
    item = make_item("q", [{"role": "user", "content": "Say the word apple."}], "knowledge", "train",
                     [("keywords:existence", {"keywords": ["apple"]})])
    prefs = pool.panel(item, "pear", "apple", 5)
    assert sorted(p.rater_id for p in prefs) == [f"r{i}" for i in range(5)]
    assert all(p.choice == "b" and p.gold_margin == -1.0 for p in prefs)
    assert len({p.rater_id for p in pool.panel(item, "pear", "apple", 3)}) == 3
    with pytest.raises(ValueError, match="1..5"):
        pool.panel(item, "a", "b", 6)


def test_a_unanimous_panel_keeps_fewer_pairs_with_more_signal(tmp_path):
    from postlab.errors import ConfigError

    items = [make_item(f"q{i}", [{"role": "user", "content": f"Name a fruit, and say apple {i}."}], "knowledge", "train",
                       [("keywords:existence", {"keywords": ["apple"]})]) for i in range(12)]
    suite = tmp_path / "suite.jsonl"
    write_suite(items, suite)
    texts = ["apple it is", "an apple", "apple, red", "pear it is", "a pear", "plum, red"]  # 3 pass, 3 fail
    cands = write_jsonl(tmp_path / "c.jsonl", [{"prompt_id": f"q{i}", "completion": t} for i in range(12) for t in texts])
    one = label(LabelConfig(candidates=str(cands), suite=str(suite), out=str(tmp_path / "one.jsonl"),
                            max_pairs_per_prompt=15))
    panel = label(LabelConfig(candidates=str(cands), suite=str(suite), out=str(tmp_path / "panel.jsonl"),
                              max_pairs_per_prompt=15, raters_per_pair=5, min_votes=5))
    assert one["written"] == 12 * 15 and one["gold_decided_share"] == pytest.approx(0.6)
    assert 0 < panel["written"] < one["written"] and panel["no_consensus"] == one["written"] - panel["written"]
    assert panel["gold_decided_share"] > one["gold_decided_share"] + 0.1
    assert panel["agreement_with_gold"] >= one["agreement_with_gold"]
    rows = [json.loads(line) for line in (tmp_path / "panel.jsonl").read_text().splitlines()]
    assert all(r["rater_id"].count("+") == 4 for r in rows)
    with pytest.raises(ConfigError, match="raters_per_pair: panels need the simulated pool"):
        LabelConfig(candidates=str(cands), suite=str(suite), out="x", rater="gold", raters_per_pair=3).check()
    with pytest.raises(ConfigError, match="min_votes"):
        LabelConfig(candidates=str(cands), suite=str(suite), out="x", raters_per_pair=3, min_votes=4).check()
