"""Issue 19: tool-use demonstrations for the calculator environment (SFT rows that bootstrap tool calls)."""

from postlab.agents.demos import calculator_demos, replays, story_expression, write_calculator_demos
from postlab.agents.envs.calculator import evaluate, rows
from postlab.data.chat import encode_chat, load_sft_data
from postlab.models.load import load_tokenizer


def test_story_expression_follows_the_worked_steps():
    steps = ("Kenji starts with 27 beads.", "Gets 2 packs of 9: 2 * 9 = 18, and 27 + 18 = 45.",
             "The number doubles: 45 * 2 = 90.", "Gives 14 away: 90 - 14 = 76.", "Keeps one of 4 equal bags: 76 / 4 = 19.")
    assert story_expression(steps) == "((27 + 2 * 9) * 2 - 14) / 4" and evaluate(story_expression(steps)) == 19
    # the running value equal to a pack count must not be mistaken for it
    assert story_expression(("Omar starts with 9.", "Keeps one of 3 equal bags: 9 / 3 = 3.",
                             "Gets 3 packs of 8: 3 * 8 = 24, and 3 + 24 = 27.")) == "9 / 3 + 3 * 8"


def test_every_train_task_has_a_demo_that_replays_and_loads_for_sft(tmp_path):
    demos = calculator_demos("train")
    by_id = {r["id"]: r for r in rows("train")}
    assert len(demos) == len(by_id) == 620
    assert all(replays(d, by_id[d["id"]]) for d in demos[:50])  # (all are replayed when built)
    path = tmp_path / "demos.jsonl"
    assert write_calculator_demos(path) == 620
    examples = load_sft_data(path)
    tok = load_tokenizer("tiny")
    enc = encode_chat(tok, examples[1].messages, tools=examples[1].tools)
    text = tok.decode([t for t, lab in zip(enc.input_ids, enc.labels) if lab != -100])
    assert '<tool_call>\n{"name": "calculator", "arguments": {"expression": ' in text and "Answer: " in text
    assert "<tool_response>" not in text  # the tool's turn is not trained on


def test_demos_of_faulted_tasks_show_the_error_and_the_same_call_again():
    from postlab.agents.envs.calculator import FAULT_MESSAGE, faulted

    demos = calculator_demos("train", fault_rate=0.25)
    by_id = {r["id"]: r for r in rows("train")}
    assert len(demos) == 620  # every one replays through the faulting environment
    hit = [d for d in demos if faulted(d["id"], 0.25)]
    assert 0.2 < len(hit) / len(demos) < 0.3
    for d in hit[:20]:
        assert [m["role"] for m in d["messages"]] == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant"]
        tools = [m for m in d["messages"] if m["role"] == "tool"]
        calls = [m["tool_calls"] for m in d["messages"] if m.get("tool_calls")]
        assert tools[0]["content"] == f"error: {FAULT_MESSAGE}" and len(calls) == 2 and calls[0] == calls[1]
        assert replays(d, by_id[d["id"]], 0.25)
    plain = next(d for d in demos if not faulted(d["id"], 0.25))
    assert sum(m["role"] == "tool" for m in plain["messages"]) == 1
