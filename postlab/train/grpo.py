"""``postlab grpo``: critic-free RL with k samples per prompt — GRPO, RLOO, Dr. GRPO, DAPO.

Each step: draw `prompts_per_step` prompts from the suite, sample k responses to each, score them
with the reward source (with `dynamic_sampling`, drop the groups whose k scores are all equal and
sample more prompts to refill the batch), turn scores into advantages within each prompt's group
(GRPO: normalised by the group's mean and std; RLOO: minus the mean of the other k − 1), and take
`num_iterations` optimizer steps on the loss `loss_type` names (algos/pg.py `LOSSES`): a clipped
surrogate with a k3 KL penalty to the reference (or, with `kl_in_reward`, β·KL subtracted from the
scores instead). Math: docs/algorithms/grpo.md.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from postlab.algos.kl import kl_k1, masked_mean
from postlab.algos.pg import ADVANTAGES, LOSSES, BatchTotals, rows_with_signal, zero_std_groups
from postlab.config import Section
from postlab.errors import ConfigError
from postlab.evals.callback import GoldEvalConfig, start_gold_eval
from postlab.evals.probe import ProbeConfig, RewardProbe
from postlab.models.prepare import count_parameters, pick_device, load_reference, prepare_model, save_final_model
from postlab.raters.gold import GoldRater
from postlab.rollout import SamplingParams, TorchEngine
from postlab.rollout.types import Rollout, cat_rollouts
from postlab.tasks.suite import Item, load_suite
from postlab.train import distributed
from postlab.train.common import DEVICE_HELP, CheckpointConfig, Device, LoraConfig
from postlab.train.loop import TrainState, start_run_dir
from postlab.train.rl_common import (PhaseTimes, RewardConfig, require_sampling_seed,
                                     RLOptimConfig, apply_eos_penalty, autocast, backward_share, clip_and_step,
                                     entropy_mean, gather_rows, make_optimizer, make_reward_fn, reward_watch,
                                     over_micro_batches_on_ranks, prompt_batches, rank_micro_batches,
                                     reference_mode, refuse_fsdp_where_unsupported, response_logprobs,
                                     rollout_subset, row_sampling, run_padding, run_rl_loop, sampling_weights,
                                     shard_or_broadcast, share_reward_watch, RolloutWorkersConfig, close_rollout_engine,
                                     push_rollout_weights, ray_rollout_engine, rollout_metrics)
from postlab.utils.io import atomic_write_text, finite


class RolloutConfig(RolloutWorkersConfig):
    """Where the responses are sampled (in this process or on Ray workers), and how rows are seeded."""

    per_row_seeds: bool = Field(True, description="seed every row on its own (always on with workers; required under "
                                "torchrun): the rollouts then do not depend on how rows are batched or spread over "
                                "workers or processes; false = one generator for the batch (the stream of versions "
                                "before per-row seeds), in one process only")


REFILL_SEED_STRIDE = 1_000_003  # sampling seed of refill round j at step s: seed + s + j · stride (then per row)
LOSS_STATS = ("loss", "kl", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean")


class GRPOConfig(Section):
    """postlab grpo: GRPO / RLOO / Dr. GRPO / DAPO on a suite's prompts."""

    model: str = Field("smollm2-135m-instruct", description="policy to start from: built-in name, directory or hub id")
    out_dir: str = Field("runs/grpo", description="run directory: config, metrics, checkpoints, final model")
    device: Device = Field("auto", description=DEVICE_HELP)
    suite: str = Field("spec", description="prompts: built-in suite name or JSONL")
    split: Literal["train", "test", "all"] = Field("train", description="which split to train on")
    limit: int | None = Field(None, ge=1, description="only the first N items")
    advantage: Literal["grpo", "rloo"] = Field("grpo", description="grpo: (r − mean)/std in the group; rloo: r − mean of the others")
    scale_rewards: bool = Field(True, description="grpo: divide by the group std (false, with loss_type=dr_grpo, is Dr. GRPO)")
    loss_type: Literal["grpo", "bnpo", "dapo", "dr_grpo", "rloo"] | None = Field(
        None, description="loss aggregation (TRL's names): grpo = mean over each response's tokens, then over responses; "
                          "bnpo, dapo = mean over the batch's tokens; dr_grpo = sum over tokens / (responses · max_new_tokens); "
                          "rloo = sequence-level REINFORCE; default: rloo with advantage=rloo, else grpo")
    k: int = Field(8, ge=2, description="samples per prompt (group size)")
    prompts_per_step: int = Field(2, ge=1, description="prompts per step (completions per step = k · prompts_per_step)")
    steps: int = Field(50, ge=1, description="RL steps (each: sample, score, update)")
    num_iterations: int = Field(1, ge=1, description="μ: optimizer steps per sampled batch (ratios leave 1 only when > 1)")
    epsilon: float = Field(0.2, gt=0, description="ε_low: the ratio's lower clip 1 − ε (and its upper clip unless epsilon_high is set)")
    epsilon_high: float | None = Field(None, gt=0, description="ε_high: the ratio's upper clip 1 + ε_high (DAPO's clip-higher: 0.28; None = epsilon)")
    kl_coef: float = Field(0.04, ge=0, description="β: weight of the KL penalty to the reference")
    kl_in_reward: bool = Field(False, description="subtract β·Σ_t k1 from the scores instead of a k3 loss term")
    dynamic_sampling: bool = Field(False, description="DAPO: drop the groups whose k scores are all equal and sample more prompts to refill the batch")
    max_refill_rounds: int = Field(3, ge=1, description="dynamic sampling: at most this many extra sampling rounds per step (then train on the groups kept)")
    mask_truncated_completions: bool = Field(False, description="DAPO's overlong filtering: responses that hit max_new_tokens without EOS carry no loss")
    reward: RewardConfig = Field(default_factory=RewardConfig, description="reward source")
    sampling: SamplingParams = Field(default_factory=lambda: SamplingParams(temperature=1.0, max_new_tokens=64, seed=0),
                                     description="rollout sampling (seed + step per step)")
    rollout: RolloutConfig = Field(default_factory=RolloutConfig, description="rollout workers (Ray) and per-row seeds")
    optim: RLOptimConfig = Field(default_factory=lambda: RLOptimConfig(lr=1e-5), description="optimiser")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA adapters (reference = adapters off)")
    checkpoint: CheckpointConfig = Field(default_factory=lambda: CheckpointConfig(save_every=25),
                                         description="checkpoints, resume, logging")
    gold_eval: GoldEvalConfig = Field(default_factory=GoldEvalConfig,
                                      description="gold-rated held-out evals every N steps, with jump alarms (off by default)")
    probe: ProbeConfig = Field(default_factory=ProbeConfig,
                               description="gold, reward and KL to the reference on the same training prompts every N steps (off by default)")

    @property
    def loss(self) -> str:
        """loss_type, with its default resolved."""
        return self.loss_type or ("rloo" if self.advantage == "rloo" else "grpo")

    def check(self) -> None:
        if self.probe.every and self.optim.fsdp:
            raise ConfigError("probe.every: the probe samples on rank 0 alone, which a sharded policy (optim.fsdp) "
                              "cannot do; drop one of them")
        super().check()
        require_sampling_seed(self.sampling)
        self.rollout.refuse_with_lora(self.lora.enabled)


