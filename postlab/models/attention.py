"""Attention backend choice for passes whose shapes change from call to call.

PyTorch's scaled_dot_product_attention prefers cuDNN's kernel on recent NVIDIA GPUs, and cuDNN builds
an execution plan for every new shape: measured on an H200 (torch 2.11, benchmarks/gpu.py --profile),
~1.4 ms of CPU per call in decode, where the key length grows by one every step and prompt lengths
change every batch, and ~23 ms per backward call in an RL update. That made a 135M model's GRPO
sampling take 8 s on steps with new shapes against 3 s on repeated ones. Rollouts, serving and RL
log-probs see a new shape almost every call, so they run with cuDNN attention off (flash,
memory-efficient and math kernels stay allowed, and which one runs is PyTorch's choice as before).
So does supervised training (``train_loop``) on examples of different lengths, whose batches pad to a
new length most steps: 135M SFT on such batches ran 1.42x faster with cuDNN off on the H200
(docs/benchmarks.md). Training on examples all of one length keeps PyTorch's default."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import torch

_lock = threading.Lock()
_users = 0  # passes inside the context now, in any thread
_saved = True  # cuDNN attention's setting before the first of them


@contextmanager
def varying_shape_attention():
    """Context: scaled_dot_product_attention without the cuDNN backend (a no-op on CPU, where cuDNN
    attention does not exist). The backend switch is process-wide, not per thread, so overlapping
    users (a server's decode thread beside an eval) share one switch: the first turns cuDNN off, the
    last one out restores what was set before, whatever order they leave in."""
    global _users, _saved
    with _lock:
        if _users == 0:
            _saved = torch.backends.cuda.cudnn_sdp_enabled()
            torch.backends.cuda.enable_cudnn_sdp(False)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                torch.backends.cuda.enable_cudnn_sdp(_saved)
