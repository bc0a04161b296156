"""One request at a time, engine against engine, no HTTP: postlab's `TorchEngine` against llama.cpp's `Llama`
(llama-cpp-python), in-process, on the same model, prompts and machine, in one run.

`benchmarks/serve.py` compares the servers; this compares what is under them. llama-cpp-python's server runs
each completion in a worker thread while its main thread holds an OpenMP team, which halves llama.cpp's speed
on a 2-core machine (the effect `postlab.utils.threads.in_passing_thread` avoids in `postlab serve`), so its
server is slower than its engine. Here each engine decodes in its process's main thread.

Greedy, the chat template applied by each, ``--max-tokens`` new tokens at most, end of turn allowed; tok/s =
completion tokens / wall time including the prompt's prefill; ``--reps`` passes over the prompts, the first a
warm-up; the median pass is shown. llama.cpp's own sampling defaults (repeat penalty, top-k, min-p) are off.

    .venv/bin/python benchmarks/single_stream.py --model smollm2-135m-instruct [--dtype float32|bfloat16]
        [--single-row-layout auto|packed|plain|compiled] [--llama-cpp-python ~/llvenv/bin/python --llama-cpp-gguf F.gguf ...]

Prints tok/s per engine, the tokens each wrote, then `single stream postlab / llama.cpp <precision>`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from serve import gguf_label  # benchmarks/serve.py: this directory is on sys.path when run as a script

PROMPTS = [f"Write a short note number {i} for client 0." for i in range(4)]

LLAMA_CPP = """
import json, sys, time
from llama_cpp import Llama
path, threads, max_tokens, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
llm = Llama(model_path=path, n_threads=threads, n_threads_batch=threads, n_ctx=2048, verbose=False)
passes = []
for _ in range(reps):
    tokens, t0 = 0, time.perf_counter()
    for p in json.loads(sys.argv[5]):
        r = llm.create_chat_completion(messages=[{"role": "user", "content": p}], max_tokens=max_tokens, temperature=0,
                                       repeat_penalty=1.0, top_k=0, top_p=1.0, min_p=0.0)
        tokens += r["usage"]["completion_tokens"]
    passes.append((tokens, time.perf_counter() - t0))
print(json.dumps(passes))
"""


def postlab_passes(args) -> list[tuple[int, float]]:
    import torch

    from postlab.models.load import load_model_and_tokenizer
    from postlab.rollout import SamplingParams, TorchEngine

    model, tok = load_model_and_tokenizer(args.model, dtype={"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype])
    engine = TorchEngine(model=model, tokenizer=tok, single_row=args.single_row_layout)
    print(f"postlab one-row layout: {engine.choose_single_row(1)}", flush=True)
    engine.warm_up()  # the compiled layout compiles here, not in the timed passes
    params = SamplingParams(temperature=0, max_new_tokens=args.max_tokens)
    prompts = engine.encode_prompts([[{"role": "user", "content": p}] for p in PROMPTS])
    passes = []
    for _ in range(args.reps):
        tokens, t0 = 0, time.perf_counter()
        for ids in prompts:
            tokens += int(engine.generate_ids([ids], params).response_lengths[0])
        passes.append((tokens, time.perf_counter() - t0))
    return passes


def llama_cpp_passes(args, gguf: str) -> list[tuple[int, float]]:
    run = subprocess.run([args.llama_cpp_python, "-c", LLAMA_CPP, gguf, str(args.threads), str(args.max_tokens),
                          str(args.reps), json.dumps(PROMPTS)], capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"llama.cpp on {gguf} failed:\n{run.stderr[-2000:]}")
    return [tuple(p) for p in json.loads(run.stdout.strip().splitlines()[-1])]


def median_pass(passes: list[tuple[int, float]]) -> tuple[int, float]:
    """The median tok/s pass, the first (warm-up) left out."""
    timed = sorted(passes[1:] or passes, key=lambda p: p[0] / p[1])
    return timed[(len(timed) - 1) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--single-row-layout", default="auto", choices=["auto", "packed", "plain", "compiled"])
    p.add_argument("--max-tokens", type=int, default=96)
    p.add_argument("--reps", type=int, default=3, help="passes over the 4 prompts; the first is a warm-up")
    p.add_argument("--threads", type=int, default=None, help="threads per engine (default: OMP_NUM_THREADS, else every core)")
    p.add_argument("--llama-cpp-gguf", action="append", default=[], help="a GGUF of the same model (repeatable)")
    p.add_argument("--llama-cpp-python", default=sys.executable, help="the Python with llama-cpp-python installed")
    args = p.parse_args()
    for gguf in args.llama_cpp_gguf:
        if not Path(gguf).is_file():
            raise SystemExit(f"--llama-cpp-gguf {gguf}: no such file")
    if args.threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    args.threads = args.threads or int(os.environ.get("OMP_NUM_THREADS", os.cpu_count()))
    rows = {f"postlab {args.dtype}": median_pass(postlab_passes(args))}
    for gguf in args.llama_cpp_gguf:
        rows[gguf_label(gguf)] = median_pass(llama_cpp_passes(args, gguf))
    print(f"model {args.model}, {len(PROMPTS)} prompts one at a time, greedy, max_tokens {args.max_tokens}, "
          f"{args.threads} threads, median of {max(1, args.reps - 1)} passes")
    for name, (tokens, seconds) in rows.items():
        print(f"{name:<24} {tokens / seconds:7.1f} tok/s ({tokens} tokens in {seconds:.2f} s)")
    ours = rows[f"postlab {args.dtype}"]
    for name, theirs in rows.items():
        if name.startswith("llama.cpp"):
            print(f"single stream postlab / {name}: {(ours[0] / ours[1]) / (theirs[0] / theirs[1]):.2f}")


if __name__ == "__main__":
    main()
