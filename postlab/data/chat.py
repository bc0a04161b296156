"""Chat data: validation of ``{"messages": [...]}`` rows and tokenisation with assistant-only loss masks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from postlab.data.jsonl import read_jsonl
from postlab.errors import DataError

ROLES = ("system", "developer", "user", "assistant")
IGNORE_INDEX = -100  # label value ignored by the loss

Conversation = list[dict[str, str]]  # [{"role": ..., "content": ...}, ...]


def validate_messages(messages: object, where: str, *, need_assistant: bool = True) -> Conversation:
    """Check one conversation; ``where`` (e.g. ``data.jsonl:7``) prefixes every error."""
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: 'messages' must be a non-empty list of {{'role', 'content'}} objects")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise DataError(f"{where}: messages[{i}] must be an object with 'role' and 'content'")
        if "role" not in msg:
            raise DataError(f"{where}: messages[{i}] has no 'role'")
        if msg["role"] not in ROLES:
            raise DataError(f"{where}: messages[{i}] has unknown role {msg['role']!r} (expected one of {', '.join(ROLES)})")
        content = msg.get("content")
        if not isinstance(content, str):
            raise DataError(f"{where}: messages[{i}] ({msg['role']}) needs a string 'content'")
        if not content.strip():
            raise DataError(f"{where}: messages[{i}] ({msg['role']}) has empty content")
        extra = set(msg) - {"role", "content"}
        if extra:
            raise DataError(f"{where}: messages[{i}] has unknown keys {sorted(extra)}")
    if need_assistant and not any(m["role"] == "assistant" for m in messages):
        raise DataError(f"{where}: conversation has no assistant turn (nothing to learn from)")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def load_chat_jsonl(path: str | Path) -> list[Conversation]:
    """Read a chat JSONL file (``{"messages": [...]}`` per line), validating every row."""
    out = []
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        if not isinstance(row, dict) or "messages" not in row:
            raise DataError(f"{where}: expected an object with a 'messages' key")
        out.append(validate_messages(row["messages"], where))
    return out


@dataclass
class EncodedChat:
    input_ids: list[int]  # (T,)
    labels: list[int]  # (T,) token id where the loss applies, IGNORE_INDEX elsewhere


def _render(tokenizer, messages: Conversation, add_generation_prompt: bool) -> list[int]:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_chat(tokenizer, messages: Conversation, max_len: int | None = None) -> EncodedChat:
    """Tokenise with the chat template; labels cover assistant turns only, up to and including the
    end-of-turn (EOS) token, never the system/user/developer turns or the template's role headers.

    Each assistant span is found as the tokens added between ``render(messages[:i], generation
    prompt)`` and ``render(messages[:i+1])``; templates whose renders are not prefix-stable are
    rejected rather than silently mis-masked.
    """
    ids = _render(tokenizer, messages, add_generation_prompt=False)
    labels = [IGNORE_INDEX] * len(ids)
    eos = tokenizer.eos_token_id
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        start = len(_render(tokenizer, messages[:i], add_generation_prompt=True)) if i else 0
        end_ids = _render(tokenizer, messages[: i + 1], add_generation_prompt=False)
        if ids[: len(end_ids)] != end_ids:
            raise DataError("the chat template does not render conversations prefix-stably; cannot mask turns")
        end = len(end_ids)
        span = ids[start:end]
        if eos in span:  # stop after the end-of-turn token (drop the template's trailing newline)
            end = start + len(span) - span[::-1].index(eos)
        labels[start:end] = ids[start:end]
    if max_len is not None:
        ids, labels = ids[:max_len], labels[:max_len]
    return EncodedChat(input_ids=ids, labels=labels)
