"""Data in, as the ecosystem has it (issue 17, item 8): every TRL dataset shape postlab trains on, read
from JSONL (with or without a byte-order mark), directories of shards, Parquet, Arrow and
``save_to_disk`` directories; every malformed row names its file and line (or row index)."""

import json
import sys

import pytest

from postlab.config import load_config
from postlab.data.chat import (IGNORE_INDEX, completion_text, encode_chat, load_sft_data, parse_sft_row, render_chat,
                               template_supports_tools, tools_as_text, validate_messages)
from postlab.data.preferences import encode_prompt, load_preferences
from postlab.data.rows import read_rows
from postlab.errors import DataError
from postlab.models.tiny import build_tiny_tokenizer
from postlab.train import sft
from postlab.train.sample import SampleConfig, load_prompts, sample

from conftest import conv, write_jsonl

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
datasets = pytest.importorskip("datasets")


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def supervised_text(tok, enc) -> str:
    return "".join(tok.decode([t]) for t, label in zip(enc.input_ids, enc.labels) if label != IGNORE_INDEX)


def write_parquet(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


# ---- file sources ----------------------------------------------------------------------------------

def test_byte_order_mark_is_skipped(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(conv("hi", "yo")).encode() + b"\n")
    assert load_sft_data(path)[0].messages == conv("hi", "yo")["messages"]
    prefs = tmp_path / "bom_prefs.jsonl"
    prefs.write_bytes(b"\xef\xbb\xbf" + json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}).encode() + b"\n")
    assert load_preferences(prefs)[0].chosen == "a"


