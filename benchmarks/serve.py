"""`postlab serve` under load: continuous batching, dynamic batching and no batching, side by side in one
run, optionally beside llama.cpp's server on the same model and machine.

Starts each server in a subprocess, fires ``--clients`` concurrent clients that each send
``--requests`` chat completions one after another (``--max-tokens`` each, temperature
``--temperature``), and prints requests/s, completion tokens/s and p50/p99 latency per mode, then one
client alone (single-stream tokens/s) per server. The last lines are the ratios:

    serve continuous vs dynamic: X.XX (tokens/s), p50 latency X.XX
    serve batching speedup: X.XX (continuous tokens/s / batching off)

Mode ``compiled`` is continuous batching with one-request steps compiled by inductor (``--single-row-layout
compiled``; the server compiles before it answers). Mode ``packed`` is continuous batching with one-request decode steps kept on the batch's oneDNN-packed
weights (``--single-row-layout packed``), to compare with the default's measured choice (``single stream,
one-row layout auto / packed``).

    .venv/bin/python benchmarks/serve.py [--model tiny] [--clients 32] [--requests 4] [--max-tokens 32]
        [--modes continuous,dynamic,off] [--llama-cpp-gguf MODEL.gguf ...] [--llama-cpp-python PYTHON]

``--llama-cpp-gguf`` (repeatable) adds llama.cpp's server (``python -m llama_cpp.server`` from
llama-cpp-python, an optional benchmark dependency built from source: see docs/benchmarks.md) on each
GGUF of the same model, one row per file, with the ratios of postlab's continuous-batching server to
each; compare precisions like for like (an F32 GGUF with ``--dtype float32``). ``--llama-cpp-python``
names the Python that has llama-cpp-python installed (a separate virtual environment; default: this
one). llama-cpp-python's server decodes one request at a time.

Every row also reports the CPU that *other* processes used while it ran (cores, averaged): the
machine's busy time less this script's and the server's; above ~0.15 the figures are disturbed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SERVE = "import json, sys; from postlab.serve import serve; serve(**json.loads(sys.argv[1]))"
# llama-cpp-python's server samples with repeat_penalty 1.1, top_k 40 and min_p 0.05 unless told otherwise
# (even greedy decoding changes with the repeat penalty); postlab's defaults are plain softmax sampling.
LLAMA_CPP_SAMPLING = {"repeat_penalty": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0}
MODES = {  # mode -> postlab.serve.serve() arguments beside the model
    "continuous": {"continuous": True},  # one-row steps on the layout measured faster at start (the default)
    "packed": {"continuous": True, "single_row": "packed"},  # continuous, one-row steps on the batch's packed weights
    "compiled": {"continuous": True, "single_row": "compiled"},  # continuous, one-row steps compiled by inductor
    "dynamic": {"continuous": False},
    "off": {"max_batch": 1},
}


@dataclass
class Result:
    mode: str
    seconds: float
    requests: int
    completion_tokens: int
    latencies: list[float]
    other_cores: float = field(default=0.0)  # other processes' average CPU use while it ran

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_postlab(args, mode: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    kwargs = {"model": args.model, "port": port, "max_batch": args.max_batch, "monitor_log": None,
              "dtype": args.dtype, **MODES[mode]}
    cmd = [sys.executable, "-c", SERVE, json.dumps(kwargs)]
    return wait_ready(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), port, mode)


def start_llama_cpp(args, gguf: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    threads = str(args.threads)
    cmd = [args.llama_cpp_python, "-m", "llama_cpp.server", "--model", gguf, "--model_alias", args.model,
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", threads,
           "--n_threads_batch", threads]
    return wait_ready(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), port, "llama.cpp")


def gguf_label(path: str) -> str:
    """``llama.cpp F32`` for ``SmolLM2-135M-Instruct-F32.gguf`` (the precision the file name ends with),
    else ``llama.cpp <file stem>``."""
    stem = Path(path).stem
    m = re.search(r"[-._]((?:B?F|Q|IQ)\d[\w]*)$", stem, re.IGNORECASE)
    return f"llama.cpp {m.group(1).upper() if m else stem}"


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(CPU seconds used by the whole machine, by this process and the server ``pid``) so far."""
    tick = os.sysconf("SC_CLK_TCK")
    fields = list(map(int, open("/proc/stat").readline().split()[1:]))
    machine = (sum(fields) - fields[3] - fields[4]) / tick  # all but idle and iowait
    r = resource.getrusage(resource.RUSAGE_SELF)
    try:  # utime, stime of the server (all its threads): fields 14 and 15, after the ")" of the name
        server = sum(map(int, open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[11:13])) / tick
    except OSError:
        server = 0.0
    return machine, r.ru_utime + r.ru_stime + server


