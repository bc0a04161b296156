"""Simulated human raters: the gold rater seen through noise and known biases.

A rater shown response `a` first and `b` second perceives the margin

    d = [g(a) − g(b)] + β · ln((1 + |a|) / (1 + |b|)) + π + (σ / s_c) · ε,      ε ~ N(0, 1)

where g is the gold score in [0, 1], |x| the response length in words, β the verbosity bias (longer
looks better), π the position bias (the first-shown response looks better), σ the rater's noise and
s_c its skill on the item's category c (default 1). It prefers `a` when d > τ, `b` when d < −τ, and
calls a tie otherwise (τ = `tie_band`, 0 by default: raters always choose). ε is drawn from a
generator seeded by (seed, rater id, item id, a, b), so a judgement never depends on call order.

`default_pool()` is the pool every stage uses unless told otherwise; its parameters and the
agreement with gold they give are documented in docs/raters.md (measured by
`python -m postlab.raters.calibration`).
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from dataclasses import dataclass, field

from postlab.raters.base import Preference
from postlab.raters.gold import GoldRater
from postlab.tasks.suite import Item

_GOLD = GoldRater()
_GOLD_MEMO: dict[tuple, float] = {}  # a panel asks gold about the same (item, response) many times


def _gold_score(item: Item, response: str) -> float:
    key = (item.id, repr(item.messages), repr(item.checks), response)
    if key not in _GOLD_MEMO:
        if len(_GOLD_MEMO) > 200_000:
            _GOLD_MEMO.clear()
        _GOLD_MEMO[key] = _GOLD.score(item, response)
    return _GOLD_MEMO[key]


def num_words(text: str) -> int:
    return len(re.findall(r"\w+", text))


def _rng(*parts: object) -> random.Random:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "little"))


@dataclass(frozen=True)
class SimulatedRater:
    id: str
    noise: float = 0.9  # σ: std of the perception noise, in gold-score units
    verbosity: float = 0.25  # β: margin added per unit of log length ratio
    position: float = 0.05  # π: margin added to the response shown first
    skill: dict[str, float] = field(default_factory=dict)  # category -> s_c (noise divisor), default 1
    tie_band: float = 0.0  # τ: |d| below this is a tie
    seed: int = 0

    def __post_init__(self):
        if self.noise < 0 or self.tie_band < 0:
            raise ValueError(f"rater {self.id}: noise and tie_band must be >= 0")
        if any(s <= 0 for s in self.skill.values()):
            raise ValueError(f"rater {self.id}: skills must be > 0, got {self.skill}")

    def perceived_margin(self, item: Item, a: str, b: str) -> tuple[float, float]:
        """(perceived d, gold margin g(a) − g(b)) for `a` shown first."""
        gold = _gold_score(item, a) - _gold_score(item, b)
        bias = self.verbosity * math.log((1 + num_words(a)) / (1 + num_words(b))) + self.position
        sigma = self.noise / self.skill.get(item.category, 1.0)
        eps = _rng(self.seed, self.id, item.id, a, b).gauss(0.0, 1.0)
        return gold + bias + sigma * eps, gold

    def score(self, item: Item, response: str) -> float:
        """A noisy absolute rating: gold + σ_c · ε (no position; verbosity as against an empty answer)."""
        sigma = self.noise / self.skill.get(item.category, 1.0)
        eps = _rng(self.seed, self.id, item.id, response).gauss(0.0, 1.0)
        return _gold_score(item, response) + self.verbosity * math.log1p(num_words(response)) + sigma * eps

    def compare(self, item: Item, a: str, b: str) -> Preference:
        d, gold = self.perceived_margin(item, a, b)
        choice = "a" if d > self.tie_band else "b" if d < -self.tie_band else "tie"
        return Preference(choice, abs(d), self.id, gold_margin=gold)


@dataclass(frozen=True)
class RaterPool:
    """Several raters; each comparison goes to one of them, picked by hashing the pair."""

    raters: tuple[SimulatedRater, ...]
    seed: int = 0
    id: str = "pool"

    def __post_init__(self):
        if not self.raters:
            raise ValueError("a rater pool needs at least one rater")
        ids = [r.id for r in self.raters]
        if len(set(ids)) != len(ids):
            raise ValueError(f"rater ids must be unique, got {ids}")

    def assign(self, item: Item, a: str, b: str) -> SimulatedRater:
        return self.raters[_rng(self.seed, "assign", item.id, a, b).randrange(len(self.raters))]

    def compare(self, item: Item, a: str, b: str) -> Preference:
        return self.assign(item, a, b).compare(item, a, b)

    def score(self, item: Item, response: str) -> float:
        return self.raters[_rng(self.seed, "assign", item.id, response).randrange(len(self.raters))].score(
            item, response)

    def panel(self, item: Item, a: str, b: str, n: int) -> list[Preference]:
        """`n` distinct raters of the pool each judge the pair, each shown it in its own (seeded) order;
        every returned preference is stated for `a` vs `b` (choice "a" = `a` preferred)."""
        if not 1 <= n <= len(self.raters):
            raise ValueError(f"a panel needs 1..{len(self.raters)} raters of this pool, got {n}")
        rng = _rng(self.seed, "panel", item.id, a, b)
        out = []
        for rater in rng.sample(self.raters, n):
            if rng.random() < 0.5:
                out.append(rater.compare(item, a, b))
            else:
                p = rater.compare(item, b, a)
                flipped = {"a": "b", "b": "a", "tie": "tie"}[p.choice]
                g = None if p.gold_margin is None else -p.gold_margin
                out.append(Preference(flipped, p.strength, p.rater_id, gold_margin=g))
        return out


def default_pool(seed: int = 0) -> RaterPool:
    """Five raters of differing care and biases; skills differ by category (see docs/raters.md)."""
    return RaterPool(seed=seed, raters=(
        SimulatedRater("expert", noise=0.5, verbosity=0.1, position=0.02, seed=seed,
                       skill={"math": 2.0, "knowledge": 1.5}),
        SimulatedRater("careful", noise=0.7, verbosity=0.15, position=0.03, seed=seed,
                       skill={"instructions": 1.5, "chain_of_command": 1.5}),
        SimulatedRater("linguist", noise=0.8, verbosity=0.2, position=0.05, seed=seed,
                       skill={"language": 3.0, "math": 0.5}),
        SimulatedRater("average", noise=0.9, verbosity=0.25, position=0.05, seed=seed),
        SimulatedRater("hasty", noise=1.3, verbosity=0.4, position=0.1, seed=seed,
                       skill={"refusal": 1.5, "math": 0.5, "instructions": 0.7}),
    ))