@dataclass
class StepSamples:
    """Every response sampled in one step (all rounds of dynamic sampling): N rows, the k samples of a
    prompt adjacent."""

    items: list[Item]  # N
    rollout: Rollout  # N rows, on the training device
    raw: torch.Tensor  # (N,) the reward source's scores
    scores: torch.Tensor  # (N,) after the missing-EOS penalty
    gold: torch.Tensor  # (N,) the gold rater's scores (= raw when the reward is gold)
    rounds: int  # sampling rounds it took
    rows: list[int]  # the rows trained on, whole groups


def lengths_by_reward(lengths: torch.Tensor, scores: torch.Tensor, k: int) -> dict[str, float]:
    """Mean length of the responses scored above their group's mean and of those below it (with 0/1
    rewards: right and wrong answers, in groups that have both). NaN where there are none."""
    r = scores.view(-1, k)  # (P, k)
    above = (r > r.mean(dim=1, keepdim=True)).reshape(-1)  # (B,)
    below = (r < r.mean(dim=1, keepdim=True)).reshape(-1)

    def mean_length(selected: torch.Tensor) -> float:
        return float(lengths[selected].float().mean()) if bool(selected.any()) else float("nan")

    return {"completions/mean_length_rewarded": mean_length(above), "completions/mean_length_unrewarded": mean_length(below)}


