"""Best-of-n distillation against a reward model (``algo=bon_sft``): the data of rejection-sampling
fine-tuning.

For each prompt x the policy's sampled candidates y_1..y_n (those that finished: a response cut off at
the token cap is not a demonstration) are scored by the reward model, and the best one,

    y*(x) = argmax_i r_φ(x, y_i),

becomes a demonstration; the policy is then fine-tuned on {(x, y*(x))} with the SFT loss
−Σ_t log π_θ(y*_t | x, y*_<t), optionally beside a replay of its SFT demonstrations (``bon_replay``) so that
behaviours the reward model cannot see (it is weak on refusals) are not unlearned. This is the RL step of Llama 2's
RLHF ("rejection sampling fine-tuning", Touvron et al. 2023), RAFT (Dong et al. 2023) and expert
iteration with a learned reward. The best-of-n policy it imitates stays within KL(π_BoN ‖ π) ≤
log n − (n − 1)/n of the sampling policy (Stiennon et al. 2020; docs/algorithms/best_of_n.md), so n
is the leash; unlike a policy-gradient step it aims at the policy's mode (what greedy decoding answers).
Math and measurements (its held-out gains are small at this budget): docs/algorithms/bon_sft.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from postlab.tasks.demos import conversation
from postlab.tasks.suite import Item

Score = Callable[[list, list[str]], list[float]]  # (messages per response, responses) -> rewards


@dataclass(frozen=True)
class BestStats:
    prompts: int  # prompts with at least one finished, non-empty candidate
    kept: int  # demonstrations written (the `keep` share of prompts with the highest best reward)
    candidates: int  # candidates scored
    mean_best: float  # mean r(x, y*) over the demonstrations kept
    mean_reward: float  # mean r over every candidate scored


def scorable(cands: list[tuple[str, str | None]]) -> list[str]:
    """The candidates worth scoring: finished (not cut off at the token cap), non-empty, distinct, in order."""
    return list(dict.fromkeys(t.strip() for t, reason in cands if reason != "length" and t.strip()))


def select_best(score: Score, items: dict[str, Item], candidates: dict[str, list[tuple[str, str | None]]], *,
                keep: float = 1.0) -> tuple[list[dict], BestStats]:
    """The reward model's best finished candidate of each prompt as a chat demonstration.

    ``candidates``: prompt id → [(text, finish_reason)]; a candidate with finish_reason "length" or an
    empty text is not scored. All candidates are scored in one call (the scorer batches by length).
    ``keep`` < 1 keeps only that share of the prompts (rounded), those whose best candidate scores
    highest: the reward model's confident picks (a higher reward means a better pick on average, so this
    trades demonstrations for their quality without a threshold in the reward's arbitrary units). Ties
    go to the earliest candidate."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    pids, texts = [], []
    for pid, cands in candidates.items():
        if pid not in items:
            continue
        seen = scorable(cands)
        pids += [pid] * len(seen)
        texts += seen
    rewards = score([items[p].messages for p in pids], texts) if texts else []
    best: dict[str, tuple[float, str]] = {}
    for pid, text, r in zip(pids, texts, rewards):
        if pid not in best or r > best[pid][0]:
            best[pid] = (r, text)
    ranked = sorted(best.items(), key=lambda kv: -kv[1][0])  # stable: ties keep candidate order
    rows, kept = [], []
    for pid, (r, text) in ranked[: round(keep * len(ranked))]:
        rows.append({**conversation(items[pid].messages, text), "id": pid, "source": "best_of_n", "reward": r})
        kept.append(r)
    stats = BestStats(prompts=len(best), kept=len(rows), candidates=len(texts),
                      mean_best=sum(kept) / len(kept) if kept else 0.0,
                      mean_reward=sum(rewards) / len(rewards) if rewards else 0.0)
    return rows, stats


def pick_quality(rows: list[dict], items: dict[str, Item], candidates: dict[str, list[tuple[str, str | None]]],
                 grade: Callable[[Item, str], float]) -> dict:
    """How good the picks are, by a ruler the reward model never saw (gold): on the picked prompts P,

        picks   = mean_{x∈P} g(x, y*(x))
        samples = mean_{x∈P} mean_i g(x, y_i)      (a random pick among the same candidates)
        oracle  = mean_{x∈P} max_i g(x, y_i)       (the ruler's own pick)

    over the candidates select_best scores (finished, non-empty, distinct). (picks − samples) / (oracle − samples)
    is the share of the attainable lift the reward model delivered. Returned overall and per item category."""
    per: dict[str, list[tuple[float, float, float]]] = {}
    for row in rows:
        pid = row["id"]
        texts = scorable(candidates[pid])
        golds = [grade(items[pid], t) for t in texts]
        pick = grade(items[pid], row["messages"][-1]["content"])
        per.setdefault(items[pid].category, []).append((pick, sum(golds) / len(golds), max(golds)))

    def summary(xs: list[tuple[float, float, float]]) -> dict:
        picks, samples, oracle = (sum(x[i] for x in xs) / len(xs) for i in range(3))
        lift = (picks - samples) / (oracle - samples) if oracle > samples else None
        return {"picks": len(xs), "gold_of_picks": picks, "gold_of_samples": samples, "gold_of_oracle": oracle,
                "share_of_lift": lift}

    everything = [x for xs in per.values() for x in xs]
    if not everything:
        return {"picks": 0, "gold_of_picks": None, "gold_of_samples": None, "gold_of_oracle": None,
                "share_of_lift": None, "by_category": {}}
    return {**summary(everything), "by_category": {c: summary(xs) for c, xs in sorted(per.items())}}
