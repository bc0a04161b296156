"""Components shared by the RL recipes (PPO, GRPO/RLOO): reward sources, per-token log-probs and
values of rollouts, the reference policy, the prompt stream, and the outer loop (checkpoints,
resume, Ctrl-C, progress, metrics, evals during training)."""

from __future__ import annotations

import importlib
import itertools
import math
import random
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch

from pydantic import Field, model_validator
from tqdm.auto import tqdm

from postlab.algos.lm import token_logprobs
from postlab.config import Section
from postlab.errors import ConfigError
from postlab.machine import AutoBF16
from postlab.models.attention import varying_shape_attention
from postlab.rollout.llama_decode import base_causal_lm
from postlab.rollout.types import Rollout
from postlab.tasks.suite import Item
from postlab.train.common import CheckpointConfig
from postlab.train.shared_prompt import positions, response_logits
from postlab.rollout.sampling import SamplingParams, row_params
from postlab.rollout.types import cat_rollouts
from postlab.train import distributed
from postlab.train.loop import (Checkpointer, MetricsLogger, TrainingInterrupted, TrainState, _NoMetrics,
                                latest_checkpoint, say_where_training_starts)

RewardFn = Callable[[list[Item], list[str]], list[float]]


class RewardConfig(Section):
    """Where the scalar reward of a response comes from."""

    source: str = Field("gold", description="gold | simulated | rm:<reward model dir> | python:<module>:<function(item, response) -> float>")
    missing_eos_penalty: float | None = Field(None, ge=0, description="subtracted from the score of a response that hit max_new_tokens without EOS (TRL's missing_eos_penalty; None = off)")

    @model_validator(mode="before")
    @classmethod
    def _old_eos_penalty_name(cls, data):
        """`eos_penalty=-p`, the old name (for the score given instead), means `missing_eos_penalty=p` now."""
        if isinstance(data, dict) and "eos_penalty" in data:
            data = dict(data)
            old = data.pop("eos_penalty")
            if old is not None and old > 0:
                raise ValueError(f"eos_penalty={old}: the old name takes a score <= 0; use missing_eos_penalty={-old}")
            data["missing_eos_penalty"] = None if old is None else -old
        return data

    def check(self) -> None:
        kind = self.source.split(":", 1)[0]
        if kind not in ("gold", "simulated", "rm", "python"):
            raise ConfigError(f"reward.source: expected gold, simulated, rm:<dir> or python:<module>:<fn>, got {self.source!r}")
        if kind == "rm" and not Path(self.source[3:]).is_dir():
            raise ConfigError(f"reward.source: reward model directory not found: {self.source[3:]}")
        if kind == "python" and self.source.count(":") != 2:
            raise ConfigError(f"reward.source: expected python:<module>:<function>, got {self.source!r}")


def make_reward_fn(cfg: RewardConfig, device: str = "cpu", bf16: bool = False) -> tuple[RewardFn, str]:
    """(reward function over (items, responses), its short name for `rewards/<name>/mean`); `bf16`
    scores with a reward model under bf16 autocast."""
    kind, _, rest = cfg.source.partition(":")
    if kind == "gold":
        from postlab.evals.hacking import RewardHackingWatch
        from postlab.raters.gold import GoldRater

        g, watch = GoldRater(), RewardHackingWatch()

        def gold_reward(items, texts):
            results = [g.grade(it, t) for it, t in zip(items, texts)]
            watch.observe(items, texts, results)
            return [r.score for r in results]

        gold_reward.watch = watch  # optimising the ruler itself: watch for full marks that look degenerate
        return gold_reward, "gold"
    if kind == "simulated":
        from postlab.raters.simulated import default_pool

        pool = default_pool()
        return (lambda items, texts: [pool.score(it, t) for it, t in zip(items, texts)]), "simulated"
    if kind == "rm":
        from postlab.raters.reward_model import RewardModelRater

        rm = RewardModelRater(rest, device=device, bf16=bf16)
        return (lambda items, texts: rm.score_texts([it.messages for it in items], texts)), "rm"
    module, _, name = rest.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"reward.source: cannot import {rest!r}: {e}") from None
    return (lambda items, texts: [float(fn(it, t)) for it, t in zip(items, texts)]), name


