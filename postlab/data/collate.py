"""Batching: right-pad token lists into tensors for training."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from postlab.data.chat import IGNORE_INDEX


@dataclass
class LMBatch:
    input_ids: torch.Tensor  # (B, T) padded with pad_id on the right
    attention_mask: torch.Tensor  # (B, T) 1 on real tokens
    labels: torch.Tensor  # (B, T) IGNORE_INDEX where no loss applies (padding, prompts)

    @property
    def num_target_tokens(self) -> int:
        """Tokens that carry a loss after the one-step shift."""
        return int((self.labels[:, 1:] != IGNORE_INDEX).sum())

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())


def collate(examples: list[dict], pad_id: int) -> LMBatch:
    """``examples``: dicts with ``input_ids`` and optional ``labels`` (defaults to input_ids)."""
    T = max(len(e["input_ids"]) for e in examples)
    B = len(examples)
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    labels = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((B, T), dtype=torch.long)
    for b, e in enumerate(examples):
        n = len(e["input_ids"])
        input_ids[b, :n] = torch.tensor(e["input_ids"])
        labels[b, :n] = torch.tensor(e.get("labels", e["input_ids"]))
        attention_mask[b, :n] = 1
    return LMBatch(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
