"""`postlab serve` throughput with dynamic batching on and off, measured side by side in one run.

Starts the server in a subprocess twice (``--max-batch N``, then ``--max-batch 1``), fires
``--clients`` concurrent clients that each send ``--requests`` chat completions one after another
(temperature 1, ``--max-tokens`` each), and prints requests/s, completion tokens/s, latency and the
ratio; the last line is ``serve batching speedup: X.XX`` (tokens/s on / off).

    .venv/bin/python benchmarks/serve.py [--model tiny] [--clients 32] [--requests 4] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx


@dataclass
class Result:
    mode: str
    seconds: float
    requests: int
    completion_tokens: int
    latencies: list[float]

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, max_batch: int, dtype: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "postlab", "serve", "--model", model, "--port", str(port),
                             "--max-batch", str(max_batch), "--monitor-log", "", "--dtype", dtype],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"the server for {model} did not start")


async def run_clients(base: str, model: str, clients: int, requests: int, max_tokens: int) -> tuple[int, list[float]]:
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as http:
        async def client(c: int) -> tuple[int, list[float]]:
            tokens, latencies = 0, []
            for i in range(requests):
                body = {"model": model, "max_tokens": max_tokens, "temperature": 1.0,
                        "messages": [{"role": "user", "content": f"Write a short note number {i} for client {c}."}]}
                t0 = time.perf_counter()
                r = await http.post("/v1/chat/completions", json=body)
                r.raise_for_status()
                latencies.append(time.perf_counter() - t0)
                tokens += r.json()["usage"]["completion_tokens"]
            return tokens, latencies

        results = await asyncio.gather(*(client(c) for c in range(clients)))
    return sum(t for t, _ in results), [x for _, lat in results for x in lat]


def measure(mode: str, max_batch: int, args) -> Result:
    proc, base = start_server(args.model, max_batch, args.dtype)
    try:
        asyncio.run(run_clients(base, args.model, min(args.clients, 4), 1, args.max_tokens))  # warm-up
        t0 = time.perf_counter()
        tokens, latencies = asyncio.run(run_clients(base, args.model, args.clients, args.requests, args.max_tokens))
        return Result(mode, time.perf_counter() - t0, args.clients * args.requests, tokens, latencies)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--requests", type=int, default=4, help="per client, sent one after another")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--max-batch", type=int, default=32, help="batch size limit with batching on")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1" if args.model == "tiny" else str(os.cpu_count()))

    results = [measure(f"batching on (max {args.max_batch})", args.max_batch, args), measure("batching off", 1, args)]
    print(f"model {args.model} ({args.dtype}), {args.clients} clients x {args.requests} requests, "
          f"max_tokens {args.max_tokens}")
    print(f"{'mode':<24} {'req/s':>8} {'tok/s':>9} {'p50 s':>7} {'p95 s':>7}")
    for r in results:
        p95 = statistics.quantiles(r.latencies, n=20)[-1]
        print(f"{r.mode:<24} {r.requests / r.seconds:8.2f} {r.tokens_per_s:9.1f} "
              f"{statistics.median(r.latencies):7.2f} {p95:7.2f}")
    print(f"serve batching speedup: {results[0].tokens_per_s / results[1].tokens_per_s:.2f}")


if __name__ == "__main__":
    main()
