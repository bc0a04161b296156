"""Best-of-n at inference (``postlab run algo=bon``): the pick rule and the greedy answers it starts from
(read with ``read_responses``, token counts kept)."""

import json

import pytest

from postlab.errors import DataError
from postlab.evals.bon_policy import pick
from postlab.evals.generate import read_responses
from postlab.tasks.suite import load_suite


def test_pick_takes_the_highest_reward_and_the_greedy_answer_on_ties():
    assert pick([0.1, 0.5, -2.0]) == 1
    assert pick([0.5, 0.5, 0.2]) == 0  # a sample must beat the greedy answer, not tie it
    assert pick([-1.0, 0.3, 0.3]) == 1  # among tied samples, the earlier
    assert pick([7.0]) == 0


def test_greedy_answers_are_read_by_id_with_their_token_counts_and_a_bad_row_is_named(tmp_path):
    items = load_suite("spec", split="test", limit=1)
    path = tmp_path / "sft.samples.jsonl"
    path.write_text(json.dumps({"id": items[0].id, "response": "Hi.", "num_tokens": 2, "finish_reason": "stop"}) + "\n"
                    + json.dumps({"id": "b", "text": "no response key"}) + "\n")
    with pytest.raises(DataError, match=rf"{path}:2: expected an object with a string 'response'"):
        read_responses(path, items)
    path.write_text(json.dumps({"id": items[0].id, "response": "Hi.", "num_tokens": 2, "finish_reason": "stop"}) + "\n")
    r = read_responses(path, items)[0]
    assert (r.text, r.num_tokens, r.finish_reason) == ("Hi.", 2, "stop")
