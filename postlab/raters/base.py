"""The interface every rater shares: `score(item, response)` and `compare(item, a, b)`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from postlab.tasks.suite import Item

Choice = Literal["a", "b", "tie"]

# Labels for a preference's strength, as labeling tools present them (conventions.md).
STRENGTH_LABELS = ("tie", "slightly better", "better", "much better")


@dataclass(frozen=True)
class Preference:
    """One pairwise judgement: which of `a` (shown first) and `b` the rater prefers."""

    choice: Choice
    strength: float  # >= 0: the rater's perceived margin (gold raters: the gold margin)
    rater_id: str
    gold_margin: float | None = None  # gold(a) - gold(b) when the rater knows it

    @property
    def strength_label(self) -> str:
        if self.choice == "tie":
            return STRENGTH_LABELS[0]
        return STRENGTH_LABELS[1] if self.strength < 0.15 else STRENGTH_LABELS[2] if self.strength < 0.4 \
            else STRENGTH_LABELS[3]


class Rater(Protocol):
    id: str

    def score(self, item: Item, response: str) -> float: ...

    def compare(self, item: Item, a: str, b: str) -> Preference: ...
