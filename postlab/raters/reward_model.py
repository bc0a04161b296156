"""A trained reward model as a rater: the proxy reward that RL and best-of-n optimise."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from postlab.data.chat import Conversation
from postlab.data.preferences import encode_response
from postlab.errors import DataError
from postlab.models.reward import load_reward_model, reward_offset, rewards, right_pad
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

    @torch.no_grad()
    def score_texts(self, prompts: list[Conversation], responses: list[str], *, progress: bool = False,
                    journal: BatchJournal | None = None) -> list[float]:
        """r(x, y) − offset for each pair, in order. Scored in batches of similar length; with a `journal`, each
        finished batch is recorded there and batches it holds are not scored again (an interrupted call continues)."""
        seqs = [encode_response(self.tokenizer, p, r) for p, r in zip(prompts, responses)]
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))  # similar lengths together
        out = [0.0] * len(seqs)
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id
        done = journal.done if journal is not None else {}
        bar = tqdm(total=len(seqs), desc="score", unit="resp", disable=not progress)
        for b, s in enumerate(range(0, len(order), self.batch_size)):
            idx = order[s : s + self.batch_size]
            if b in done:
                if [i for i, _ in done[b]] != idx:
                    raise DataError(f"{journal.path}: batch {b} holds other responses than this run's (another "
                                    "run's journal?); delete it to start over")
                scored = done[b]
            else:
                ids, mask = right_pad([seqs[i] for i in idx], pad)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16):
                    scored = [[i, r - self.offset] for i, r in zip(idx, rewards(self.model, ids.to(device),
                                                                                mask.to(device)).tolist())]
                if journal is not None:
                    journal.add(b, scored)
            for i, r in scored:
                out[i] = r
            bar.update(len(idx))
        bar.close()
        return out

    def score(self, item: Item, response: str) -> float:
        return self.score_texts([item.messages], [response])[0]

    def compare(self, item: Item, a: str, b: str) -> Preference:
        ra, rb = self.score_texts([item.messages] * 2, [a, b])
        d = ra - rb
        return Preference("a" if d > 0 else "b" if d < 0 else "tie", abs(d), self.id)
