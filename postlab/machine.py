"""The machine postlab runs on, and what ``auto`` means for a dtype there.

bf16 is not fast everywhere. With AMX, a 2-core CPU multiplies bf16 matrices at ~2,500 GFLOP/s against
~380 in fp32; with AVX512-BF16 alone, about twice fp32; without either, torch emulates bf16 and it runs
~4x *slower* than fp32 (31 against 126 GFLOP/s on a 2-core Xeon). So every dtype/bf16 option that
defaults to ``auto`` picks the faster of the two on this machine:

- on CUDA, bf16 when the device supports it;
- on a CPU, the faster dtype of a short matmul benchmark (``measure_matmul``: ~1 s per dtype, the
  best call counts, so a busy neighbour has to be busy the whole second to spoil it), bf16 only when it
  is at least ``BF16_MARGIN`` times faster, since autocast adds casts a matmul does not show; the
  numbers are measured once and cached in ``$POSTLAB_HOME/machine.json``, keyed by CPU model, flags, device,
  torch version and thread count (delete the file to measure again). ``postlab run``, whose time budget
  rests on them, measures again at every start (``refresh``) and keeps, per dtype, the highest figure seen
  (``best_seen``): another process on the cores only ever lowers a measurement, and a figure taken beside one
  would otherwise shrink every later run's plan;
- unmeasured, by the CPU's flags (``amx_bf16`` / ``avx512_bf16``);
- ``POSTLAB_DTYPE=fp32|bf16`` overrides the choice (e.g. to pin tests or CI).

The choice and its reason are printed once per process. ``choose_dtype`` is the whole decision as a
pure function of measured numbers and flags, so it is tested by hand, never by this machine's speed.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import AfterValidator

from postlab.config import keeping_auto
from postlab.utils.io import atomic_write_text

# /proc/cpuinfo flags recorded: native bf16 tiles, bf16 dot products, AVX-512 (without bf16 on some Xeons), and
# the fp32 baseline
RECORDED_FLAGS = ("amx_bf16", "avx512_bf16", "avx512f", "avx2")
BF16_MARGIN = 1.1  # bf16 must measure this much faster than fp32 to be chosen
MATMUL_N = 1024  # the benchmark multiplies two n×n matrices
MATMUL_SECONDS = 1.0  # per dtype, once per machine


def postlab_home():
    from postlab.models.home import postlab_home  # lazily: postlab.models imports the training configs

    return postlab_home()


def torch_version() -> str:
    import torch

    return torch.__version__


def cpu_info(cpuinfo: str | None = None) -> dict:
    """CPU model, the bf16-relevant flags and the core count, from ``/proc/cpuinfo`` (or the given text)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    return {"cpu": fields.get("model name") or platform.processor() or platform.machine() or "unknown",
            "flags": {f: f in flags for f in RECORDED_FLAGS}, "cores": os.cpu_count()}


def measure_matmul(*, seconds: float = MATMUL_SECONDS, n: int = MATMUL_N, device: str = "cpu") -> dict[str, float]:
    """Best GFLOP/s of an n×n @ n×n matmul in fp32 and in bf16, each timed for about ``seconds`` in
    alternating slices, so both dtypes see the same background load. The best call, not the mean:
    a busy neighbour only ever makes a call slower."""
    import torch

    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    g = torch.Generator(device=dev).manual_seed(0)
    mats = {k: [torch.randn(n, n, generator=g, device=dev).to(dt) for _ in range(2)] for k, dt in dtypes.items()}
    best, spent = dict.fromkeys(dtypes, 0.0), dict.fromkeys(dtypes, 0.0)
    flop = 2 * n**3
    with torch.inference_mode():
        for a, b in mats.values():  # warm-up: kernel selection, page faults
            a @ b
        sync()
        while min(spent.values()) < seconds:
            for k, (a, b) in mats.items():
                end = time.perf_counter() + seconds / 4
                while time.perf_counter() < end:
                    t = time.perf_counter()
                    a @ b
                    sync()
                    dt = time.perf_counter() - t
                    spent[k] += dt
                    best[k] = max(best[k], flop / dt / 1e9)
    return {k: round(v, 1) for k, v in best.items()}


def choose_dtype(*, fp32_gflops: float | None, bf16_gflops: float | None, flags: dict[str, bool],
                 cuda_bf16: bool | None = None) -> tuple[str, str]:
    """("fp32" | "bf16", why). ``cuda_bf16`` is None on a CPU, else whether the CUDA device supports bf16."""
    if cuda_bf16 is not None:
        return ("bf16", "CUDA device with bf16 support") if cuda_bf16 else ("fp32", "CUDA device without bf16 support")
    hw = [f for f in ("amx_bf16", "avx512_bf16") if flags.get(f)]
    has = f"CPU flags: {', '.join(hw)}" if hw else "no amx_bf16/avx512_bf16 flag"
    if fp32_gflops and bf16_gflops:
        ratio = bf16_gflops / fp32_gflops
        measured = f"matmul bf16 {bf16_gflops:.0f} vs fp32 {fp32_gflops:.0f} GFLOP/s"
        if ratio >= BF16_MARGIN:
            return "bf16", f"{measured}: bf16 {ratio:.1f}x faster ({has})"
        return "fp32", f"{measured}: bf16 not {BF16_MARGIN}x faster ({has})"
    if hw:
        return "bf16", f"{has} (not measured)"
    return "fp32", f"{has} (not measured)"