def wait_ready(proc: subprocess.Popen, port: int, what: str) -> tuple[subprocess.Popen, str]:
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base}/v1/models", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"the {what} server did not start")


async def run_clients(base: str, args, clients: int, requests: int, extra: dict) -> tuple[int, list[float]]:
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as http:
        async def client(c: int) -> tuple[int, list[float]]:
            tokens, latencies = 0, []
            for i in range(requests):
                body = {"model": args.model, "max_tokens": args.max_tokens, "temperature": args.temperature,
                        "messages": [{"role": "user", "content": f"Write a short note number {i} for client {c}."}],
                        **extra}
                t0 = time.perf_counter()
                r = await http.post("/v1/chat/completions", json=body)
                r.raise_for_status()
                latencies.append(time.perf_counter() - t0)
                tokens += r.json()["usage"]["completion_tokens"]
            return tokens, latencies

        results = await asyncio.gather(*(client(c) for c in range(clients)))
    return sum(t for t, _ in results), [x for _, lat in results for x in lat]


def measure(base: str, mode: str, args, clients: int, requests: int, pid: int) -> Result:
    machine0, ours0 = cpu_seconds(pid)
    t0 = time.perf_counter()
    tokens, latencies = asyncio.run(run_clients(base, args, clients, requests, sampling(mode)))
    seconds = time.perf_counter() - t0
    machine1, ours1 = cpu_seconds(pid)
    other = max(0.0, (machine1 - machine0) - (ours1 - ours0)) / seconds
    return Result(mode, seconds, clients * requests, tokens, latencies, other)


def sampling(mode: str) -> dict:
    """Request fields beside the OpenAI ones, so that every server samples alike."""
    return LLAMA_CPP_SAMPLING if mode.startswith("llama.cpp") else {}


def start(mode: str, args) -> tuple[subprocess.Popen, str]:
    return start_llama_cpp(args, args.gguf_of[mode]) if mode.startswith("llama.cpp") else start_postlab(args, mode)


def bench_round(mode: str, base: str, pid: int, args) -> tuple[Result, Result | None]:
    """(loaded, single stream or None) for one server."""
    loaded = measure(base, mode, args, args.clients, args.requests, pid)
    single = measure(base, mode, args, 1, args.single_requests, pid) \
        if mode in ("continuous", "packed", "compiled") or mode.startswith("llama.cpp") else None
    return loaded, single


def bench(modes: list[str], args) -> list[dict[str, tuple[Result, Result | None]]]:
    """One dict {mode: (loaded, single)} per round. One round: each server started, measured and stopped
    in turn. Several rounds: every server up at once, measured in turn within each round, so that a
    neighbour's load on a shared machine falls on all of them alike."""
    if args.rounds == 1:
        runs = {}
        for mode in modes:
            proc, base = start(mode, args)
            try:
                asyncio.run(run_clients(base, args, min(args.clients, 4), 1, sampling(mode)))  # warm-up
                runs[mode] = bench_round(mode, base, proc.pid, args)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        return [runs]
    servers = {}
    try:
        for mode in modes:
            servers[mode] = start(mode, args)
        for mode, (_, base) in servers.items():
            asyncio.run(run_clients(base, args, min(args.clients, 4), 1, sampling(mode)))  # warm-up
        rounds = []
        for r in range(args.rounds):
            rounds.append({mode: bench_round(mode, base, proc.pid, args) for mode, (proc, base) in servers.items()})
            print(f"round {r + 1}: " + ", ".join(f"{m} {lo.tokens_per_s:.1f}" + (f"/{si.tokens_per_s:.1f}" if si else "")
                                                  for m, (lo, si) in rounds[-1].items())
                  + " tok/s (loaded/single)", flush=True)
        return rounds
    finally:
        for proc, _ in servers.values():
            proc.terminate()
        for proc, _ in servers.values():
            proc.wait(timeout=30)