def reward_watch(reward_fn: RewardFn, run_dir: Path) -> list:
    """The reward-hacking watch as a training callback, when the reward is the gold rater (else none)."""
    watch = getattr(reward_fn, "watch", None)
    if watch is None:
        return []
    watch.run_dir = Path(run_dir)
    return [watch]


def require_sampling_seed(sampling) -> None:
    if sampling.seed is None:
        raise ConfigError("sampling.seed: RL needs a seed so resumed runs sample what the uninterrupted run would")


def apply_eos_penalty(scores: torch.Tensor, finished: torch.Tensor, penalty: float | None) -> torch.Tensor:
    """The "EOS trick" (Huang et al. 2024) as TRL applies it: s − p for a response that never stopped.
    scores, finished: (B,)."""
    if penalty is None:
        return scores
    return scores - penalty * (~finished).to(scores.dtype)


def response_logprobs(model, rollout: Rollout, temperature: float, *, entropy: bool = False
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log π(y_t | x, y_<t) at the sampling temperature for every response token, (B, R) fp32, and
    optionally the per-token entropy of π (B, R). Positions follow the left-padded prompt exactly as
    the rollout engine placed them; rows sharing a prompt run it once (train/shared_prompt.py)."""
    device = next(model.parameters()).device
    logits = response_logits(model, rollout)  # (B, R, V) in the model's dtype; chunked in fp32 by token_logprobs
    logp, ent = token_logprobs(logits, rollout.response_ids.to(device), temperature, entropy=entropy)
    return logp * rollout.response_mask.to(device), ent


def response_values(value_model, rollout: Rollout) -> torch.Tensor:
    """V(s_t) for every response token from a value model (a body + scalar `score` head), read at
    the position that predicts token t. (B, R) fp32."""
    inner = value_model.get_base_model() if hasattr(value_model, "get_base_model") else value_model
    device = next(inner.parameters()).device
    ids, mask = rollout.input_ids.to(device), rollout.attention_mask.to(device)
    P, R = rollout.prompt_ids.size(1), rollout.response_ids.size(1)
    with varying_shape_attention():
        h = inner.model(input_ids=ids, attention_mask=mask, position_ids=positions(mask)).last_hidden_state
    return inner.score(h[:, P - 1 : P + R - 1]).squeeze(-1).float() * rollout.response_mask.to(device)


def final_norm(model) -> torch.nn.Module | None:
    """The norm that ends a causal LM's body (its output is the last hidden state the LM head reads), or None."""
    norm = getattr(getattr(base_causal_lm(model), "model", None), "norm", None)
    return norm if isinstance(norm, torch.nn.Module) else None


def response_logprobs_and_values(model, value_head: torch.nn.Module, rollout: Rollout, temperature: float, *,
                                 entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """PPO's two needs from one pass of the policy, with a value head on its own backbone (``value_head=shared``):
    ``response_logprobs`` (B, R) and its entropy, and V(s_t) = head(h_t) (B, R) fp32, h_t the policy's last hidden
    state at the position that predicts token t (the one its log-probability is read from). The hidden states are
    the body's final norm output, caught by a hook: the pass is ``response_logprobs``' own, shared prompts and all."""
    seen: list[torch.Tensor] = []
    handle = final_norm(model).register_forward_hook(lambda module, args, out: seen.append(out))
    try:
        logp, ent = response_logprobs(model, rollout, temperature, entropy=entropy)
    finally:
        handle.remove()
    h = seen[-1]  # the pass that ran the responses: (B, P + R, H) plain, or (B, R, H) after a shared prompt
    P, R = rollout.prompt_ids.size(1), rollout.response_ids.size(1)
    if h.size(1) != R:
        h = h[:, P - 1 : P + R - 1]
    values = value_head(h).squeeze(-1).float() * rollout.response_mask.to(h.device)
    return logp, ent, values


@contextmanager
def reference_mode(policy, ref_model):
    """The frozen reference π_ref: the separate copy if there is one, else the policy with its LoRA
    adapters disabled (no second copy of the weights)."""
    if ref_model is not None:
        yield ref_model
    else:
        with policy.disable_adapter():
            yield policy


def prompt_batches(items: Sequence[Item], batch: int, seed: int, start: int) -> Callable[[int], list[Item]]:
    """batch_at(step) -> the step's prompts: epochs of seeded shuffles, a pure function of the step
    (so a resumed run draws exactly what the uninterrupted run would have)."""

    def batch_at(step: int) -> list[Item]:
        out = []
        for j in range(batch):
            k = (step - start) * batch + j if step >= start else j
            epoch, i = divmod(k, len(items))
            order = list(range(len(items)))
            random.Random(seed * 1_000_003 + epoch).shuffle(order)
            out.append(items[order[i]])
        return out

    return batch_at


class PhaseTimes:
    """Wall seconds of a step's phases, logged as ``time/<phase>_s`` beside ``time/step_s``.

    >>> t = PhaseTimes()
    >>> with t("sample"): ...
    >>> t.metrics()  # {"time/sample_s": ...}
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - t0

    def metrics(self) -> dict[str, float]:
        return {f"time/{k}_s": v for k, v in self.seconds.items()}


def autocast(model, enabled: bool):
    device_type = next(model.parameters()).device.type
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16) if enabled else nullcontext()


def run_rl_loop(*, modules: torch.nn.Module, optimizer, scheduler, step_fn: Callable[[TrainState], dict],
                total_steps: int, run_dir: Path, ckpt: CheckpointConfig, callbacks: Sequence = (),
                desc: str = "rl", init_extra: dict | None = None) -> TrainState:
    """Run step_fn until total_steps with atomic checkpoints, exact resume (weights, optimizer, RNG,
    step, `state.extra`), Ctrl-C saving first, a progress bar and metrics.jsonl.

    Under torchrun every rank runs step_fn (which shares the step's work and returns the same metrics
    on every rank); rank 0 alone runs `callbacks`, logs, checkpoints and shows progress, and every rank
    resumes from the same checkpoint, whatever world size wrote it."""
    main = distributed.is_main()
    sharded = distributed.is_sharded(modules)  # every rank takes part in each checkpoint (rank 0 writes)
    checkpointer = Checkpointer(run_dir, ckpt.keep_last)
    state, latest = TrainState(extra=dict(init_extra or {})), latest_checkpoint(run_dir, ckpt)
    say_where_training_starts(run_dir, ckpt, latest, desc)
    if latest is not None:
        state = checkpointer.load(latest, modules, optimizer, scheduler)
    logger = (MetricsLogger(run_dir, ckpt.report_to, resume_step=state.step if latest is not None else None)
              if main else _NoMetrics())
    saved_at = state.step if latest is not None else -1
    bar = tqdm(total=total_steps, initial=state.step, desc=desc, disable=not (ckpt.progress and main),
               dynamic_ncols=True, unit="step")
    try:
        while state.step < total_steps:
            t0 = time.perf_counter()
            metrics = step_fn(state)
            scheduler.step()
            state.step += 1
            metrics["time/step_s"] = time.perf_counter() - t0
            measured = len(metrics)
            for cb in callbacks if main else ():
                cb(state, metrics)
            # a step whose callbacks measured something (a held-out eval, an alarm, the probe) is always written
            if state.step % ckpt.log_every == 0 or len(metrics) > measured:
                logger.log(state.step, metrics)
            bar.update(1)
            shown = {k: metrics[k] for k in ("objective/scores", "reward", "objective/kl", "kl", "gold/score") if k in metrics}
            bar.set_postfix({k.split("/")[-1]: f"{v:.3f}" for k, v in shown.items()})
            if (main or sharded) and ckpt.save_every and state.step % ckpt.save_every == 0 and state.step < total_steps:
                checkpointer.save(state, modules, optimizer, scheduler)
                saved_at = state.step
    except KeyboardInterrupt:
        bar.close()
        where = "no step completed yet; nothing saved"
        if sharded:  # saving would gather from every rank, which may each be elsewhere now
            where = (f"newest checkpoint is step {saved_at}" if saved_at >= 0 else "nothing saved") + \
                " (optim.fsdp: no checkpoint is saved on Ctrl-C)"
        elif not main:
            where = "rank 0 saves the checkpoint"
        elif state.step > max(saved_at, 0):
            where = f"checkpoint saved at {checkpointer.save(state, modules, optimizer, scheduler)}"
        logger.close()
        raise TrainingInterrupted(f"interrupted at step {state.step}/{total_steps}; {where}. "
                                  "Rerun with checkpoint.resume=true to continue.") from None
    bar.close()
    if (main or sharded) and saved_at != state.step:
        checkpointer.save(state, modules, optimizer, scheduler)
    logger.close()
    return state


def row_sampling(params: SamplingParams, seed: int, rows: Sequence[int]) -> list[SamplingParams]:
    """One SamplingParams per row, each with its own seed from the round's ``seed`` and the row's
    index ``g`` in the whole step: a row samples the same tokens whichever rank, and batch, it is in
    (``TorchEngine``'s per-row generators), so rollouts do not depend on the world size."""
    return row_params(params, seed, rows)


def gather_rows(rollout: Rollout, columns: Sequence[torch.Tensor], device, w: distributed.World
                ) -> tuple[Rollout, list[torch.Tensor]]:
    """Every rank's rows (its contiguous share of the step's prompts) as the whole step's rollout and
    per-row columns (B,), rank 0's rows first, on every rank and on `device`; unchanged on one rank."""
    if w.size == 1:
        return rollout, list(columns)
    parts = distributed.gather((rollout.to("cpu"), [c.cpu() for c in columns]), w)
    whole = cat_rollouts([r for r, _ in parts]).to(device)
    return whole, [torch.cat([cols[i] for _, cols in parts]).to(device) for i in range(len(columns))]


def share_reward_watch(reward_fn: RewardFn, w: distributed.World) -> None:
    """Under torchrun: rank 0's reward-hacking watch (rank 0 alone runs callbacks) takes the samples
    every rank's watch observed, in rank order; the other ranks drop theirs."""
    watch = getattr(reward_fn, "watch", None)
    if watch is not None and w.size > 1:
        parts = distributed.gather(watch.swap_pending([]), w)
        watch.swap_pending([x for part in parts for x in part] if w.is_main else [])


class RankMicroBatches(list):
    """This rank's micro-batches of a step's rows (a list of row lists), and ``padding``: how many more
    forwards (and backwards) of the ``filler`` rows it runs, with their results discarded, so that every
    rank runs as many as the busiest one. A model sharded by FSDP needs that (each of its forwards and
    backwards is a collective); otherwise ``padding`` is 0 and ranks run what they have, even nothing."""

    padding: int = 0
    filler: list[int] = []

    @classmethod
    def joined(cls, parts: Sequence[RankMicroBatches]) -> RankMicroBatches:
        """Several minibatches' micro-batches as one sequence of passes (their paddings added up)."""
        out = cls(idx for part in parts for idx in part)
        out.padding = sum(p.padding for p in parts)
        out.filler = next((p.filler for p in parts if p.filler), [])
        return out


def rank_micro_batches(rows: Sequence[int], size: int, w: distributed.World, *, equal: bool) -> RankMicroBatches:
    """Rank ``w.rank``'s contiguous share of ``rows`` (``distributed.share``) cut into micro-batches of
    ``size``; ``equal``: padded to the busiest rank's count (the first rank's share is the largest)."""
    mine = distributed.share(rows, w)
    out = RankMicroBatches(mine[s : s + size] for s in range(0, len(mine), size))
    if equal and rows:
        most = math.ceil(math.ceil(len(rows) / w.size) / size)  # the micro-batches of the first rank's share
        out.padding, out.filler = most - len(out), [rows[0]]
    return out


def run_padding(r: Rollout, micro_batches: Sequence[list[int]], fn: Callable[[Rollout], object]) -> None:
    """``fn`` on the filler rows, once per padding micro-batch (``RankMicroBatches``); results dropped."""
    for _ in range(getattr(micro_batches, "padding", 0)):
        fn(rollout_subset(r, micro_batches.filler))


def over_micro_batches_on_ranks(r: Rollout, micro_batches: Sequence[list[int]], n: int,
                                fn: Callable[[Rollout], Sequence[torch.Tensor]], device,
                                w: distributed.World) -> list[torch.Tensor]:
    """`over_micro_batches` over this rank's micro-batches (possibly none; then its padding, if any: see
    ``RankMicroBatches``), summed over the ranks: each row is computed by one rank, so every rank holds
    the whole batch's n (B, R) fp32 tensors."""
    outs = over_micro_batches(r, micro_batches, fn) or [
        torch.zeros(r.response_ids.shape, dtype=torch.float32, device=device) for _ in range(n)]
    run_padding(r, micro_batches, fn)
    distributed.sum_tensors_(outs, w)
    return outs


def backward_share(loss: torch.Tensor, sharded: bool, w: distributed.World) -> None:
    """Backpropagate this rank's share of a step's loss (its terms divided by the whole step's totals).
    A sharded model's backward reduce-scatters the gradients to their mean over the W ranks, so the share
    is scaled by W to make it their sum (unsharded, ``distributed.sum_gradients`` sums them after)."""
    (loss * w.size if sharded and w.size > 1 else loss).backward()


@contextmanager
def sampling_weights(policy, engine):
    """Around sampling from a sharded policy (``optim.fsdp``): its whole weights on every rank for the
    block (``distributed.unsharded``: each rank then decodes its own rows, for as many steps as they
    take), and the engine's cached decode weights dropped after it (they may alias the freed ones)."""
    if not distributed.is_sharded(policy):
        yield
        return
    try:
        with distributed.unsharded(policy):
            yield
    finally:
        if hasattr(engine, "release_weights"):
            engine.release_weights()


def entropy_mean(ent: torch.Tensor | None, mask: torch.Tensor) -> float:
    if ent is None:
        return float("nan")
    m = mask.to(ent.device).float()
    return float((ent * m).sum() / m.sum().clamp_min(1))




def rollout_subset(r: Rollout, idx: list[int] | torch.Tensor) -> Rollout:
    """Rows `idx` of a rollout, with columns of pure padding trimmed (prompt left, response right)."""
    idx = torch.as_tensor(idx, dtype=torch.long, device=r.prompt_ids.device)
    pm, rm = r.prompt_mask[idx], r.response_mask[idx]
    p_start = int((pm.sum(0) > 0).nonzero().min()) if pm.any() else 0
    r_end = int(rm.sum(1).max()) if rm.numel() else 0
    return Rollout(prompt_ids=r.prompt_ids[idx, p_start:], prompt_mask=pm[:, p_start:],
                   response_ids=r.response_ids[idx, :r_end], response_mask=rm[:, :r_end],
                   logprobs=r.logprobs[idx, :r_end], finished=r.finished[idx],
                   texts=[r.texts[i] for i in idx.tolist()], pad_id=r.pad_id)


def split_batches(order: Sequence[int], minibatch_size: int, micro_batch_size: int) -> list[list[list[int]]]:
    """Rows in `order` cut into minibatches (one optimizer step each), each cut into micro-batches
    (one forward/backward each): [[micro-batch rows, ...] per minibatch]."""
    minibatches = [list(order[m : m + minibatch_size]) for m in range(0, len(order), minibatch_size)]
    return [[mb[s : s + micro_batch_size] for s in range(0, len(mb), micro_batch_size)] for mb in minibatches]


def over_micro_batches(r: Rollout, micro_batches: Sequence[list[int]], fn: Callable[[Rollout], Sequence[torch.Tensor]]
                       ) -> list[torch.Tensor]:
    """fn(sub-rollout) -> tensors (b, R_sub), run on each micro-batch of rows exactly as the training
    pass will cut it (same rows, same trimming), so the numbers match that pass bit for bit, even in
    bf16 (the first PPO ratio is then exactly 1). Returns them scattered back into (B, R) fp32 tensors."""
    B, R = r.response_ids.shape
    outs: list[torch.Tensor] = []
    for idx in micro_batches:
        parts = fn(rollout_subset(r, idx))
        if not outs:
            outs = [torch.zeros((B, R), dtype=torch.float32, device=p.device) for p in parts]
        for out, part in zip(outs, parts):
            out[idx, : part.size(1)] = part.float()
    return outs


class RolloutWorkersConfig(Section):
    """Where the responses are sampled: in this process, or on Ray workers (docs/scaling.md)."""

    workers: int = Field(0, ge=0, description="Ray rollout workers, each with a copy of the policy (0 = sample in "
                         "this process); needs `pip install 'postlab[ray]'`, full fine-tuning and a sampling seed")
    address: str | None = Field(None, description="Ray cluster address (None = start a local Ray; 'auto' or "
                                "'ray://host:10001' = an existing cluster)")
    cpus_per_worker: float = Field(1.0, ge=0, description="CPUs Ray reserves for each worker (0 = none: workers share "
                                   "the cores, e.g. beside other jobs on one machine)")

    def refuse_with_lora(self, lora_enabled: bool) -> None:
        if self.workers and lora_enabled:
            raise ConfigError("rollout.workers: Ray workers take full weights; LoRA policies sample in-process "
                              "(rollout.workers=0)")


def ray_rollout_engine(rollout: RolloutWorkersConfig, model: str, tokenizer, bf16: bool, world):
    """``rollout.workers`` Ray workers (``RayEngine``) that load ``model`` and are sent the policy's weights
    before each sampling (``push_rollout_weights``). Under torchrun rank 0 alone starts (or joins) Ray and
    holds the workers, and samples every rank's rows (``MainRankRollouts``)."""
    if world.size > 1 and not world.is_main:
        return MainRankRollouts(None, world)
    from postlab.rollout.ray_engine import RayEngine

    # bf16 sampling when training in bf16 autocast, as the in-process engine does
    engine = RayEngine(model, workers=rollout.workers, tokenizer=tokenizer, address=rollout.address,
                       cpus_per_worker=rollout.cpus_per_worker, decode_dtype="bfloat16" if bf16 else None)
    return MainRankRollouts(engine, world) if world.size > 1 else engine


class MainRankRollouts:
    """Ray rollout workers under torchrun, held by rank 0 alone (one set of workers per job, not one per
    process). ``generate`` is a collective: every rank hands in its rows, rank 0 samples them all on the
    workers in one call (rank 0's rows first) and every rank gets its own back. Rows are seeded one by
    one (``row_sampling``), so each samples what it would in any other batch: the rollouts of one process
    with in-process sampling."""

    def __init__(self, engine, world: distributed.World):
        self.engine, self.world = engine, world
        self.version, self.restarts = 0, 0  # the workers' weights version and restarts, on every rank

    def push_weights(self, policy) -> None:
        """Every rank holds the same weights; rank 0 sends them to the workers."""
        if self.engine is not None:
            self.engine.push_weights(policy)

    def generate(self, conversations: list, params: SamplingParams | Sequence[SamplingParams]) -> Rollout:
        rows = list(params) if not isinstance(params, SamplingParams) else [params] * len(conversations)
        asked = distributed.gather((conversations, rows), self.world)
        parts = None
        if self.engine is not None:
            whole = self.engine.generate([c for convs, _ in asked for c in convs], [p for _, ps in asked for p in ps])
            starts = list(itertools.accumulate((len(convs) for convs, _ in asked), initial=0))
            parts = [(rollout_subset(whole, list(range(a, b))), self.engine.version, self.engine.restarts)
                     for a, b in zip(starts, starts[1:])]
        mine, self.version, self.restarts = distributed.scatter_from_main(parts, self.world)  # each rank its own rows
        return mine

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()


def push_rollout_weights(engine, policy) -> None:
    """Before sampling: Ray workers get the policy's current weights (a new version); the in-process engine
    samples from the policy itself."""
    if hasattr(engine, "push_weights"):
        engine.push_weights(policy)


def rollout_metrics(engine) -> dict[str, float]:
    """The weights version the step sampled with and the workers restarted so far (Ray workers only); in
    process, whether the step's decode ran as a CUDA graph (``rollout/cuda_graph``, GPUs only)."""
    if not hasattr(engine, "push_weights"):
        graph = getattr(engine, "last_decode", None) == "cuda_graph"
        return {"rollout/cuda_graph": 1.0} if graph else {}
    return {"rollout/weights_version": engine.version, "rollout/worker_restarts": engine.restarts}


def close_rollout_engine(engine) -> None:
    if hasattr(engine, "close"):
        engine.close()


class RLOptimConfig(Section):
    """Optimiser for RL updates (one optimizer step per update over the step's whole batch)."""

    lr: float = Field(1e-5, gt=0, description="peak learning rate (AdamW)")
    adam_eps: float = Field(1e-5, gt=0, description="AdamW epsilon (1e-5 as in the PPO RLHF replications)")
    weight_decay: float = Field(0.0, ge=0, description="AdamW decoupled weight decay")
    max_grad_norm: float = Field(1.0, ge=0, description="clip the global gradient norm (0 = off)")
    warmup_steps: int = Field(0, ge=0, description="linear warmup steps")
    schedule: str = Field("constant", pattern="^(constant|linear)$", description="after warmup: constant, or linear decay to 0")
    micro_batch_size: int = Field(8, ge=1, description="responses per forward/backward; gradients accumulate over the batch, and its size does not change them (losses divide by the whole batch's totals)")
    bf16: AutoBF16 = Field("auto", validate_default=True,
                           description="bf16 autocast for forward/backward (fp32 master weights); auto = the faster "
                                       "of fp32 and bf16 on this machine (postlab.machine)")
    seed: int = Field(0, description="seed for prompt order, sampling and new weights")
    fsdp: bool = Field(False, description="under torchrun, shard the policy (and the reference and value models) over "
                       "the processes with FSDP2 instead of copying them: each process holds 1/N of the weights, "
                       "gradients and AdamW state, and gathers the policy's whole weights only while it samples; "
                       "full fine-tuning or LoRA, in-process sampling (docs/scaling.md)")

    def check(self) -> None:
        super().check()
        if self.fsdp:
            distributed.require_launch_for_fsdp()


def shard_or_broadcast(policy, ref_model, world: distributed.World, sharded: bool, value=None) -> None:
    """Before the optimizer is built. ``sharded`` (``optim.fsdp``): shard the policy, the frozen reference
    copy if any (forward only) and a value model (its body and score head as two roots, which
    ``response_values`` calls one by one). Otherwise make new weights (LoRA, heads) the same on every rank."""
    if not sharded:
        for model in (policy, value):
            if model is not None:
                distributed.broadcast_parameters(model, world)
        return
    for model in (policy, value):
        if model is not None:
            distributed.check_fsdp(model, world)
    distributed.shard_model(policy, world)
    if value is not None:
        from postlab.models.reward import backbone_and_head

        distributed.shard_model(value, world, backbone_and_head(value))
    if ref_model is not None:
        distributed.shard_model(ref_model, world, forward_only=True)


def refuse_fsdp_where_unsupported(cfg) -> None:
    """A sharded RL run's settings that need the policy whole on one rank: refused before anything loads."""
    if not cfg.optim.fsdp:
        return
    if cfg.rollout.workers:
        distributed.refuse_fsdp("not combined with rollout.workers (Ray workers are sent whole weights by rank 0 "
                                "alone); sample in-process")
    if cfg.gold_eval.every:
        distributed.refuse_fsdp("not combined with gold_eval (its generations run on rank 0 alone)")


def make_optimizer(params, cfg: RLOptimConfig, total_steps: int):
    params = list(params)
    fused = all(p.device.type in ("cpu", "cuda") for p in params)  # torch's fused kernels; elsewhere the plain loop
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay, fused=fused)

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "linear":
            return max(0.0, 1 - (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        return 1.0

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def clip_and_step(optimizer, params, max_grad_norm: float) -> float:
    norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm if max_grad_norm > 0 else float("inf"))
    if hasattr(norm, "full_tensor"):  # FSDP: the norm of sharded gradients is a DTensor
        norm = norm.full_tensor()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(norm)
