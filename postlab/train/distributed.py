"""Data parallelism with ``torch.distributed``, for the shared training loop and the RL recipes
(docs/scaling.md).

Launched by ``torchrun --nproc_per_node N -m postlab <command> ...``, every process runs the same
command; torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``. A recipe's ``train`` joins the
process group (``data_parallel``: NCCL when the model is on CUDA, gloo otherwise; left when the
process exits), the loop runs each micro-batch's loss in ``DistributedDataParallel`` and gives each
rank an equal, contiguous share of every global micro-batch (``shard``), and only rank 0 writes
(checkpoints, metrics, the final model) and shows progress. The RL recipes (``ppo``, ``grpo``) share
out sampling and the rows trained on (``shard``, ``share``, ``gather``) and sum gradients themselves
(``sum_gradients``: the ranks may run different numbers of backwards, which DDP does not allow).
Without torchrun (``WORLD_SIZE`` unset or 1) every function here is a no-op: the single process runs
exactly as before.
"""

from __future__ import annotations

import atexit
import functools
import os
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from postlab.errors import ConfigError

T = TypeVar("T")

# How long a collective waits for the other ranks before failing: a rank that died leaves the others
# no longer than this (gloo usually notices a closed connection at once). Rank 0 alone runs evals and
# writes the final model while the others wait at the closing barrier, hence the generous default.
TIMEOUT_ENV = "POSTLAB_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 1800


def launched() -> bool:
    """Whether this process is one of several started by torchrun (or another launcher setting WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world() -> World:
    """This process's rank and the number of processes, from the joined process group (else one process)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def is_main() -> bool:
    return world().is_main


def timeout() -> timedelta:
    return timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))


def data_parallel(train: Callable[..., T]) -> Callable[..., T]:
    """Decorate a recipe's ``train(cfg)``: under torchrun, join the process group (backend for the
    device ``cfg.device`` resolves to on this rank) before it runs, unless this process already has,
    and wait for every rank when it returns. Without torchrun, ``train`` runs as it is.

    The group lasts as long as the process (left at exit): several commands run by one process share
    it, because a group joined again after leaving can read its predecessor's stale addresses from
    torchrun's store and hang."""

    @functools.wraps(train)
    def run(cfg, *args, **kwargs):
        if not launched():
            return train(cfg, *args, **kwargs)
        if not dist.is_initialized():
            from postlab.models.prepare import pick_device

            device = pick_device(cfg.device)
            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout())
            atexit.register(_leave)
        result = train(cfg, *args, **kwargs)
        dist.barrier()  # rank 0 may still be writing the final model
        return result

    return run


def _leave() -> None:
    """Leave the group at exit, while the interpreter is still whole.

    A collective's worker thread (gloo) drops its last reference to the collective's tensors just after
    ``wait()`` returns, and needs the GIL to free their Python objects. Had the interpreter begun
    finalising by then, the thread is stopped mid-destructor and the process aborts ("terminate called
    without an active exception", SIGABRT) after a successful run. A short sleep here releases the GIL
    so that such frees finish first; no collective runs after it."""
    if dist.is_initialized():
        time.sleep(0.05)
        dist.destroy_process_group()
        time.sleep(0.05)


def local_batch_size(global_batch_size: int, w: World) -> int:
    """Each rank's share of a global micro-batch of ``global_batch_size`` examples."""
    if global_batch_size % w.size:
        raise ConfigError(f"optim.batch_size: {global_batch_size} is the global batch, split evenly over the "
                          f"{w.size} processes; choose a multiple of {w.size}")
    return global_batch_size // w.size


def require_even_split(field: str, n: int, what: str, w: World) -> None:
    """Refuse a config value ``n`` (of ``what``) that the W ranks cannot share evenly."""
    if n % w.size:
        raise ConfigError(f"{field}: the {n} {what} are shared evenly by the {w.size} processes; choose a multiple of "
                          f"{w.size} (docs/scaling.md)")


