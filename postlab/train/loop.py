"""The training loop shared by pretraining, SFT, reward models and DPO: AdamW, warmup + cosine,
exact gradient accumulation, clipping, bf16 autocast, held-out eval, atomic checkpoints with exact
resume, Ctrl-C saves first, progress bar, metrics JSONL (+ TensorBoard).

What is trained is an ``Objective``: how examples become batches, how many loss units (target tokens,
pairs) a batch holds, the loss of a micro-batch, and the held-out evaluation. ``LMObjective`` is
next-token prediction; ``postlab.train.rm`` and ``postlab.train.dpo`` bring their own."""

from __future__ import annotations

import contextlib
import json
import math
import random
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from postlab.algos.lm import target_nll_sum, token_nll_sum
from postlab.data.collate import LMBatch, collate
from postlab.config import Section, save_config
from postlab.models.attention import varying_shape_attention
from postlab.errors import ConfigError, PostlabError
from postlab.models.lm_head import target_logits
from postlab.train import distributed
from postlab.train.common import CheckpointConfig, OptimConfig
from postlab.train.trackers import open_trackers
from postlab.utils.io import atomic_dir, atomic_write_text, clean_stale_tmp



class Objective(Protocol):
    def collate(self, examples: list[dict]) -> Any: ...

    def units(self, batch) -> int:
        """Loss units in a batch (target tokens, pairs): a step's loss is normalised by their total."""

    def num_tokens(self, batch) -> int:
        """Tokens processed, for throughput."""

    def loss(self, model, batch, total_units: int) -> tuple[torch.Tensor, dict[str, float]]:
        """The micro-batch's share of the step loss (divided by the step's total units) and metric
        contributions that sum over the step's micro-batches to the step's value."""

    def evaluate(self, model, examples: Sequence[dict], batch_size: int) -> dict[str, float]:
        """Held-out metrics, named ``eval_*``."""


@dataclass
class LMObjective:
    """Next-token cross-entropy on the labelled tokens (SFT, pretraining)."""

    pad_id: int
    bf16: bool = False

    def collate(self, examples):
        return collate(examples, self.pad_id)

    def units(self, batch: LMBatch) -> int:
        return batch.num_target_tokens

    def num_tokens(self, batch: LMBatch) -> int:
        return batch.num_tokens

    def loss(self, model, batch: LMBatch, total_units: int):
        """L = (1/N) Σ_t -log p_θ(y_t | y_<t), N = target tokens in the whole step (``causal_lm_loss``)."""
        nll_sum, _ = lm_nll_sum(model, batch)  # the forward under the loop's autocast
        return nll_sum / max(total_units, 1), {"loss": nll_sum.item() / max(total_units, 1)}

    def evaluate(self, model, examples, batch_size):
        return {"eval_loss": evaluate_loss(model, examples, self.pad_id, batch_size, self.bf16)}


class TrainingInterrupted(PostlabError):
    """Ctrl-C during training; a checkpoint was saved first."""


@dataclass
class TrainState:
    step: int = 0  # optimizer steps completed
    samples_seen: int = 0  # data position: examples consumed, across epochs
    tokens_seen: int = 0
    extra: dict = field(default_factory=dict)  # recipe state that must survive a resume (e.g. the KL coefficient)


@dataclass
class TrainResult:
    state: TrainState
    train_losses: list[float] = field(default_factory=list)  # one per step run in this process
    eval_loss: float | None = None
    eval_metrics: dict[str, float] = field(default_factory=dict)  # the objective's final held-out metrics
    num_examples: int = 0  # training examples the loop drew from
    planned_steps: int = 0  # the steps the epochs (or max_steps) asked for; more than state.step when max_seconds cut it


class _NoMetrics:
    """The metrics logger of a rank other than 0: rank 0 alone writes metrics."""

    def log(self, step: int, metrics: dict) -> None:
        pass

    def close(self) -> None:
        pass


def total_steps(optim: OptimConfig, num_examples: int) -> int:
    if optim.max_steps:
        return optim.max_steps
    per_step = optim.batch_size * optim.grad_accum
    return max(1, math.ceil(optim.epochs * num_examples / per_step))


