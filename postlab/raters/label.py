"""``postlab label``: pair the candidates of each prompt and ask a rater which is better.

Reads a candidates JSONL (`postlab sample` rows: `prompt_id`, `prompt`, `completion`) whose
`prompt_id`s are items of a suite (sample with `suite=...`), so raters can see each item's checks.
Writes TRL-style preference rows (`prompt`, `chosen`, `rejected` as messages) plus `prompt_id`,
`rater_id`, `strength` (slightly better / better / much better), `gold_margin` (gold(chosen) −
gold(rejected)) and `source`. Identical completions are compared once; ties are not written.

The rater is `gold`, `simulated` (the default pool) or a model judge (`judge:<url>[#model]`,
`judge:<model>`, `judge-lc:...`; postlab.raters.judge), which is asked every pair in one batch.

With the simulated pool, `raters_per_pair=N` puts each pair before a panel of N distinct raters (each
shown it in its own order), as labelling teams do to measure and filter inter-annotator agreement: the
majority decides, and the pair is kept only when at least `min_votes` raters chose that side and the
panel's mean margin toward it (votes against count negative) is at least `min_strength`. Pairs the
panel splits on are mostly pairs gold ties (docs/raters.md, "Panels"), so the filter raises the share of
kept pairs that carry signal; the summary reports that share (`gold_decided_share`).
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
from postlab.data.chat import completion_text
from postlab.data.jsonl import read_jsonl
from postlab.data.preferences import PreferencePair
from postlab.errors import ConfigError, DataError
from postlab.raters.base import Preference
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
    raters_per_pair: int = Field(1, ge=1, le=5, description="simulated pool only: distinct raters who judge each pair (a panel; the majority decides)")
    min_votes: int | None = Field(None, ge=1, description="panel: keep a pair only when at least this many raters chose the winning side (null = a strict majority)")
    min_strength: float = Field(0.0, ge=0, description="panel: keep a pair only when the mean margin toward the winner is at least this (strength labels: slightly < 0.15 ≤ better < 0.4 ≤ much better)")
    seed: int = Field(0, description="seed of the simulated raters and judges, pair choice and presentation order")

    def check(self) -> None:
        super().check()
        check_rater(self.rater)
        if self.raters_per_pair > 1 and self.rater != "simulated":
            raise ConfigError(f"raters_per_pair: panels need the simulated pool (rater=simulated), not {self.rater!r}")
        if self.min_votes is not None and self.min_votes > self.raters_per_pair:
            raise ConfigError(f"min_votes ({self.min_votes}) exceeds raters_per_pair ({self.raters_per_pair})")
        if not Path(self.candidates).is_file():
            raise ConfigError(f"candidates: file not found: {self.candidates}")


def read_candidates(path: str, items: dict[str, Item]) -> dict[str, list[str]]:
    """prompt_id -> distinct completions, in file order."""
    out: dict[str, list[str]] = {}
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        if not isinstance(row, dict) or "prompt_id" not in row:
            raise DataError(f"{where}: expected a candidate row with 'prompt_id' and 'completion'")
        text = completion_text(row, where)
        pid = str(row["prompt_id"])
        if pid not in items:
            raise DataError(f"{where}: prompt_id {pid!r} is not an item of the suite (sample with suite=... so "
                            "raters know each prompt's checks)")
        texts = out.setdefault(pid, [])
        if text.strip() and text not in texts:
            texts.append(text)
    return out


def panel_verdict(prefs: list[Preference]) -> tuple[Preference, int]:
    """(one preference for `a` vs `b` from a panel's, the winning side's votes): the majority's choice,
    strength = the mean margin toward it (votes against count negative, ties 0); a split panel is a tie."""
    votes = Counter(p.choice for p in prefs)
    if votes["a"] == votes["b"]:
        return Preference("tie", 0.0, "+".join(p.rater_id for p in prefs)), votes["a"]
    win = "a" if votes["a"] > votes["b"] else "b"
    mean = sum(p.strength * (1 if p.choice == win else -1 if p.choice != "tie" else 0) for p in prefs) / len(prefs)
    return Preference(win, max(mean, 0.0), "+".join(sorted(p.rater_id for p in prefs)),
                      gold_margin=prefs[0].gold_margin), votes[win]


def asked_pairs(items: dict[str, Item], candidates: dict[str, list[str]], *, max_pairs_per_prompt: int,
                seed: int) -> list[tuple[str, Item, str, str]]:
    """The comparisons put to the raters: (prompt id, item, a, b), a shown first; at most ``max_pairs_per_prompt``
    of each prompt's pairs, drawn and ordered by ``seed``."""
    rng = random.Random(seed)
    asked = []
    for pid, texts in candidates.items():
        pairs = list(itertools.combinations(range(len(texts)), 2))
        rng.shuffle(pairs)
        for i, j in pairs[:max_pairs_per_prompt]:
            a, b = (texts[i], texts[j]) if rng.random() < 0.5 else (texts[j], texts[i])  # presentation order
            asked.append((pid, items[pid], a, b))
    return asked