def shard(examples: Sequence[T], w: World) -> list[T]:
    """Rank ``w.rank``'s contiguous share of one global micro-batch: rank 0 the first len/size
    examples, rank 1 the next, ..., so the ranks together see the single-process batch in its order."""
    b = len(examples) // w.size
    return list(examples[w.rank * b : (w.rank + 1) * b])


def share(items: Sequence[T], w: World) -> list[T]:
    """Rank ``w.rank``'s contiguous share of ``items`` when their number need not divide evenly: the
    first ``len % size`` ranks take one more. The ranks' shares, in rank order, are ``items``."""
    q, extra = divmod(len(items), w.size)
    start = w.rank * q + min(w.rank, extra)
    return list(items[start : start + q + (w.rank < extra)])


class _StepLoss(torch.nn.Module):
    """An objective's micro-batch loss as a module's forward, so DistributedDataParallel sees it run:
    objectives may call parts of the model (a reward model's body and head) rather than its forward."""

    def __init__(self, loss: Callable, model: torch.nn.Module):
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, batch, total_units: int):
        return self.loss(self.model, batch, total_units)


def data_parallel_loss(loss: Callable, model: torch.nn.Module, w: World) -> Callable:
    """``loss(model, batch, total_units)`` as ``f(batch, total_units)``; with several ranks, run inside
    DistributedDataParallel, which all-reduces the gradients to their mean during the backward (a
    model sharded by ``shard_model`` reduce-scatters them to their mean by itself)."""
    if w.size == 1:
        return functools.partial(loss, model)
    if is_sharded(model):
        return _ShardedStepLoss(loss, model)
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    return DistributedDataParallel(_StepLoss(loss, model), device_ids=[device] if device.type == "cuda" else None,
                                   broadcast_buffers=False)  # buffers (rotary tables) are not trained


class _ShardedStepLoss:
    """The step loss of a model sharded by ``shard_model``; ``no_sync`` as DDP's."""

    def __init__(self, loss: Callable, model: torch.nn.Module):
        self.model, self.loss = model, loss

    def __call__(self, batch, total_units: int):
        return self.loss(self.model, batch, total_units)

    @contextmanager
    def no_sync(self):
        self.model.set_requires_gradient_sync(False)  # gradients accumulate unsharded until the step's last backward
        try:
            yield
        finally:
            self.model.set_requires_gradient_sync(True)


def sync_gradients(step_loss: Callable, sync: bool):
    """Around a micro-batch's forward and backward: with ``sync`` false, DDP keeps the gradients local
    (accumulated into the next micro-batch, all-reduced once, at the step's last backward)."""
    no_sync = getattr(step_loss, "no_sync", None)
    return nullcontext() if sync or no_sync is None else no_sync()


def sum_over_ranks(values: dict[str, float], w: World) -> dict[str, float]:
    """``values`` summed over ranks (every rank passes the same keys), in float64; unchanged on one rank."""
    if w.size == 1:
        return values
    keys = sorted(values)
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"  # NCCL reduces device tensors only
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist()))


def from_main(obj: T, w: World) -> T:
    """Rank 0's ``obj`` on every rank (pickled); ``obj`` itself on one rank."""
    if w.size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def scatter_from_main(objs: Sequence[T] | None, w: World) -> T:
    """Rank 0's ``objs[r]`` on rank r (pickled; the other ranks pass None); ``objs[0]`` on one rank."""
    if w.size == 1:
        return objs[0]
    box: list = [None]
    dist.scatter_object_list(box, list(objs) if w.is_main else None, src=0)
    return box[0]


def gather(obj: T, w: World) -> list[T]:
    """Every rank's ``obj`` in rank order, on every rank (pickled: move tensors to the CPU first);
    ``[obj]`` on one rank."""
    if w.size == 1:
        return [obj]
    out: list = [None] * w.size
    dist.all_gather_object(out, obj)
    return out


def sum_tensors_(tensors: Sequence[torch.Tensor], w: World) -> None:
    """Sum each tensor over the ranks, in place (every rank passes the same shapes); no-op on one rank."""
    if w.size == 1:
        return
    for t in tensors:
        dist.all_reduce(t)


