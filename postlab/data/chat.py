"""Chat data: validation of conversations, the SFT row formats TRL reads, rendering through the chat
template (with a plain-text form of tool calls for templates without them), and tokenisation with
assistant-only loss masks.

SFT rows (one per JSONL line, Parquet/Arrow row, ...; see ``postlab.data.rows``):

- ``{"messages": [...]}``: loss on every assistant turn;
- ``{"prompt": ..., "completion": ...}``: loss on the completion's assistant turns only; each side
  is a list of messages or a plain string (a string prompt is one user turn, a string completion one
  assistant turn: postlab always trains through the chat template);
- either may carry ``"tools"``: the function schemas the chat template is given.

Messages are ``{"role", "content"}``; ``content`` may be a list of ``{"type": "text", "text": ...}``
parts (joined with no separator, as chat templates do); an assistant turn may carry ``tool_calls``
(``[{"type": "function", "function": {"name", "arguments"}}]``) and a ``tool`` turn its result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from postlab.data.rows import read_rows
from postlab.errors import DataError

ROLES = ("system", "developer", "user", "assistant", "tool")
IGNORE_INDEX = -100  # label value ignored by the loss

Conversation = list[dict]  # [{"role": ..., "content": str, optional "tool_calls" / "name" / "tool_call_id"}, ...]

# Keys a message may carry besides role and content, by role.
TOOL_KEYS = {"assistant": {"tool_calls"}, "tool": {"name", "tool_call_id"}}


def _text(content: object, where: str) -> str | None:
    """A string ``content``, or the text of a list of text parts; None if it is neither."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        return None
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise DataError(f"{where}.content[{j}]: only {{'type': 'text', 'text': ...}} parts are supported "
                            f"(got {kind!r})")
        texts.append(part["text"])
    return "".join(texts)


def _tool_calls(calls: object, where: str) -> list[dict]:
    """Validated ``tool_calls`` with ``arguments`` parsed to an object when given as a JSON string."""
    if not isinstance(calls, list) or not calls:
        raise DataError(f"{where}: 'tool_calls' must be a non-empty list of "
                        "{'type': 'function', 'function': {'name', 'arguments'}} objects")
    out = []
    for j, call in enumerate(calls):
        at = f"{where}.tool_calls[{j}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"].strip():
            raise DataError(f"{at}: expected {{'type': 'function', 'function': {{'name': ..., 'arguments': {{...}}}}}}")
        args = fn.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError as e:
                raise DataError(f"{at}: 'arguments' is not valid JSON ({e.msg})") from None
        if not isinstance(args, dict):
            raise DataError(f"{at}: 'arguments' must be an object (or a JSON string of one)")
        entry = {"type": call.get("type") or "function", "function": {"name": fn["name"], "arguments": args}}
        if call.get("id") is not None:
            entry["id"] = call["id"]
        out.append(entry)
    return out


def validate_messages(messages: object, where: str, *, need_assistant: bool = True, tools: bool = False) -> Conversation:
    """Check one conversation; ``where`` (e.g. ``data.jsonl:7``) prefixes every error. Content parts
    become one string. With ``tools``, ``tool`` turns and assistant ``tool_calls`` are accepted."""
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: 'messages' must be a non-empty list of {{'role', 'content'}} objects")
    out = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise DataError(f"{where}: messages[{i}] must be an object with 'role' and 'content'")
        msg = {k: v for k, v in msg.items() if v is not None}  # Arrow rows carry every field, None where unset
        if "role" not in msg:
            raise DataError(f"{where}: messages[{i}] has no 'role'")
        role = msg["role"]
        if role not in ROLES or (role == "tool" and not tools):
            known = ROLES if tools else ROLES[:-1]
            raise DataError(f"{where}: messages[{i}] has unknown role {role!r} (expected one of {', '.join(known)})")
        allowed = {"role", "content"} | (TOOL_KEYS.get(role, set()) if tools else set())
        extra = set(msg) - allowed
        if extra:
            raise DataError(f"{where}: messages[{i}] has unknown keys {sorted(extra)}")
        calls = _tool_calls(msg["tool_calls"], f"{where}: messages[{i}]") if "tool_calls" in msg else None
        content = _text(msg.get("content", "" if calls else None), f"{where}: messages[{i}]")
        if content is None:
            raise DataError(f"{where}: messages[{i}] ({role}) needs a string 'content' (or a list of text parts)")
        if not content.strip() and not calls:
            raise DataError(f"{where}: messages[{i}] ({role}) has empty content")
        entry = {"role": role, "content": content}
        if calls:
            entry["tool_calls"] = calls
        for key in ("name", "tool_call_id"):
            if key in msg:
                entry[key] = str(msg[key])
        out.append(entry)
    if need_assistant and not any(m["role"] == "assistant" for m in out):
        raise DataError(f"{where}: conversation has no assistant turn (nothing to learn from)")
    return out


