#!/bin/bash
# Reward-model accuracy against the number of labelled pairs (docs/results.md, "Reward model: a learning
# curve"): the held-out prompts of the run's own reward model (data.eval_fraction=0.25, optim.seed=0) are
# kept fixed, and the reward model is trained on the pairs of the first 1/4, 1/2 and all of the training
# prompts (d8's settings: top 4 layers and the head, lr 3e-4, 1 epoch, strength margin).
#   bash scripts/rm_learning_curve.sh runs/d8 runs/rmcurve
set -euo pipefail
RUN=${1:?run directory}; OUT=${2:?output directory}
mkdir -p "$OUT"
python3 - "$RUN/data/prefs.jsonl" "$OUT" <<'PY'
import json, sys
from pathlib import Path
from postlab.train.rm import load_preferences, split_by_prompt
src, out = sys.argv[1], Path(sys.argv[2])
rows = [line for line in open(src) if line.strip()]
pairs = load_preferences(src)
train, held = split_by_prompt(pairs, 0.25, 0)  # the split `postlab rm data.eval_fraction=0.25 optim.seed=0` makes
key = lambda p: p.prompt_id or json.dumps(p.prompt)
held_keys = {key(p) for p in held}
by_key = {}
for line, p in zip(rows, pairs):
    by_key.setdefault(key(p), []).append(line)
(out / "held.jsonl").write_text("".join(l for k in by_key if k in held_keys for l in by_key[k]))
train_keys = [k for k in by_key if k not in held_keys]
for frac in ("0.25", "0.5", "1"):
    keep = train_keys[: round(len(train_keys) * float(frac))]
    (out / f"train_{frac}.jsonl").write_text("".join(l for k in keep for l in by_key[k]))
    print(frac, len(keep), "prompts", sum(len(by_key[k]) for k in keep), "pairs")
PY
for frac in 0.25 0.5 1; do
  [ -f "$OUT/rm_$frac/rm_results.json" ] || postlab rm model="$RUN/sft/model" out_dir="$OUT/rm_$frac" \
    data.train_file="$OUT/train_$frac.jsonl" data.eval_file="$OUT/held.jsonl" data.max_seq_len=256 optim.batch_size=8 \
    optim.warmup_steps=5 optim.bf16=true optim.group_by_length=true optim.seed=0 checkpoint.progress=false \
    margin=strength trainable_layers=4 optim.lr=3e-4 optim.epochs=1 > "$OUT/rm_$frac.log" 2>&1
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], r['train_pairs'], r['accuracy_vs_gold'], r['gold_clear_pairs'], r['accuracy_vs_labels'])" \
    "$OUT/rm_$frac/rm_results.json" "$frac"
done