def sum_gradients(params: Sequence[torch.nn.Parameter], w: World, bucket_numel: int = 1 << 24) -> None:
    """Each parameter's ``.grad`` summed over the ranks, in place, in flattened buckets (few collectives).

    For a step whose loss every rank computed as its share of the step's sum (normalised by the whole
    step's totals), the result is the single-process gradient, whatever each rank's number of
    micro-batches, including none (no DDP: its hooks need every rank to run the same backwards). A
    parameter that got a gradient on no rank keeps ``None``, as in one process; one that got it on some
    ranks only counts zeros for the others. No-op on one rank."""
    if w.size == 1:
        return
    params = list(params)
    device = params[0].device if params else torch.device("cpu")
    has = torch.tensor([float(p.grad is not None) for p in params], device=device)
    dist.all_reduce(has)
    grads = []
    for p, n in zip(params, has.tolist()):
        if n > 0:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
    bucket: list[torch.Tensor] = []

    def flush() -> None:
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat)
        offset = 0
        for g in bucket:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()
        bucket.clear()

    for g in grads:
        if bucket and (g.dtype != bucket[0].dtype or g.device != bucket[0].device
                       or sum(b.numel() for b in bucket) + g.numel() > bucket_numel):
            flush()
        bucket.append(g)
    if bucket:
        flush()


def broadcast_parameters(module: torch.nn.Module, w: World) -> None:
    """Rank 0's parameters on every rank (as DDP does when it wraps a model); no-op on one rank."""
    if w.size == 1:
        return
    with torch.no_grad():
        for p in module.parameters():
            dist.broadcast(p.data, src=0)


# --- FSDP2 (optim.fsdp): the model sharded over the ranks rather than copied -------------------------


def require_launch_for_fsdp() -> None:
    """``optim.fsdp=true`` outside torchrun: a clear error (a config check, before anything is loaded)."""
    if not launched():
        raise ConfigError("optim.fsdp: FSDP2 shards the model over the processes of a torchrun launch "
                          "(torchrun --nproc_per_node N -m postlab ...); one process has nothing to shard it "
                          "over: set optim.fsdp=false (a checkpoint written under FSDP resumes so)")


def refuse_fsdp(reason: str) -> None:
    """A recipe's refusal of ``optim.fsdp=true`` where it does not support it (same error on every rank)."""
    raise ConfigError(f"optim.fsdp: {reason}; set optim.fsdp=false (docs/scaling.md)")


def check_fsdp(model: torch.nn.Module, w: World) -> None:
    """Refuse ``optim.fsdp=true`` where it cannot run: one process, frozen weights other than a LoRA
    model's base (FSDP2 shards frozen and trainable weights alike; only LoRA knows how to save them)."""
    if w.size == 1:
        refuse_fsdp("FSDP2 shards the model over the processes of a torchrun launch; one process has nothing to "
                    "shard it over")
    if not hasattr(model, "peft_config") and any(not p.requires_grad for p in model.parameters()):
        refuse_fsdp("supported for full fine-tuning and LoRA, and this model has other frozen weights")


def shard_model(model: torch.nn.Module, w: World, roots: Sequence[torch.nn.Module] | None = None, *,
                forward_only: bool = False) -> torch.nn.Module:
    """FSDP2: ``fully_shard`` each transformer block (the model's ``_no_split_modules`` classes: a Hugging
    Face model's decoder layers) and then the whole model, in place: each rank keeps 1/W of every weight,
    its gradient and its AdamW state; a block's weights are all-gathered for its forward and backward and
    its gradients reduce-scattered. Rank 0's weights are broadcast first (as DDP does). Every forward is
    a collective from here on: every rank must run it.

    ``roots``: the parts of the model that its objective calls one by one instead of calling the model
    (a reward model's body and score head): each is sharded as its own root after the blocks, and the
    model itself is not, so every call goes through a root's gather and its gradients' reduce-scatter.
    They must hold every parameter outside the blocks.

    ``forward_only``: a model that never runs a backward (an RL reference): its root frees the gathered
    weights after each forward too, which a root otherwise keeps for the backward that follows."""
    from torch.distributed.fsdp import fully_shard

    broadcast_parameters(model, w)
    blocks = set(getattr(model, "_no_split_modules", None) or ())
    layers = [m for m in model.modules() if type(m).__name__ in blocks and m is not model]
    if not layers:
        raise ConfigError(f"optim.fsdp: cannot find the transformer blocks of {type(model).__name__} to shard "
                          "(no _no_split_modules)")
    for layer in layers:
        fully_shard(layer)
    if not roots:
        fully_shard(model, reshard_after_forward=True if forward_only else None)  # None: FSDP's own choice
        return model
    covered = {id(p) for r in (*layers, *roots) for p in r.parameters()}
    missing = [n for n, p in model.named_parameters() if id(p) not in covered]
    if missing:
        raise ConfigError(f"optim.fsdp: parameters outside the sharded parts of {type(model).__name__}: {missing[:3]}")
    for root in roots:
        fully_shard(root)
    return model


