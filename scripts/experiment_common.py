"""Shared by the RL-stage experiment scripts (``bon_sft_experiments.py``, ``dpo_experiments.py``): the scorers that
pick among a run's candidates (its reward model, memoised; or gold, the oracle), and the greedy eval of a trained
policy on the 417 spec test items, as every stage's eval does, with its paired difference to a finished run's SFT
policy (``RUN/eval/sft.samples.jsonl``), overall and by category."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from postlab.evals import harness
from postlab.evals.metrics import paired_difference, sample_scores
from postlab.raters.gold import GoldRater
from postlab.rollout import SamplingParams
from postlab.tasks.suite import Item
from postlab.train.common import CheckpointConfig, OptimConfig

# Every experiment's fine-tuning: batches of 8 grouped by length, 5 warm-up steps, bf16 where it is faster, no
# checkpoints but the final model (an experiment is rerun, not resumed).
NO_CHECKPOINTS = CheckpointConfig(save_every=1000, resume=False, progress=False)


def experiment_optim(lr: float, epochs: float) -> OptimConfig:
    return OptimConfig(lr=lr, epochs=epochs, batch_size=8, warmup_steps=5, bf16="auto", group_by_length=True)


def rm_scorer(run: Path, cache: str | None = None, model: str | None = None):
    """``score(messages_list, texts) -> rewards`` by RUN's reward model (or the one in ``model``), memoised by (prompt,
    text) in the JSON file ``cache`` (if given), so a rerun skips the reward model."""
    from postlab.raters.reward_model import RewardModelRater

    rater = RewardModelRater(model or str(run / "rm" / "model"), bf16=True)
    path = Path(cache) if cache else None
    memo = json.loads(path.read_text()) if path and path.exists() else {}

    def score(messages, texts):
        keys = [json.dumps([m, t]) for m, t in zip(messages, texts)]
        todo = [i for i, key in enumerate(keys) if key not in memo]
        for i, r in zip(todo, rater.score_texts([messages[i] for i in todo], [texts[i] for i in todo])):
            memo[keys[i]] = r
        if path and todo:
            path.write_text(json.dumps(memo))
        return [memo[key] for key in keys]
    return score


def gold_scorer(items: dict[str, Item]):
    """The oracle: ``score(messages_list, texts) -> gold scores``, each prompt matched to its train item."""
    gold = GoldRater()
    by_prompt = {json.dumps(it.messages, sort_keys=True): it for it in items.values()}

    def score(messages, texts):
        return [gold.score(by_prompt[json.dumps(m, sort_keys=True)], t) for m, t in zip(messages, texts)]
    return score


def evaluate_against_sft(run: Path, model: Path, out: Path, groups: dict[str, set[str]] | None = None) -> dict:
    """Greedy eval of ``model`` (160 new tokens, like the run's) into ``out/eval.json``; prints and returns the
    paired difference to RUN's SFT policy, and prints it on each of ``groups`` (name -> item ids) too."""
    res = harness.evaluate(harness.EvalConfig(
        model=str(model), suite="spec", split="test", out=str(out / "eval.json"), batch_size=64, overwrite=True,
        dtype="auto", progress=False, sampling=SamplingParams(temperature=0.0, max_new_tokens=160, seed=0)))
    before, after = sample_scores(run / "eval" / "sft.samples.jsonl"), sample_scores(res["samples"])
    mean, se, n = paired_difference(after, before)
    print(f"held-out gold: SFT {sum(before.values()) / len(before):.3f} -> {res['overall']:.3f}; paired "
          f"{100 * mean:+.1f} ± {100 * se:.1f} points on {n} items")
    cats: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for i in after.keys() & before.keys():  # a run with eval_limit graded fewer items than this eval
        cats[i.split("-")[0]].append((before[i], after[i]))
    print("  " + "  ".join(f"{c} {sum(b for b, _ in v) / len(v):.2f}->{sum(a for _, a in v) / len(v):.2f}"
                           for c, v in sorted(cats.items())))
    for name, ids in (groups or {}).items():
        m, s, k = paired_difference({i: after[i] for i in ids if i in after}, before)
        print(f"  {name}: paired {100 * m:+.1f} ± {100 * s:.1f} points on {k} items")
    return {"overall": res["overall"], "paired": mean, "paired_se": se, "items": n}
