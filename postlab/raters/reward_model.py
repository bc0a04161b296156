"""A trained reward model as a rater: the proxy reward that RL and best-of-n optimise."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from postlab.data.chat import Conversation
from postlab.data.preferences import encode_response
from postlab.models.reward import (load_reward_model, reward_offset, rewards, rewards_sharing_bottom, right_pad,
                                   shared_bottom)
from postlab.raters.base import Preference
from postlab.tasks.suite import Item
from postlab.utils.journal import BatchJournal


class RewardModelRater:
    """Scores r(x, y) − offset, so the SFT policy's responses average about 0."""

    def __init__(self, path: str, *, dtype: torch.dtype = torch.float32, device: str = "cpu", batch_size: int = 16,
                 bf16: bool = False):
        """`bf16`: score under bf16 autocast (fp32 weights), as the reward model was trained."""
        self.bf16 = bf16
        self.model, self.tokenizer = load_reward_model(path, dtype=dtype)
        self.model.to(device).eval()
        self.offset = reward_offset(self.model)
        self.batch_size = batch_size
        self.id = f"rm:{path}"

    def score_texts(self, prompts: list[Conversation], responses: list[str], *, progress: bool = False,
                    journal: BatchJournal | None = None) -> list[float]:
        """r(x, y) − offset for each pair, in order. Scored in batches of similar length; with a `journal`, each
        finished batch is recorded there and batches it holds are not scored again (an interrupted call continues)."""
        return score_together([self], prompts, responses, progress=progress, journals=[journal])[0]

    def score(self, item: Item, response: str) -> float:
        return self.score_texts([item.messages], [response])[0]

    def compare(self, item: Item, a: str, b: str) -> Preference:
        ra, rb = self.score_texts([item.messages] * 2, [a, b])
        d = ra - rb
        return Preference("a" if d > 0 else "b" if d < 0 else "tie", abs(d), self.id)


@torch.no_grad()
def score_together(raters: list[RewardModelRater], prompts: list[Conversation], responses: list[str], *,
                   progress: bool = False, journals: list[BatchJournal | None] | None = None) -> list[list[float]]:
    """Each rater's ``score_texts`` of the same pairs, batch by batch alike; the bottom layers the raters share
    weight for weight (proxies trained from one policy with their top layers only) run once per batch for all of
    them. ``journals``: one per rater (or None), each continued and written as ``score_texts`` does."""
    first = raters[0]
    seqs = [encode_response(first.tokenizer, p, r) for p, r in zip(prompts, responses)]
    start = shared_bottom([r.model for r in raters])
    if start and any(r.bf16 != first.bf16 or [encode_response(r.tokenizer, p, y) for p, y in zip(prompts, responses)]
                     != seqs for r in raters[1:]):
        start = 0
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))  # similar lengths together
    out = [[0.0] * len(seqs) for _ in raters]
    device = next(first.model.parameters()).device
    journals = journals or [None] * len(raters)
    bar = tqdm(total=len(seqs), desc="score", unit="resp", disable=not progress)
    for b, s in enumerate(range(0, len(order), first.batch_size)):
        idx = order[s : s + first.batch_size]
        todo = []
        for k, journal in enumerate(journals):
            rows = journal.recorded(b, idx) if journal is not None else None
            if rows is None:
                todo.append(k)
            for i, r in rows or []:
                out[k][i] = r
        if todo:
            ids, mask = right_pad([seqs[i] for i in idx], first.tokenizer.pad_token_id)
            ids, mask = ids.to(device), mask.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=first.bf16):
                if start and len(todo) > 1:
                    scores = rewards_sharing_bottom([raters[k].model for k in todo], start, ids, mask)
                else:
                    scores = [rewards(raters[k].model, ids, mask) for k in todo]
            for k, r in zip(todo, scores):
                scored = [[i, x - raters[k].offset] for i, x in zip(idx, r.tolist())]
                if journals[k] is not None:
                    journals[k].add(b, scored)
                for i, x in scored:
                    out[k][i] = x
        bar.update(len(idx))
    bar.close()
    return out
