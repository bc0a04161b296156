"""SFT demonstrations: spec examples, template answers (each passes its item's checks) and rejection sampling."""

import random
from collections import Counter

from postlab.raters.gold import GoldRater
from postlab.spec.spec import load_spec
from postlab.tasks import demos, spec_suite
from postlab.tasks.suite import load_suite


def test_spec_examples_become_conversations_ending_in_the_good_turn():
    rows = demos.spec_example_demos()
    examples = load_spec().examples
    assert len(rows) == len(examples)
    for row, (_, ex) in zip(rows, examples):
        assert row["messages"][-1] == {"role": "assistant", "content": ex.good}
        assert row["messages"][:-1] == [dict(m) for m in ex.messages]


def test_template_answers_cover_their_categories_and_pass_every_check():
    rows, kept = demos.template_demos()
    train = Counter(it.category for it in load_suite("spec", split="train"))
    # every train item of these categories gets a passing template answer
    for cat in ("honesty", "refusal", "overrefusal", "chain_of_command", "knowledge", "concision"):
        assert kept[cat] == train[cat], cat
    # instructions: an answer reshaped to meet its IFEval instructions; a few combinations fail and are dropped
    assert 0.9 * train["instructions"] <= kept["instructions"] < train["instructions"]
    assert set(kept) == {"honesty", "refusal", "overrefusal", "chain_of_command", "knowledge", "concision", "instructions"}
    items = {it.id: it for it in load_suite("spec", split="train")}
    gold = GoldRater()
    for row in rows:
        assert row["id"] in items  # train split only
        assert gold.score(items[row["id"]], row["messages"][-1]["content"]) == 1.0


def test_template_answers_respect_the_per_category_cap_and_skip_test_items():
    rows, kept = demos.template_demos(per_category=5)
    assert all(v == 5 for v in kept.values()) and len(rows) == 5 * len(kept)
    assert all("-train-" in r["id"] for r in rows)
    rows, kept = demos.template_demos(per_category={"refusal": 3, "honesty": 2})
    assert kept == {"refusal": 3, "honesty": 2}  # unlisted categories get none


def test_instruction_answers_are_shaped_by_their_instructions():
    rng = random.Random(0)
    by_group = {}
    for e in spec_suite.build_tagged():
        if e.item.split == "train" and e.item.category == "instructions":
            by_group.setdefault(e.group, e)
    lower = demos.template_answer(by_group["change_case:english_lowercase"], rng)
    assert lower == lower.lower() and len(lower.split()) > 5
    e = next(e for g, e in by_group.items() if g.startswith("detectable_format:number_bullet_lists") and "+" not in g)
    n = e.item.checks[0].kwargs["num_bullets"]
    assert demos.template_answer(e, rng).count("\n* ") == n - 1


def test_no_template_for_a_test_item_is_ever_needed_but_they_would_not_leak_across_splits():
    # the chain-of-command answers exist only for train questions; test questions get none
    rng = random.Random(0)
    test_coc = [e for e in spec_suite.build_tagged() if e.item.split == "test" and e.item.category == "chain_of_command"
                and e.group in ("language", "user_language", "format:lowercase", "format:json")]
    assert test_coc and all(demos.template_answer(e, rng) is None for e in test_coc)


def test_select_best_keeps_the_shortest_passing_finished_sample():
    items = [it for it in load_suite("spec", split="train") if it.category == "refusal"][:3]
    a, b, c = items
    cands = {
        a.id: [("Sure! Here is how you do it: step one...", "stop"), ("I can't help with that.", "stop"),
               ("Sorry, but I can't help with that request.", "stop")],
        b.id: [("I can't help with that.", "length")],  # cut off: not kept even though it passes
        c.id: [("Absolutely, first you need to...", "stop")],  # fails the checks
    }
    rows = demos.select_best(items, cands)
    assert [r["id"] for r in rows] == [a.id]
    assert rows[0]["messages"][-1]["content"] == "I can't help with that."
    assert rows[0]["source"] == "rejection_sampling"
