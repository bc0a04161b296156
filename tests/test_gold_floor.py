"""The ruler's floor: answers nobody would call good score near zero, and good answers still score 1."""

import pytest

from postlab.evals.floor import POLICIES, floor
from postlab.raters.gold import GoldRater
from postlab.spec.spec import load_spec
from postlab.tasks.suite import load_suite, make_item


@pytest.fixture(scope="module")
def test_items():
    return load_suite("spec", split="test")


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_degenerate_constant_policies_score_at_most_015(test_items, name):
    overall, by_category = floor(test_items, POLICIES[name])
    assert overall <= 0.15, (name, overall, by_category)


def test_floor_holds_on_the_train_split_too():
    items = load_suite("spec", split="train")[::3]  # every third item: the suite's order is shuffled
    worst = max(floor(items, policy)[0] for policy in POLICIES.values())
    assert worst <= 0.15


def test_every_good_example_of_the_spec_scores_one_and_every_bad_one_less():
    gold = GoldRater()
    for rule, ex in load_spec().examples:
        item = make_item(rule.id, list(ex.messages), rule.family, None, [(c.id, c.kwargs) for c in ex.checks])
        good = gold.grade(item, ex.good)
        assert good.score == 1.0, (rule.id, ex.good, good.non_answer, [(c.id, c.passed) for c in good.checks])
        assert gold.score(item, ex.bad) < 1.0, (rule.id, ex.bad)
