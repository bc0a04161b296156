"""Model-as-judge raters: verdict parsing and both-order aggregation by hand with fake backends, the
HTTP backend against `postlab serve --model tiny`, and `postlab label --rater judge:...`."""

import json
import math
import os
import subprocess
import sys

import pytest

from postlab.errors import ConfigError
from postlab.raters.calibration import synthetic_pairs
from postlab.raters.judge import (JudgeRater, aggregate, judge_agreement, load_judge, parse_judge_spec,
                                  parse_verdict, relevant_rules, rubric, vote)
from postlab.raters.label import LabelConfig, label
from postlab.raters.registry import check_rater
from postlab.tasks.suite import make_item, write_suite

from conftest import write_jsonl
from test_serve import KEY, server  # noqa: F401  (the module-scoped `postlab serve --model tiny` fixture)

ITEM = make_item("k0", [{"role": "user", "content": "Capital of Italy?"}], "knowledge", "test",
                 [("answer:contains", {"answers": ["Rome"], "wrong": ["Milan"]})])


class Fake:
    """A backend that answers every prompt with `reply(first, second)`, the answers shown as A and B."""

    name = "fake"

    def __init__(self, reply):
        self.reply, self.prompts = reply, []

    def complete(self, conversations):
        self.prompts += conversations
        out = []
        for conv in conversations:
            text = conv[-1]["content"]
            first = text.split("[Assistant A]\n")[1].split("\n[End of Assistant A]")[0]
            second = text.split("[Assistant B]\n")[1].split("\n[End of Assistant B]")[0]
            out.append(self.reply(first, second))
        return out


@pytest.mark.parametrize("reply, expected", [
    ("[[A]]", "A"), ("Verdict: [[b]]", "B"), ("[[ C ]]", "C"),
    ("[[A]] at first, but on reflection [[B]]", "B"),  # the last verdict counts
    ("The correct answer is: [c].", "C"), ("[[A]], not [B]", "A"),  # single brackets only without double ones
    ("Answer [[A]], [[B]] or [[C]] (tie).", None), ("[A] if A is better, [B] if B is, [C] for a tie", None),  # echoes
    ("A is better", None), ("[[D]]", None), ("[[[A]]]", "A"), ("", None), (None, None),
])
def test_parse_verdict(reply, expected):
    assert parse_verdict(reply) == expected


def test_votes_map_back_to_the_answers():
    assert vote("A", a_first=True) == 1 and vote("B", a_first=True) == -1
    assert vote("A", a_first=False) == -1 and vote("B", a_first=False) == 1
    assert vote("C", a_first=True) == 0 and vote(None, a_first=False) == 0


def test_aggregate_by_hand():
    assert aggregate(1, 1) == ("a", 1.0) and aggregate(-1, -1) == ("b", 1.0)
    assert aggregate(1, -1) == ("tie", 0.0)  # disagreement
    assert aggregate(1, 0) == ("tie", 0.5) and aggregate(0, 0) == ("tie", 0.0)
    # length term: d = 1 − 0.25 ln((1+|a|)/(1+|b|)); the longer a keeps its win below a ratio of e
    assert aggregate(1, 1, len_a=19, len_b=9, beta=0.25) == ("a", pytest.approx(1 - 0.25 * math.log(2)))
    assert aggregate(1, 1, len_a=29, len_b=9, beta=0.25)[0] == "tie"  # ratio 3 > e
    # a half vote for the shorter b wins once a is more than e times as long
    assert aggregate(0, -1, len_a=29, len_b=9, beta=0.25)[0] == "b"
    assert aggregate(0, -1, len_a=19, len_b=9, beta=0.25)[0] == "tie"


def test_position_biased_judge_gives_ties():
    rater = JudgeRater(Fake(lambda first, second: "[[A]]"))
    pref = rater.compare(ITEM, "Rome.", "Milan.")
    assert pref.choice == "tie" and pref.strength == 0.0 and pref.rater_id == "judge:fake"
    assert rater.stats["verdicts"] == 2 and rater.stats["unparseable"] == 0


def test_consistent_judge_picks_the_right_side_in_either_order():
    rater = JudgeRater(Fake(lambda first, second: "[[A]]" if "Rome" in first else "[[B]]"))
    assert rater.compare(ITEM, "Rome.", "Milan.").choice == "a"
    assert rater.compare(ITEM, "Milan.", "Rome.").choice == "b"
    assert rater.compare(ITEM, "Milan.", "Rome.").strength_label == "much better"


