"""Reading an admin's files: candidates JSONL (`postlab sample` output) into pairs, gold questions into pairs.

Errors name the file and line, like every postlab data reader.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass

from postlab.data.chat import completion_text, validate_messages
from postlab.data.jsonl import read_jsonl
from postlab.data.preferences import parse_pair
from postlab.errors import DataError


@dataclass(frozen=True)
class NewPair:
    prompt_id: str
    prompt: list[dict]
    response_a: str
    response_b: str
    sample_a: int
    sample_b: int
    gold_choice: str | None = None  # "a" | "b" | "tie" on gold questions


def _candidate(row: object, where: str) -> tuple[str, list[dict], int, str]:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object (a `postlab sample` candidates row)")
    for key in ("prompt_id", "prompt", "completion"):
        if key not in row:
            raise DataError(f"{where}: missing {key!r} (expected prompt_id, sample_index, prompt, completion)")
    completion = completion_text(row, where)
    index = row.get("sample_index", 0)
    if isinstance(index, bool) or not isinstance(index, int):
        raise DataError(f"{where}: 'sample_index' must be an integer")
    prompt = validate_messages(row["prompt"], f"{where}: prompt", need_assistant=False)
    return str(row["prompt_id"]), prompt, index, completion


def read_candidate_pairs(path: str, *, max_pairs_per_prompt: int, seed: int) -> list[NewPair]:
    """Pairs of distinct, non-empty completions of the same prompt; at most ``max_pairs_per_prompt`` each."""
    prompts: dict[str, list[dict]] = {}
    samples: dict[str, list[tuple[int, str]]] = {}
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        pid, prompt, index, text = _candidate(row, where)
        if prompts.setdefault(pid, prompt) != prompt:
            raise DataError(f"{where}: prompt_id {pid!r} appears earlier with a different prompt")
        seen = samples.setdefault(pid, [])
        if any(i == index for i, _ in seen):
            raise DataError(f"{where}: duplicate sample_index {index} for prompt_id {pid!r}")
        if text.strip() and all(t != text for _, t in seen):
            seen.append((index, text))
    rng = random.Random(seed)
    out = []
    for pid, seen in samples.items():
        combos = list(itertools.combinations(seen, 2))
        rng.shuffle(combos)
        for (i, a), (j, b) in sorted(combos[:max_pairs_per_prompt]):
            out.append(NewPair(pid, prompts[pid], a, b, i, j))
    if not out:
        raise DataError(f"{path}: no prompt has two distinct non-empty completions to compare")
    return out


def read_gold_pairs(path: str) -> list[NewPair]:
    """Gold questions as TRL preference rows (prompt, chosen, rejected): the chosen response is the right answer."""
    out = []
    for lineno, row in read_jsonl(path):
        pair = parse_pair(row, f"{path}:{lineno}")
        pid = pair.prompt_id or f"gold:{json.dumps(pair.prompt, sort_keys=True)[:150]}"
        out.append(NewPair(pid, pair.prompt, pair.chosen, pair.rejected, -lineno, -lineno - 1_000_000, gold_choice="a"))
    return out
