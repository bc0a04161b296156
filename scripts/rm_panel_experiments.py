"""Reward models from one `postlab run`'s candidates under other panel settings, measured on fixed held-out prompts.

The run's reward model holds out a quarter of the prompts its panel kept pairs for. Here the held-out prompts are
fixed once (the run's own split of its own pairs), and every variant's labels are used only on the other prompts, so
all variants are measured on the same things:

- `labelled`: the run's own held-out labelled pairs with a clear gold margin (what `stages.rm.accuracy_vs_gold`
  measures);
- `own_labelled`: the variant's labelled pairs of the same held-out prompts with a clear gold margin (what the run's
  `accuracy_vs_gold` would read with this panel);
- `all_pairs`: every pair of those prompts' candidates with a clear gold margin, labelled or not
  (`stages.rm.accuracy_vs_gold_all_pairs`).

    python scripts/rm_panel_experiments.py runs/r1 --out runs/rmp [--variants v5s07,v4s04,...] [--epochs 2]
        [--group-batch N] [--members M [--warm]]

A variant is `v<min_votes>s<min_strength×10>` of a five-rater panel (v5s07 is the run's default); `e<N>` after it
sets the reward model's epochs (v4s04e1). Prints one table row per variant and writes OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_variant(name: str) -> dict:
    m = re.fullmatch(r"v(\d)s(\d+)(?:e(\d+))?", name)
    if not m:
        sys.exit(f"--variants: {name!r} is not v<votes>s<strength×10>[e<epochs>] (e.g. v4s04)")
    return {"min_votes": int(m.group(1)), "min_strength": int(m.group(2)) / 10, "epochs": int(m.group(3) or 0)}


def main() -> None:
    from postlab.data.preferences import load_preferences
    from postlab.raters import label as labeling
    from postlab.run import SUITE, Knobs
    from postlab.train import rm
    from postlab.train import loop
    from postlab.train.common import CheckpointConfig, OptimConfig

    order = loop.ExampleOrder  # the data order; --warm moves its seed per member

    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--out", required=True)
    ap.add_argument("--variants", default="v5s07,v4s07,v4s04,v3s03")
    ap.add_argument("--epochs", type=float, default=None, help="default: the run's rm_epochs")
    ap.add_argument("--members", type=int, default=1, help="reward models per variant (seeds seed, seed + 1, ...), "
                    "scored by the mean of their centred scores")
    ap.add_argument("--group-batch", type=int, default=0, help="train with group_by_prompt=true (each prompt's pairs one "
                    "batch element, every response scored once a step), this many prompts a step")
    ap.add_argument("--warm", action="store_true", help="members share the run's seed (so the head's initialisation) "
                    "and differ in data order only; also scores their weight average (WARM, Ramé et al. 2024)")
    args = ap.parse_args()
    run, out = Path(args.run), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    resolved = json.loads((run / "resolved_config.json").read_text())  # the knobs the run ran with, cuts included
    knobs = Knobs(**{k: v for k, v in resolved.items() if k in Knobs.model_fields})
    candidates, policy = str(run / "data" / "candidates.jsonl"), str(run / "sft" / "model")
    run_prefs = str(run / "data" / "prefs.jsonl")
    _, held = rm.split_by_prompt(load_preferences(run_prefs), knobs.rm_held_out, knobs.seed)
    held_ids = {p.prompt_id for p in held}
    results = []
    for name in args.variants.split(","):
        v = parse_variant(name)
        d = out / name
        d.mkdir(exist_ok=True)
        prefs = d / "prefs.jsonl"
        if not prefs.exists():
            labeling.label(labeling.LabelConfig(candidates=candidates, suite=SUITE, rater="simulated", out=str(prefs),
                                                max_pairs_per_prompt=knobs.pairs_per_prompt, raters_per_pair=5,
                                                min_votes=v["min_votes"], min_strength=v["min_strength"], seed=knobs.seed))
        rows = [json.loads(x) for x in prefs.read_text().splitlines() if x.strip()]
        train_rows = [r for r in rows if r["prompt_id"] not in held_ids]
        own_held = [r for r in rows if r["prompt_id"] in held_ids]
        (d / "train.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in train_rows))
        (d / "own_held.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in own_held))
        epochs = v["epochs"] or args.epochs or knobs.rm_epochs
        t0, dirs, res = time.time(), [], None
        for i in range(args.members):
            done = d / (f"rm{i}" if i else "rm") / "rm_results.json"
            if done.exists():  # trained by an earlier call: reused
                res = json.loads(done.read_text())
                dirs.append(res["model"])
                continue
            if args.warm:  # the same initialisation, another data order
                loop.ExampleOrder = lambda n, seed, *a, _i=i, **kw: order(n, seed + 1000 * _i, *a, **kw)
            res = rm.train(rm.RMConfig(
                model=policy, out_dir=str(d / (f"rm{i}" if i else "rm")), margin="strength",
                data=rm.RMDataConfig(train_file=str(d / "train.jsonl"), eval_file=str(d / "own_held.jsonl"),
                                     max_seq_len=knobs.rm_max_seq_len),
                trainable_layers=knobs.rm_trainable_layers, group_by_prompt=args.group_batch > 0,
                optim=OptimConfig(lr=knobs.rm_lr, epochs=epochs, batch_size=args.group_batch or 8, warmup_steps=5, bf16=knobs.bf16,
                                  group_by_length=True, seed=knobs.seed + (0 if args.warm else i)),
                checkpoint=CheckpointConfig(save_every=0, progress=False)))
            dirs.append(res["model"])
        seconds = time.time() - t0
        score = Scorer(dirs, knobs.bf16)
        own = accuracy_on(score, [p for p in load_preferences(str(d / "own_held.jsonl"))])
        labelled = accuracy_on(score, held)
        allp = all_pairs_accuracy(score, candidates, held_ids)
        row = {"variant": name, **v, "epochs": epochs, "members": args.members, "group_batch": args.group_batch, "kept_pairs": len(rows),
               "train_pairs": res["train_pairs"], "own_labelled": own[0], "own_labelled_n": own[1],
               "labelled": labelled[0], "labelled_n": labelled[1], "all_pairs": allp[0], "all_pairs_n": allp[1],
               "rm_seconds": round(seconds, 1)}
        if args.members > 1:  # the first member alone, beside the ensemble
            one = Scorer(dirs[:1], knobs.bf16)
            row.update(labelled_one=accuracy_on(one, held)[0], all_pairs_one=all_pairs_accuracy(one, candidates, held_ids)[0])
        if args.warm and args.members > 1:
            avg = Scorer([average_weights(dirs, d / "warm")], knobs.bf16)
            row.update(labelled_warm=accuracy_on(avg, held)[0], all_pairs_warm=all_pairs_accuracy(avg, candidates, held_ids)[0])
        results.append(row)
        print(json.dumps(row), flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


def average_weights(dirs: list[str], out: Path) -> str:
    """The element-wise mean of the models' weights, saved as a copy of the first model's directory (its centring
    offset kept: accuracies read differences only)."""
    import shutil

    from safetensors.torch import load_file, save_file

    states = [load_file(str(Path(d) / "model.safetensors")) for d in dirs]
    mean = {k: sum(s[k].float() for s in states).div(len(states)).to(states[0][k].dtype) for k in states[0]}
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(dirs[0], out)
    save_file(mean, str(out / "model.safetensors"), metadata={"format": "pt"})
    return str(out)


class Scorer:
    """The mean of one or more reward models' (centred) scores: a prediction ensemble when given several."""

    def __init__(self, dirs: list[str], bf16: bool):
        from postlab.raters.reward_model import RewardModelRater

        self.raters = [RewardModelRater(d, bf16=bf16) for d in dirs]

    def __call__(self, prompts: list, texts: list[str]) -> list[float]:
        per = [r.score_texts(prompts, texts) for r in self.raters]
        return [sum(col) / len(col) for col in zip(*per)]


def accuracy_on(score: Scorer, pairs: list, clear: float = 0.3) -> tuple[float | None, int]:
    """Against gold on labelled pairs whose gold margin is clear."""
    keep = [p for p in pairs if p.gold_margin is not None and abs(p.gold_margin) >= clear]
    if not keep:
        return None, 0
    rc = score([p.prompt for p in keep], [p.chosen for p in keep])
    rr = score([p.prompt for p in keep], [p.rejected for p in keep])
    return sum((a > b) == (p.gold_margin > 0) for a, b, p in zip(rc, rr, keep)) / len(keep), len(keep)


def all_pairs_accuracy(score: Scorer, candidates: str, held_ids: set[str]) -> tuple[float | None, int]:
    """Against gold on every pair of the held-out prompts' candidates whose gold margin is clear."""
    from postlab.run import all_pairs_agreement

    right, total, _ = all_pairs_agreement(score, held_ids, candidates)
    return (right / total if total else None), total


if __name__ == "__main__":
    main()