@distributed.data_parallel
def train(cfg: GRPOConfig, callbacks=()) -> dict:
    """Under torchrun each of the W ranks samples and scores its contiguous share of every sampling
    round's prompts (rows seeded one by one, so what is sampled does not depend on W), the rounds are
    gathered so every rank holds the whole step (advantages, dynamic sampling and metrics are then one
    process's), each rank runs the forward/backward of its contiguous share of the rows trained on, and
    the gradients are summed over ranks (the losses divide by the whole batch's totals): the update of
    one process over the whole step. Rank 0 alone writes.

    With ``optim.fsdp`` the policy and the reference are sharded (FSDP2): the policy's weights are
    gathered whole while each rank samples its rows, and every rank runs as many micro-batches as the
    busiest one (the others add zero-weight ones), since each sharded forward and backward is a collective."""
    world = distributed.world()
    refuse_fsdp_where_unsupported(cfg)
    distributed.require_even_split("prompts_per_step", cfg.prompts_per_step, "prompts of a step", world)
    if world.size > 1 and not cfg.rollout.per_row_seeds:
        raise ConfigError("rollout.per_row_seeds=false: under torchrun every row is seeded on its own, so that the "
                          "rollouts do not depend on the number of processes; drop the setting")
    out = Path(cfg.out_dir)
    start_run_dir(cfg, out, cfg.checkpoint)
    items = load_suite(cfg.suite, split=None if cfg.split == "all" else cfg.split, limit=cfg.limit)
    if not items:
        raise ConfigError(f"suite {cfg.suite!r} has no items in split {cfg.split!r}")
    device = pick_device(cfg.device)
    policy, tok = prepare_model(cfg.model, device=cfg.device, lora=cfg.lora, seed=cfg.optim.seed)
    ref_model = None
    needs_ref = cfg.kl_coef > 0
    if (needs_ref or cfg.probe.every) and not cfg.lora.enabled:  # a frozen copy; with LoRA the reference is the base (adapters off)
        ref_model = load_reference(cfg.model, policy)
    sharded = cfg.optim.fsdp
    shard_or_broadcast(policy, ref_model, world, sharded)
    reward_fn, reward_name = make_reward_fn(cfg.reward, device=str(device), bf16=cfg.optim.bf16)
    gold = GoldRater()
    # bf16 sampling copies when training in bf16 autocast (log-probs are recomputed by the trainer)
    engine = (ray_rollout_engine(cfg.rollout, cfg.model, tok, cfg.optim.bf16, world) if cfg.rollout.workers else
              TorchEngine(model=policy, tokenizer=tok, decode_dtype=torch.bfloat16 if cfg.optim.bf16 else None))
    per_row = cfg.rollout.per_row_seeds or cfg.rollout.workers > 0
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer, scheduler = make_optimizer(params, cfg.optim, cfg.steps)
    batch_at = prompt_batches(items, cfg.prompts_per_step, cfg.optim.seed, 0)
    refill_at = prompt_batches(items, cfg.prompts_per_step, cfg.optim.seed + 1, 0)  # its own stream, for dynamic sampling
    advantage_fn, loss_fn = ADVANTAGES[cfg.advantage], LOSSES[cfg.loss]
    epsilon_high = cfg.epsilon if cfg.epsilon_high is None else cfg.epsilon_high
    trainable, total = count_parameters(policy)
    if world.is_main:
        ranks = f" over {world.size} processes" if world.size > 1 else ""
        print(f"{cfg.advantage} ({cfg.loss} loss): {len(items)} prompts, {cfg.prompts_per_step}×{cfg.k} completions per "
              f"step{ranks}, reward {cfg.reward.source}; training {trainable:,} of {total:,} parameters", file=sys.stderr)
    bf16 = cfg.optim.bf16
    T = cfg.sampling.temperature

    def advantage_of(scores: torch.Tensor) -> torch.Tensor:  # (B,) -> (B,)
        return advantage_fn(scores, cfg.k, scale=cfg.scale_rewards) if cfg.advantage == "grpo" else advantage_fn(scores, cfg.k)

    def sample(step: int, round_: int, timer: PhaseTimes) -> StepSamples:
        """Sampling round `round_` of `step` (0, then refills): prompts_per_step prompts, k samples each,
        every row seeded by itself. A pure function of (step, round), so a resumed run samples what the
        uninterrupted one would, and of nothing else: each rank samples and scores its contiguous share
        of the prompts, and every rank gets the whole round."""
        prompts = batch_at(step) if round_ == 0 else refill_at(step * cfg.max_refill_rounds + round_ - 1)
        mine = distributed.shard(prompts, world)
        mine_items = [it for it in mine for _ in range(cfg.k)]
        first = world.rank * len(mine_items)  # this rank's first row in the round
        seed = cfg.sampling.seed + step + round_ * REFILL_SEED_STRIDE
        push_rollout_weights(engine, policy)  # Ray workers sample with this step's weights (a version each)
        rows = range(first, first + len(mine_items))
        sampling = row_sampling(cfg.sampling, seed, rows) if per_row else cfg.sampling.model_copy(update={"seed": seed})
        with timer("generate"), sampling_weights(policy, engine):
            r = engine.generate([it.messages for it in mine_items], sampling).to(device)
        with timer("reward"):
            raw = torch.tensor(reward_fn(mine_items, r.texts), dtype=torch.float32, device=device)
        share_reward_watch(reward_fn, world)
        with timer("gold"):  # the gold monitor (on the CPU)
            gold_scores = raw if reward_name == "gold" else torch.tensor(
                [gold.score(it, t) for it, t in zip(mine_items, r.texts)], dtype=torch.float32, device=device)
        r, (raw, gold_scores) = gather_rows(r, [raw, gold_scores], device, world)
        batch_items = [it for it in prompts for _ in range(cfg.k)]
        scores = apply_eos_penalty(raw, r.finished, cfg.reward.missing_eos_penalty)
        return StepSamples(batch_items, r, raw, scores, gold_scores, rounds=1, rows=list(range(len(batch_items))))

    def sample_step(step: int, timer: PhaseTimes) -> StepSamples:
        """The step's responses. With dynamic sampling (DAPO), the rows trained on are the first
        prompts_per_step groups whose scores differ, sampling up to max_refill_rounds more rounds to
        find them (if none is found, the first round as drawn)."""
        rounds = [sample(step, 0, timer)]
        if not cfg.dynamic_sampling:
            return rounds[0]
        scores = rounds[0].scores
        while int((~zero_std_groups(scores, cfg.k)).sum()) < cfg.prompts_per_step and len(rounds) <= cfg.max_refill_rounds:
            rounds.append(sample(step, len(rounds), timer))
            scores = torch.cat([x.scores for x in rounds])
        kept = (~zero_std_groups(scores, cfg.k)).nonzero().squeeze(1)[: cfg.prompts_per_step].tolist()
        groups = kept or range(cfg.prompts_per_step)
        return StepSamples([it for x in rounds for it in x.items], cat_rollouts([x.rollout for x in rounds]),
                           torch.cat([x.raw for x in rounds]), scores, torch.cat([x.gold for x in rounds]), rounds=len(rounds),
                           rows=[g * cfg.k + j for g in groups for j in range(cfg.k)])

    def step(state: TrainState) -> dict:
        policy.eval()
        timer = PhaseTimes()
        with timer("sample"):  # generation, the reward and the gold monitor (each also timed alone)
            sampled = sample_step(state.step, timer)
        r, scores = rollout_subset(sampled.rollout, sampled.rows), sampled.scores[sampled.rows]
        B, mask = len(sampled.rows), r.response_mask
        loss_mask = mask * r.finished.unsqueeze(1) if cfg.mask_truncated_completions else mask  # (B, R)
        live = rows_with_signal(advantage_of(scores), cfg.kl_coef)
        # the rows this rank forwards and backpropagates, cut into micro-batches
        micro_batches = rank_micro_batches(live, cfg.optim.micro_batch_size, world, equal=sharded)
        # With one update per batch and the KL as a loss term, π_old is π_θ itself: its log-probs and
        # entropy come from the training forward below, which saves a forward pass of the policy.
        need_old = cfg.num_iterations > 1 or (cfg.kl_in_reward and needs_ref)
        with timer("logprob"), torch.no_grad(), autocast(policy, bf16):  # on the training pass's micro-batches: identical numbers
            ref_logp = old_logp = ent = None
            if needs_ref:
                with reference_mode(policy, ref_model) as ref:
                    [ref_logp] = over_micro_batches_on_ranks(r, micro_batches, 1, lambda sub: response_logprobs(ref, sub, T)[:1],
                                                             device, world)  # (B, R)
            if need_old:
                old_logp, ent = over_micro_batches_on_ranks(
                    r, micro_batches, 2, lambda sub: response_logprobs(policy, sub, T, entropy=True), device, world)
        shaped = scores
        if cfg.kl_in_reward and ref_logp is not None:  # β = 0: nothing to subtract, and no reference was loaded
            shaped = scores - cfg.kl_coef * kl_k1(old_logp, ref_logp).mul(mask).sum(1)
        adv = advantage_of(shaped)
        totals = BatchTotals.of(loss_mask, cfg.sampling.max_new_tokens)
        policy.train()
        stats_sum = dict.fromkeys(LOSS_STATS, 0.0)  # every rank the same keys, to sum over ranks
        grad_norm = 0.0
        seen_logp = torch.zeros(r.response_ids.shape, device=device)  # (B, R)
        seen_ent = torch.zeros(r.response_ids.shape, device=device)  # (B, R)
        with timer("update"):  # forward, backward and optimizer step
            for _ in range(cfg.num_iterations):
                for idx in micro_batches:
                    sub = rollout_subset(r, idx)
                    Rs = sub.response_ids.size(1)
                    with autocast(policy, bf16):
                        logp, ent_mb = response_logprobs(policy, sub, T, entropy=old_logp is None)
                    if old_logp is None:
                        seen_logp[idx, :Rs], seen_ent[idx, :Rs] = logp.detach().float(), ent_mb.float()
                    old = old_logp[idx, :Rs] if old_logp is not None else logp.detach()
                    ref = ref_logp[idx, :Rs] if (ref_logp is not None and not cfg.kl_in_reward) else None
                    loss, st = loss_fn(logp, old, ref, adv[idx], loss_mask[idx, :Rs], totals, epsilon=cfg.epsilon,
                                       epsilon_high=epsilon_high, kl_coef=0.0 if cfg.kl_in_reward else cfg.kl_coef)
                    backward_share(loss, sharded, world)
                    for key, v in st.items():  # each micro-batch's share of the batch's value
                        stats_sum[key] = stats_sum.get(key, 0.0) + v / cfg.num_iterations
                with autocast(policy, bf16):  # sharded: as many backwards as the busiest rank, adding nothing
                    run_padding(r, micro_batches, lambda sub: (response_logprobs(policy, sub, T)[0].sum() * 0).backward())
                if not sharded:
                    distributed.sum_gradients(params, world)  # each rank's loss is its share of the batch's
                if not live:  # no row carries signal: a zero gradient, as the full batch would give
                    for p in params:
                        p.grad = torch.zeros_like(p)
                grad_norm = clip_and_step(optimizer, params, cfg.optim.max_grad_norm)
        stats_sum = distributed.sum_over_ranks(stats_sum, world)
        if old_logp is None:
            distributed.sum_tensors_([seen_logp, seen_ent], world)  # each row was seen by one rank
            old_logp, ent = seen_logp, seen_ent
        seq_kl = kl_k1(old_logp, ref_logp).mul(mask).sum(1) if ref_logp is not None else torch.zeros(B, device=device)
        grouped = sampled.scores.view(-1, cfg.k)  # every group sampled this step, trained on or not
        lengths = sampled.rollout.response_lengths
        gold_scores = sampled.gold
        metrics = {
            "reward": float(sampled.scores.mean()), "reward_std": float(grouped.std(dim=1).mean()),
            f"rewards/{reward_name}/mean": float(sampled.raw.mean()),
            "frac_reward_zero_std": float(zero_std_groups(sampled.scores, cfg.k).float().mean()),
            "kl": float(masked_mean(kl_k1(old_logp, ref_logp), mask)) if ref_logp is not None else 0.0,
            "objective/kl": float(seq_kl.mean()),
            "entropy": entropy_mean(ent[live], mask[live]) if live else float("nan"),  # over the rows with signal
            "frac_rows_skipped": 1 - len(live) / B,
            "clip_ratio/region_mean": stats_sum.get("clip_ratio/region_mean", 0.0),
            "clip_ratio/low_mean": stats_sum.get("clip_ratio/low_mean", 0.0),
            "clip_ratio/high_mean": stats_sum.get("clip_ratio/high_mean", 0.0),
            "loss": stats_sum.get("loss", 0.0),
            "completions/mean_length": float(lengths.float().mean()),
            "completions/clipped_ratio": float((~sampled.rollout.finished).float().mean()),
            **lengths_by_reward(lengths, sampled.scores, cfg.k),
            "proxy/score": float(sampled.raw.mean()), "gold/train_score": float(gold_scores.mean()),
            "grad_norm": grad_norm, "lr": scheduler.get_last_lr()[0], "episode": (state.step + 1) * B,
        }
        if cfg.dynamic_sampling:
            metrics.update({"dynamic_sampling/rounds": sampled.rounds, "dynamic_sampling/groups": B // cfg.k})
        metrics.update(rollout_metrics(engine))
        return {**metrics, **timer.metrics()}

    callbacks = [*reward_watch(reward_fn, out), *callbacks]
    gold_eval = start_gold_eval(cfg.gold_eval, model=policy, tokenizer=tok, run_dir=out) if world.is_main else None
    if gold_eval:
        callbacks = [gold_eval, *callbacks]
    if cfg.probe.every and world.is_main:
        def logprobs(model, r):
            with autocast(policy, bf16):
                return response_logprobs(model, r, T)[0]

        local = engine if not cfg.rollout.workers else TorchEngine(
            model=policy, tokenizer=tok, decode_dtype=torch.bfloat16 if bf16 else None)
        # the gold reward's hacking watch sees the training samples only
        probe_reward = (lambda its, texts: [gold.score(i, t) for i, t in zip(its, texts)]) if reward_name == "gold" else reward_fn
        probe = RewardProbe(cfg=cfg.probe, items=items, engine=local, policy=policy, logprobs=logprobs,
                            reference=lambda: reference_mode(policy, ref_model), reward_fn=probe_reward, gold=gold,
                            sampling=cfg.sampling, run_dir=out)
        probe.start()
        callbacks = [probe, *callbacks]
    state = run_rl_loop(modules=policy, optimizer=optimizer, scheduler=scheduler, step_fn=step, total_steps=cfg.steps,
                        run_dir=out, ckpt=cfg.checkpoint, callbacks=callbacks, desc=cfg.advantage)
    full = distributed.full_state_dict(policy)  # optim.fsdp: every rank sends its shards to rank 0
    if not world.is_main:  # rank 0 alone writes; every rank returns its summary
        return distributed.from_main(None, world)
    if gold_eval:
        gold_eval.evaluate_now(state.step)
    close_rollout_engine(engine)
    save_final_model(policy, tok, out / "model", state_dict=full)
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    last = [m for m in lines if "reward" in m][-5:]
    summary = {"model": str(out / "model"), "steps": state.step,
               **{k: sum(m[k] for m in last) / len(last) for k in ("reward", "objective/kl", "completions/mean_length",
                                                                    "gold/train_score") if last and k in last[0]}}
    summary = finite(summary)
    atomic_write_text(out / "rl_results.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return distributed.from_main(summary, world)
