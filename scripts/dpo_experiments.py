"""On-policy DPO from a finished run's SFT policy (issue 15): the preference pairs are the SFT policy's own
finished samples of each prompt, best against worst, ranked by the run's reward model (rm) or by the gold rater
(gold: the oracle ranking, an upper bound on what the reward model's could give), then DPO with the SFT policy as
the reference, a greedy eval on the 417 test items and the paired difference to the run's SFT policy:

    python scripts/dpo_experiments.py RUN --select rm|gold [--candidates FILE] [--min-margin M]
        [--beta 0.1] [--lr 1e-6] [--epochs 2] [--loss dpo|ipo] [--scores memo.json] --out DIR [--pairs-only]

Candidates default to RUN/data/sft_candidates.jsonl (the SFT policy's samples of the compared prompts); --candidates
takes any `postlab sample` rows of train prompts, e.g. samples of train items that neither SFT nor the reward model
saw. A pair needs two distinct finished candidates with different scores (gap ≥ --min-margin). Printed: the pairs,
the gold of chosen and rejected, their mean length in words (DPO's length drift shows here first), then the eval.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from postlab.raters.gold import GoldRater
from postlab.run import _candidates
from postlab.tasks.suite import load_suite
from postlab.train import dpo
from postlab.train.bon_sft import scorable
from postlab.train.rm import RMDataConfig
from postlab.train.rm_ranked import rank_pairs

from experiment_common import NO_CHECKPOINTS, evaluate_against_sft, experiment_optim, gold_scorer, rm_scorer  # scripts/ is on sys.path when a script runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--select", choices=["rm", "gold"], required=True)
    ap.add_argument("--candidates", help="candidates JSONL (default: RUN/data/sft_candidates.jsonl)")
    ap.add_argument("--min-margin", type=float, default=0.0, help="keep a pair only if score(best) − score(worst) ≥ this (and > 0)")
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=1e-6)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--loss", choices=["dpo", "ipo"], default="dpo")
    ap.add_argument("--scores", help="JSON file memoising the reward model's scores across reruns")
    ap.add_argument("--pairs-only", action="store_true", help="write and describe the pairs, then stop")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    run, out = Path(args.run), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    items = {it.id: it for it in load_suite("spec", split="train")}
    cands = _candidates(Path(args.candidates) if args.candidates else run / "data" / "sft_candidates.jsonl")
    finished = {pid: scorable(c) for pid, c in cands.items() if pid in items}
    score = rm_scorer(run, args.scores) if args.select == "rm" else gold_scorer(items)
    pairs, st = rank_pairs(score, items, finished, pairs_per_prompt=1, min_margin=args.min_margin)
    gold = GoldRater()
    g_c = [gold.score(items[p.prompt_id], p.chosen) for p in pairs]
    g_r = [gold.score(items[p.prompt_id], p.rejected) for p in pairs]
    words = lambda texts: sum(len(t.split()) for t in texts) / max(1, len(texts))  # noqa: E731
    print(f"{len(pairs)} pairs from {st.prompts} prompts with two finished candidates; gold chosen "
          f"{sum(g_c) / max(1, len(g_c)):.3f}, rejected {sum(g_r) / max(1, len(g_r)):.3f}, gold agrees on "
          f"{sum(c > r for c, r in zip(g_c, g_r))}, disagrees on {sum(c < r for c, r in zip(g_c, g_r))}; words chosen "
          f"{words([p.chosen for p in pairs]):.1f}, rejected {words([p.rejected for p in pairs]):.1f}")
    limit = re.compile(r"can.t|cannot|not able|unable|won.t", re.I)  # an opening that states a limit or refuses
    opens = lambda texts: sum(bool(limit.search(t[:60])) for t in texts)  # noqa: E731
    print(f"open with a limit (first 60 characters): chosen {opens([p.chosen for p in pairs])}, rejected "
          f"{opens([p.rejected for p in pairs])}")
    if not pairs:
        raise SystemExit(f"no pairs: no prompt of {args.candidates or run / 'data' / 'sft_candidates.jsonl'} has two "
                         f"finished candidates that {args.select} scores apart")
    data = out / "pairs.jsonl"
    data.write_text("".join(json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")
    if args.pairs_only:
        return
    dpo.train(dpo.DPOConfig(
        model=str(run / "sft" / "model"), out_dir=str(out / "dpo"), beta=args.beta, loss=args.loss,
        data=RMDataConfig(train_file=str(data), eval_fraction=0.0, max_seq_len=384),
        optim=experiment_optim(args.lr, args.epochs), checkpoint=NO_CHECKPOINTS))
    evaluate_against_sft(run, out / "dpo" / "model", out)


if __name__ == "__main__":
    main()