@dataclass(frozen=True)
class ChatExample:
    """One SFT row: the conversation, which of its assistant turns carry the loss, and its tools."""

    messages: Conversation
    loss_from: int = 0  # assistant turns at this index or later carry the loss (prompt-completion rows: len(prompt))
    tools: list[dict] | None = None  # function schemas given to the chat template


def _side(value: object, where: str, key: str, role: str, *, need_assistant: bool) -> Conversation:
    """A prompt or completion: a list of messages, or a string taken as one ``role`` turn."""
    if isinstance(value, str):
        if not value.strip():
            raise DataError(f"{where}: {key!r} is empty")
        return [{"role": role, "content": value}]
    if not isinstance(value, list):
        raise DataError(f"{where}: {key!r} must be a string or a list of messages")
    return validate_messages(value, f"{where}: {key}", need_assistant=need_assistant, tools=True)


def _tools(row: dict, where: str) -> list[dict] | None:
    tools = row.get("tools")
    if tools is None:
        return None
    if isinstance(tools, str):  # datasets often store the schemas as one JSON string
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: 'tools' is not valid JSON ({e.msg})") from None
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise DataError(f"{where}: 'tools' must be a list of function schemas (objects)")
    return tools or None


def parse_sft_row(row: object, where: str) -> ChatExample:
    """A TRL conversational language-modelling row (``messages``) or prompt-completion row (``prompt``
    and ``completion``, which take precedence as in TRL)."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object with 'messages', or 'prompt' and 'completion'")
    if "prompt" in row and "completion" in row:
        prompt = _side(row["prompt"], where, "prompt", "user", need_assistant=False)
        completion = _side(row["completion"], where, "completion", "assistant", need_assistant=True)
        return ChatExample(prompt + completion, loss_from=len(prompt), tools=_tools(row, where))
    if "messages" in row:
        return ChatExample(validate_messages(row["messages"], where, tools=True), tools=_tools(row, where))
    if "prompt" in row:
        raise DataError(f"{where}: a 'prompt' with no 'completion' (a prompt-only row: postlab sample reads those); "
                        "SFT needs 'messages', or 'prompt' and 'completion'")
    if "text" in row:
        raise DataError(f"{where}: a 'text' row is raw language-modelling data (postlab pretrain reads text files); "
                        "SFT needs 'messages', or 'prompt' and 'completion'")
    raise DataError(f"{where}: expected an object with a 'messages' key, or 'prompt' and 'completion'")


def completion_text(row: object, where: str) -> str:
    """The reply text of a candidates row (``postlab sample``'s output, or any prompt-completion row): its
    ``completion`` as TRL's conversational shape (a list of one assistant message) or as a plain string
    (TRL's standard shape, and sample files written before postlab used the conversational one)."""
    if not isinstance(row, dict) or "completion" not in row:
        raise DataError(f"{where}: expected a row with a 'completion'")
    value = row["completion"]
    if isinstance(value, str):
        return value
    if (isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict)
            and value[0].get("role") == "assistant"):
        text = _text(value[0].get("content"), where)
        if text is not None:
            return text
    raise DataError(f"{where}: 'completion' must be a string or a list of one assistant message "
                    "([{\"role\": \"assistant\", \"content\": ...}])")


def load_sft_data(path: str | Path) -> list[ChatExample]:
    """Every row of an SFT data source (JSONL file, shard directory, Parquet, Arrow, saved dataset)."""
    return [parse_sft_row(row.value, row.where) for row in read_rows(path)]


def load_chat_jsonl(path: str | Path) -> list[Conversation]:
    """The conversations of an SFT data source (each row's prompt and completion together)."""
    return [example.messages for example in load_sft_data(path)]


def template_supports_tools(tokenizer) -> bool:
    """Whether the chat template renders ``tool_calls`` itself (else ``tools_as_text`` stands in)."""
    return "tool_calls" in str(tokenizer.chat_template or "")


TOOLS_PREAMBLE = ("You can call these tools (JSON schemas):\n<tools>\n{}\n</tools>\nTo call one, answer with "
                  '<tool_call>\n{{"name": <tool name>, "arguments": <arguments object>}}\n</tool_call>')


def tools_as_text(messages: Conversation, tools: list[dict] | None) -> Conversation:
    """Tool calls and results as plain role/content turns, for chat templates without tool support.

    Hermes-style tags: each call becomes ``<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>``
    after the assistant's text; each ``tool`` turn becomes a ``user`` turn
    ``<tool_response>\n...\n</tool_response>``; the schemas, one JSON object per line, go into the
    system turn (added if there is none)."""
    out = []
    for m in messages:
        if m["role"] == "tool":
            out.append({"role": "user", "content": f"<tool_response>\n{m['content']}\n</tool_response>"})
        elif m.get("tool_calls"):
            calls = [json.dumps({"name": c["function"]["name"], "arguments": c["function"]["arguments"]}, ensure_ascii=False)
                     for c in m["tool_calls"]]
            parts = ([m["content"]] if m["content"].strip() else []) + [f"<tool_call>\n{c}\n</tool_call>" for c in calls]
            out.append({"role": "assistant", "content": "\n".join(parts)})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    if tools:
        preamble = TOOLS_PREAMBLE.format("\n".join(json.dumps(t, ensure_ascii=False) for t in tools))
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + preamble}
        else:
            out.insert(0, {"role": "system", "content": preamble})
    return out


