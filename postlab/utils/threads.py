"""Threads on a small shared machine (issue 16, item 14).

PyTorch's CPU kernels run on OpenMP threads, one per core. Between parallel regions a waiting thread
spins for a while before it sleeps; with two torch jobs on two cores the spinning threads take turns
with the working ones, and each job slows far more than 2× (measured: benchmarks/shared_machine.py,
docs/benchmarks.md). So the command line, before torch is imported:

- when other jobs already keep every core busy, asks OpenMP threads to sleep as soon as they wait
  (``OMP_WAIT_POLICY=PASSIVE``), unless the user set a policy; alone, spinning is faster, so it is kept
  (set ``OMP_WAIT_POLICY=PASSIVE`` for every job on a machine that several jobs will share);
- caps torch's threads at ``POSTLAB_THREADS`` when it is set (OpenMP and MKL both read the count);
- warns, once a command starts, when other processes already keep every core busy
  (``POSTLAB_BUSY_WARNING=0`` turns the warning off).
"""

from __future__ import annotations

import os

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # not available on this platform
        return 0.0


def configure_threads_env(environ: dict | None = None, busy: bool | None = None) -> None:
    """Set the OpenMP wait policy and thread count in ``environ`` (os.environ by default); must run
    before torch is imported to take effect. A user's own settings win. ``busy`` (default: the load
    average already fills every core) decides the wait policy."""
    env = os.environ if environ is None else environ
    # A user's own spin count means "spin that long", which PASSIVE would override. Alone, spinning is ~20%
    # faster (decode is many short parallel regions); beside other jobs it is 2-3x slower: sleep only then.
    if "GOMP_SPINCOUNT" not in env and (busy if busy is not None else _load() >= (os.cpu_count() or 1) - 0.25):
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if threads_error(env) is None and (threads := env.get("POSTLAB_THREADS", "").strip()):
        for var in THREAD_VARS:
            env.setdefault(var, threads)


def threads_error(environ: dict | None = None) -> str | None:
    """The error for a malformed POSTLAB_THREADS, or None (unset is fine)."""
    threads = (os.environ if environ is None else environ).get("POSTLAB_THREADS", "").strip()
    if threads and not (threads.isdigit() and int(threads) >= 1):
        return f"POSTLAB_THREADS={threads!r}: expected a whole number of threads, at least 1"
    return None


def busy_warning(load: float | None = None, cores: int | None = None) -> str | None:
    """A one-line warning when the 1-minute load average already fills every core (other jobs are
    running), else None. ``load``/``cores`` default to this machine's; POSTLAB_BUSY_WARNING=0 turns it off."""
    if os.environ.get("POSTLAB_BUSY_WARNING", "1") == "0":
        return None
    load = _load() if load is None else load
    cores = cores or os.cpu_count() or 1
    if load < cores - 0.25:
        return None
    return (f"warning: this machine is busy (load {load:.1f} on {cores} cores): torch jobs sharing cores run slower "
            f"than one after another; timings taken now are not the machine's. Set POSTLAB_THREADS to split the "
            f"cores between jobs (e.g. POSTLAB_THREADS={max(cores // 2, 1)}).")