def median_round(rounds: list[dict], mode: str, single: bool) -> Result:
    """The result of ``mode`` from the round with the median tokens/s."""
    results = sorted((r[mode][1 if single else 0] for r in rounds), key=lambda x: x.tokens_per_s)
    return results[(len(results) - 1) // 2]


def ratio(rounds: list[dict], num: tuple[str, bool], den: tuple[str, bool]) -> str:
    """Median over rounds of a tokens/s ratio taken within each round; the per-round values too."""
    values = [r[num[0]][num[1]].tokens_per_s / r[den[0]][den[1]].tokens_per_s for r in rounds]
    text = f"{statistics.median(values):.2f}"
    return text if len(values) == 1 else f"{text} (median of {len(values)} rounds: {', '.join(f'{v:.2f}' for v in values)})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--requests", type=int, default=4, help="per client, sent one after another")
    p.add_argument("--single-requests", type=int, default=4, help="requests of the single-stream run")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (every answer runs to max-tokens "
                                                                   "unless it ends its turn)")
    p.add_argument("--max-batch", type=int, default=32, help="batch size limit with batching on")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--modes", default="continuous,dynamic,off", help="comma-separated: continuous, packed (continuous "
                   "with one-row steps on the packed weights, not the layout measured faster), compiled (continuous "
                   "with one-row steps compiled by inductor), dynamic, off")
    p.add_argument("--threads", type=int, default=None, help="threads per server (postlab: OMP_NUM_THREADS, "
                                                              "llama.cpp: --n_threads); default: OMP_NUM_THREADS, else every "
                                                              "core (the tiny model: 1)")
    p.add_argument("--rounds", type=int, default=1, help="above 1: every server up at once, measured in turn "
                                                         "this many times (medians; for a shared machine)")
    p.add_argument("--llama-cpp-gguf", action="append", default=[],
                   help="also run llama-cpp-python's server on this GGUF file (repeatable: one row per file)")
    p.add_argument("--llama-cpp-python", default=sys.executable,
                   help="the Python with llama-cpp-python[server] installed (default: this one)")
    args = p.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := [m for m in modes if m not in MODES]:
        raise SystemExit(f"unknown --modes {unknown}; choose from {', '.join(MODES)}")
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    args.gguf_of = {}
    if args.llama_cpp_gguf:
        check = subprocess.run([args.llama_cpp_python, "-c", "import llama_cpp.server.app"], capture_output=True)
        if check.returncode != 0:
            raise SystemExit(f"--llama-cpp-gguf needs llama-cpp-python[server] in {args.llama_cpp_python} "
                             "(see docs/benchmarks.md, or pass --llama-cpp-python)")
        for gguf in args.llama_cpp_gguf:
            if not Path(gguf).is_file():
                raise SystemExit(f"--llama-cpp-gguf {gguf}: no such file")
            label = gguf_label(gguf)
            if label in args.gguf_of:
                label = f"llama.cpp {Path(gguf).stem}"
            args.gguf_of[label] = gguf
            modes.append(label)
    if args.threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", "1" if args.model == "tiny" else str(os.cpu_count()))
    args.threads = args.threads or int(os.environ["OMP_NUM_THREADS"])  # the same for llama.cpp

    rounds = bench(modes, args)
    print(f"model {args.model} ({args.dtype}), {args.clients} clients x {args.requests} requests, "
          f"max_tokens {args.max_tokens}, temperature {args.temperature}, max batch {args.max_batch}"
          + (f", {args.rounds} rounds (median round shown)" if args.rounds > 1 else ""))
    width = max([12, *(len(m) for m in modes)])
    print(f"{'mode':<{width}} {'req/s':>8} {'tok/s':>9} {'p50 s':>7} {'p99 s':>7} {'other cores':>11}")
    for mode in modes:
        r = median_round(rounds, mode, single=False)
        print(f"{mode:<{width}} {r.requests / r.seconds:8.2f} {r.tokens_per_s:9.1f} {r.quantile(0.5):7.2f} "
              f"{r.quantile(0.99):7.2f} {r.other_cores:11.2f}")
    for mode in modes:
        if rounds[0][mode][1] is not None:
            single = median_round(rounds, mode, single=True)
            print(f"single stream, {mode}: {single.tokens_per_s:.1f} tok/s ({single.requests} requests, "
                  f"{single.completion_tokens} tokens; other processes {single.other_cores:.2f} cores)")
    if "continuous" in modes and "dynamic" in modes:
        c, d = median_round(rounds, "continuous", False), median_round(rounds, "dynamic", False)
        print(f"serve continuous vs dynamic: {ratio(rounds, ('continuous', 0), ('dynamic', 0))} (tokens/s), "
              f"p50 latency {c.quantile(0.5) / d.quantile(0.5):.2f}")
    for ours in ("continuous", "compiled"):
        for mode in args.gguf_of if ours in modes else ():
            tag = "" if ours == "continuous" else f" ({ours})"
            print(f"single stream postlab{tag} / {mode}: {ratio(rounds, (ours, 1), (mode, 1))}")
            print(f"postlab batched{tag} / {mode} single stream: {ratio(rounds, (ours, 0), (mode, 1))}")
    if "continuous" in modes and "compiled" in modes:
        print(f"single stream, one-row layout compiled / auto: {ratio(rounds, ('compiled', 1), ('continuous', 1))}")
    if "continuous" in modes and "packed" in modes:
        print(f"single stream, one-row layout auto / packed: {ratio(rounds, ('continuous', 1), ('packed', 1))}")
    if "continuous" in modes and "off" in modes:
        print(f"serve batching speedup: {ratio(rounds, ('continuous', 0), ('off', 0))}")


if __name__ == "__main__":
    main()
