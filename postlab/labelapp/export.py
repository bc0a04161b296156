"""Exports (TRL preferences, SFT demonstrations from edits, flags) and the quality report.

Preferences rows are what `postlab rm` and `postlab dpo` read: ``prompt`` / ``chosen`` / ``rejected``
as messages, plus ``prompt_id``, ``strength``, ``source`` and the rater(s). ``votes="all"`` writes
one row per non-tie vote (``rater_id``); ``votes="majority"`` one row per pair whose plurality is A or
B (``rater_ids`` of the majority, their ``strengths``, the median as ``strength``, and ``votes``).
Ties cannot be a chosen/rejected pair and are left out. Gold questions are never exported.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict

from postlab.labelapp.agreement import cohen_kappa, krippendorff_alpha
from postlab.labelapp.models import STRENGTHS, Label, Pair
from postlab.labelapp.store import LabelAppError, Store

KINDS = ("preferences", "edits", "flags")


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def _pref_row(pair: Pair, choice: str, source: str) -> dict:
    chosen, rejected = (pair.response_a, pair.response_b) if choice == "a" else (pair.response_b, pair.response_a)
    return {"prompt": json.loads(pair.prompt_json), "chosen": _assistant(chosen), "rejected": _assistant(rejected),
            "prompt_id": pair.prompt_id, "pair_id": pair.id, "source": source}


def _median_strength(strengths: list[str]) -> str:
    ranks = sorted(STRENGTHS.index(s) for s in strengths)
    return STRENGTHS[ranks[(len(ranks) - 1) // 2]]  # lower median: never claims more than half the votes do


def preferences(store: Store, project: str, votes: str = "majority") -> list[dict]:
    if votes not in ("majority", "all"):
        raise LabelAppError(f"votes: must be majority or all (got {votes!r})", "votes")
    source = f"label-app:{project}"
    by_pair: dict[int, list[tuple[Label, Pair, str]]] = defaultdict(list)
    for label, pair, rater in store.submitted(project):
        if pair.gold_choice is None:
            by_pair[pair.id].append((label, pair, rater))
    rows = []
    for group in by_pair.values():
        if votes == "all":
            rows += [{**_pref_row(pair, label.choice, source), "rater_id": rater, "strength": label.strength}
                     for label, pair, rater in group if label.choice != "tie"]
            continue
        counts = Counter(label.choice for label, _, _ in group)
        (top, n_top), *rest = counts.most_common() + [("", 0)]
        if top == "tie" or (rest and rest[0][1] == n_top):
            continue  # no strict A/B plurality
        winners = [(label, rater) for label, _, rater in group if label.choice == top]
        strengths = [label.strength for label, _ in winners]
        rows.append({**_pref_row(group[0][1], top, source), "strength": _median_strength(strengths),
                     "rater_ids": [r for _, r in winners], "strengths": strengths,
                     "votes": {c: counts.get(c, 0) for c in ("a", "b", "tie")}})
    return rows


def edits(store: Store, project: str) -> list[dict]:
    """The latest revision of each edited response as an SFT row (``messages`` ends with the edit)."""
    revisions, _ = store.revisions_and_flags(project)
    latest = {r.label_id: r for r in revisions}
    pairs = {label.id: (pair, rater) for label, pair, rater in store.submitted(project)}
    rows = []
    for label_id, rev in latest.items():
        if label_id not in pairs:
            continue
        pair, rater = pairs[label_id]
        original = pair.response_a if rev.side == "a" else pair.response_b
        rows.append({"messages": json.loads(pair.prompt_json) + _assistant(rev.text), "prompt_id": pair.prompt_id,
                     "pair_id": pair.id, "rater_id": rater, "original": original, "source": f"label-app:{project}"})
    return rows


def flags(store: Store, project: str) -> list[dict]:
    _, all_flags = store.revisions_and_flags(project)
    pairs = {label.id: (pair, rater) for label, pair, rater in store.submitted(project)}
    rows = []
    for f in all_flags:
        if f.label_id in pairs:
            pair, rater = pairs[f.label_id]
            rows.append({"prompt_id": pair.prompt_id, "pair_id": pair.id, "prompt": json.loads(pair.prompt_json),
                         "response": pair.response_a if f.side == "a" else pair.response_b, "flag": f.kind,
                         "rater_id": rater})
    return rows


def export_rows(store: Store, project: str, kind: str, votes: str = "majority") -> list[dict]:
    if kind not in KINDS:
        raise LabelAppError(f"kind: must be one of {', '.join(KINDS)} (got {kind!r})", "kind")
    if kind == "preferences":
        return preferences(store, project, votes)
    return edits(store, project) if kind == "edits" else flags(store, project)


def to_jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def quality(store: Store, project: str) -> dict:
    """Per-rater counts and gold accuracy, Cohen's κ for each pair of raters, Krippendorff's α overall."""
    units: dict[int, dict[str, str]] = defaultdict(dict)  # pair -> rater -> choice (non-gold)
    gold: dict[str, list[bool]] = defaultdict(list)
    per_rater: Counter = Counter()
    for label, pair, rater in store.submitted(project):
        per_rater[rater] += 1
        if pair.gold_choice is not None:
            gold[rater].append(label.choice == pair.gold_choice)
        else:
            units[pair.id][rater] = label.choice
    raters = sorted(per_rater)
    kappas = []
    for r1, r2 in itertools.combinations(raters, 2):
        both = [(u[r1], u[r2]) for u in units.values() if r1 in u and r2 in u]
        if both:
            kappas.append({"raters": [r1, r2], "items": len(both), "kappa": cohen_kappa(both)})
    alpha = krippendorff_alpha({pid: list(u.values()) for pid, u in units.items()})
    return {"raters": [{"rater": r, "submitted": per_rater[r], "gold_answered": len(gold[r]),
                        "gold_accuracy": sum(gold[r]) / len(gold[r]) if gold[r] else None} for r in raters],
            "kappa": kappas, "alpha": alpha,
            "pairs_with_2plus_votes": sum(len(u) >= 2 for u in units.values())}
