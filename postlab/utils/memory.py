"""Allocator tuning for CPU training.

glibc serves every allocation above its mmap threshold (at most 32 MB) straight from the kernel and
unmaps it on free, so each training step page-faults its large activation and logits buffers afresh;
measured on SmolLM2 bf16 full fine-tuning this cost more than a third of the step. Keeping freed
memory in the heap (no mmap, no trimming) removes that. The price: the process keeps its peak
resident memory until it exits, which suits a training or sampling command.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Ask glibc never to mmap or trim; returns False where that is not possible (not glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok_mmap = libc.mallopt(M_MMAP_MAX, 0)
        ok_trim = libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(2**31 - 1))
    except (OSError, AttributeError):
        return False
    return bool(ok_mmap and ok_trim)
