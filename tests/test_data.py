import pytest

from postlab.data.chat import IGNORE_INDEX, encode_chat, load_chat_jsonl
from postlab.data.text import pack_blocks
from postlab.errors import DataError
from postlab.models.tiny import build_tiny_tokenizer

from conftest import conv, write_jsonl


def test_loss_mask_hand_checked():
    tok = build_tiny_tokenizer()  # byte-level: one token per character, specials 0..3
    enc = encode_chat(tok, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}])
    # "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nok<|im_end|>\n"
    #  0           1234 5 67 8         9 10          11..19   20 21 22 23      24
    assert len(enc.input_ids) == 25
    assert enc.input_ids[0] == tok.convert_tokens_to_ids("<|im_start|>")
    supervised = [i for i, label in enumerate(enc.labels) if label != IGNORE_INDEX]
    assert supervised == [21, 22, 23]  # "o", "k", <|im_end|>; not the trailing newline
    assert tok.decode(enc.input_ids[21:23]) == "ok"
    assert enc.input_ids[23] == tok.eos_token_id
    assert all(enc.labels[i] == enc.input_ids[i] for i in supervised)


def test_loss_mask_multi_turn_with_system():
    tok = build_tiny_tokenizer()
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a"},
            {"role": "assistant", "content": "B"}, {"role": "user", "content": "c"}, {"role": "assistant", "content": "D"}]
    enc = encode_chat(tok, msgs)
    supervised = "".join(tok.decode([t]) for t, label in zip(enc.input_ids, enc.labels) if label != IGNORE_INDEX)
    assert supervised == "B<|im_end|>D<|im_end|>"


def test_truncation():
    tok = build_tiny_tokenizer()
    enc = encode_chat(tok, conv("hello", "world")["messages"], max_len=10)
    assert len(enc.input_ids) == len(enc.labels) == 10


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"messages": [', "invalid JSON"),
        ('{"messages": [{"content": "x"}]}', "has no 'role'"),
        ('{"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}', "unknown role 'robot'"),
        ('{"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "y"}]}', "empty content"),
        ('{"messages": [{"role": "user", "content": "x"}]}', "no assistant turn"),
        ('{"messages": []}', "non-empty list"),
        ('{"text": "x"}', "'text' row is raw language-modelling data"),
        ('{"input": "x"}', "'messages' key, or 'prompt' and 'completion'"),
        ('{"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "y"}]}', "string 'content'"),
    ],
)
def test_bad_chat_rows_name_file_and_line(tmp_path, line, message):
    path = write_jsonl(tmp_path / "d.jsonl", [conv("a", "b"), "", line])
    with pytest.raises(DataError) as e:
        load_chat_jsonl(path)
    assert f"{path}:3" in str(e.value)
    assert message in str(e.value)


def test_invalid_utf8_and_empty_file(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n{"messages": "\xff\xfe"}\n')
    with pytest.raises(DataError, match=rf"{bad}:2: invalid UTF-8"):
        load_chat_jsonl(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="empty file"):
        load_chat_jsonl(empty)
    with pytest.raises(DataError, match="file not found"):
        load_chat_jsonl(tmp_path / "missing.jsonl")


def test_pack_blocks():
    blocks = pack_blocks([[5, 6, 7], [8, 9]], block_size=3, eos_id=0)
    assert blocks == [[5, 6, 7], [0, 8, 9]]  # tail [0] dropped