def label_pairs(items: dict[str, Item], candidates: dict[str, list[str]], rater_spec: str, *,
                max_pairs_per_prompt: int, seed: int, raters_per_pair: int = 1, min_votes: int | None = None,
                min_strength: float = 0.0) -> tuple[list[PreferencePair], Counter]:
    rater = make_rater(rater_spec, seed)
    gold = GoldRater()
    asked = asked_pairs(items, candidates, max_pairs_per_prompt=max_pairs_per_prompt, seed=seed)
    counts: Counter = Counter(pairs=len(asked))
    if raters_per_pair > 1:
        need = raters_per_pair // 2 + 1 if min_votes is None else min_votes
        prefs = []
        for _, item, a, b in asked:
            pref, won = panel_verdict(rater.panel(item, a, b, raters_per_pair))
            if pref.choice != "tie" and (won < need or pref.strength < min_strength):
                counts["no_consensus"] += 1
                pref = None
            prefs.append(pref)
    else:
        prefs = compare_all(rater, [(item, a, b) for _, item, a, b in asked])
    counts.update(getattr(rater, "stats", {}))
    out = []
    for (pid, item, a, b), pref in zip(asked, prefs):
        if pref is None:
            continue
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
                                seed=cfg.seed, raters_per_pair=cfg.raters_per_pair, min_votes=cfg.min_votes,
                                min_strength=cfg.min_strength)
    atomic_write_text(Path(cfg.out), "".join(json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in pairs))
    decided = counts["gold_decided"]
    summary = {"prompts": len(candidates), "pairs_compared": counts["pairs"], "ties": counts["ties"],
               "written": len(pairs), "gold_decided": decided,
               "gold_decided_share": decided / len(pairs) if pairs else float("nan"),
               "agreement_with_gold": counts["agree_with_gold"] / decided if decided else float("nan")}
    if cfg.raters_per_pair > 1:
        summary.update(raters_per_pair=cfg.raters_per_pair, no_consensus=counts["no_consensus"])
    if "verdicts" in counts:  # a judge: how many of its verdicts were unusable
        summary.update(judge_verdicts=counts["verdicts"], judge_unparseable=counts["unparseable"],
                       judge_too_long=counts["too_long"])
    return summary


def main(cfg: LabelConfig) -> None:
    s = label(cfg)
    dropped = f", {s['no_consensus']} without the panel's consensus" if "no_consensus" in s else ""
    print(f"label: {s['written']} preference pairs from {s['prompts']} prompts ({s['ties']} ties{dropped} skipped); "
          f"gold prefers one side in {s['gold_decided']} ({s['gold_decided_share']:.0%}), and the labels agree with "
          f"it on {s['agreement_with_gold']:.1%} of those")
    if "judge_verdicts" in s:
        print(f"judge: {s['judge_verdicts']} verdicts asked (both orders), {s['judge_unparseable']} unparseable, "
              f"{s['judge_too_long']} prompts too long for the judge (each counts as a tie vote)")
    print(f"wrote {cfg.out}", file=sys.stderr)