def test_unparseable_and_too_long_replies_are_counted_as_tie_votes():
    replies = iter(["no idea", None, "[[A]]", "[[A]]"])
    rater = JudgeRater(Fake(lambda first, second: next(replies)))
    assert rater.compare_many([(ITEM, "Rome.", "Milan."), (ITEM, "Rome.", "Milan.")])[0].choice == "tie"
    assert rater.stats == {"verdicts": 4, "unparseable": 1, "too_long": 1}


def test_rubric_shows_requirements_rules_and_both_answers():
    conv = rubric(ITEM, "Rome.", "Milan.")
    assert [m["role"] for m in conv] == ["system", "user"]
    text = conv[1]["content"]
    assert "user: Capital of Italy?" in text and "Give the correct answer (Rome) and none of Milan." in text
    assert "knowledge.known_answers:" in text and [r for r, _ in relevant_rules(ITEM)][0] == "knowledge.known_answers"
    assert "[Assistant A]\nRome.\n[End of Assistant A]\n[Assistant B]\nMilan.\n" in text and "Answer [[A]], [[B]] or [[C]] (tie)." in text
    assert "Length is not a merit" not in text
    assert "(Assistant A: 1 words, Assistant B: 1 words)" in rubric(ITEM, "Rome.", "Milan.", length_note=True)[1]["content"]


def test_length_controlled_judge_asks_without_length_and_discounts_it():
    fake = Fake(lambda first, second: "[[A]]" if len(first) > len(second) else "[[B]]")  # always the longer one
    lc = JudgeRater(fake, length_controlled=True)
    long_right = "Rome. " + "Thanks for the question. " * 10
    assert lc.id == "judge-lc:fake"
    assert lc.compare(ITEM, long_right, "Milan.").choice == "tie"  # both orders chose a, but 30x longer
    assert JudgeRater(fake).compare(ITEM, long_right, "Milan.").choice == "a"
    assert "Length is not a merit" in fake.prompts[0][1]["content"]


def test_judge_specs():
    assert parse_judge_spec("judge:http://h:1/v1#m") == (False, "http://h:1/v1", "m")
    assert parse_judge_spec("judge-lc:https://h/v1") == (True, "https://h/v1", None)
    assert parse_judge_spec("judge:runs/sft/model") == (False, "runs/sft/model", None)
    assert check_rater("judge:tiny") == "judge:tiny"
    for bad in ("judge:", "judges:x", "oracle"):
        with pytest.raises(ConfigError, match="rater"):
            check_rater(bad)


def test_agreement_report_with_a_gold_like_fake():
    from postlab.raters.gold import GoldRater

    gold = GoldRater()

    def reply(first, second):
        s1, s2 = gold.score(item_of[first, second], first), gold.score(item_of[first, second], second)
        return "[[A]]" if s1 > s2 else "[[B]]" if s2 > s1 else "[[C]]"

    pairs = synthetic_pairs(20)
    item_of = {k: p.item for p in pairs for k in ((p.a, p.b), (p.b, p.a))}
    r = judge_agreement(JudgeRater(Fake(reply)), pairs)
    assert r["agreement_with_gold"] == 1.0 and r["position_consistency"] == 1.0 and r["unparseable_rate"] == 0.0
    assert r["tie_rate"] == 1 - r["gold_decided"] / 20 and 0.5 < r["agreement_with_pool"] < 1


def test_unreachable_endpoint_is_a_clear_error():
    from postlab.raters.judge import JudgeError

    with pytest.raises(JudgeError, match=r"judge endpoint http://127\.0\.0\.1:9/v1"):
        load_judge("judge:http://127.0.0.1:9/v1", timeout=2, max_retries=0)


# --- against a live `postlab serve --model tiny` ---


@pytest.fixture
def judge_env(monkeypatch):
    monkeypatch.setenv("POSTLAB_JUDGE_API_KEY", KEY)


def test_judge_through_postlab_serve(server, judge_env):  # noqa: F811
    rater = load_judge(f"judge:{server}/v1", max_tokens=8)
    assert rater.id == f"judge:tiny@{server}/v1"
    pairs = synthetic_pairs(4)
    prefs = rater.compare_many([(p.item, p.a, p.b) for p in pairs])
    assert all(p.choice in ("a", "b", "tie") and 0 <= p.strength <= 1 and p.rater_id == rater.id for p in prefs)
    assert rater.stats["verdicts"] == 8
    report = judge_agreement(rater, pairs)
    rates = ["agreement_with_gold", "agreement_with_pool", "pool_agreement_with_gold", "tie_rate",
             "unparseable_rate", "too_long_rate", "position_consistency"]
    for key in rates:
        assert 0.0 <= report[key] <= 1.0, key
    assert report["pairs"] == 4 and report["judge"] == rater.id
    assert {"agreement_with_gold_when_decided", "first_shown_wins", "longer_wins"} <= set(report)


