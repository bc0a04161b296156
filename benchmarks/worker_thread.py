"""A decode step in a worker thread, as `postlab serve` runs it: with the main thread holding an OpenMP team
(it did torch work first) against the same work done in a thread that ended (`utils.threads.in_passing_thread`).

A randomly initialised model of SmolLM2-135M's architecture; its decode weights are built (packed for oneDNN,
and a plain copy), then a worker thread times one-row decode steps with each (`llama_decode.step_ms`, the
median of 30 steps after 60). Each case runs in its own process, because which threads hold a team is
per process. PyTorch's CPU wheels use libgomp, which keeps a team per thread that ran a parallel region.

    .venv/bin/python benchmarks/worker_thread.py [--dtype fp32|bf16]
        [--llama-cpp-python ~/llvenv/bin/python --llama-cpp-gguf SmolLM2-135M-Instruct-F32.gguf]

Prints ms per step for both cases, then `worker thread, main thread's team kept / ended` per layout (above 1:
the team the main thread keeps slows the worker). With a llama-cpp-python and a GGUF, the same for llama.cpp,
whose server runs completions in worker threads: one `Llama` object, 96 greedy tokens of one chat prompt,
tok/s from the main thread, from a fresh thread, and from a thread after the main thread decoded once.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading

CASES = {"kept": "torch work in the main thread", "ended": "torch work in a thread that ended"}

LLAMA_CPP = """
import json, sys, threading, time
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_threads=int(sys.argv[2]), n_ctx=512, verbose=False)
out = {}
def go(case):
    t = time.perf_counter()
    r = llm.create_chat_completion(messages=[{"role": "user", "content": "Write a short note number 1 for client 0."}],
                                   max_tokens=96, temperature=0, repeat_penalty=1.0, top_k=0, top_p=1.0, min_p=0.0)
    out[case] = r["usage"]["completion_tokens"] / (time.perf_counter() - t)
def in_thread(case):
    th = threading.Thread(target=go, args=(case,)); th.start(); th.join()
in_thread("warm-up"); in_thread("fresh thread"); go("main thread"); in_thread("thread after the main thread decoded")
print(json.dumps(out))
"""


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
    ap.add_argument("--llama-cpp-python", help="a Python with llama-cpp-python installed (docs/benchmarks.md)")
    ap.add_argument("--llama-cpp-gguf", help="a GGUF of SmolLM2-135M-Instruct for it")
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
    if a.llama_cpp_python and a.llama_cpp_gguf:
        run = subprocess.run([a.llama_cpp_python, "-c", LLAMA_CPP, a.llama_cpp_gguf, str(torch.get_num_threads())],
                             capture_output=True, text=True, check=True)
        speeds = json.loads(run.stdout.strip().splitlines()[-1])
        print("llama.cpp, tok/s: " + ", ".join(f"{case} {v:.1f}" for case, v in speeds.items() if case != "warm-up"))


if __name__ == "__main__":
    main()
