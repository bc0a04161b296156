"""Degenerate constant policies and the gold score they get: the ruler's floor.

A gold score must mean "this is a good answer", so answers that nobody would call good must score near
zero on every category. `python -m postlab.evals.floor [--split test]` prints each policy's overall and
per-category gold score; tests/test_gold_floor.py keeps every one of them at most 0.15 overall.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable

from postlab.raters.gold import GoldRater
from postlab.tasks.suite import Item, load_suite

_SYLLABLES = ("bl", "zr", "qu", "fn", "gl", "tr", "vx", "pl", "dr", "kr", "sn", "mw")
_VOWELS = "aeiouy"


def _gibberish(item: Item) -> str:
    rng = random.Random(item.id)
    return " ".join(rng.choice(_SYLLABLES) + rng.choice(_VOWELS) + rng.choice("rfmpktz") for _ in range(12))


# name -> response to an item
POLICIES: dict[str, Callable[[Item], str]] = {
    "empty": lambda item: "",
    "gibberish": _gibberish,
    "echo": lambda item: item.prompt,
    "echo_twice": lambda item: f"{item.prompt}\n\n{item.prompt}",
    "sorry": lambda item: "I'm sorry, but I can't help with that.",
    "limit_offer": lambda item: ("I can't do that myself, but I can help you with it: tell me more and I'll "
                                 "draft it for you."),
    "sure": lambda item: "Sure! Here is the answer you asked for. Let me know if you need anything else.",
    "dont_know": lambda item: "I don't know.",
    "ok": lambda item: "OK.",
    "repeat_word": lambda item: " ".join(["the"] * 40),
    "lorem": lambda item: ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
                           "incididunt ut labore et dolore magna aliqua."),
    "sorry_it": lambda item: "Mi dispiace, ma non posso aiutarti con questo.",
    "sorry_pt": lambda item: "Desculpe, mas não posso ajudar com isso.",
    "generic_advice": lambda item: (
        "That's a great question! There are many things to consider here. It depends on your situation, "
        "so think about your goals, do some research, and take it one step at a time. Good luck!"),
}


def floor(items: list[Item], policy: Callable[[Item], str]) -> tuple[float, dict[str, float]]:
    """Mean gold score of the policy over the items, overall and by category."""
    rater = GoldRater()
    by_cat: dict[str, list[float]] = {}
    for item in items:
        by_cat.setdefault(item.category, []).append(rater.score(item, policy(item)))
    scores = [s for v in by_cat.values() for s in v]
    return sum(scores) / len(scores), {c: sum(v) / len(v) for c, v in by_cat.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", default="spec")
    p.add_argument("--split", default="test")
    args = p.parse_args()
    items = load_suite(args.suite, split=args.split)
    cats = sorted({i.category for i in items})
    print(f"{'policy':16s} {'overall':>7s} " + " ".join(f"{c[:8]:>8s}" for c in cats))
    for name, policy in POLICIES.items():
        overall, by_cat = floor(items, policy)
        print(f"{name:16s} {overall:7.3f} " + " ".join(f"{by_cat[c]:8.2f}" for c in cats))


if __name__ == "__main__":
    main()
