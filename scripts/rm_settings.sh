#!/bin/bash
# Reward-model settings on one run's labelled pairs (docs/results.md, "Reward-model settings on run d8's
# pairs"): the same held-out prompts as the run's own reward model (data.eval_fraction=0.25, optim.seed=0),
# each variant's accuracy against gold on the held-out clear-margin pairs printed as it ends.
#   bash scripts/rm_settings.sh runs/d8 runs/rmx
set -euo pipefail
RUN=${1:?run directory}; OUT=${2:?output directory}
mkdir -p "$OUT"
run() { name=$1; shift
  [ -f "$OUT/$name/rm_results.json" ] || postlab rm model="${BACKBONE:-$RUN/sft/model}" out_dir="$OUT/$name" \
    data.train_file="$RUN/data/prefs.jsonl" data.eval_fraction=0.25 data.max_seq_len=256 optim.batch_size=8 \
    optim.warmup_steps=5 optim.bf16=true optim.group_by_length=true optim.seed=0 checkpoint.progress=false \
    checkpoint.resume=true "$@" > "$OUT/$name.log" 2>&1
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], r['accuracy_vs_gold'], r['gold_clear_pairs'], r['eval_loss'])" \
    "$OUT/$name/rm_results.json" "$name"
}
run l4_lr3e-4_ep1 margin=strength trainable_layers=4 optim.lr=3e-4 optim.epochs=1
run l4_lr1e-4_ep2 margin=strength trainable_layers=4 optim.lr=1e-4 optim.epochs=2
run l8_lr1e-4_ep1 margin=strength trainable_layers=8 optim.lr=1e-4 optim.epochs=1
run l4_lr3e-4_ep1_nomargin margin=none trainable_layers=4 optim.lr=3e-4 optim.epochs=1
run l4_lr3e-4_ep2_wd margin=strength trainable_layers=4 optim.lr=3e-4 optim.epochs=2 optim.weight_decay=0.1
BACKBONE=smollm2-135m-instruct run l8_lr3e-4_ep1_basebackbone margin=strength trainable_layers=8 optim.lr=3e-4 optim.epochs=1
run lora16_lr2e-4_ep1 margin=strength trainable_layers=0 lora.enabled=true lora.r=16 optim.lr=2e-4 optim.epochs=1
