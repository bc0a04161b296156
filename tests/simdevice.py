"""A stand-in accelerator for CPU-only machines: tensors that say they live on another device (the
'meta' device's name) while keeping real CPU data, so a whole RL step runs with real numbers and any
op that mixes them with ordinary CPU tensors fails the way it would on a GPU.

    with sim_device():
        model.to(SIM)            # parameters become Sim tensors; forward, backward and AdamW work
        torch.zeros(3, device=SIM), torch.tensor([1.0], device=SIM)   # Sim tensors too
        sim_tensor * torch.ones(3)                                    # raises DeviceMismatch

The rules follow CUDA's: 0-dim CPU tensors mix freely (they are scalars), CPU index tensors may index
a device tensor, `copy_`/`.to()` cross devices. A real 'meta' tensor (no data) showing up in an op
means something was built on the meta device behind the harness's back, and is an error too.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves, tree_map

SIM = torch.device("meta")
aten = torch.ops.aten
_INDEXING = {aten.index.Tensor, aten.index_put_.default, aten.index_put.default, aten._index_put_impl_.default}
_CROSS_DEVICE = {aten.copy_.default, aten._to_copy.default}


class DeviceMismatch(RuntimeError):
    pass


class Sim(torch.Tensor):
    """A CPU tensor (`inner`) that reports the simulated device."""

    @staticmethod
    def __new__(cls, inner: torch.Tensor):
        t = torch.Tensor._make_wrapper_subclass(cls, inner.size(), strides=inner.stride(),
                                                storage_offset=inner.storage_offset(), dtype=inner.dtype,
                                                layout=inner.layout, device=SIM, requires_grad=inner.requires_grad)
        t.inner = inner
        return t

    def __repr__(self):
        return f"Sim({self.inner!r})"

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _dispatch(func, args, kwargs or {})


def _on_sim(device) -> bool:
    return device is not None and torch.device(device).type == SIM.type


def _unwrap(x):
    return x.inner if isinstance(x, Sim) else x


def _check(func, args, kwargs) -> bool:
    """Raise if `func` mixes Sim tensors with CPU tensors the way a real device would refuse; return
    whether any Sim tensor takes part."""
    leaves = [x for x in tree_leaves((args, kwargs)) if isinstance(x, torch.Tensor)]
    real_meta = [x for x in leaves if not isinstance(x, Sim) and x.device.type == SIM.type]
    if real_meta:
        raise DeviceMismatch(f"{func}: a real meta tensor (no data) was built outside the harness")
    sims = any(isinstance(x, Sim) for x in leaves)
    if not sims or func in _CROSS_DEVICE:
        return sims
    if func in _INDEXING:  # CPU index tensors may index a device tensor; the rest must be on the device
        self_, rest = args[0], [a for a in args[2:]] + list(kwargs.values())
        leaves = [self_, *[x for x in tree_leaves(rest) if isinstance(x, torch.Tensor)]]
    cpu = [tuple(x.shape) for x in leaves if not isinstance(x, Sim) and x.dim() > 0]
    if cpu:
        raise DeviceMismatch(f"{func}: tensors on the device mixed with CPU tensors of shapes {cpu}")
    return True


def _dispatch(func, args, kwargs):
    device = kwargs.get("device")
    sims = _check(func, args, kwargs)
    if func is aten._to_copy.default and device is not None and not _on_sim(device):
        return func(*tree_map(_unwrap, args), **kwargs)  # an explicit move to the CPU: a plain tensor
    created = _on_sim(device)
    if created:
        kwargs = {**kwargs, "device": torch.device("cpu")}
    out = func(*tree_map(_unwrap, args), **tree_map(_unwrap, kwargs))
    if not (sims or created):
        return out
    if func._schema.name.endswith("_") and args and isinstance(args[0], Sim):
        return args[0]  # in-place: the same tensor, its inner data updated
    return tree_map(lambda t: Sim(t) if isinstance(t, torch.Tensor) and not isinstance(t, Sim) else t, out)


class _SimDispatch(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return _dispatch(func, args, kwargs or {})


def _index_on_sim(x):
    if isinstance(x, list):
        x = torch.tensor(x)
    return Sim(x) if isinstance(x, torch.Tensor) and not isinstance(x, Sim) else x


class _SimFunctions(TorchFunctionMode):
    """What does not go through dispatch: torch.tensor / torch.as_tensor build their data directly
    (build on the CPU, then wrap), and .tolist() reads it (read the CPU data, as CUDA copies back); indexing moves CPU index tensors to the device."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.tensor, torch.as_tensor) and _on_sim(kwargs.get("device")):
            return Sim(func(*args, **{**kwargs, "device": "cpu"}))
        if func is torch.Tensor.tolist and isinstance(args[0], Sim):
            return args[0].inner.tolist()
        if func in (torch.Tensor.__getitem__, torch.Tensor.__setitem__) and isinstance(args[0], Sim):
            # CPU index tensors are allowed; move them here, as CUDA does, so the data is kept
            index = tuple(map(_index_on_sim, args[1])) if isinstance(args[1], tuple) else _index_on_sim(args[1])
            args = (args[0], index, *args[2:])
        return func(*args, **kwargs)


@contextmanager
def sim_device():
    with _SimFunctions(), _SimDispatch():
        yield