def test_wrong_key_names_the_endpoint(server, monkeypatch):  # noqa: F811
    from postlab.raters.judge import JudgeError

    monkeypatch.setenv("POSTLAB_JUDGE_API_KEY", "wrong")
    with pytest.raises(JudgeError, match=f"judge endpoint {server}/v1 refused the API key"):
        load_judge(f"judge:{server}/v1#tiny").compare(ITEM, "Rome.", "Milan.")


def test_label_cli_with_a_judge_writes_trl_rows(server, judge_env, tmp_path):  # noqa: F811
    suite = tmp_path / "suite.jsonl"
    write_suite([ITEM], suite)
    cands = write_jsonl(tmp_path / "c.jsonl", [
        {"prompt_id": "k0", "sample_index": i, "prompt": [], "completion": c}
        for i, c in enumerate(["Rome.", "Milan.", "It is Rome."])])
    out = tmp_path / "prefs.jsonl"
    r = subprocess.run([sys.executable, "-m", "postlab", "label", "--candidates", cands, "--suite", suite,
                        "--rater", f"judge:{server}/v1#tiny", "--out", out],
                       capture_output=True, text=True, env={**os.environ}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "judge: 6 verdicts asked" in r.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    for row in rows:  # the tiny judge rarely decides; whatever it writes is a TRL row
        assert row["rater_id"] == f"judge:tiny@{server}/v1" and row["source"] == "judge"
        assert row["chosen"][0]["role"] == "assistant" and row["prompt"] == ITEM.messages


def test_label_with_a_fake_judge_writes_its_decisions(tmp_path, monkeypatch):
    import postlab.raters.judge as judge

    monkeypatch.setattr(judge, "load_judge", lambda spec, seed=0: JudgeRater(
        Fake(lambda first, second: "[[A]]" if "Rome" in first else "[[B]]")))
    suite = tmp_path / "suite.jsonl"
    write_suite([ITEM], suite)
    cands = write_jsonl(tmp_path / "c.jsonl", [{"prompt_id": "k0", "completion": c} for c in ["Rome.", "Milan."]])
    s = label(LabelConfig(candidates=str(cands), suite=str(suite), rater="judge:fake", out=str(tmp_path / "p.jsonl")))
    row = json.loads((tmp_path / "p.jsonl").read_text())
    assert s["written"] == 1 and s["agreement_with_gold"] == 1.0 and s["judge_verdicts"] == 2
    assert row["chosen"][0]["content"] == "Rome." and row["strength"] == "much better" and row["source"] == "judge"


def test_compare_with_a_judge_maps_the_shown_order_back(monkeypatch):
    import postlab.raters.judge as judge
    from postlab.evals.compare import judge as judge_items

    monkeypatch.setattr(judge, "load_judge", lambda spec, seed=0: JudgeRater(
        Fake(lambda first, second: "[[A]]" if "Rome" in first else "[[B]]")))
    items = [make_item(f"k{i}", ITEM.messages, "knowledge", "test", ITEM.checks) for i in range(20)]
    rows = judge_items(items, ["Rome."] * 20, ["Milan."] * 20, "judge:fake")
    assert 0 < sum(r["a_shown_first"] for r in rows) < 20
    assert all(r["outcome"] == 1.0 and r["rater_id"] == "judge:fake" for r in rows)


def test_unknown_rater_is_a_clean_cli_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "postlab", "compare", "--a", "tiny", "--b", "tiny", "--rater", "oracle"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "rater: unknown rater 'oracle'" in r.stderr and "Traceback" not in r.stderr


def test_local_model_judge_and_a_prompt_too_long_for_it():
    rater = load_judge("judge:tiny", max_tokens=4)
    assert rater.id == "judge:tiny"
    prefs = rater.compare_many([(ITEM, "Rome.", "Milan."), (ITEM, "Rome. " * 500, "Milan.")])  # 2nd: > 2048 tokens
    assert all(p.choice in ("a", "b", "tie") for p in prefs) and prefs[1].choice == "tie"
    assert rater.stats["verdicts"] == 4 and rater.stats["too_long"] == 2