@contextmanager
def unsharded(model: torch.nn.Module):
    """Inside the block, every weight of a model sharded by ``shard_model`` is gathered whole on every rank
    (a collective on entering; leaving frees them) and stays so across forwards: the forwards run no collectives,
    so the ranks may run different numbers of them (sampling, where each rank's rows end at different
    steps). Its whole weights take memory only for the block. No-op for a model that is not sharded."""
    from torch.distributed.fsdp import FSDPModule

    parts = [m for m in model.modules() if isinstance(m, FSDPModule)]  # pre-order: a root before its blocks
    if not parts:
        yield
        return
    inner = {id(x) for p in parts for x in p.modules() if x is not p}
    for part in parts:
        part.unshard()
        part.set_reshard_after_forward(False, recurse=False)
    try:
        yield
    finally:
        for part in parts:
            part.reshard()
            # blocks free their gathered weights after each forward; a root keeps them for the backward
            part.set_reshard_after_forward(id(part) in inner, recurse=False)


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether ``model`` was sharded by ``shard_model`` (its forwards and state gathers are collectives)."""
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in model.modules())  # the model, or its parts (``roots``)


def _full_options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """A sharded model's whole state dict, gathered to rank 0's CPU (a collective: every rank calls it;
    the other ranks get ``{}``), without the keys that alias another (tied embeddings), as
    ``model.state_dict()`` saves them; ``None`` for a model that is not sharded."""
    if not is_sharded(model):
        return None
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    full = get_model_state_dict(model, options=_full_options())
    seen: set[int] = set()
    aliases = set()
    for k, v in model.state_dict(keep_vars=True).items():
        if id(v) in seen:
            aliases.add(k)
        seen.add(id(v))
    return {k: v for k, v in full.items() if k not in aliases}


def full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """A sharded model's optimizer state, gathered whole to rank 0's CPU (a collective; ``{}`` on the
    other ranks) in ``optimizer.state_dict()``'s own format (parameters numbered in the optimizer's
    order), so a checkpoint does not depend on how it was written."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    osd = get_optimizer_state_dict(model, optimizer, options=_full_options())
    if not osd:
        return {}
    index = {n: i for i, n in enumerate(_optimizer_param_names(model, optimizer))}
    return {"state": {index[k]: v for k, v in osd["state"].items()},
            "param_groups": [{**g, "params": [index[n] for n in g["params"]]} for g in osd["param_groups"]]}


def load_full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, weights: dict[str, torch.Tensor],
                    optim_state: dict) -> None:
    """Load whole weights and an ``optimizer.state_dict()``-format state (every rank holds them) into a
    sharded model and its optimizer: each rank keeps its shards."""
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                         set_optimizer_state_dict)

    options = StateDictOptions(full_state_dict=True, strict=False)  # tied aliases are not saved
    set_model_state_dict(model, weights, options=options)
    names = _optimizer_param_names(model, optimizer)
    osd = {"state": {names[i]: v for i, v in optim_state["state"].items()},
           "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in optim_state["param_groups"]]}
    set_optimizer_state_dict(model, optimizer, osd, options=options)


def _optimizer_param_names(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    name = {id(p): n for n, p in model.named_parameters()}
    return [name[id(p)] for g in optimizer.param_groups for p in g["params"]]
