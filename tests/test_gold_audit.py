"""postlab gold-audit: Wilson intervals by hand, and precision/recall counted on a three-row audit."""

import json

import pytest

from postlab.evals.audit import audit, read_audit, wilson
from postlab.errors import DataError


def test_wilson_interval_by_hand():
    # p = 0.8, n = 10, z = 1.96: centre 0.7167, half-width 0.2266
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson(0, 5)[0] == 0.0 and wilson(5, 5)[1] == 1.0


def _row(key, content, checks, response, human, good):
    return {"key": key, "source": key.split(":")[0], "item_id": key.split(":")[1], "category": "knowledge",
            "messages": [{"role": "user", "content": content}], "response": response,
            "checks": [{"id": c, "kwargs": k} for c, k in checks], "human": {"checks": human, "good": good}}


ROME = [("answer:contains", {"answers": ["Rome"], "wrong": ["Milan"]}),
        ("length_constraints:number_words", {"num_words": 10, "relation": "less than"})]


def test_audit_counts_precision_recall_and_agreement():
    rows = [
        _row("base:a", "What is the capital of Italy?", ROME, "Rome.", [True, True], True),  # both pass
        # rater passes both, readers fail the answer (say they judged it sarcastic): two false passes
        _row("sft:b", "What is the capital of Italy?", ROME, "Rome, obviously.", [False, False], False),
        # rater fails both (wrong answer gates the length), readers agree
        _row("rl:c", "What is the capital of Italy?", ROME, "Milan.", [False, False], False),
    ]
    r = audit(rows)
    contains = r["by_check"]["answer:contains"]
    assert (contains["precision"]["k"], contains["precision"]["n"]) == (1, 2)
    assert (contains["recall"]["k"], contains["recall"]["n"]) == (1, 1)
    assert contains["agreement"]["value"] == pytest.approx(2 / 3)
    assert r["overall"]["n"] == 6 and r["overall"]["agreement"]["k"] == 4
    assert r["response_agreement"]["k"] == 2 and r["good_agreement"]["k"] == 2
    assert r["by_source"]["sft"]["k"] == 0 and r["by_source"]["base"]["k"] == 1
    assert {(d["key"], d["check"]) for d in r["disagreements"]} == {("sft:b", "answer:contains"),
                                                                   ("sft:b", "length_constraints:number_words")}
    json.dumps(r, allow_nan=False)  # valid JSON, no NaN


def test_bad_audit_rows_name_the_line(tmp_path):
    path = tmp_path / "a.jsonl"
    row = _row("base:a", "q?", ROME, "Rome.", [True], True)  # one verdict for two checks
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=r"a.jsonl:1: human.checks must hold one verdict per check"):
        read_audit(path)


def test_the_shipped_audit_set_and_the_rater_still_agree_with_it():
    from postlab.evals.audit import AUDIT_PATH

    rows = read_audit(AUDIT_PATH)
    assert len(rows) >= 400 and {r["source"] for r in rows} == {"base", "sft", "rl", "sft2", "bon7", "bon6", "d12rl",
                                                                "d12sft", "d12sft_t07", "d12rl_t07", "e1sft_t07",
                                                                "e1rl_t07", "e2sft", "e2rl", "e5sft", "e5rl", "f1sft",
                                                                "f2rl", "g1base", "g1sft", "g1rl", "g1sft_t07",
                                                                "g1rl_t07", "g1sft_t10", "g1rl_t10", "h1rl60", "h1rl100",
                                                                "h2rl40", "h2rl60", "h2rl40_t07", "i1sft_t07", "i1rl_t07",
                                                                "i1sft_t10", "i1sft", "i1rl", "i1sft_t07h", "i1rl_t07h",
                                                                "q2sft", "q2rl"}
    r = audit(rows)
    # Measured when the set was made (docs/evals.md): 95.1% of responses, 90.5% of requirements. A change to the
    # checks that loosens or breaks them shows up here first.
    assert r["response_agreement"]["value"] >= 0.93
    assert r["overall"]["agreement"]["value"] >= 0.88
    assert r["overall"]["recall"]["value"] >= 0.9


def test_the_second_reading_matches_the_audit_set():
    """postlab/assets/gold_audit_reread.jsonl: a second blind reading of audited answers (docs/evals.md), one verdict
    per requirement of an answer the set holds."""
    import json

    from postlab.evals.audit import AUDIT_PATH

    first = {r["key"]: r for r in read_audit(AUDIT_PATH)}
    second = [json.loads(line) for line in AUDIT_PATH.with_name("gold_audit_reread.jsonl").read_text().splitlines()]
    assert len(second) >= 600 and len({r["key"] for r in second}) == len(second)
    for r in second:
        assert r["key"] in first and len(r["human"]["checks"]) == len(first[r["key"]]["checks"])
        assert all(isinstance(v, bool) for v in r["human"]["checks"]) and "second reading" in r["human"]["judged_by"]
