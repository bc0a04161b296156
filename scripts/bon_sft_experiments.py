"""The best-of-n distillation experiments behind docs/results.md ("Best-of-n distillation, and SFT epochs"),
on a finished run's SFT policy, candidates and reward model (``RUN/sft/model``, ``RUN/data/candidates.jsonl``,
``RUN/rm/model``, ``RUN/data/sft.jsonl``, ``RUN/eval/sft.samples.jsonl``):

    python scripts/bon_sft_experiments.py RUN --select rm|gold|none [--keep 0.5] [--replay] --out DIR
        picks each compared prompt's best finished candidate by the reward model (rm), by the gold rater
        (gold: the oracle selection, an upper bound) or none at all (none: with --replay, the control
        that continues SFT on the run's own demonstrations), keeps the `keep` share of prompts whose
        pick scores highest, fine-tunes RUN's SFT policy on them (+ the SFT demonstrations with
        --replay) for 2 epochs at lr 2e-5 as `postlab run algo=bon_sft` does, evaluates it greedily on
        the 417 test items and prints the paired difference to RUN's SFT policy, overall and by category;
        with --picks-only it prints the picks' gold (overall and by quartile of their reward) and stops.
        --candidates FILE picks among other candidates than the run's compared ones (`postlab sample` rows,
        e.g. the SFT policy's samples on train prompts that neither SFT nor the reward model saw).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from postlab.evals import harness
from postlab.evals.metrics import paired_difference, sample_scores
from postlab.raters.gold import GoldRater
from postlab.rollout import SamplingParams
from postlab.run import _candidates
from postlab.tasks.suite import load_suite
from postlab.train import sft
from postlab.train.bon_sft import select_best
from postlab.train.common import CheckpointConfig, OptimConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--select", choices=["rm", "gold", "none"], required=True)
    ap.add_argument("--keep", type=float, default=1.0)
    ap.add_argument("--replay", action="store_true")
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--out", required=True)
    ap.add_argument("--picks-only", action="store_true", help="print the picks' gold and stop (no fine-tuning)")
    ap.add_argument("--scores", help="JSON file memoising the reward model's scores across reruns")
    ap.add_argument("--candidates", help="candidates JSONL to pick from (default: RUN/data/candidates.jsonl)")
    args = ap.parse_args()
    run, out = Path(args.run), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    items = {it.id: it for it in load_suite("spec", split="train")}
    cands = _candidates(Path(args.candidates) if args.candidates else run / "data" / "candidates.jsonl")
    gold = GoldRater()
    rows = []
    if args.select != "none":
        if args.select == "rm":
            from postlab.raters.reward_model import RewardModelRater

            rater = RewardModelRater(str(run / "rm" / "model"), bf16=True)
            cache = Path(args.scores) if args.scores else None
            memo = json.loads(cache.read_text()) if cache and cache.exists() else {}

            def score(messages, texts):  # memoised by (prompt, text) in --scores, so a rerun skips the RM
                keys = [json.dumps([m, t]) for m, t in zip(messages, texts)]
                todo = [i for i, key in enumerate(keys) if key not in memo]
                for i, r in zip(todo, rater.score_texts([messages[i] for i in todo], [texts[i] for i in todo])):
                    memo[keys[i]] = r
                if cache and todo:
                    cache.write_text(json.dumps(memo))
                return [memo[key] for key in keys]
        else:  # the oracle: gold scores the candidates (select_best passes each item's own messages)
            by_prompt = {json.dumps(it.messages, sort_keys=True): it for it in items.values()}

            def score(messages, texts):
                return [gold.score(by_prompt[json.dumps(m, sort_keys=True)], t) for m, t in zip(messages, texts)]
        rows, st = select_best(score, items, cands, keep=args.keep)
        picks_gold = [gold.score(items[r["id"]], r["messages"][-1]["content"]) for r in rows]
        print(f"{st.kept} picks of {st.prompts} prompts ({st.candidates} candidates); gold of the picks "
              f"{sum(picks_gold) / len(picks_gold):.3f}")
        q = len(rows) // 4  # rows come best reward first: gold of the picks by quartile of their reward, lowest first
        print("gold of the picks by reward quartile (lowest first): " + ", ".join(
            f"{sum(picks_gold[len(rows) - (i + 1) * q: len(rows) - i * q]) / q:.2f}" for i in range(4)) if q else "")
        if args.picks_only:
            return
    if args.replay:
        rows += [json.loads(line) for line in open(run / "data" / "sft.jsonl", encoding="utf-8")]
    data = out / "data.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    sft.train(sft.SFTConfig(
        model=str(run / "sft" / "model"), out_dir=str(out / "sft"),
        data=sft.SFTDataConfig(train_file=str(data), eval_fraction=0.0, max_seq_len=384),
        optim=OptimConfig(lr=args.lr, epochs=args.epochs, batch_size=8, warmup_steps=5, bf16="auto",
                          group_by_length=True),
        checkpoint=CheckpointConfig(save_every=1000, resume=False, progress=False)))
    res = harness.evaluate(harness.EvalConfig(
        model=str(out / "sft" / "model"), suite="spec", split="test", out=str(out / "eval.json"), batch_size=64,
        overwrite=True,
        dtype="auto", progress=False, sampling=SamplingParams(temperature=0.0, max_new_tokens=160, seed=0)))
    before, after = sample_scores(run / "eval" / "sft.samples.jsonl"), sample_scores(res["samples"])
    mean, se, n = paired_difference(after, before)
    print(f"held-out gold: SFT {sum(before.values()) / len(before):.3f} -> {res['overall']:.3f}; paired "
          f"{100 * mean:+.1f} ± {100 * se:.1f} points on {n} items")
    cats: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for i in after:
        cats[i.split("-")[0]].append((before[i], after[i]))
    print("  " + "  ".join(f"{c} {sum(b for b, _ in v) / len(v):.2f}->{sum(a for _, a in v) / len(v):.2f}"
                           for c, v in sorted(cats.items())))


if __name__ == "__main__":
    main()