def render_chat(tokenizer, messages: Conversation, *, add_generation_prompt: bool, tools: list[dict] | None = None) -> str:
    """The chat template's text for ``messages``; conversations with tools go through the template's
    own tool support when it has one, else through ``tools_as_text``. Without tools this is exactly
    ``apply_chat_template(messages)``."""
    uses_tools = bool(tools) or any(m["role"] == "tool" or m.get("tool_calls") for m in messages)
    if uses_tools and not template_supports_tools(tokenizer):
        messages, tools = tools_as_text(messages, tools), None
    extra = {"tools": tools} if tools else {}
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt, **extra)


@dataclass
class EncodedChat:
    input_ids: list[int]  # (T,)
    labels: list[int]  # (T,) token id where the loss applies, IGNORE_INDEX elsewhere


def _render(tokenizer, messages: Conversation, add_generation_prompt: bool, tools: list[dict] | None) -> list[int]:
    text = render_chat(tokenizer, messages, add_generation_prompt=add_generation_prompt, tools=tools)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_chat(tokenizer, messages: Conversation, max_len: int | None = None, *, loss_from: int = 0,
                tools: list[dict] | None = None) -> EncodedChat:
    """Tokenise with the chat template; labels cover assistant turns at index ``loss_from`` or later,
    up to and including the end-of-turn (EOS) token, never the system/user/developer/tool turns or
    the template's role headers.

    Each assistant span is found as the tokens added between ``render(messages[:i], generation
    prompt)`` and ``render(messages[:i+1])``; templates whose renders are not prefix-stable are
    rejected rather than silently mis-masked.
    """
    ids = _render(tokenizer, messages, False, tools)
    labels = [IGNORE_INDEX] * len(ids)
    eos = tokenizer.eos_token_id
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant" or i < loss_from:
            continue
        start = len(_render(tokenizer, messages[:i], True, tools)) if i or tools else 0
        end_ids = _render(tokenizer, messages[: i + 1], False, tools)
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
