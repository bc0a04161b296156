"""Best-of-n distillation data (algo=bon_sft): the reward model's best finished candidate per prompt, by hand."""

import pytest

from postlab.tasks.suite import make_item
from postlab.train.bon_sft import pick_quality, select_best


def _items(*ids):
    return {i: make_item(i, [{"role": "user", "content": f"question {i}"}], "knowledge", "train", []) for i in ids}


def _score_by_length(prompts, texts):
    assert len(prompts) == len(texts) and all(p[0]["content"].startswith("question") for p in prompts)
    return [float(len(t)) for t in texts]


def test_best_finished_candidate_per_prompt():
    cands = {"p": [("aa", "stop"), ("aaaaaa", "length"), ("aaa", "stop"), ("  ", "stop"), ("aaa", "stop")],
             "q": [("bbbb", None), ("b", "stop")],
             "r": [("cut off", "length")],  # nothing finished: no demonstration
             "zz": [("not a train item", "stop")]}
    rows, st = select_best(_score_by_length, _items("p", "q", "r"), cands)
    assert [(r["id"], r["messages"][-1]["content"]) for r in rows] == [("q", "bbbb"), ("p", "aaa")]
    assert rows[0]["messages"] == [{"role": "user", "content": "question q"}, {"role": "assistant", "content": "bbbb"}]
    assert rows[0]["source"] == "best_of_n" and rows[0]["reward"] == 4.0
    # duplicates and empty/unfinished texts are not scored: p has "aa", "aaa"; q has "bbbb", "b"
    assert st.prompts == 2 and st.kept == 2 and st.candidates == 4
    assert st.mean_best == (3 + 4) / 2 and st.mean_reward == (2 + 3 + 4 + 1) / 4


def test_keep_takes_the_prompts_with_the_highest_best_reward():
    cands = {i: [("x" * n, "stop"), ("y", "stop")] for i, n in (("a", 5), ("b", 2), ("c", 9), ("d", 7))}
    rows, st = select_best(_score_by_length, _items(*cands), cands, keep=0.5)
    assert [r["id"] for r in rows] == ["c", "d"] and st.kept == 2 and st.prompts == 4
    assert st.mean_best == 8.0
    with pytest.raises(ValueError, match="keep"):
        select_best(_score_by_length, _items("a"), cands, keep=0.0)


def test_ties_go_to_the_earliest_candidate():
    rows, _ = select_best(lambda m, t: [1.0] * len(t), _items("p"), {"p": [("first", "stop"), ("second", "stop")]})
    assert rows[0]["messages"][-1]["content"] == "first"


def test_pick_quality_by_hand():
    items = {"p": make_item("p", [{"role": "user", "content": "q p"}], "honesty", "train", []),
             "q": make_item("q", [{"role": "user", "content": "q q"}], "refusal", "train", []),
             "r": make_item("r", [{"role": "user", "content": "q r"}], "refusal", "train", [])}
    grade = lambda item, text: {"good": 1.0, "half": 0.5}.get(text, 0.0)  # noqa: E731
    cands = {"p": [("good", "stop"), ("bad", "stop"), ("good", "stop"), ("half", "length")],  # scored: good, bad
             "q": [("half", "stop"), ("bad", "stop"), ("good", "stop")],
             "r": [("bad", "stop"), ("bad", "stop")]}  # nothing to gain here
    rows = [{"id": "p", "messages": [{"role": "assistant", "content": "good"}]},
            {"id": "q", "messages": [{"role": "assistant", "content": "half"}]},
            {"id": "r", "messages": [{"role": "assistant", "content": "bad"}]}]
    got = pick_quality(rows, items, cands, grade)
    # picks (1 + 0.5 + 0) / 3; samples (0.5 + 0.5 + 0) / 3; oracle (1 + 1 + 0) / 3; lift (1.5 − 1) / (2 − 1)
    assert got["picks"] == 3 and got["gold_of_picks"] == pytest.approx(0.5)
    assert got["gold_of_samples"] == pytest.approx(1 / 3) and got["gold_of_oracle"] == pytest.approx(2 / 3)
    assert got["share_of_lift"] == pytest.approx(0.5)
    assert got["by_category"]["honesty"] == {"picks": 1, "gold_of_picks": 1.0, "gold_of_samples": 0.5,
                                             "gold_of_oracle": 1.0, "share_of_lift": 1.0}
    ref = got["by_category"]["refusal"]
    assert ref["picks"] == 2 and ref["gold_of_picks"] == 0.25 and ref["gold_of_samples"] == 0.25
    assert ref["gold_of_oracle"] == 0.5 and ref["share_of_lift"] == 0.0
    # a category where every candidate grades alike has no lift to share
    assert pick_quality(rows[2:], items, cands, grade)["share_of_lift"] is None
    assert pick_quality([], items, cands, grade)["gold_of_picks"] is None
