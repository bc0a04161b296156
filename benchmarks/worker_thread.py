"""A decode step in a worker thread, as `postlab serve` runs it: with the main thread holding an OpenMP team
(it did torch work first) against the same work done in a thread that ended (`utils.threads.in_passing_thread`).

A randomly initialised model of SmolLM2-135M's architecture; its decode weights are built (packed for oneDNN,
and a plain copy), then a worker thread times one-row decode steps with each (`llama_decode.step_ms`, the
median of 30 steps after 60). Each case runs in its own process, because which threads hold a team is
per process. PyTorch's CPU wheels use libgomp, which keeps a team per thread that ran a parallel region.

    .venv/bin/python benchmarks/worker_thread.py [--dtype fp32|bf16]

Prints ms per step for both cases, then `worker thread, main thread's team kept / ended` per layout (above 1:
the team the main thread keeps slows the worker).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading

CASES = {"kept": "torch work in the main thread", "ended": "torch work in a thread that ended"}


def case(kind: str, dtype: str) -> dict[str, float]:
    import torch

    from decode_step import smollm2_135m  # this directory is on sys.path when run as a script
    from postlab.rollout.llama_decode import DecodeWeights, step_ms
    from postlab.utils.threads import in_passing_thread

    cast = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]

    def setup():
        model = smollm2_135m()
        return DecodeWeights(model, batch_hint=32, dtype=cast), DecodeWeights(model, dtype=cast, packed=False)

    packed, plain = setup() if kind == "kept" else in_passing_thread(setup)
    out: dict[str, float] = {}

    def worker() -> None:
        out["packed"] = step_ms(packed, 1, filled=60, steps=30)
        out["plain"] = step_ms(plain, 1, filled=60, steps=30)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--case", choices=list(CASES), help=argparse.SUPPRESS)  # one case, in this process
    a = ap.parse_args()
    if a.case:
        print(json.dumps(case(a.case, a.dtype)))
        return
    import torch

    results = {}
    for kind in CASES:
        run = subprocess.run([sys.executable, __file__, "--dtype", a.dtype, "--case", kind],
                             capture_output=True, text=True, check=True)
        results[kind] = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; SmolLM2-135M architecture, {a.dtype}, "
          "ms per one-row decode step in a worker thread")
    print("| before the worker decodes | packed | plain |")
    print("|---|---|---|")
    for kind, what in CASES.items():
        print(f"| {what} | {results[kind]['packed']:.1f} | {results[kind]['plain']:.1f} |")
    for layout in ("packed", "plain"):
        print(f"worker thread, main thread's team kept / ended ({layout}): "
              f"{results['kept'][layout] / results['ended'][layout]:.2f}")


if __name__ == "__main__":
    main()
