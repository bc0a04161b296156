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
        --rm DIR picks with another reward model (e.g. one retrained on RUN's pairs with other settings).
        --candidates FILE picks among other candidates than the run's compared ones (`postlab sample` rows,
        e.g. the SFT policy's samples on train prompts that neither SFT nor the reward model saw).
        --split test picks among samples of the *test* prompts (`postlab sample suite=spec split=test`): a
        diagnostic, never a result, since the eval then grades answers to prompts the policy was trained on. With
        --select gold it asks whether fine-tuning on good answers moves the greedy answers of the very prompts they
        answer (the update, with no transfer from train to test templates needed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from postlab.raters.gold import GoldRater
from postlab.run import _candidates
from postlab.tasks.suite import load_suite
from postlab.train import sft
from postlab.train.bon_sft import select_best

from experiment_common import NO_CHECKPOINTS, evaluate_against_sft, experiment_optim, gold_scorer, rm_scorer  # scripts/ is on sys.path when a script runs


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
    ap.add_argument("--rm", help="another reward model to pick with (default: RUN/rm/model)")
    ap.add_argument("--candidates", help="candidates JSONL to pick from (default: RUN/data/candidates.jsonl)")
    ap.add_argument("--split", choices=["train", "test"], default="train",
                    help="the split the candidates' prompts come from (test: the in-distribution diagnostic)")
    args = ap.parse_args()
    run, out = Path(args.run), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    items = {it.id: it for it in load_suite("spec", split=args.split)}
    cands = _candidates(Path(args.candidates) if args.candidates else run / "data" / "candidates.jsonl")
    gold = GoldRater()
    rows = []
    if args.select != "none":
        score = rm_scorer(run, args.scores, args.rm) if args.select == "rm" else gold_scorer(items)
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
        optim=experiment_optim(args.lr, args.epochs), checkpoint=NO_CHECKPOINTS))
    groups = None
    if args.split == "test":  # the diagnostic: the trained prompts, the other sampled ones, the never-sampled ones
        picked = {r["id"] for r in rows if r.get("source") == "best_of_n"}
        groups = {"picked prompts": picked, "sampled, not picked": set(cands) - picked,
                  "never sampled": set(items) - set(cands)}
    evaluate_against_sft(run, out / "sft" / "model", out, groups)


if __name__ == "__main__":
    main()
