"""Threads on a small shared machine (issue 16, item 14).

PyTorch's CPU kernels run on OpenMP threads, one per core. Between parallel regions a waiting thread
spins for a while before it sleeps; with two torch jobs on two cores the spinning threads take turns
with the working ones, and each job slows far more than 2× (measured: benchmarks/shared_machine.py,
docs/benchmarks.md). So the command line, before torch is imported:

- when other jobs already keep every core busy (the 1-minute load average, or a 0.1 s sample of
  /proc/stat for jobs that started a moment ago; the sample alone when it finds the machine idle, as the
  average still counts a job that ended a moment ago), asks OpenMP threads to sleep as soon as they wait
  (``OMP_WAIT_POLICY=PASSIVE``), unless the user set a policy; alone, spinning is faster, so it is kept
  (set ``OMP_WAIT_POLICY=PASSIVE`` for every job on a machine that several jobs will share);
- caps torch's threads at ``POSTLAB_THREADS`` when it is set (OpenMP and MKL both read the count);
- warns, once a command starts, when other processes already keep every core busy
  (``POSTLAB_BUSY_WARNING=0`` turns the warning off).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def busy_cores(before: str, after: str, cores: int) -> float:
    """Cores kept busy between two readings of the aggregate ``cpu`` line of /proc/stat (``cpu user nice
    system idle iowait irq softirq steal ...``, in clock ticks summed over the machine's ``cores``): the
    busy share of the ticks that passed, times ``cores``. Idle = idle + iowait (guest time is already
    counted in user/nice)."""
    a, b = ([int(x) for x in line.split()[1:9]] for line in (before, after))
    total = sum(b) - sum(a)
    idle = (b[3] + b[4]) - (a[3] + a[4])
    if total <= 0:
        return 0.0
    return (total - idle) / total * cores


def _cpu_lines() -> tuple[str, int] | None:
    """/proc/stat's aggregate line and the number of cores it sums (its per-core lines)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:  # not Linux
        return None
    return lines[0], sum(line.startswith("cpu") and line[3:4].isdigit() for line in lines)


def _sample(interval: float) -> float | None:
    """Cores busy between two readings of /proc/stat ``interval`` seconds apart, or None without /proc/stat."""
    import time

    before = _cpu_lines()
    if before is None:
        return None
    time.sleep(interval)
    after = _cpu_lines()
    return busy_cores(before[0], after[0], after[1]) if after else None


def sampled_load(interval: float = 0.1) -> float:
    """Cores other processes keep busy right now: /proc/stat read twice ``interval`` seconds apart while
    this process sleeps (0.0 where /proc/stat is missing). Unlike the load average it does not lag, so a
    job started seconds after another sees it."""
    return _sample(interval) or 0.0


# Under this many cores busy in the sample, nothing is running now, whatever the load average says.
_IDLE_CORES = 0.5


def combined_load(average: float, sample: float | None) -> float:
    """Cores other work keeps busy, from the 1-minute load average and a short /proc/stat sample (None where
    there is none): the larger of the two, since the average lags by up to a minute behind a job that has just
    started; but when the sample finds the machine idle, the sample, since the average also lags behind a job
    that has just ended (a `postlab run` started 15 s after a test run saw load 1.8 on an idle 2-core machine
    and made its threads sleep for the whole run)."""
    if sample is None:
        return average
    return sample if sample < _IDLE_CORES else max(average, sample)


def machine_load() -> float:
    """How many cores other work keeps busy (``combined_load`` of this machine's load average and a 0.1 s
    sample of /proc/stat)."""
    try:
        average = os.getloadavg()[0]
    except OSError:  # not available on this platform
        average = 0.0
    return combined_load(average, _sample(0.1))


def configure_threads_env(environ: dict | None = None, busy: bool | None = None) -> None:
    """Set the OpenMP wait policy and thread count in ``environ`` (os.environ by default); must run
    before torch is imported to take effect. A user's own settings win. ``busy`` (default: other work
    already fills every core, ``machine_load``) decides the wait policy."""
    env = os.environ if environ is None else environ
    # A user's own spin count means "spin that long", which PASSIVE would override. Alone, spinning is ~20%
    # faster (decode is many short parallel regions); beside other jobs it is 2-3x slower: sleep only then.
    if "GOMP_SPINCOUNT" not in env and (busy if busy is not None else machine_load() >= (os.cpu_count() or 1) - 0.25):
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
    """A one-line warning when other jobs already fill every core (``machine_load``), else None.
    ``load``/``cores`` default to this machine's; POSTLAB_BUSY_WARNING=0 turns it off."""
    if os.environ.get("POSTLAB_BUSY_WARNING", "1") == "0":
        return None
    load = machine_load() if load is None else load
    cores = cores or os.cpu_count() or 1
    if load < cores - 0.25:
        return None
    return (f"warning: this machine is busy (load {load:.1f} on {cores} cores): torch jobs sharing cores run slower "
            f"than one after another; timings taken now are not the machine's. Set POSTLAB_THREADS to split the "
            f"cores between jobs (e.g. POSTLAB_THREADS={max(cores // 2, 1)}).")


def in_passing_thread(fn: Callable[[], T]) -> T:
    """``fn()`` run in a new thread that ends when it returns; its result is returned, its exception raised.

    Why: the OpenMP runtime of PyTorch's CPU wheels (libgomp) keeps a team of worker threads for every thread
    that has run a parallel region, for as long as that thread lives. Once the teams hold more threads than
    the machine has cores, a waiting thread hardly spins before it sleeps, so every one of a decode step's
    few hundred small parallel regions pays for waking threads. A server thread that decodes while the
    main thread holds a team (it packed weights and timed decode steps) ran a one-row SmolLM2-135M step in
    45 ms against 31 when no other thread held one (2-core Xeon; ``benchmarks/worker_thread.py``); loading
    a model runs no parallel region, but measuring does. So a server's torch work before serving runs here:
    the thread's team ends with it."""
    out: dict = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            out["error"] = e

    thread = threading.Thread(target=run, name="postlab-setup")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]
