"""Reward functions of the reasoning preset's controls, for ``reward.source=python:postlab.presets.rewards:<name>``.

The real reward is the gold rater on the verifiable suites: 1 when the final answer is right (the item's
``reasoning:final_answer`` / ``countdown:reaches_target`` check), else 0. The controls ask whether a
gain comes from that signal at all (spurious rewards move some models: Shao et al. 2025, "Spurious
Rewards: Rethinking Training Signals in RLVR"):

- ``random_reward``: 1 with probability 1/2, independent of the answer's correctness. It is a hash of the
  item id and the response, so it is the same on every call (a resumed run scores as the original did)
  and carries no information about whether the answer is right;
- ``format_reward``: 1 when the response ends in a well-formed final answer — a number for arithmetic,
  an expression for countdown — right or wrong (the ``reasoning:format`` / ``countdown:format`` checks).
"""

from __future__ import annotations

import hashlib

from postlab.spec.reasoning import CHECKS
from postlab.tasks.suite import Item


def random_reward(item: Item, response: str) -> float:
    """Bernoulli(1/2) from sha256(item id, response): deterministic, blind to correctness."""
    digest = hashlib.sha256(f"{item.id}\x00{response}".encode()).digest()
    return float(digest[0] & 1)


def format_reward(item: Item, response: str) -> float:
    """1 when the response's final answer is well formed for the item's kind (correct or not), else 0."""
    countdown = any(c.id.startswith("countdown:") for c in item.checks)
    check = CHECKS["countdown:format" if countdown else "reasoning:format"][0]
    return float(check(response))
