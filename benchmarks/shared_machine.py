"""Two postlab jobs on one small machine: together against one after the other (issue 16, item 14).

The job is `postlab eval` of SmolLM2-135M-Instruct (greedy, the first --items test items, --tokens
new tokens): decode-heavy, many small parallel regions, the case where OpenMP threads that spin while
they wait hurt most. First one job alone, then two at once under each setting:

- `spin`: OMP_WAIT_POLICY=ACTIVE, threads that wait keep spinning (how a job behaved before postlab set
  a policy; the OpenMP runtime's own default spins for a while before it sleeps);
- `default`: nothing set, so postlab's own defaults apply (see postlab/utils/threads.py: threads sleep
  when they wait only if the machine is already busy when the job starts); `staggered`: postlab's defaults, the
  second job starts 4 s after the first, into a busy machine, as a second job usually does;
- `passive`: OMP_WAIT_POLICY=PASSIVE for both jobs;
- `spin 10k`: GOMP_SPINCOUNT=10000, a waiting thread spins briefly, then sleeps (GNU OpenMP);
- `threads=1`: POSTLAB_THREADS=1, one thread per job.

    .venv/bin/python benchmarks/shared_machine.py [--items 24] [--tokens 64] [--settings spin,default]

Prints wall seconds and `together / one after the other` (2 × alone) per setting: 1.00 means sharing
the machine costs nothing beyond running the jobs in turn; the last lines give the ratio per setting.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

SETTINGS = {"spin": {"OMP_WAIT_POLICY": "ACTIVE"}, "default": {}, "spin 10k": {"GOMP_SPINCOUNT": "10000"},
            "threads=1": {"POSTLAB_THREADS": "1"}, "staggered": {"_stagger_s": "4"},
            "passive": {"OMP_WAIT_POLICY": "PASSIVE"}}


def _job(out: str, tag: str, items: int, tokens: int, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "postlab", "eval", "model=smollm2-135m-instruct", "split=test", f"limit={items}",
           f"sampling.max_new_tokens={tokens}", f"out={os.path.join(out, tag + '.json')}", "overwrite=true"]
    full = {k: v for k, v in os.environ.items()
            if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "POSTLAB_THREADS", "OMP_NUM_THREADS")}
    return subprocess.Popen(cmd, env={**full, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _run(out: str, tag: str, n: int, items: int, tokens: int, env: dict) -> float:
    t0 = time.perf_counter()
    stagger = float(env.get("_stagger_s", 0))  # the second job starts later, into a busy machine
    env = {k: v for k, v in env.items() if not k.startswith("_")}
    procs = []
    for i in range(n):
        if i:
            time.sleep(stagger)
        procs.append(_job(out, f"{tag}-{i}", items, tokens, env))
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            sys.exit(f"{tag}: postlab eval failed:\n{err[-2000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=24)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated, of: " + ", ".join(SETTINGS))
    args = ap.parse_args()
    out = tempfile.mkdtemp(prefix="shared_machine_")
    _run(out, "warmup", 1, 2, 8, {})  # model cached, files warm
    rows = []
    for name in args.settings.split(","):
        env = SETTINGS[name]
        alone = _run(out, f"{name}-alone", 1, args.items, args.tokens, env)
        together = _run(out, f"{name}-together", 2, args.items, args.tokens, env)
        rows.append((name, alone, together))
        print(f"{name}: alone {alone:.1f} s, two together {together:.1f} s", flush=True)
    print(f"\npostlab eval, {args.items} items x {args.tokens} tokens, {os.cpu_count()} cores")
    print("| setting | one job alone (s) | two together (s) | together / one after the other |")
    print("|---|---|---|---|")
    for name, alone, together in rows:
        print(f"| {name} | {alone:.1f} | {together:.1f} | {together / (2 * alone):.2f} |")
    for name, alone, together in rows:
        print(f"shared-machine ratio {name}: {together / (2 * alone):.2f}")


if __name__ == "__main__":
    main()
