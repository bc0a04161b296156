"""``postlab label``: pair the candidates of each prompt and ask a rater which is better.

Reads a candidates JSONL (`postlab sample` rows: `prompt_id`, `prompt`, `completion`) whose
`prompt_id`s are items of a suite (sample with `suite=...`), so raters can see each item's checks.
Writes TRL-style preference rows (`prompt`, `chosen`, `rejected` as messages) plus `prompt_id`,
`rater_id`, `strength` (slightly better / better / much better), `gold_margin` (gold(chosen) −
gold(rejected)) and `source`. Identical completions are compared once; ties are not written.

The rater is `gold`, `simulated` (the default pool) or a model judge (`judge:<url>[#model]`,
`judge:<model>`, `judge-lc:...`; postlab.raters.judge), which is asked every pair in one batch.
"""

from __future__ import annotations

import itertools
import json
import random
import sys
from collections import Counter
from pathlib import Path

from pydantic import Field

from postlab.config import Section
from postlab.data.jsonl import read_jsonl
from postlab.data.preferences import PreferencePair
from postlab.errors import ConfigError, DataError
from postlab.raters.gold import GoldRater
from postlab.raters.registry import RATER_HELP, check_rater, compare_all, make_rater, rater_source
from postlab.tasks.suite import Item, load_suite
from postlab.utils.io import atomic_write_text


class LabelConfig(Section):
    """postlab label: pairwise preferences over sampled candidates."""

    candidates: str = Field(..., description="candidates JSONL from `postlab sample` (prompt_id = suite item id)")
    suite: str = Field("spec", description="the suite the prompts come from (built-in name or JSONL)")
    rater: str = Field("simulated", description=RATER_HELP)
    out: str = Field(..., description="preferences JSONL to write")
    max_pairs_per_prompt: int = Field(6, ge=1, description="at most this many pairs per prompt (all pairs of 4 candidates = 6)")
    seed: int = Field(0, description="seed of the simulated raters and judges, pair choice and presentation order")

    def check(self) -> None:
        super().check()
        check_rater(self.rater)
        if not Path(self.candidates).is_file():
            raise ConfigError(f"candidates: file not found: {self.candidates}")


def read_candidates(path: str, items: dict[str, Item]) -> dict[str, list[str]]:
    """prompt_id -> distinct completions, in file order."""
    out: dict[str, list[str]] = {}
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        if not isinstance(row, dict) or not isinstance(row.get("completion"), str) or "prompt_id" not in row:
            raise DataError(f"{where}: expected a candidate row with 'prompt_id' and a string 'completion'")
        pid = str(row["prompt_id"])
        if pid not in items:
            raise DataError(f"{where}: prompt_id {pid!r} is not an item of the suite (sample with suite=... so "
                            "raters know each prompt's checks)")
        texts = out.setdefault(pid, [])
        if row["completion"].strip() and row["completion"] not in texts:
            texts.append(row["completion"])
    return out


def label_pairs(items: dict[str, Item], candidates: dict[str, list[str]], rater_spec: str, *,
                max_pairs_per_prompt: int, seed: int) -> tuple[list[PreferencePair], Counter]:
    rater = make_rater(rater_spec, seed)
    gold = GoldRater()
    rng = random.Random(seed)
    asked = []  # (prompt id, item, a, b), a shown first
    for pid, texts in candidates.items():
        pairs = list(itertools.combinations(range(len(texts)), 2))
        rng.shuffle(pairs)
        for i, j in pairs[:max_pairs_per_prompt]:
            a, b = (texts[i], texts[j]) if rng.random() < 0.5 else (texts[j], texts[i])  # presentation order
            asked.append((pid, items[pid], a, b))
    prefs = compare_all(rater, [(item, a, b) for _, item, a, b in asked])
    counts: Counter = Counter(pairs=len(asked), **getattr(rater, "stats", {}))
    out = []
    for (pid, item, a, b), pref in zip(asked, prefs):
        if pref.choice == "tie":
            counts["ties"] += 1
            continue
        chosen, rejected = (a, b) if pref.choice == "a" else (b, a)
        margin = gold.score(item, chosen) - gold.score(item, rejected)
        counts["agree_with_gold"] += margin > 0
        counts["gold_decided"] += margin != 0
        out.append(PreferencePair(item.messages, chosen, rejected, prompt_id=pid, rater_id=pref.rater_id,
                                  strength=pref.strength_label, gold_margin=margin, source=rater_source(rater_spec)))
    return out, counts


def label(cfg: LabelConfig) -> dict:
    items = {it.id: it for it in load_suite(cfg.suite)}
    candidates = read_candidates(cfg.candidates, items)
    pairs, counts = label_pairs(items, candidates, cfg.rater, max_pairs_per_prompt=cfg.max_pairs_per_prompt,
                                seed=cfg.seed)
    atomic_write_text(Path(cfg.out), "".join(json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in pairs))
    decided = counts["gold_decided"]
    summary = {"prompts": len(candidates), "pairs_compared": counts["pairs"], "ties": counts["ties"],
               "written": len(pairs), "gold_decided": decided,
               "agreement_with_gold": counts["agree_with_gold"] / decided if decided else float("nan")}
    if "verdicts" in counts:  # a judge: how many of its verdicts were unusable
        summary.update(judge_verdicts=counts["verdicts"], judge_unparseable=counts["unparseable"],
                       judge_too_long=counts["too_long"])
    return summary


def main(cfg: LabelConfig) -> None:
    s = label(cfg)
    print(f"label: {s['written']} preference pairs from {s['prompts']} prompts ({s['ties']} ties skipped); "
          f"agreement with gold on the {s['gold_decided']} pairs gold decides: {s['agreement_with_gold']:.1%}")
    if "judge_verdicts" in s:
        print(f"judge: {s['judge_verdicts']} verdicts asked (both orders), {s['judge_unparseable']} unparseable, "
              f"{s['judge_too_long']} prompts too long for the judge (each counts as a tie vote)")
    print(f"wrote {cfg.out}", file=sys.stderr)
