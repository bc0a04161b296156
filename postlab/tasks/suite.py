"""Suites: named sets of eval/training items, each naming the spec checks its response must pass.

An item is one JSONL row::

    {"id": "honesty-0007", "messages": [{"role": "user", "content": "..."}], "category": "honesty",
     "split": "test", "checks": [{"id": "honesty:no_action_claim", "kwargs": {}}]}

IFEval's input rows (``{"key", "prompt", "instruction_id_list", "kwargs"}``) are read as items of
category ``ifeval`` with no split, so IFEval's own data evaluates as-is. Anywhere a suite is asked
for, a built-in name (``postlab suites list``) or a path to such a JSONL file is accepted.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from postlab.data.chat import Conversation, validate_messages
from postlab.data.jsonl import read_jsonl
from postlab.errors import DataError
from postlab.spec import checks as spec_checks
from postlab.utils.io import atomic_write_text

SPLITS = ("train", "test")


@dataclass(frozen=True)
class CheckSpec:
    id: str  # "group:name", one of postlab.spec.checks.CHECK_IDS
    kwargs: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"id": self.id, "kwargs": self.kwargs}


@dataclass(frozen=True)
class Item:
    id: str
    messages: Conversation  # the conversation so far, ending with the user turn to answer
    category: str
    split: str | None  # "train" | "test" | None (a user file without splits)
    checks: tuple[CheckSpec, ...]
    level: int | None = None  # difficulty level (1 = easiest) of a generated reasoning item; None elsewhere

    @property
    def prompt(self) -> str:
        """The last user message: what IFEval calls the prompt."""
        return next(m["content"] for m in reversed(self.messages) if m["role"] == "user")

    def to_json(self) -> dict:
        row = {"id": self.id, "messages": self.messages, "category": self.category, "split": self.split,
               "checks": [c.to_json() for c in self.checks]}
        if self.level is not None:
            row["level"] = self.level
        return row


def make_item(id: str, messages: Conversation, category: str, split: str | None,
              checks: list[tuple[str, dict]] | list[CheckSpec], level: int | None = None) -> Item:
    """Build an item, validating messages and every check's kwargs (raises ValueError)."""
    specs = tuple(c if isinstance(c, CheckSpec) else CheckSpec(c[0], dict(c[1])) for c in checks)
    for c in specs:
        spec_checks.validate(c.id, c.kwargs)
    try:
        messages = validate_messages(messages, id, need_assistant=False)
    except DataError as e:
        raise ValueError(str(e)) from None
    if messages[-1]["role"] != "user":
        raise ValueError(f"{id}: the last message must be the user turn to answer")
    if level is not None and (isinstance(level, bool) or not isinstance(level, int) or level < 1):
        raise ValueError(f"{id}: 'level' must be a positive integer or null, got {level!r}")
    return Item(id=id, messages=messages, category=category, split=split, checks=specs, level=level)


def _parse_checks(raw: object, where: str) -> list[CheckSpec]:
    if not isinstance(raw, list) or not raw:
        raise DataError(f"{where}: 'checks' must be a non-empty list of {{'id', 'kwargs'}} objects")
    out = []
    for i, c in enumerate(raw):
        if not isinstance(c, dict) or not isinstance(c.get("id"), str):
            raise DataError(f"{where}: checks[{i}] must be an object with a string 'id'")
        kwargs = c.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise DataError(f"{where}: checks[{i}].kwargs must be an object")
        out.append(CheckSpec(c["id"], kwargs))
    return out


def parse_item(row: object, where: str) -> Item:
    """One JSONL row (postlab's item format or IFEval's input format) -> Item; errors name `where`."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object")
    if set(row) >= {"question", "answer"} and "messages" not in row:  # GSM8K's format
        from postlab.tasks.reasoning import gsm8k_item
        return gsm8k_item(row, where)
    if "instruction_id_list" in row:  # IFEval's input format
        for key in ("prompt", "instruction_id_list", "kwargs"):
            if key not in row:
                raise DataError(f"{where}: IFEval row without {key!r}")
        ids, kwargs = row["instruction_id_list"], row["kwargs"]
        if not isinstance(ids, list) or not isinstance(kwargs, list) or len(ids) != len(kwargs):
            raise DataError(f"{where}: 'instruction_id_list' and 'kwargs' must be lists of equal length")
        if not isinstance(row["prompt"], str) or not row["prompt"].strip():
            raise DataError(f"{where}: 'prompt' must be a non-empty string")
        raw = dict(id=str(row.get("key", where)), messages=[{"role": "user", "content": row["prompt"]}],
                   category="ifeval", split=None, checks=[CheckSpec(i, k or {}) for i, k in zip(ids, kwargs)])
    else:
        missing = [k for k in ("id", "messages", "category", "checks") if k not in row]
        if missing:
            raise DataError(f"{where}: missing {', '.join(repr(k) for k in missing)} "
                            "(expected an item {id, messages, category, split, checks} or an IFEval row)")
        split = row.get("split")
        if split is not None and split not in SPLITS:
            raise DataError(f"{where}: 'split' must be one of {SPLITS} or null, got {split!r}")
        if not isinstance(row["category"], str) or not row["category"]:
            raise DataError(f"{where}: 'category' must be a non-empty string")
        raw = dict(id=str(row["id"]), messages=row["messages"], category=row["category"], split=split,
                   checks=_parse_checks(row["checks"], where), level=row.get("level"))
    try:
        return make_item(**raw)
    except ValueError as e:
        raise DataError(f"{where}: {e}") from None


# Built-in suites: name -> "module:function" returning list[Item]; imported only when asked for.
BUILTIN_SUITES: dict[str, str] = {
    "spec": "postlab.tasks.spec_suite:build",
    "arith": "postlab.tasks.reasoning:build_arith",
    "countdown": "postlab.tasks.reasoning:build_countdown",
    "wordprob": "postlab.tasks.reasoning:build_wordprob",
    "reasoning": "postlab.tasks.reasoning:build_mixed",
}


def builtin_suite(name: str) -> list[Item]:
    module, func = BUILTIN_SUITES[name].split(":")
    return getattr(importlib.import_module(module), func)()


def load_suite(suite: str | Path, split: str | None = None, limit: int | None = None) -> list[Item]:
    """A built-in suite by name or a JSONL file; `split` keeps that split (items without one are
    kept: a user file need not be split); `limit` keeps the first N after filtering."""
    if split is not None and split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS}, got {split!r}")
    if str(suite) in BUILTIN_SUITES:
        items = builtin_suite(str(suite))
    else:
        path = Path(suite)
        if not path.exists():
            raise DataError(f"{suite}: not a built-in suite ({', '.join(BUILTIN_SUITES)}) and no such file")
        items, seen = [], set()
        for lineno, row in read_jsonl(path):
            item = parse_item(row, f"{path}:{lineno}")
            if item.id in seen:
                raise DataError(f"{path}:{lineno}: duplicate item id {item.id!r}")
            seen.add(item.id)
            items.append(item)
    items = [it for it in items if split is None or it.split in (split, None)]
    return items[:limit] if limit is not None else items


def write_suite(items: list[Item], path: str | Path) -> None:
    """Write items as JSONL (atomically)."""
    atomic_write_text(Path(path), "".join(json.dumps(it.to_json(), ensure_ascii=False) + "\n" for it in items))
