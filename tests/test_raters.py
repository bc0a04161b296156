"""Gold and simulated raters: exact gold scores, and simulated raters' agreement and biases."""

import pytest

from postlab.raters import GoldRater, RaterPool, SimulatedRater, default_pool
from postlab.raters.base import Preference
from postlab.raters.calibration import measure, synthetic_pairs
from postlab.tasks.suite import make_item

ITEM = make_item("cap-1", [{"role": "user", "content": "What is the capital of Italy? Answer in under 10 words."}],
                 "knowledge", "test",
                 [("answer:contains", {"answers": ["Rome"], "wrong": ["Milan"]}),
                  ("length_constraints:number_words", {"num_words": 10, "relation": "less than"}),
                  ("punctuation:no_comma", {})])


def test_gold_score_is_fraction_of_checks_passed_with_per_check_results():
    gold = GoldRater()
    r = gold.grade(ITEM, "Rome.")
    assert r.score == 1.0 and r.all_passed and [c.id for c in r.checks] == [c.id for c in ITEM.checks]
    r = gold.grade(ITEM, "The capital of Italy, a lovely country in southern Europe, is Rome.")
    assert [c.passed for c in r.checks] == [True, False, False] and r.score == pytest.approx(1 / 3)
    # a wrong answer earns nothing for its form: "fewer than 10 words" counts only when the answer is right
    r = gold.grade(ITEM, "Milan, I think.")
    assert r.score == 0.0 and [c.raw for c in r.checks] == [None, True, None]
    assert gold.grade(ITEM, "   ").score == 0.0
    assert gold.grade(ITEM, "Rome.") == gold.grade(ITEM, "Rome.")  # deterministic


def test_gold_loose_differs_from_strict_only_for_ifeval_checks():
    item = make_item("q", [{"role": "user", "content": "hi"}], "instructions", None,
                     [("startend:quotation", {}), ("answer:contains", {"answers": ["hi"], "wrong": []})])
    r = GoldRater().grade(item, 'Sure:\n"hi there"')
    assert [c.passed for c in r.checks] == [False, True]
    assert [c.passed_loose for c in r.checks] == [True, True]
    assert not r.all_passed and r.all_passed_loose


def test_gold_compare():
    gold = GoldRater()
    p = gold.compare(ITEM, "Milan.", "Rome.")
    assert p.choice == "b" and p.gold_margin == pytest.approx(-1.0) and p.strength == pytest.approx(1.0)
    assert gold.compare(ITEM, "Rome.", "Rome!").choice == "tie"


def test_simulated_rater_without_noise_or_bias_agrees_with_gold_always():
    pairs = synthetic_pairs(600, seed=1)
    exact = SimulatedRater("exact", noise=0.0, verbosity=0.0, position=0.0)
    m = measure(exact, pairs)
    assert m.n_decided > 300 and m.agreement == 1.0
    assert m.longer_wins_rater == pytest.approx(m.longer_wins_gold)
    gold = GoldRater()
    assert all(exact.compare(p.item, p.a, p.b).choice == gold.compare(p.item, p.a, p.b).choice for p in pairs)


def test_default_pool_agreement_in_range_and_prefers_longer():
    m = measure(default_pool(), synthetic_pairs())
    assert 0.65 <= m.agreement <= 0.85
    assert m.longer_wins_rater > m.longer_wins_gold + 0.05


def test_simulated_judgements_are_seeded_and_order_free():
    pool, pairs = default_pool(seed=3), synthetic_pairs(50)
    first = [pool.compare(p.item, p.a, p.b) for p in pairs]
    again = [pool.compare(p.item, p.a, p.b) for p in reversed(pairs)][::-1]
    assert first == again
    other = [default_pool(seed=4).compare(p.item, p.a, p.b) for p in pairs]
    assert first != other


def test_skill_by_category_reduces_noise():
    pairs = synthetic_pairs(1500)
    skilled = SimulatedRater("s", noise=1.0, verbosity=0.0, position=0.0, skill={"math": 4.0})
    plain = SimulatedRater("s", noise=1.0, verbosity=0.0, position=0.0)
    math_pairs = [p for p in pairs if p.item.category == "math"]
    other = [p for p in pairs if p.item.category != "math"]
    assert measure(skilled, math_pairs).agreement > measure(plain, math_pairs).agreement + 0.1
    assert measure(skilled, other).agreement == measure(plain, other).agreement


def test_position_and_verbosity_bias():
    tie_item = make_item("t", [{"role": "user", "content": "Say hi."}], "instructions", None,
                         [("keywords:existence", {"keywords": ["hi"]})])
    first = SimulatedRater("p", noise=0.0, verbosity=0.0, position=0.1)
    assert first.compare(tie_item, "hi", "hi there").choice == "a"
    assert first.compare(tie_item, "hi there", "hi").choice == "a"
    wordy = SimulatedRater("v", noise=0.0, verbosity=0.2, position=0.0)
    assert wordy.compare(tie_item, "hi", "hi, how are you doing today my friend").choice == "b"
    # A verbosity bias can flip a small gold margin, never a large one when noise is off.
    assert wordy.compare(ITEM, "Rome.", "Milan is the capital city of Italy, as everyone knows well.").choice == "a"


def test_pool_assigns_raters_by_pair_and_validates():
    pool = default_pool()
    ids = {pool.assign(p.item, p.a, p.b).id for p in synthetic_pairs(200)}
    assert ids == {r.id for r in pool.raters}
    with pytest.raises(ValueError, match="unique"):
        RaterPool((SimulatedRater("x"), SimulatedRater("x")))
    with pytest.raises(ValueError, match="skills"):
        SimulatedRater("x", skill={"math": 0.0})


def test_strength_labels():
    assert Preference("tie", 0.0, "r").strength_label == "tie"
    assert Preference("a", 0.05, "r").strength_label == "slightly better"
    assert Preference("b", 0.3, "r").strength_label == "better"
    assert Preference("a", 0.9, "r").strength_label == "much better"
