"""The babble gate on a probe of written answers (tests/fixtures/language_probe.jsonl, docs/evals.md "German
compounds, probed"): 107 fluent answers in the suites' five other languages, rich in long real words, and 25 German
babble answers, each graded with its language check by the gold rater.

Sets: DE (42 German answers of 40+ words), DE2_short (25 of fewer), FR/ES/IT/PT (10 each); BABBLE (made-up
capitalised nouns), BABBLE3_suffix (a real stem and a bare suffix: "Schlafung"), BABBLE2_long (real parts in no
sense: "Tageshaltung"; a word-level gate cannot tell these, so they are not asserted)."""

import json
from pathlib import Path

import pytest

from postlab.raters.gold import GoldRater
from postlab.tasks.suite import make_item

ROWS = [json.loads(line) for line in
        (Path(__file__).parent / "fixtures" / "language_probe.jsonl").read_text(encoding="utf-8").splitlines()]
# Fluent answers the gate still calls gibberish, each for one word no list holds and no compound rule builds
# ("Arbeitnehmerpauschbetrag", "siebzigprozentigem", "Duschabzieher", "copagamentos").
KNOWN_MISSES = {"Der Arbeitnehmerpauschbetrag", "Entfernen Sie kleine Stellen mit siebzigprozentigem",
                "Sprühen Sie verdünnten Essig oder Zitronensäure", "Um seguro de saúde permite"}


def _grade(row):
    item = make_item("probe", [{"role": "user", "content": row["question"]}], "language", "test",
                     [("language:response_language", {"language": row["language"]})])
    return GoldRater().grade(item, row["text"])


def test_fluent_answers_pass_their_language_check():
    fluent = [r for r in ROWS if r["expected"] == "answer"]
    assert len(fluent) == 107
    failed = [r["text"] for r in fluent if not _grade(r).all_passed]
    unexpected = [t for t in failed if not any(t.startswith(k) for k in KNOWN_MISSES)]
    assert unexpected == []
    assert len(failed) <= len(KNOWN_MISSES)


@pytest.mark.parametrize("name", ["BABBLE", "BABBLE3_suffix"])
def test_german_babble_is_gibberish(name):
    rows = [r for r in ROWS if r["set"] == name]
    assert rows
    assert [r["text"] for r in rows if _grade(r).non_answer != "gibberish"] == []
