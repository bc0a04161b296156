"""The typed container every RL stage consumes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Rollout:
    """B sampled responses. Prompts are left-padded, responses right-padded, both with ``pad_id``.

    ``logprobs[b, t]`` is log π(y_t | x, y_<t) under the *sampling* distribution's temperature
    (log-softmax of logits / T over the full vocabulary; top-k/top-p only restrict which tokens may be
    drawn), so a PPO ratio against a fresh forward pass at the same temperature starts at exactly 1.
    """

    prompt_ids: torch.Tensor  # (B, P) long, left-padded
    prompt_mask: torch.Tensor  # (B, P) long, 1 on prompt tokens
    response_ids: torch.Tensor  # (B, R) long, right-padded
    response_mask: torch.Tensor  # (B, R) long, 1 on generated tokens up to and including EOS
    logprobs: torch.Tensor  # (B, R) float32, 0 where response_mask == 0
    finished: torch.Tensor  # (B,) bool, True where the response ended with a stop token
    texts: list[str]  # B decoded responses (special tokens removed)
    pad_id: int

    @property
    def response_lengths(self) -> torch.Tensor:  # (B,)
        return self.response_mask.sum(dim=1)

    @property
    def input_ids(self) -> torch.Tensor:  # (B, P + R) prompt and response side by side
        return torch.cat([self.prompt_ids, self.response_ids], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:  # (B, P + R)
        return torch.cat([self.prompt_mask, self.response_mask], dim=1)

    def to(self, device: torch.device | str) -> Rollout:
        """The same rollout with every tensor on `device` (engines return CPU tensors; trainers move
        them next to the model once)."""
        return dataclasses.replace(self, **{f: getattr(self, f).to(device) for f in (
            "prompt_ids", "prompt_mask", "response_ids", "response_mask", "logprobs", "finished")})

    def finish_reasons(self) -> list[str]:
        """OpenAI's vocabulary: ``stop`` (a stop token was emitted) or ``length`` (hit max_new_tokens)."""
        return ["stop" if f else "length" for f in self.finished.tolist()]


def cat_rollouts(rollouts: list[Rollout]) -> Rollout:
    """The rows of several rollouts as one: prompts left-padded and responses right-padded to the widest."""
    if len(rollouts) == 1:
        return rollouts[0]
    P = max(r.prompt_ids.size(1) for r in rollouts)
    R = max(r.response_ids.size(1) for r in rollouts)
    pad_id = rollouts[0].pad_id

    def cat(field: str, width: int, left: bool, value) -> torch.Tensor:
        parts = [getattr(r, field) for r in rollouts]
        return torch.cat([F.pad(x, (width - x.size(1), 0) if left else (0, width - x.size(1)), value=value) for x in parts])

    return Rollout(prompt_ids=cat("prompt_ids", P, True, pad_id), prompt_mask=cat("prompt_mask", P, True, 0),
                   response_ids=cat("response_ids", R, False, pad_id), response_mask=cat("response_mask", R, False, 0),
                   logprobs=cat("logprobs", R, False, 0.0), finished=torch.cat([r.finished for r in rollouts]),
                   texts=[t for r in rollouts for t in r.texts], pad_id=pad_id)


def distinct_rows(*tensors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, inverse) over the rows of `tensors` (each (B, ...), read side by side): `first` (U,) the first
    row of each distinct one, `inverse` (B,) the distinct row of every row, so rows ``first[inverse]`` equal
    rows 0..B-1. Used to run each distinct prompt of a batch once (RL groups repeat every prompt k times)."""
    if tensors[0].size(0) == 0:
        none = torch.zeros(0, dtype=torch.long, device=tensors[0].device)
        return none, none
    key = torch.cat([t.reshape(t.size(0), -1) for t in tensors], dim=1)
    _, inverse = torch.unique(key, dim=0, return_inverse=True)  # (B,) into the sorted distinct rows
    B = inverse.numel()
    first = torch.full((int(inverse.max()) + 1,), B, dtype=torch.long, device=inverse.device)
    first.scatter_reduce_(0, inverse, torch.arange(B, device=inverse.device), reduce="amin")
    return first, inverse
