"""Memory per process of data-parallel RL with the model copied (DDP-style) against sharded (`optim.fsdp=true`).

`torchrun --nproc_per_node N` runs `postlab grpo` twice on a randomly initialised model of SmolLM2's
architecture (speed and memory do not depend on the weights; only its tokenizer is fetched), full
fine-tuning in fp32 with a frozen reference copy (β > 0), the same prompts, group size and tokens. Each rank
reports the bytes of the training state it holds — its parameters (the policy's and the reference's),
gradients and AdamW moments, local shards only when sharded — and its peak resident memory (ru_maxrss).
Sharded, each rank should hold about 1/N of that state; its peak also holds the policy's whole weights
while it samples, and each rank loads the whole model once before sharding it.

    .venv/bin/python benchmarks/fsdp_memory.py [--size 135m] [--ranks 2] [--steps 2]

Prints one row per mode and `fsdp state per rank / copied` and `fsdp peak rss / copied`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

RANK_SCRIPT = """
import json, resource, sys
import torch
from postlab.config import load_config
from postlab.train import distributed, grpo, rl_common

captured = {}
make_optimizer = rl_common.make_optimizer

def capturing(params, cfg, total_steps):  # the recipe's optimizer, kept to read its state after training
    opt, sched = make_optimizer(params, cfg, total_steps)
    captured["optimizer"] = opt
    return opt, sched

grpo.make_optimizer = capturing
load_model = grpo.load_model_and_tokenizer

def keeping_ref(*a, **kw):  # the frozen reference copy, to count its weights too
    model, tok = load_model(*a, **kw)
    captured["ref"] = model
    return model, tok

grpo.load_model_and_tokenizer = keeping_ref
out, args = sys.argv[1], sys.argv[2:]
grpo.train(load_config(grpo.GRPOConfig, None, args))

def local(t):
    return t.to_local() if hasattr(t, "to_local") else t

def nbytes(tensors):
    return sum(local(t).numel() * local(t).element_size() for t in tensors if t is not None)

opt = captured["optimizer"]
params = [p for g in opt.param_groups for p in g["params"]]
state = [v for s in opt.state.values() for v in s.values() if torch.is_tensor(v) and v.dim() > 0]
ref = list(captured["ref"].parameters()) if "ref" in captured else []
# gradients are freed after each step (zero_grad(set_to_none)); during the update they take the trained
# parameters' bytes again
row = {"params": nbytes(params), "grads": nbytes(params), "adam": nbytes(state),
       "ref": nbytes(ref), "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
with open(f"{out}.rank{distributed.world().rank}.json", "w") as f:
    json.dump(row, f)
"""


def model_dir(size: str, tmp: Path) -> Path:
    """A random-weight model of SmolLM2's architecture at ``size``, saved with SmolLM2's tokenizer."""
    sys.path.insert(0, str(HERE))
    from gpu import random_model

    from postlab.models.load import resolve_model
    from transformers import AutoTokenizer

    tok_dir = resolve_model("smollm2-135m-instruct")
    path = tmp / f"smollm2-arch-{size}"
    random_model(size, tok_dir, "cpu").save_pretrained(path)
    AutoTokenizer.from_pretrained(tok_dir).save_pretrained(path)
    return path


def run_mode(model: Path, tmp: Path, mode: str, a) -> list[dict]:
    out = tmp / mode
    args = [f"model={model}", f"out_dir={out}", f"steps={a.steps}", "k=4", f"prompts_per_step={2 * a.ranks}",
            "limit=16", "sampling.max_new_tokens=32", "optim.bf16=false", "optim.micro_batch_size=4",
            "kl_coef=0.04", "checkpoint.progress=false", "checkpoint.save_every=0", f"optim.fsdp={mode == 'fsdp'}"]
    script = tmp / "rank.py"
    script.write_text(RANK_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "POSTLAB_DTYPE": "fp32"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(a.ranks),
           str(script), str(out), *args]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"{mode}: torchrun failed\n{p.stderr[-3000:]}")
    return [json.loads(Path(f"{out}.rank{r}.json").read_text()) for r in range(a.ranks)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="135m", choices=["tiny", "135m", "360m", "1.7b"])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2)
    a = ap.parse_args()
    mb = 1 / 2**20
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        model = model_dir(a.size, tmp)
        rows = {mode: run_mode(model, tmp, mode, a) for mode in ("copied", "fsdp")}
    print(f"GRPO, SmolLM2 architecture {a.size}, fp32, {a.ranks} ranks; MB per rank (rank 0; the largest peak of any rank)")
    print(f"{'mode':8} {'params':>8} {'grads':>8} {'adam':>8} {'ref':>8} {'state':>8} {'peak rss':>9}")
    state = {}
    peak = {}
    for mode, ranks in rows.items():
        r = ranks[0]
        state[mode] = r["params"] + r["grads"] + r["adam"] + r["ref"]
        peak[mode] = max(x["peak_rss"] for x in ranks)
        print(f"{mode:8} {r['params'] * mb:8.0f} {r['grads'] * mb:8.0f} {r['adam'] * mb:8.0f} {r['ref'] * mb:8.0f} "
              f"{state[mode] * mb:8.0f} {peak[mode] * mb:9.0f}")
    print(f"fsdp state per rank / copied: {state['fsdp'] / state['copied']:.2f}")
    print(f"fsdp peak rss / copied: {peak['fsdp'] / peak['copied']:.2f}")


if __name__ == "__main__":
    main()