def test_directory_of_jsonl_shards_in_name_order(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    write_jsonl(shards / "train-00001.jsonl", [conv("c", "3")])
    write_jsonl(shards / "train-00000.jsonl", [conv("a", "1"), conv("b", "2")])
    (shards / "README.md").write_text("not data")
    rows = list(read_rows(shards))
    assert [r.where for r in rows] == [f"{shards}/train-00000.jsonl:1", f"{shards}/train-00000.jsonl:2",
                                       f"{shards}/train-00001.jsonl:1"]
    assert [r.key for r in rows] == [0, 1, 2]  # positions in the whole source, unique across shards
    assert [ex.messages[1]["content"] for ex in load_sft_data(shards)] == ["1", "2", "3"]
    write_jsonl(shards / "train-00002.jsonl", [conv("d", "4"), '{"messages": [{"role": "user", "content": "x"}]}'])
    with pytest.raises(DataError, match=rf"{shards}/train-00002.jsonl:2: conversation has no assistant turn"):
        load_sft_data(shards)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no .jsonl, .parquet or .arrow files"):
        load_sft_data(empty)


def test_parquet_rows_and_errors_name_file_and_row(tmp_path):
    rows = [conv("a", "1"), {"prompt": "b", "completion": "2"}]  # Arrow fills the missing columns with nulls
    rows = [{"messages": r.get("messages"), "prompt": r.get("prompt"), "completion": r.get("completion")} for r in rows]
    path = write_parquet(tmp_path / "train.parquet", rows)
    examples = load_sft_data(path)
    assert examples[0].messages == conv("a", "1")["messages"] and examples[0].loss_from == 0
    assert examples[1].messages == [user("b"), assistant("2")] and examples[1].loss_from == 1
    bad = write_parquet(tmp_path / "bad.parquet", [conv("a", "1"), conv("b", "2"),
                                                    {"messages": [{"role": "robot", "content": "x"}]}])
    with pytest.raises(DataError, match=rf"{bad} row 2: messages\[0\] has unknown role 'robot'"):
        load_sft_data(bad)
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    with pytest.raises(DataError, match=rf"{junk}: not a readable Parquet file"):
        load_sft_data(junk)
    empty = write_parquet(tmp_path / "empty.parquet", [])
    with pytest.raises(DataError, match="empty Parquet file"):
        load_sft_data(empty)


@pytest.mark.parametrize("layout", ["stream", "file"])
def test_arrow_files_in_both_ipc_layouts(tmp_path, layout):
    table = pa.Table.from_pylist([{"prompt": "q1", "chosen": "good", "rejected": "bad"},
                                  {"prompt": "q2", "chosen": "fine", "rejected": ""}])
    path = tmp_path / "prefs.arrow"
    with pa.OSFile(str(path), "wb") as sink:
        writer = (pa.ipc.new_stream if layout == "stream" else pa.ipc.new_file)(sink, table.schema)
        writer.write_table(table)
        writer.close()
    with pytest.raises(DataError, match=rf"{path} row 1: 'rejected' must be a non-empty string"):
        load_preferences(path)
    path.write_bytes(b"not arrow at all")
    with pytest.raises(DataError, match=rf"{path}: not a readable Arrow file"):
        load_preferences(path)


def test_saved_dataset_directory(tmp_path):
    rows = [{"messages": [user("a"), assistant("1")]},
            {"messages": [user("b"), {"role": "assistant", "content": None,
                                      "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}]
    ds = datasets.Dataset.from_list(rows)  # messages[0] gets tool_calls=None: read as absent
    ds.save_to_disk(str(tmp_path / "saved"))
    examples = load_sft_data(tmp_path / "saved")
    assert examples[0].messages == [user("a"), assistant("1")]
    assert examples[1].messages[1]["tool_calls"] == [{"type": "function", "function": {"name": "f", "arguments": {}}}]
    datasets.Dataset.from_list([{"messages": [user("a")]}]).save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(DataError, match=rf"{tmp_path / 'bad'} row 0: conversation has no assistant turn"):
        load_sft_data(tmp_path / "bad")
    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "dict"))
    with pytest.raises(DataError, match=r"a saved DatasetDict with splits test, train; give one split's directory"):
        load_sft_data(tmp_path / "dict")


def test_missing_datasets_library_says_what_to_install(tmp_path, monkeypatch):
    path = write_parquet(tmp_path / "t.parquet", [conv("a", "b")])
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets now raises ImportError
    with pytest.raises(DataError, match=rf"{path}: reading Parquet files needs the `datasets` library: pip install datasets"):
        load_sft_data(path)


# ---- SFT rows: prompt-completion, content parts, tools -----------------------------------------

def test_prompt_completion_rows_plain_and_conversational():
    plain = parse_sft_row({"prompt": "The sky is", "completion": "blue."}, "f:1")
    assert plain.messages == [user("The sky is"), assistant("blue.")] and plain.loss_from == 1
    chat = parse_sft_row({"prompt": [user("Q?")], "completion": [assistant("A.")]}, "f:2")
    assert chat.messages == [user("Q?"), assistant("A.")] and chat.loss_from == 1
    mixed = parse_sft_row({"prompt": [user("Q?")], "completion": "A.", "messages": [user("other"), assistant("x")]}, "f:3")
    assert mixed.messages == [user("Q?"), assistant("A.")]  # prompt-completion wins over messages, as in TRL


def test_prompt_completion_loss_covers_the_completion_only():
    tok = build_tiny_tokenizer()
    row = {"prompt": [user("a"), assistant("B"), user("c")], "completion": [assistant("D")]}
    ex = parse_sft_row(row, "f:1")
    assert supervised_text(tok, encode_chat(tok, ex.messages, loss_from=ex.loss_from)) == "D<|im_end|>"
    whole = parse_sft_row({"messages": row["prompt"] + row["completion"]}, "f:2")
    assert supervised_text(tok, encode_chat(tok, whole.messages, loss_from=whole.loss_from)) == "B<|im_end|>D<|im_end|>"


def test_content_parts_are_joined():
    msgs = validate_messages([{"role": "user", "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}]},
                              {"role": "assistant", "content": [{"type": "text", "text": "Hi."}]}], "f:1")
    assert msgs == [user("Hello there"), assistant("Hi.")]


def test_tool_calls_rendered_as_text_when_the_template_has_no_tools():
    tok = build_tiny_tokenizer()
    assert not template_supports_tools(tok)
    row = {"messages": [user("Light on?"),
                        {"role": "assistant", "tool_calls": [{"type": "function",
                                                              "function": {"name": "light", "arguments": '{"on": true}'}}]},
                        {"role": "tool", "name": "light", "content": "done"},
                        assistant("It is on.")],
           "tools": [{"type": "function", "function": {"name": "light"}}]}
    ex = parse_sft_row(row, "f:1")
    assert ex.messages[1]["tool_calls"][0]["function"]["arguments"] == {"on": True}  # JSON string parsed
    plain = tools_as_text(ex.messages, ex.tools)
    assert plain[0]["role"] == "system" and '{"type": "function", "function": {"name": "light"}}' in plain[0]["content"]
    assert plain[1:] == [user("Light on?"),
                         assistant('<tool_call>\n{"name": "light", "arguments": {"on": true}}\n</tool_call>'),
                         user("<tool_response>\ndone\n</tool_response>"),
                         assistant("It is on.")]
    enc = encode_chat(tok, ex.messages, loss_from=ex.loss_from, tools=ex.tools)
    assert supervised_text(tok, enc) == ('<tool_call>\n{"name": "light", "arguments": {"on": true}}\n</tool_call><|im_end|>'
                                         "It is on.<|im_end|>")  # the call and the answer; not the tool's result


TOOL_TEMPLATE = ("{% if tools %}<|im_start|>system\nTOOLS {{ tools | map(attribute='function.name') | join(',') }}<|im_end|>\n"
                 "{% endif %}{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.tool_calls %}"
                 "{% for c in m.tool_calls %}CALL {{ c.function.name }}{% endfor %}{% else %}{{ m.content }}{% endif %}"
                 "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_tool_calls_go_through_a_template_that_supports_them():
    tok = build_tiny_tokenizer()
    tok.chat_template = TOOL_TEMPLATE
    assert template_supports_tools(tok)
    msgs = [user("Light on?"), {"role": "assistant", "content": "",
                                "tool_calls": [{"type": "function", "function": {"name": "light", "arguments": {}}}]},
            {"role": "tool", "content": "done"}, assistant("On.")]
    tools = [{"type": "function", "function": {"name": "light"}}]
    text = render_chat(tok, msgs, add_generation_prompt=False, tools=tools)
    assert text == ("<|im_start|>system\nTOOLS light<|im_end|>\n<|im_start|>user\nLight on?<|im_end|>\n"
                    "<|im_start|>assistant\nCALL light<|im_end|>\n<|im_start|>tool\ndone<|im_end|>\n"
                    "<|im_start|>assistant\nOn.<|im_end|>\n")
    assert supervised_text(tok, encode_chat(tok, msgs, tools=tools)) == "CALL light<|im_end|>On.<|im_end|>"


def test_conversations_without_tools_render_exactly_as_before():
    tok = build_tiny_tokenizer()
    msgs = [user("a"), assistant("b")]
    assert render_chat(tok, msgs, add_generation_prompt=True) == tok.apply_chat_template(msgs, tokenize=False,
                                                                                          add_generation_prompt=True)


def test_tool_turns_are_refused_where_tools_are_not_read():
    with pytest.raises(DataError, match="unknown role 'tool'"):
        validate_messages([user("a"), {"role": "tool", "content": "x"}], "suite.jsonl:1", need_assistant=False)
    with pytest.raises(DataError, match=r"unknown keys \['tool_calls'\]"):
        validate_messages([user("a"), {"role": "assistant", "content": "x", "tool_calls": []}], "f:1")


@pytest.mark.parametrize("row, message", [
    ({"prompt": "q"}, "a 'prompt' with no 'completion'"),
    ({"text": "raw"}, "a 'text' row is raw language-modelling data"),
    ({"prompt": "q", "completion": ""}, "'completion' is empty"),
    ({"prompt": [user("q")], "completion": [user("not an answer")]}, "completion: conversation has no assistant turn"),
    ({"prompt": 3, "completion": "a"}, "'prompt' must be a string or a list of messages"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "url": "x.png"}]}, assistant("y")]},
     r"messages\[0\].content\[0\]: only \{'type': 'text', 'text': ...\} parts are supported \(got 'image'\)"),
    ({"messages": [user("q"), {"role": "assistant", "tool_calls": [{"name": "f"}]}]},
     r"messages\[1\].tool_calls\[0\]: expected \{'type': 'function'"),
    ({"messages": [user("q"), {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}]},
     r"messages\[1\].tool_calls\[0\]: 'arguments' is not valid JSON"),
    ({"messages": [user("q"), {"role": "assistant", "tool_calls": "f()"}]}, "'tool_calls' must be a non-empty list"),
    ({"messages": [user("q"), {"role": "user", "content": "x", "tool_calls": []}, assistant("a")]}, r"unknown keys \['tool_calls'\]"),
    ({"messages": [user("q"), assistant("a")], "tools": "[not json"}, "'tools' is not valid JSON"),
    ({"messages": [user("q"), assistant("a")], "tools": [1]}, "'tools' must be a list of function schemas"),
])
def test_bad_sft_rows_name_file_and_line(tmp_path, row, message):
    path = write_jsonl(tmp_path / "d.jsonl", [conv("a", "b"), row])
    with pytest.raises(DataError) as e:
        load_sft_data(path)
    assert str(e.value).startswith(f"{path}:2: ")
    assert e.match(message)


