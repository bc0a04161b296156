"""Deterministic held-out splits."""

from __future__ import annotations

import torch


def split_holdout(items: list, fraction: float, seed: int) -> tuple[list, list]:
    """(train, held-out) split by a seeded permutation; at least one item stays in train."""
    if fraction <= 0 or len(items) < 2:
        return items, []
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(items), generator=g).tolist()
    k = min(len(items) - 1, max(1, round(fraction * len(items))))
    return [items[i] for i in order[k:]], [items[i] for i in order[:k]]
