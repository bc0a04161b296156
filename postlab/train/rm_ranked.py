"""Preference pairs ranked by a reward model: the data of DPO against a reward model (``algo=dpo_rm``).

For each prompt, the reward model scores the prompt's sampled candidates; the highest-scored becomes
`chosen` and the lowest `rejected` (then the second highest against the second lowest, and so on, up
to ``pairs_per_prompt``), kept only when r(chosen) − r(rejected) ≥ ``min_margin``. This is how
Llama 2/3 and iterative/online DPO use a reward model with a direct-alignment loss: the RM labels the
policy's own samples, so the comparisons the policy learns from are on-policy and as many as the
samples allow, while human (here: simulated) labels are spent on the reward model only.
"""

from __future__ import annotations

from dataclasses import dataclass

from postlab.data.preferences import PreferencePair
from postlab.tasks.suite import Item


@dataclass(frozen=True)
class RankedStats:
    prompts: int  # prompts with at least two distinct candidates
    pairs: int  # pairs written
    mean_margin: float  # mean r(chosen) − r(rejected) over the pairs written


def rank_pairs(score, items: dict[str, Item], candidates: dict[str, list[str]], *, pairs_per_prompt: int = 1,
               min_margin: float = 0.0) -> tuple[list[PreferencePair], RankedStats]:
    """Best-vs-worst pairs of each prompt's distinct candidates under ``score(messages_list, texts) ->
    rewards`` (a reward model's ``score_texts``)."""
    pairs: list[PreferencePair] = []
    margins: list[float] = []
    prompts = 0
    for pid, texts in candidates.items():
        texts = list(dict.fromkeys(t for t in texts if t.strip()))
        if len(texts) < 2 or pid not in items:
            continue
        prompts += 1
        r = score([items[pid].messages] * len(texts), texts)
        order = sorted(range(len(texts)), key=lambda i: (-r[i], i))
        for j in range(min(pairs_per_prompt, len(texts) // 2)):
            hi, lo = order[j], order[-1 - j]
            if r[hi] - r[lo] < min_margin or r[hi] <= r[lo]:
                break
            pairs.append(PreferencePair(items[pid].messages, texts[hi], texts[lo], prompt_id=pid,
                                        rater_id="rm", source="rm"))
            margins.append(r[hi] - r[lo])
    return pairs, RankedStats(prompts, len(pairs), sum(margins) / len(margins) if margins else 0.0)