# ---- preferences: implicit prompt ------------------------------------------------------------------

def test_implicit_prompt_conversational(tmp_path):
    shared = [{"role": "system", "content": "be kind"}, user("What colour is the sky?")]
    path = write_jsonl(tmp_path / "p.jsonl", [{"chosen": shared + [assistant("Blue.")],
                                               "rejected": shared + [{"role": "assistant",
                                                                      "content": [{"type": "text", "text": "Green."}]}]}])
    (pair,) = load_preferences(path)
    assert pair.prompt == shared and pair.chosen == "Blue." and pair.rejected == "Green."


def test_implicit_prompt_plain_strings_split_as_trl_does():
    from postlab.data.preferences import parse_pair

    pair = parse_pair({"chosen": "The sky is blue.", "rejected": "The sky is green."}, "f:1")
    assert pair.prompt == [user("The sky is")] and pair.chosen == " blue." and pair.rejected == " green."


@pytest.mark.parametrize("row, message", [
    ({"chosen": [user("a"), assistant("x")], "rejected": [user("b"), assistant("y")]}, "start with different messages"),
    ({"chosen": [user("a"), assistant("x"), user("more"), assistant("z")], "rejected": [user("a"), assistant("y")]},
     "chosen must be exactly one assistant message \\(it has 3\\)"),
    ({"chosen": "Blue.", "rejected": "Green."}, "share no prefix"),
    ({"chosen": [user("a"), assistant("x")], "rejected": "y"}, "both be conversations or both strings"),
    ({"chosen": [user("a"), {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f"}}]}],
      "rejected": [user("a"), assistant("y")]}, "chosen ends with a tool call"),
    ({"prompt": "q", "rejected": "b"}, "missing 'chosen'"),
])
def test_bad_preference_rows_name_file_and_line(tmp_path, row, message):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}, row])
    with pytest.raises(DataError) as e:
        load_preferences(path)
    assert str(e.value).startswith(f"{path}:2: ")
    assert e.match(message)


