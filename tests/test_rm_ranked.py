"""RM-ranked preference pairs (algo=dpo_rm): best against worst of each prompt's candidates, by hand."""

from postlab.tasks.suite import make_item
from postlab.train.rm_ranked import rank_pairs


def _items(*ids):
    return {i: make_item(i, [{"role": "user", "content": f"question {i}"}], "knowledge", "train", []) for i in ids}


def _score_by_length(prompts, texts):
    assert len(prompts) == len(texts)
    return [float(len(t)) for t in texts]


def test_best_against_worst_then_second_against_second():
    cands = {"p": ["aa", "a", "aaaa", "aaa", "aaaa"], "q": ["only one"], "r": ["b", "bb"]}  # duplicates count once
    pairs, st = rank_pairs(_score_by_length, _items("p", "q", "r"), cands, pairs_per_prompt=2)
    got = [(p.prompt_id, p.chosen, p.rejected) for p in pairs]
    assert got == [("p", "aaaa", "a"), ("p", "aaa", "aa"), ("r", "bb", "b")]
    assert st.prompts == 2 and st.pairs == 3 and st.mean_margin == (3 + 1 + 1) / 3
    assert pairs[0].prompt == [{"role": "user", "content": "question p"}] and pairs[0].source == "rm"


def test_min_margin_and_ties_write_nothing():
    items = _items("p", "t")
    pairs, _ = rank_pairs(_score_by_length, items, {"p": ["aaaa", "a"]}, min_margin=4.0)
    assert pairs == []
    pairs, st = rank_pairs(lambda m, t: [0.5] * len(t), items, {"t": ["x", "y", "z"]})
    assert pairs == [] and st.prompts == 1 and st.mean_margin == 0.0