def lr_factor(step: int, *, warmup: int, total: int, schedule: str, min_ratio: float) -> float:
    """Multiplier on the peak lr for optimizer step ``step`` (0-based): linear warmup, then cosine or flat."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def steps_in_time(step: int, total: int, *, ran: int, elapsed_s: float, first_step_s: float, max_seconds: float,
                  at_least: int = 0) -> int:
    """The total steps that end training within ``max_seconds``: ``step`` (steps done) plus the steps the time
    left holds at the mean time of the ``ran`` steps this process has run in ``elapsed_s`` (the first,
    ``first_step_s``, left out: it warms caches up; so ``total`` until two have run), never above ``total`` nor
    below ``step`` or ``at_least``. E.g. 10 of 100 steps in 55 s, the first 10 s: 5 s a step, and the 45 s left
    of a 100 s limit hold 9 more, so 19."""
    if max_seconds <= 0 or ran < 2:
        return total
    per_step = (elapsed_s - first_step_s) / (ran - 1)
    more = math.floor((max_seconds - elapsed_s) / per_step) if per_step > 0 else total
    return min(total, max(step, at_least, step + max(0, more)))


def example_index(k: int, n: int, seed: int) -> int:
    """Index of the k-th example drawn: a fresh seeded permutation per epoch, so position k is resumable."""
    epoch, pos = divmod(k, n)
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return int(torch.randperm(n, generator=g)[pos])


def example_length(example: dict) -> int:
    """Tokens in an example: its ``num_tokens`` when it says, else the sum over its token-id lists (one
    sequence, or chosen + rejected)."""
    if "num_tokens" in example:
        return example["num_tokens"]
    return sum(len(v) for v in example.values() if isinstance(v, (list, tuple)) and v and isinstance(v[0], int))


class ExampleOrder:
    """Which example comes k-th: ``example_index``'s seeded permutation per epoch, optionally with each
    window of ``window`` consecutive positions sorted by length (longest first), so micro-batches
    hold similar lengths. Still a pure function of (seed, epoch, lengths): resume stays exact."""

    def __init__(self, n: int, seed: int, lengths: Sequence[int] | None = None, window: int = 0):
        self.n, self.seed, self.lengths, self.window = n, seed, lengths, window
        self._epoch, self._order = -1, []

    def _epoch_order(self, epoch: int) -> list[int]:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            order = torch.randperm(self.n, generator=g).tolist()
            if self.lengths is not None and self.window > 1:
                order = [i for w in range(0, self.n, self.window)
                         for i in sorted(order[w : w + self.window], key=lambda i: -self.lengths[i])]
            self._epoch, self._order = epoch, order
        return self._order

    def __call__(self, k: int) -> int:
        epoch, pos = divmod(k, self.n)
        return self._epoch_order(epoch)[pos]


class MetricsLogger:
    """metrics.jsonl always; TensorBoard, Weights & Biases and MLflow when ``report_to`` asks
    (postlab.train.trackers), each given the run's config.yaml first.

    On resume, metrics.jsonl keeps its lines up to the checkpoint's step, and the steps after it are logged
    again as training repeats them. A tracker cannot take back what it was sent, so one that continues the
    interrupted attempt's run skips each metric at the steps that attempt already logged it; a tracker
    new to the run is first sent the kept lines, so its history matches metrics.jsonl."""

    def __init__(self, run_dir: Path, report_to: Sequence[str], resume_step: int | None):
        self.path = run_dir / "metrics.jsonl"
        lines = self.path.read_text().splitlines() if resume_step is not None and self.path.exists() else []
        earlier = [json.loads(ln) for ln in lines if ln]
        kept = [m for m in earlier if m.get("step", 0) <= resume_step]
        if resume_step is not None and self.path.exists():  # drop lines logged after the checkpoint
            atomic_write_text(self.path, "".join(json.dumps(m) + "\n" for m in kept))
        elif self.path.exists():
            self.path.unlink()
        self.logged_at: dict[str, int] = {}  # metric -> the last step the interrupted attempt logged it at
        for m in earlier:
            for k in m:
                self.logged_at[k] = max(self.logged_at.get(k, -1), m.get("step", 0))
        config_path = run_dir / "config.yaml"
        config = (yaml.safe_load(config_path.read_text()) or {}) if config_path.exists() else {}
        self.trackers = open_trackers(run_dir, report_to, config, resuming=resume_step is not None)
        for tracker in self.trackers:
            if not tracker.continued:
                for m in kept:
                    tracker.log(m.get("step", 0), self._scalars(m))

    def log(self, step: int, metrics: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        scalars = self._scalars(metrics)
        for tracker in self.trackers:
            new = scalars if not tracker.continued else {k: v for k, v in scalars.items() if step > self.logged_at.get(k, -1)}
            if new:
                tracker.log(step, new)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()

    @staticmethod
    def _scalars(metrics: dict) -> dict[str, float]:
        return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and k != "step"}


class Checkpointer:
    """``run_dir/checkpoints/step-NNNNNNN/``: trainable weights (safetensors), optimizer, scheduler,
    RNG and trainer state. Each is written in one atomic rename, so any directory present is complete."""

    PATTERN = re.compile(r"^step-(\d+)$")

    def __init__(self, run_dir: Path, keep_last: int):
        self.root = run_dir / "checkpoints"
        self.keep_last = keep_last

    def all(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        dirs = [p for p in self.root.iterdir() if self.PATTERN.match(p.name)]
        return sorted(dirs, key=lambda p: int(self.PATTERN.match(p.name).group(1)))

    def latest(self) -> Path | None:
        found = self.all()
        return found[-1] if found else None

    def save(self, state: TrainState, model, optimizer, scheduler) -> Path:
        """Write a checkpoint (rank 0). A model sharded by FSDP (``optim.fsdp``) is gathered first: every
        rank calls this, rank 0 writes the whole weights and optimizer state, in the same format."""
        final = self.root / f"step-{state.step:07d}"
        trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        full = distributed.full_state_dict(model)  # None unless sharded
        if full is not None:
            optim_state = distributed.full_optimizer_state(model, optimizer)
            if not distributed.is_main():
                return final
            weights = {n: full[n].contiguous() for n in trainable}
        else:
            params = dict(model.named_parameters())
            weights = {n: params[n].detach().contiguous() for n in trainable}
            optim_state = optimizer.state_dict()
        clean_stale_tmp(self.root)
        with atomic_dir(final) as tmp:
            save_file(weights, str(tmp / "model.safetensors"))
            torch.save(optim_state, tmp / "optimizer.pt")
            torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
            torch.save({"torch": torch.get_rng_state()}, tmp / "rng.pt")
            (tmp / "python_rng.json").write_text(json.dumps(random.getstate()))
            (tmp / "trainer_state.json").write_text(json.dumps(state.__dict__))
        for old in self.all()[: -self.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def load(self, path: Path, model, optimizer, scheduler) -> TrainState:
        weights = load_file(str(path / "model.safetensors"))
        params = dict(model.named_parameters())
        trainable = {n for n, p in params.items() if p.requires_grad}
        if set(weights) != trainable:
            raise PostlabError(f"{path}: checkpoint weights do not match this model's trainable parameters "
                               "(did the model or lora settings change since the run started?)")
        optim_state = torch.load(path / "optimizer.pt", weights_only=True)
        if distributed.is_sharded(model):  # every rank reads the whole state and keeps its shards
            distributed.load_full_state(model, optimizer, weights, optim_state)
        else:
            with torch.no_grad():
                for n, t in weights.items():
                    params[n].copy_(t)
            optimizer.load_state_dict(optim_state)
        scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
        torch.set_rng_state(torch.load(path / "rng.pt", weights_only=True)["torch"])
        py_state = json.loads((path / "python_rng.json").read_text())
        random.setstate((py_state[0], tuple(py_state[1]), py_state[2]))
        return TrainState(**json.loads((path / "trainer_state.json").read_text()))


def latest_checkpoint(run_dir: Path, ckpt: CheckpointConfig) -> Path | None:
    """The newest checkpoint in ``run_dir`` to resume from, or None; a ``run_dir`` holding checkpoints is
    refused unless ``checkpoint.resume=true``."""
    latest = Checkpointer(run_dir, ckpt.keep_last).latest()
    if latest is not None and not ckpt.resume:
        raise ConfigError(f"{run_dir} already has checkpoints ({latest.name}); rerun with checkpoint.resume=true to "
                          "continue from the newest, or choose another out_dir")
    return latest


def start_run_dir(cfg: Section, run_dir: Path, ckpt: CheckpointConfig) -> None:
    """A recipe's first step: refuse ``run_dir`` (``latest_checkpoint``) before anything in it is written,
    then save ``cfg`` there as config.yaml (rank 0 only, under torchrun)."""
    latest_checkpoint(run_dir, ckpt)
    run_dir.mkdir(parents=True, exist_ok=True)
    if distributed.is_main():
        save_config(cfg, run_dir / "config.yaml")


def say_where_training_starts(run_dir: Path, ckpt: CheckpointConfig, latest: Path | None, desc: str) -> None:
    if not distributed.is_main():
        return
    if latest is not None:
        print(f"{desc}: resuming from {latest.name}", file=sys.stderr)
    elif ckpt.resume:
        print(f"{desc}: no checkpoint in {run_dir / 'checkpoints'} to resume from; starting fresh at step 0",
              file=sys.stderr)


def _autocast(model, enabled: bool):
    device_type = next(model.parameters()).device.type
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=enabled)


def _forward(model, batch: LMBatch):
    device = next(model.parameters()).device
    return model(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device)).logits


def lm_nll_sum(model, batch: LMBatch) -> tuple[torch.Tensor, int]:
    """(Σ_t -log p_θ(y_t | y_<t) over the batch's target tokens as a 0-dim fp32 tensor, their count). The forward
    runs under the caller's autocast, with the vocabulary head only at the target positions where the model allows
    it (``models.lm_head``); the loss is computed in fp32 by itself."""
    device = next(model.parameters()).device
    labels = batch.labels.to(device)
    packed = target_logits(model, batch.input_ids.to(device), batch.attention_mask.to(device), labels)
    logits = _forward(model, batch) if packed is None else None
    with torch.autocast(device_type=device.type, enabled=False):
        if packed is None:
            return token_nll_sum(logits, labels)
        return target_nll_sum(packed.logits, packed.targets), packed.targets.numel()


@torch.no_grad()
def evaluate_loss(model, examples: Sequence[dict], pad_id: int, batch_size: int, bf16: bool) -> float:
    """Token-mean next-token loss over ``examples``."""
    was_training = model.training
    model.eval()
    nll, n = 0.0, 0
    for i in range(0, len(examples), batch_size):
        batch = collate(list(examples[i : i + batch_size]), pad_id)
        with _autocast(model, bf16):
            s, c = lm_nll_sum(model, batch)
        nll, n = nll + s.item(), n + c
    model.train(was_training)
    return nll / max(n, 1)


def train_loop(
    *,
    model: torch.nn.Module,
    examples: Sequence[dict],
    eval_examples: Sequence[dict],
    pad_id: int | None = None,
    optim: OptimConfig,
    ckpt: CheckpointConfig,
    run_dir: Path,
    objective: Objective | None = None,
    callbacks: Sequence[Callable[[TrainState, dict], None]] = (),
    desc: str = "train",
) -> TrainResult:
    """Run (or resume) training until ``total_steps``; ``callbacks(state, metrics)`` run after each
    step, before its metrics are logged, and may add metrics.
    Without an ``objective``, next-token prediction padded with ``pad_id``.

    Under torchrun (``postlab.train.distributed``) ``optim.batch_size`` is the global micro-batch: each
    of the W ranks runs its contiguous 1/W share of every micro-batch, the step's loss is still
    normalised by the units of the whole global step, and DDP's gradient mean is scaled back to that
    sum, so W ranks take the single-process step. Rank 0 alone evaluates, runs ``callbacks``, logs,
    checkpoints and shows progress; every rank returns rank 0's final held-out metrics.

    With ``optim.fsdp`` the model is sharded in place by FSDP2 (``distributed.shard_model``) instead of
    wrapped in DDP; every forward is then a collective, so every rank runs the held-out evals (rank 0
    logs them) and takes part in each checkpoint (rank 0 writes); ``callbacks`` must not run the model.
    After the loop the model stays sharded: gather it with ``distributed.full_state_dict``."""
    if objective is None:
        if pad_id is None:
            raise ValueError("train_loop needs an objective or a pad_id")
        objective = LMObjective(pad_id, bf16=optim.bf16)
    if not examples:
        raise PostlabError("no training examples")
    world = distributed.world()
    distributed.local_batch_size(optim.batch_size, world)  # refuses a global batch that does not split evenly
    main = world.is_main
    fsdp = optim.fsdp
    if fsdp:
        distributed.check_fsdp(model, world)
        roots = objective.fsdp_roots(model) if hasattr(objective, "fsdp_roots") else None  # parts called apart
        distributed.shard_model(model, world, roots)  # before the optimizer: its parameters become shards
    run_dir.mkdir(parents=True, exist_ok=True)
    n, planned = len(examples), total_steps(optim, len(examples))
    T = planned  # set by optim.max_seconds once the pace is known (the schedule reads it at each step)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=optim.lr, betas=(optim.adam_beta1, optim.adam_beta2),
                                  eps=optim.adam_eps, weight_decay=optim.weight_decay, fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(
        s, warmup=optim.warmup_steps, total=T, schedule=optim.schedule, min_ratio=optim.min_lr_ratio))
    checkpointer = Checkpointer(run_dir, ckpt.keep_last)
    state, latest = TrainState(), latest_checkpoint(run_dir, ckpt)
    say_where_training_starts(run_dir, ckpt, latest, desc)
    if latest is not None:
        state = checkpointer.load(latest, model, optimizer, scheduler)
        T = min(T, state.extra.get("time_limited_steps", T))  # a time limit's cut survives a resume
    logger = (MetricsLogger(run_dir, ckpt.report_to, resume_step=state.step if latest is not None else None)
              if main else _NoMetrics())
    result = TrainResult(state=state, num_examples=n, planned_steps=planned)
    started, first_step_s, ran = time.perf_counter(), 0.0, 0
    # a time limit is kept from a tenth of the planned steps on (3 at least): group_by_length puts each window's
    # longest batches first, and timing only the first steps of one (1.5x the mean in run e5) cut SFT to half
    timed_from = max(3, math.ceil(0.1 * planned))
    saved_at = state.step if latest is not None else -1
    per_step = optim.batch_size * optim.grad_accum
    lengths = [example_length(e) for e in examples]
    order = ExampleOrder(n, optim.seed, lengths if optim.group_by_length else None, window=16 * optim.batch_size)
    attention = contextlib.ExitStack()
    if len(set(lengths)) > 1:  # batches pad to a new length most steps: no per-shape cuDNN attention plans
        attention.enter_context(varying_shape_attention())  # (measured 1.42x faster on an H200: docs/benchmarks.md)
    model.train()
    forward_model = torch.compile(model) if optim.compile else model
    step_loss = distributed.data_parallel_loss(objective.loss, forward_model, world)  # (batch, N) -> (loss, stats)
    bar = tqdm(total=T, initial=state.step, desc=desc, disable=not (ckpt.progress and main), dynamic_ncols=True,
               unit="step")
    try:
        while state.step < T:
            t0 = time.perf_counter()
            step_examples = [examples[order(state.samples_seen + j)] for j in range(per_step)]
            micro = [objective.collate(distributed.shard(step_examples[j : j + optim.batch_size], world))
                     for j in range(0, per_step, optim.batch_size)]  # this rank's share of each micro-batch
            units = sum(objective.units(b) for b in micro)
            N = int(distributed.sum_over_ranks({"units": units}, world)["units"])  # loss units in the whole global step
            step_stats: dict[str, float] = {}
            tokens = 0
            for i, batch in enumerate(micro):
                with distributed.sync_gradients(step_loss, i == len(micro) - 1), _autocast(model, optim.bf16):
                    loss, stats = step_loss(batch, N)
                    # DDP (and FSDP) average gradients over the W ranks; each rank's loss is its share of the step's sum
                    (loss * world.size if world.size > 1 else loss).backward()
                for k, v in stats.items():
                    step_stats[k] = step_stats.get(k, 0.0) + v
                tokens += objective.num_tokens(batch)
            step_stats = distributed.sum_over_ranks({**step_stats, "num_tokens": tokens}, world)
            tokens = int(step_stats.pop("num_tokens"))
            grad_norm = torch.nn.utils.clip_grad_norm_(params, optim.max_grad_norm if optim.max_grad_norm > 0 else float("inf"))
            if hasattr(grad_norm, "full_tensor"):  # FSDP: the norm of sharded gradients is a DTensor
                grad_norm = grad_norm.full_tensor()
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.samples_seen += per_step
            state.tokens_seen += tokens
            dt = time.perf_counter() - t0
            ran += 1
            first_step_s = dt if ran == 1 else first_step_s
            if optim.max_seconds and ran >= timed_from:  # every rank ends at rank 0's count
                fit = distributed.from_main(steps_in_time(
                    state.step, planned, ran=ran, elapsed_s=time.perf_counter() - started, first_step_s=first_step_s,
                    max_seconds=optim.max_seconds, at_least=math.ceil(optim.max_seconds_floor * planned)), world)
                if fit != T:  # the estimate moves either way as the mean step time settles
                    T = state.extra["time_limited_steps"] = fit
                    bar.total = T
                    bar.refresh()
            metrics = {**step_stats, "lr": lr, "grad_norm": float(grad_norm), "num_tokens": state.tokens_seen,
                       "tokens_per_s": tokens / dt, "epoch": state.samples_seen / n}
            result.train_losses.append(metrics["loss"])
            evaluated = (main or fsdp) and ckpt.eval_every and eval_examples and state.step % ckpt.eval_every == 0 and state.step < T
            if evaluated:
                metrics.update(objective.evaluate(model, eval_examples, optim.batch_size))
            keys = len(metrics)
            for cb in callbacks if main else ():  # may add metrics (e.g. gold/* from an eval callback)
                cb(state, metrics)
            if state.step % ckpt.log_every == 0 or evaluated or len(metrics) > keys:
                logger.log(state.step, metrics)
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", tok_s=f"{metrics['tokens_per_s']:.0f}")
            if (main or fsdp) and ckpt.save_every and state.step % ckpt.save_every == 0 and state.step < T:
                checkpointer.save(state, model, optimizer, scheduler)
                saved_at = state.step
    except KeyboardInterrupt:
        bar.close()
        where = "no step completed yet; nothing saved"
        if fsdp:  # saving would gather from every rank, which may each be elsewhere now
            where = (f"newest checkpoint is step {saved_at}" if saved_at >= 0 else "nothing saved") + \
                " (optim.fsdp: no checkpoint is saved on Ctrl-C)"
        elif not main:
            where = "rank 0 saves the checkpoint"
        elif state.step > max(saved_at, 0):
            where = f"checkpoint saved at {checkpointer.save(state, model, optimizer, scheduler)}"
        elif saved_at >= 0:
            where = f"newest checkpoint is step {saved_at}"
        logger.close()
        raise TrainingInterrupted(f"interrupted at step {state.step}/{T}; {where}. "
                                  "Rerun with checkpoint.resume=true to continue.") from None
    finally:
        attention.close()
    bar.close()
    if (main or fsdp) and saved_at != state.step:
        checkpointer.save(state, model, optimizer, scheduler)
    if (main or fsdp) and eval_examples:  # FSDP: every rank runs the model, rank 0 logs
        result.eval_metrics = objective.evaluate(model, eval_examples, optim.batch_size)
        logger.log(state.step, result.eval_metrics)
    result.eval_metrics = distributed.from_main(result.eval_metrics, world)
    result.eval_loss = result.eval_metrics.get("eval_loss")
    logger.close()
    return result
