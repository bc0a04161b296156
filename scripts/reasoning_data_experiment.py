"""Fresh demonstrations or more epochs? The data of the experiment in docs/results.md ("Reasoning: distinct
demonstrations, a higher learning rate, or a tidier column format?"). The arith train split has 320 items (80 at each of levels 1-4) and the
preset's SFT passes over them twice. The generators can draw as many distinct train-level items as wanted
(none of them a prompt of either split), so the same number of SFT steps can see each demonstration once:

    python scripts/reasoning_data_experiment.py --out DIR [--suite arith] [--fresh 320]
    # DIR/epochs.jsonl: the train split's demonstrations (SFT 2 epochs)
    # DIR/fresh.jsonl:  the same, then as many fresh train-level ones (SFT 1 epoch: the same steps)
    # DIR/local.jsonl:  the train split's in the variant format of scripts/arith_local_format.py (SFT 2 epochs)

then, for each F in epochs and local (E = 2) and fresh (E = 1), and for epochs again with optim.lr=2e-4:

    postlab sft model=smollm2-135m-instruct out_dir=DIR/F data.train_file=DIR/F.jsonl data.eval_fraction=0 \
        data.max_seq_len=384 optim.lr=5e-5 optim.epochs=E optim.batch_size=8 optim.warmup_steps=5
    postlab eval model=DIR/F/model suite=arith split=test out=DIR/F/eval.json sampling.max_new_tokens=320
    python scripts/paired_delta.py DIR/fresh/eval.samples.jsonl DIR/epochs/eval.samples.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from postlab.tasks.reasoning import fresh_demos, worked_demos

import arith_local_format


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--suite", default="arith")
    parser.add_argument("--fresh", type=int, default=320, help="fresh demonstrations added to the train split's")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train = worked_demos(args.suite)
    extra = fresh_demos(args.suite, args.fresh)
    mixed = train + extra
    random.Random(0).shuffle(mixed)
    arith_local_format.install()
    local = worked_demos(args.suite)
    for name, rows in (("epochs", train), ("fresh", mixed), ("local", local)):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"{out / name}.jsonl: {len(rows)} demonstrations")


if __name__ == "__main__":
    main()