def _cache_key(rec: dict) -> str:
    # The flags are part of the key: one model name covers CPUs with and without AVX512-BF16 ("AMD EPYC").
    flags = ",".join(f for f, on in rec["flags"].items() if on) or "-"
    return f"{rec['cpu']} [{flags}] | {rec['device_name']} | torch {rec['torch']} | {rec['threads']} threads"


def best_seen(cached: dict | None, fresh: dict[str, float]) -> dict[str, float]:
    """Per dtype, the higher of a cached and a fresh measurement (GFLOP/s)."""
    return {k: max(v, (cached or {}).get(k) or 0.0) for k, v in fresh.items()}


def probe(*, measure: bool = True, refresh: bool = False, measure_fn=None, device: str | None = None,
          cpuinfo: str | None = None) -> dict:
    """This machine: CPU model, bf16 flags, cores, torch threads and version, the device, and (when
    ``measure``) matmul GFLOP/s in fp32 and bf16, from the cache when this machine was measured before. With
    ``refresh`` (and ``measure``), measured again even so, and the cache keeps the highest figure seen per dtype
    (``best_seen``); the record then also holds this measurement as ``measured_now``."""
    import torch

    cuda = torch.cuda.is_available() if device is None else device == "cuda"
    device = "cuda" if cuda else "cpu"
    rec = {**cpu_info(cpuinfo), "threads": torch.get_num_threads(), "torch": torch_version(), "device": device,
           "device_name": torch.cuda.get_device_name() if cuda else "cpu",
           "cuda_bf16": torch.cuda.is_bf16_supported() if cuda else None, "matmul_gflops": None}
    path = postlab_home() / "machine.json"
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    key = _cache_key(rec)
    if key in cache and not (refresh and measure):
        rec["matmul_gflops"] = {**cache[key], "cached": True}
    elif measure:
        fn = measure_fn or measure_matmul
        fresh = fn(seconds=MATMUL_SECONDS, n=MATMUL_N, device=device)
        cache[key] = {**best_seen(cache.get(key), fresh), "n": MATMUL_N,
                      "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        atomic_write_text(path, json.dumps(cache, indent=2) + "\n")
        rec["matmul_gflops"] = {**cache[key], "cached": False, **({"measured_now": fresh} if refresh else {})}
    return rec


def decide(rec: dict) -> tuple[str, str]:
    """What ``auto`` means on the machine ``rec`` describes (``probe``), and why."""
    forced = os.environ.get("POSTLAB_DTYPE", "").strip().lower()
    if forced in ("fp32", "bf16"):
        return forced, f"POSTLAB_DTYPE={forced}"
    mm = rec.get("matmul_gflops") or {}
    return choose_dtype(fp32_gflops=mm.get("fp32"), bf16_gflops=mm.get("bf16"), flags=rec["flags"],
                        cuda_bf16=rec.get("cuda_bf16"))


def describe(rec: dict) -> str:
    """One line: CPU, cores, flags, torch, matmul numbers."""
    flags = ", ".join(f for f, on in rec["flags"].items() if on) or "none of " + "/".join(RECORDED_FLAGS)
    mm = rec.get("matmul_gflops")
    speed = (f"matmul fp32 {mm['fp32']:.0f}, bf16 {mm['bf16']:.0f} GFLOP/s{' (cached)' if mm.get('cached') else ''}"
             if mm else "matmul not measured")
    now = (mm or {}).get("measured_now")
    if now and any(now[k] < 0.85 * mm[k] for k in now):  # busy now, or slower than before: say which is used
        speed += f" (the highest seen; measured now fp32 {now['fp32']:.0f}, bf16 {now['bf16']:.0f})"
    where = rec["cpu"] if rec["device"] == "cpu" else f"{rec['device_name']} (host {rec['cpu']})"
    return f"{where}, {rec['cores']} cores, {rec['threads']} torch threads, flags {flags}; torch {rec['torch']}; {speed}"


_AUTO: dict[str, str] = {}  # this process's choice for `auto`, once made


def auto_dtype() -> str:
    """The dtype ``auto`` stands for in this process ("fp32" | "bf16"); measured on first use, logged once."""
    forced = os.environ.get("POSTLAB_DTYPE", "").strip().lower()
    if forced in ("fp32", "bf16"):
        return forced
    if "dtype" not in _AUTO:
        rec = probe()
        dtype, why = decide(rec)
        print(f"postlab: dtype auto -> {dtype}: {why} [{describe(rec)}]", file=sys.stderr)
        _AUTO["dtype"] = dtype
    return _AUTO["dtype"]


def _resolve_bf16(v: bool | str) -> bool | str:
    if v == "auto" and not keeping_auto():
        return auto_dtype() == "bf16"
    return v


def _resolve_dtype(v: str) -> str:
    if v == "auto" and not keeping_auto():
        return auto_dtype()
    return v


# Config field types whose "auto" becomes this machine's faster choice when the config is validated
# (declare them with ``Field("auto", validate_default=True, ...)``), so code reading the field sees a plain
# bool / "fp32" | "bf16"; the saved config records what was used.
AutoBF16 = Annotated[bool | Literal["auto"], AfterValidator(_resolve_bf16)]
AutoDType = Annotated[Literal["auto", "fp32", "bf16"], AfterValidator(_resolve_dtype)]