def test_preference_prompts_with_tool_turns_encode_through_the_fallback():
    tok = build_tiny_tokenizer()
    prompt = [user("Light on?"), {"role": "assistant", "content": "",
                                  "tool_calls": [{"type": "function", "function": {"name": "light", "arguments": {}}}]},
              {"role": "tool", "content": "done"}]
    text = tok.decode(encode_prompt(tok, prompt))
    assert "<tool_response>\ndone\n</tool_response>" in text and text.endswith("<|im_start|>assistant\n")


# ---- the recipes read them -------------------------------------------------------------------------

def test_sft_trains_on_a_directory_of_prompt_completion_shards(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    write_jsonl(shards / "a.jsonl", [{"prompt": f"Question {i}?", "completion": f"Answer {i}."} for i in range(4)])
    write_parquet(shards / "b.parquet", [{"prompt": [user(f"Q{i}?")], "completion": [assistant(f"A{i}.")]} for i in range(4)])
    cfg = load_config(sft.SFTConfig, None, ["model=tiny", f"out_dir={tmp_path / 'run'}", f"data.train_file={shards}",
                                            "data.eval_fraction=0", "optim.max_steps=2", "optim.batch_size=4",
                                            "checkpoint.progress=false"])
    result = sft.train(cfg)
    assert result.state.step == 2


def test_sample_reads_prompt_only_rows_and_writes_trl_conversational_rows(tmp_path):
    path = write_parquet(tmp_path / "prompts.parquet", [{"id": "a", "prompt": "Say hi."}, {"id": "b", "prompt": "Count."}])
    assert load_prompts(str(path)) == [("a", [user("Say hi.")]), ("b", [user("Count.")])]
    listed = write_jsonl(tmp_path / "p.jsonl", [{"prompt": [user("Q?")]}, {"prompt": ""}])
    with pytest.raises(DataError, match=rf"{listed}:2: 'prompt' is empty"):
        load_prompts(str(listed))
    cfg = load_config(SampleConfig, None, ["model=tiny", f"prompts={path}", "k=2", "batch_size=4", "dtype=fp32",
                                           "sampling.max_new_tokens=4", "progress=false", f"out={tmp_path / 'c.jsonl'}"])
    rows = [json.loads(line) for line in sample(cfg).read_text().splitlines()]
    assert len(rows) == 4
    for row in rows:
        # TRL's conversational prompt-completion shape, and its language-modelling shape beside it
        assert row["completion"] == [assistant(completion_text(row, "c.jsonl"))]
        assert row["messages"] == row["prompt"] + row["completion"]
        assert parse_sft_row(row, "c.jsonl").messages == row["messages"]  # postlab sft reads either shape
    assert parse_sft_row(rows[0], "c.jsonl:1").messages == rows[0]["messages"]  # and postlab sft reads it back


def test_completion_text_reads_both_shapes_and_names_the_row_of_a_bad_one():
    assert completion_text({"completion": "Hi."}, "f:1") == "Hi."  # older sample files, TRL's standard shape
    assert completion_text({"completion": [assistant("Hi.")]}, "f:1") == "Hi."
    assert completion_text({"completion": [{"role": "assistant", "content": [{"type": "text", "text": "H"},
                                                                           {"type": "text", "text": "i."}]}]}, "f:1") == "Hi."
    for bad in ([user("Hi.")], [assistant("a"), assistant("b")], 3, None, []):
        with pytest.raises(DataError, match=r"f:7: 'completion' must be a string or a list of one assistant message"):
            completion_text({"completion": bad}, "f:7")
    with pytest.raises(DataError, match="f:2: expected a row with a 'completion'"):
        completion_text({"prompt": "x"}, "f:2")
