"""Pairwise preference data in TRL's format, and tokenisation of (prompt, response) for scoring.

One row per comparison (JSONL line, Parquet/Arrow row, ...; see ``postlab.data.rows``):
``{"prompt": [messages] | str, "chosen": [assistant message] | str, "rejected": [assistant message] | str}``
plus optional ``prompt_id``, ``rater_id``, ``strength``, ``gold_margin``, ``source`` (kept as given).
Without ``prompt`` the row has an implicit prompt, as in TRL: ``chosen`` and ``rejected`` are whole
conversations (or strings) sharing a prefix, which is the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from postlab.data.chat import Conversation, render_chat, validate_messages
from postlab.data.rows import read_rows
from postlab.errors import DataError


@dataclass(frozen=True)
class PreferencePair:
    prompt: Conversation  # ends with the turn being answered
    chosen: str
    rejected: str
    prompt_id: str | None = None
    rater_id: str | None = None
    strength: str | None = None  # "slightly better" | "better" | "much better"
    gold_margin: float | None = None  # gold(chosen) − gold(rejected), when known
    source: str | None = None

    def to_json(self) -> dict:
        row = {"prompt": self.prompt, "chosen": [{"role": "assistant", "content": self.chosen}],
               "rejected": [{"role": "assistant", "content": self.rejected}]}
        for key in ("prompt_id", "rater_id", "strength", "gold_margin", "source"):
            if getattr(self, key) is not None:
                row[key] = getattr(self, key)
        return row


def _response(value: object, where: str, key: str) -> str:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list) and value:
        msgs = validate_messages(value, f"{where}: {key}", need_assistant=True, tools=True)
        return _answer(msgs[-1], where, key)
    raise DataError(f"{where}: {key!r} must be a non-empty string or a list of messages ending with the assistant's")


def _answer(msg: dict, where: str, key: str) -> str:
    if msg["role"] != "assistant":
        raise DataError(f"{where}: {key} must end with an assistant message")
    if msg.get("tool_calls"):
        raise DataError(f"{where}: {key} ends with a tool call; preference pairs compare text answers")
    return msg["content"]


def _string_prefix(chosen: str, rejected: str) -> int:
    """Length of the shared prompt of two strings, as TRL's ``extract_prompt`` finds it: up to the
    first differing character, less a space just before it (the space starts both responses)."""
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    return n - 1 if 0 < n < min(len(chosen), len(rejected)) and chosen[n - 1] == " " else n


def _implicit_prompt(row: dict, where: str) -> tuple[Conversation, str, str]:
    """(prompt, chosen, rejected) of a row whose ``chosen`` and ``rejected`` share their prompt."""
    chosen, rejected = row["chosen"], row["rejected"]
    if isinstance(chosen, str) and isinstance(rejected, str):
        n = _string_prefix(chosen, rejected)
        if not chosen[:n].strip():
            raise DataError(f"{where}: no 'prompt', and 'chosen' and 'rejected' share no prefix to take as the prompt "
                            "(TRL's implicit prompt); add a 'prompt'")
        return [{"role": "user", "content": chosen[:n]}], _response(chosen[n:], where, "chosen"), \
            _response(rejected[n:], where, "rejected")
    if not (isinstance(chosen, list) and isinstance(rejected, list)):
        raise DataError(f"{where}: no 'prompt', so 'chosen' and 'rejected' must both be conversations or both strings "
                        "sharing their prompt (TRL's implicit prompt)")
    c = validate_messages(chosen, f"{where}: chosen", tools=True)
    r = validate_messages(rejected, f"{where}: rejected", tools=True)
    n = 0
    while n < min(len(c), len(r)) and c[n] == r[n]:
        n += 1
    if n == 0:
        raise DataError(f"{where}: no 'prompt', and 'chosen' and 'rejected' start with different messages, so there is "
                        "no shared prompt (TRL's implicit prompt); add a 'prompt'")
    for key, msgs in (("chosen", c), ("rejected", r)):
        if len(msgs) - n != 1:
            raise DataError(f"{where}: after the {n} message(s) shared with the other side, {key} must be exactly one "
                            f"assistant message (it has {len(msgs) - n})")
    return c[:n], _answer(c[n], where, "chosen"), _answer(r[n], where, "rejected")


def parse_pair(row: object, where: str) -> PreferencePair:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object")
    missing = [k for k in ("chosen", "rejected") if k not in row]
    if missing:
        raise DataError(f"{where}: missing {', '.join(repr(k) for k in missing)} (expected prompt, chosen, rejected)")
    if row.get("prompt") is None:
        prompt, chosen, rejected = _implicit_prompt(row, where)
    else:
        prompt = row["prompt"]
        if isinstance(prompt, str):
            if not prompt.strip():
                raise DataError(f"{where}: 'prompt' is empty")
            prompt = [{"role": "user", "content": prompt}]
        else:
            prompt = validate_messages(prompt, f"{where}: prompt", need_assistant=False, tools=True)
        chosen, rejected = _response(row["chosen"], where, "chosen"), _response(row["rejected"], where, "rejected")
    gold = row.get("gold_margin")
    if gold is not None and (isinstance(gold, bool) or not isinstance(gold, (int, float))):
        raise DataError(f"{where}: 'gold_margin' must be a number or null")
    return PreferencePair(prompt, chosen, rejected,
                          prompt_id=None if row.get("prompt_id") is None else str(row["prompt_id"]),
                          rater_id=row.get("rater_id"), strength=row.get("strength"),
                          gold_margin=None if gold is None else float(gold), source=row.get("source"))


def load_preferences(path: str | Path) -> list[PreferencePair]:
    """Every row of a preference data source (JSONL file, shard directory, Parquet, Arrow, saved dataset)."""
    return [parse_pair(row.value, row.where) for row in read_rows(path)]


def encode_prompt(tokenizer, prompt: Conversation) -> list[int]:
    """The chat template's prompt with the generation header (tool turns as ``render_chat`` gives them)."""
    text = render_chat(tokenizer, prompt, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_response(tokenizer, prompt: Conversation, response: str) -> list[int]:
    """Token ids exactly as the rollout engine produces them: the chat template's prompt with the
    generation header, the response's tokens, and the end-of-turn (EOS) token."""
    ids = encode_prompt(tokenizer, prompt)
    return ids + tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
