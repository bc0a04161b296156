"""The experiments behind docs/raters.md "Panels" and docs/results.md (issue 15), on a finished run's
candidates (`RUN/data/candidates.jsonl`: SFT and base samples of train prompts).

    python scripts/panel_experiments.py panel-table runs/d3
        gold-decided share and agreement of the kept pairs, one rater vs panels (all pairs of each prompt)
    python scripts/panel_experiments.py keep-grid runs/r2 [--pairs-per-prompt 28]
        the share of the run's compared pairs a five-rater panel keeps, by the votes its winner needs and the
        mean margin toward it (postlab.budget.PANEL_KEEP, which plans the reward-model stage's time)
    python scripts/panel_experiments.py rm runs/d3 --out runs/panel_rm [--layers 4 --lr 3e-4 --epochs 2
        --min-votes 5 --min-strength 0.7]
        a reward model on the panel's pairs of 85% of the prompts, measured against gold on the other 15%:
        on every clear pair of their candidates, and on the pairs the panel kept
    python scripts/panel_experiments.py ranked-pairs runs/d3 --ranker gold|RM_DIR --out pairs.jsonl
        best-vs-worst DPO pairs per prompt, ranked by gold or a reward model (train.rm_ranked)
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from postlab.data.chat import completion_text
from postlab.data.split import split_holdout
from postlab.raters.gold import GoldRater
from postlab.raters.label import label_pairs
from postlab.tasks.suite import load_suite

PANELS = [("one rater", 1, None, 0.0), ("5 raters, majority", 5, None, 0.0), ("5 raters, >= 4 agree", 5, 4, 0.0),
          ("5 raters, unanimous", 5, 5, 0.0), ("5 raters, unanimous, mean margin >= 0.7", 5, 5, 0.7)]


def candidates(run: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in open(Path(run) / "data" / "candidates.jsonl", encoding="utf-8"):
        row = json.loads(line)
        texts, text = out.setdefault(row["prompt_id"], []), completion_text(row, "candidates.jsonl")
        if text.strip() and text not in texts:
            texts.append(text)
    return out


def label(items, cands, raters: int, votes: int | None, strength: float):
    return label_pairs(items, cands, "simulated", max_pairs_per_prompt=10**6, seed=0, raters_per_pair=raters,
                       min_votes=votes, min_strength=strength)


def panel_table(args) -> None:
    items = {it.id: it for it in load_suite("spec")}
    cands = candidates(args.run)
    print("| panel | kept | gold decides | labels agree with gold, where it decides |\n|---|---|---|---|")
    for name, raters, votes, strength in PANELS:
        pairs, c = label(items, cands, raters, votes, strength)
        print(f"| {name} | {len(pairs):,} of {c['pairs']:,} | {c['gold_decided'] / len(pairs):.0%} | "
              f"{c['agree_with_gold'] / c['gold_decided']:.0%} |")


def keep_grid(args) -> None:
    from postlab.budget import PANEL_MARGINS
    from postlab.raters.label import asked_pairs, panel_verdict, read_candidates
    from postlab.raters.registry import make_rater

    items = {it.id: it for it in load_suite("spec")}
    cands = read_candidates(str(Path(args.run) / "data" / "candidates.jsonl"), items)  # as `postlab run` labels them
    rater = make_rater("simulated", 0)
    asked = asked_pairs(items, cands, max_pairs_per_prompt=args.pairs_per_prompt, seed=0)
    verdicts = [panel_verdict(rater.panel(item, a, b, 5)) for _, item, a, b in asked]
    print(f"{len(asked):,} compared pairs; share kept by a five-rater panel\n")
    print("| the winner needs | " + " | ".join(f"margin ≥ {m:g}" for m in PANEL_MARGINS) + " |")
    print("|---|" + "---|" * len(PANEL_MARGINS))
    for votes in (3, 4, 5):
        kept = [sum(p.choice != "tie" and won >= votes and p.strength >= m for p, won in verdicts) / len(asked)
                for m in PANEL_MARGINS]
        print(f"| {votes} of 5 | " + " | ".join(f"{x:.3f}" for x in kept) + " |")


def rm_experiment(args) -> None:
    from postlab.raters.reward_model import RewardModelRater
    from postlab.train import rm
    from postlab.train.common import CheckpointConfig, OptimConfig

    items = {it.id: it for it in load_suite("spec")}
    cands = candidates(args.run)
    train_ids, held_ids = split_holdout(sorted(cands), 0.15, 0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pairs, c = label(items, {p: cands[p] for p in train_ids}, 5, args.min_votes, args.min_strength)
    (out / "prefs.jsonl").write_text("".join(json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in pairs))
    print(f"{len(pairs)} pairs from {len(train_ids)} prompts; gold decides {c['gold_decided'] / len(pairs):.0%}")
    rm.train(rm.RMConfig(model=str(Path(args.run) / "sft" / "model"), out_dir=str(out), margin="none",
                         data=rm.RMDataConfig(train_file=str(out / "prefs.jsonl"), eval_fraction=0.0, max_seq_len=256),
                         trainable_layers=args.layers,
                         optim=OptimConfig(lr=args.lr, epochs=args.epochs, batch_size=8, warmup_steps=5, bf16=True,
                                           group_by_length=True),
                         checkpoint=CheckpointConfig(save_every=10**6, progress=False)))
    held = {p: cands[p] for p in held_ids}
    kept = {(p.prompt_id, p.chosen, p.rejected) for p in label(items, held, 5, args.min_votes, args.min_strength)[0]}
    rater, gold = RewardModelRater(str(out / "model"), bf16=True), GoldRater()
    right = {"all": [0, 0], "kept": [0, 0]}
    for pid, texts in held.items():
        proxy = rater.score_texts([items[pid].messages] * len(texts), texts)
        golds = [gold.score(items[pid], t) for t in texts]
        for (ta, pa, ga), (tb, pb, gb) in itertools.combinations(zip(texts, proxy, golds), 2):
            if abs(ga - gb) < 0.3:
                continue
            ok = (pa > pb) == (ga > gb)
            for key in ("all",) + (("kept",) if {(pid, ta, tb), (pid, tb, ta)} & kept else ()):
                right[key][0] += ok
                right[key][1] += 1
    for key, (ok, n) in right.items():
        print(f"accuracy vs gold, {key} clear pairs of the {len(held)} held-out prompts: {ok / n:.3f} on {n}")


def ranked_pairs(args) -> None:
    from postlab.train.rm_ranked import rank_pairs

    items = {it.id: it for it in load_suite("spec")}
    if args.ranker == "gold":
        gold = GoldRater()
        by_messages = {json.dumps(it.messages): it for it in items.values()}

        def score(messages, texts):  # rank_pairs passes one prompt's messages per text
            item = by_messages[json.dumps(messages[0])]
            return [gold.score(item, t) for t in texts]
    else:
        from postlab.raters.reward_model import RewardModelRater

        score = RewardModelRater(args.ranker, bf16=True).score_texts
    pairs, st = rank_pairs(score, items, candidates(args.run), pairs_per_prompt=2)
    Path(args.out).write_text("".join(json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in pairs))
    print(f"{st.pairs} pairs from {st.prompts} prompts, mean margin {st.mean_margin:.2f}: {args.out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("panel-table").add_argument("run")
    grid = sub.add_parser("keep-grid")
    grid.add_argument("run")
    grid.add_argument("--pairs-per-prompt", type=int, default=28)
    r = sub.add_parser("rm")
    r.add_argument("run")
    r.add_argument("--out", required=True)
    r.add_argument("--layers", type=int, default=4)
    r.add_argument("--lr", type=float, default=3e-4)
    r.add_argument("--epochs", type=float, default=2.0)
    r.add_argument("--min-votes", type=int, default=5)
    r.add_argument("--min-strength", type=float, default=0.7)
    p = sub.add_parser("ranked-pairs")
    p.add_argument("run")
    p.add_argument("--ranker", required=True, help="gold, or a reward model directory")
    p.add_argument("--out", required=True)
    args = ap.parse_args()
    {"panel-table": panel_table, "keep-grid": keep_grid, "rm": rm_experiment, "ranked-pairs": ranked_pairs}[args.cmd](args)


if __name__ == "__main__":
    main()
