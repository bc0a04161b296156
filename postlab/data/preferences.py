"""Pairwise preference data in TRL's format, and tokenisation of (prompt, response) for scoring.

One JSONL row per comparison: ``{"prompt": [messages] | str, "chosen": [assistant message] | str,
"rejected": [assistant message] | str}`` plus optional ``prompt_id``, ``rater_id``, ``strength``,
``gold_margin``, ``source`` (kept as given).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from postlab.data.chat import Conversation, validate_messages
from postlab.data.jsonl import read_jsonl
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
        msgs = validate_messages(value, f"{where}: {key}", need_assistant=True)
        if msgs[-1]["role"] != "assistant":
            raise DataError(f"{where}: {key} must end with an assistant message")
        return msgs[-1]["content"]
    raise DataError(f"{where}: {key!r} must be a non-empty string or a list of messages ending with the assistant's")


def parse_pair(row: object, where: str) -> PreferencePair:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object")
    missing = [k for k in ("prompt", "chosen", "rejected") if k not in row]
    if missing:
        raise DataError(f"{where}: missing {', '.join(repr(k) for k in missing)} (expected prompt, chosen, rejected)")
    prompt = row["prompt"]
    if isinstance(prompt, str):
        if not prompt.strip():
            raise DataError(f"{where}: 'prompt' is empty")
        prompt = [{"role": "user", "content": prompt}]
    else:
        prompt = validate_messages(prompt, f"{where}: prompt", need_assistant=False)
    gold = row.get("gold_margin")
    if gold is not None and (isinstance(gold, bool) or not isinstance(gold, (int, float))):
        raise DataError(f"{where}: 'gold_margin' must be a number or null")
    return PreferencePair(prompt, _response(row["chosen"], where, "chosen"), _response(row["rejected"], where, "rejected"),
                          prompt_id=None if row.get("prompt_id") is None else str(row["prompt_id"]),
                          rater_id=row.get("rater_id"), strength=row.get("strength"),
                          gold_margin=None if gold is None else float(gold), source=row.get("source"))


def load_preferences(path: str | Path) -> list[PreferencePair]:
    return [parse_pair(row, f"{path}:{lineno}") for lineno, row in read_jsonl(path)]


def encode_response(tokenizer, prompt: Conversation, response: str) -> list[int]:
    """Token ids exactly as the rollout engine produces them: the chat template's prompt with the
    generation header, the response's tokens, and the end-of-turn (EOS) token."""
    text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids + tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
