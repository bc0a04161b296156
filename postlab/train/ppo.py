"""``postlab ppo``: PPO with a KL leash against the reference — the InstructGPT recipe.

Each step: sample one response per prompt; score it (reward model, gold, simulated raters or a
function; a response that never emits EOS loses `reward.missing_eos_penalty`); per-token rewards are
−β·(log π − log π_ref) plus the score on the last token; GAE(γ, λ) with a value model initialised from
the reward model; whitened advantages; `ppo_epochs` passes of clipped policy and clipped value
updates over shuffled minibatches. β is fixed or follows the adaptive controller. Implementation
details follow Huang et al. 2024 ("The N+ implementation details of RLHF with PPO").
Math: docs/algorithms/ppo.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field, model_validator

from postlab.algos.ppo import (AdaptiveKLController, FixedKLController, gae, kl_shaped_rewards, ppo_policy_loss,
                               ppo_value_loss, whiten)
from postlab.config import Section
from postlab.errors import ConfigError
from postlab.evals.callback import GoldEvalConfig, start_gold_eval
from postlab.models.prepare import count_parameters, pick_device, load_reference, prepare_model, save_final_model
from postlab.models.reward import load_reward_model
from postlab.raters.gold import GoldRater
from postlab.rollout import SamplingParams, TorchEngine
from postlab.rollout.types import Rollout
from postlab.tasks.suite import load_suite
from postlab.train import distributed
from postlab.train.common import DEVICE_HELP, CheckpointConfig, Device, LoraConfig
from postlab.train.loop import TrainState, start_run_dir
from postlab.train.rl_common import (PhaseTimes, RewardConfig, require_sampling_seed, RLOptimConfig, apply_eos_penalty,
                                     autocast, backward_share, clip_and_step, gather_rows, make_optimizer,
                                     make_reward_fn, reward_watch, prompt_batches, rank_micro_batches,
                                     RankMicroBatches, reference_mode, refuse_fsdp_where_unsupported,
                                     over_micro_batches_on_ranks, response_logprobs, response_values,
                                     final_norm, response_logprobs_and_values,
                                     rollout_subset, row_sampling, run_padding, run_rl_loop, sampling_weights,
                                     shard_or_broadcast, share_reward_watch, RolloutWorkersConfig, close_rollout_engine,
                                     push_rollout_weights, ray_rollout_engine, rollout_metrics)
from postlab.utils.io import atomic_write_text, finite


class PPOConfig(Section):
    """postlab ppo: PPO against a reward source with a per-token KL penalty."""

    model: str = Field("smollm2-135m-instruct", description="policy to start from (usually the SFT model)")
    out_dir: str = Field("runs/ppo", description="run directory: config, metrics, checkpoints, final model")
    device: Device = Field("auto", description=DEVICE_HELP)
    suite: str = Field("spec", description="prompts: built-in suite name or JSONL")
    split: Literal["train", "test", "all"] = Field("train", description="which split to train on")
    limit: int | None = Field(None, ge=1, description="only the first N items")
    value_model: str | None = Field(None, description="value model init (default: the reward model of reward.source=rm:..., else the policy with a new head)")
    value_head: Literal["model", "shared"] = Field(
        "model", description="'model': a value model with its own backbone (value_model); 'shared': a scalar head on "
        "the policy's last hidden state, one forward and backward for both losses (the value loss, × vf_coef, "
        "also trains the policy's body)")
    prompts_per_step: int = Field(16, ge=1, description="responses sampled per step (one per prompt)")
    steps: int = Field(50, ge=1, description="PPO steps (each: sample, score, ppo_epochs of updates)")
    ppo_epochs: int = Field(4, ge=1, description="passes over each step's batch")
    minibatch_size: int | None = Field(None, ge=1, description="responses per optimizer step within an epoch "
                                                                 "(default min(8, prompts_per_step))")
    gamma: float = Field(1.0, gt=0, le=1, description="γ: discount")
    lam: float = Field(0.95, ge=0, le=1, description="λ: GAE parameter")
    clip: float = Field(0.2, gt=0, description="ε: policy ratio clip")
    vf_clip: float = Field(0.2, gt=0, description="value clip around the old values")
    vf_coef: float = Field(0.1, ge=0, description="value loss weight")
    kl_coef: float = Field(0.05, ge=0, description="β: KL penalty per token (initial value when adaptive)")
    adaptive_kl: bool = Field(False, description="adapt β toward kl_target (Ziegler et al. 2019)")
    kl_target: float = Field(6.0, gt=0, description="target KL per response (nats) for the adaptive controller")
    kl_horizon: int = Field(10000, ge=1, description="adaptive controller horizon (episodes)")
    reward: RewardConfig = Field(default_factory=lambda: RewardConfig(missing_eos_penalty=1.0), description="reward source")
    rollout: RolloutWorkersConfig = Field(default_factory=RolloutWorkersConfig, description="rollout workers (Ray)")
    sampling: SamplingParams = Field(default_factory=lambda: SamplingParams(temperature=0.7, max_new_tokens=64, seed=0),
                                     description="rollout sampling (seed + step per step)")
    optim: RLOptimConfig = Field(default_factory=lambda: RLOptimConfig(lr=3e-6), description="optimiser (policy and value)")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA adapters on the policy (reference = adapters off)")
    checkpoint: CheckpointConfig = Field(default_factory=lambda: CheckpointConfig(save_every=25),
                                         description="checkpoints, resume, logging")
    gold_eval: GoldEvalConfig = Field(default_factory=GoldEvalConfig,
                                      description="gold-rated held-out evals every N steps, with jump alarms (off by default)")

    @model_validator(mode="before")
    @classmethod
    def _default_minibatch(cls, data):
        """minibatch_size unset: min(8, prompts_per_step), so any prompts_per_step works with the defaults."""
        if isinstance(data, dict) and data.get("minibatch_size") is None:
            per_step = data.get("prompts_per_step", cls.model_fields["prompts_per_step"].default)
            try:
                data = {**data, "minibatch_size": min(8, int(per_step))}
            except (TypeError, ValueError):  # prompts_per_step itself is invalid and is reported as such
                pass
        return data

    def check(self) -> None:
        super().check()
        require_sampling_seed(self.sampling)
        self.rollout.refuse_with_lora(self.lora.enabled)
        if self.minibatch_size > self.prompts_per_step:
            raise ConfigError(f"minibatch_size ({self.minibatch_size}) > prompts_per_step ({self.prompts_per_step})")
        if self.value_head == "shared" and self.value_model:
            raise ConfigError("value_model: a shared value head sits on the policy, with no model of its own; "
                              "drop value_model or set value_head=model")
        if self.value_head == "shared" and self.optim.fsdp:
            raise ConfigError("value_head=shared is not supported with optim.fsdp; use value_head=model")


LOSS_STATS = ("loss/policy", "policy/clipfrac", "policy/approxkl", "val/ratio", "loss/value", "val/clipfrac")


class PolicyAndValue(torch.nn.Module):
    """One module holding both trained models, so a checkpoint covers them together."""

    def __init__(self, policy, value):
        super().__init__()
        self.policy, self.value = policy, value


@distributed.data_parallel
def train(cfg: PPOConfig, callbacks=()) -> dict:
    """Under torchrun each of the W ranks samples and scores its contiguous share of the step's prompts
    (rows seeded one by one, so what is sampled does not depend on W) and the shares are gathered, so
    every rank holds the whole step (rewards, GAE, whitening and metrics are one process's); each
    minibatch's rows are shared out contiguously for the forward/backward passes, and the gradients are
    summed over ranks (the losses divide by the whole minibatch's tokens): the updates of one process.
    Rank 0 alone writes.

    With ``optim.fsdp`` the policy, the reference and the value model (body and head as two roots) are
    sharded (FSDP2): the policy is gathered whole while each rank samples, and every rank runs as many
    micro-batches as the busiest one in each minibatch (the others add zero-weight ones)."""
    world = distributed.world()
    refuse_fsdp_where_unsupported(cfg)
    distributed.require_even_split("prompts_per_step", cfg.prompts_per_step, "prompts of a step", world)
    out = Path(cfg.out_dir)
    start_run_dir(cfg, out, cfg.checkpoint)
    device = pick_device(cfg.device)
    items = load_suite(cfg.suite, split=None if cfg.split == "all" else cfg.split, limit=cfg.limit)
    if not items:
        raise ConfigError(f"suite {cfg.suite!r} has no items in split {cfg.split!r}")
    policy, tok = prepare_model(cfg.model, device=cfg.device, lora=cfg.lora, seed=cfg.optim.seed)
    ref_model = None
    if not cfg.lora.enabled:
        ref_model = load_reference(cfg.model, policy)
    shared_value = cfg.value_head == "shared"
    torch.manual_seed(cfg.optim.seed)
    if shared_value:
        value_init = "a new head on the policy's backbone"
        if final_norm(policy) is None:
            raise ConfigError(f"value_head=shared: {cfg.model} has no final norm (model.norm) to read hidden states from")
        value = torch.nn.Linear(policy.config.hidden_size, 1, device=device)  # (H,) -> V(s)
        torch.nn.init.normal_(value.weight, std=getattr(policy.config, "initializer_range", 0.02))
        torch.nn.init.zeros_(value.bias)
    else:
        value_init = cfg.value_model or (cfg.reward.source[3:] if cfg.reward.source.startswith("rm:") else cfg.model)
        value, _ = load_reward_model(value_init)
        value.to(device)
    modules = PolicyAndValue(policy, value)
    sharded = cfg.optim.fsdp
    shard_or_broadcast(policy, ref_model, world, sharded, value=value)
    reward_fn, reward_name = make_reward_fn(cfg.reward, device=str(device), bf16=cfg.optim.bf16)
    gold = GoldRater()
    # bf16 sampling copies when training in bf16 autocast (log-probs are recomputed by the trainer)
    engine = (ray_rollout_engine(cfg.rollout, cfg.model, tok, cfg.optim.bf16, world) if cfg.rollout.workers else
              TorchEngine(model=policy, tokenizer=tok, decode_dtype=torch.bfloat16 if cfg.optim.bf16 else None))
    params = [p for p in modules.parameters() if p.requires_grad]
    optimizer, scheduler = make_optimizer(params, cfg.optim, cfg.steps)  # the schedule advances once per PPO step
    batch_at = prompt_batches(items, cfg.prompts_per_step, cfg.optim.seed, 0)
    trainable, total = count_parameters(modules)
    if world.is_main:
        ranks = f" over {world.size} processes" if world.size > 1 else ""
        print(f"ppo: {len(items)} prompts, {cfg.prompts_per_step} per step{ranks}, reward {cfg.reward.source}, value "
              f"from {value_init}; training {trainable:,} of {total:,} parameters", file=sys.stderr)
    bf16, T = cfg.optim.bf16, cfg.sampling.temperature

    def policy_pass(sub: Rollout, entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """log π (B, R), its entropy (or None) and V (B, R): one pass with a shared head, else the value model's too."""
        if shared_value:
            return response_logprobs_and_values(policy, value, sub, T, entropy=entropy)
        return *response_logprobs(policy, sub, T, entropy=entropy), response_values(value, sub)

    def step(state: TrainState) -> dict:
        beta = state.extra.setdefault("kl_coef", cfg.kl_coef)
        ctl = (AdaptiveKLController(beta, cfg.kl_target, cfg.kl_horizon) if cfg.adaptive_kl else FixedKLController(beta))
        batch_items = batch_at(state.step)
        modules.eval()
        timer = PhaseTimes()
        with timer("sample"):  # generation and the reward: each rank its share of the prompts, then all of them
            mine = distributed.shard(batch_items, world)
            first_row = world.rank * len(mine)
            push_rollout_weights(engine, policy)  # Ray workers sample with this step's weights (a version each)
            with sampling_weights(policy, engine):
                r = engine.generate([it.messages for it in mine], row_sampling(
                    cfg.sampling, cfg.sampling.seed + state.step, range(first_row, first_row + len(mine)))).to(device)
            raw = torch.tensor(reward_fn(mine, r.texts), dtype=torch.float32, device=device)
            share_reward_watch(reward_fn, world)
            gold_scores = raw if reward_name == "gold" else torch.tensor(
                [gold.score(it, t) for it, t in zip(mine, r.texts)], dtype=torch.float32, device=device)
            r, (raw, gold_scores) = gather_rows(r, [raw, gold_scores], device, world)
        B, mask = len(batch_items), r.response_mask.float()
        scores = apply_eos_penalty(raw, r.finished, cfg.reward.missing_eos_penalty)
        g = torch.Generator().manual_seed(cfg.optim.seed * 1_000_003 + state.step)  # CPU: only an order of rows
        mbs = cfg.optim.micro_batch_size

        def minibatches(order: list[int]) -> list[tuple[list[int], RankMicroBatches]]:
            """One epoch: per minibatch, its rows and this rank's micro-batches (its contiguous share of
            them, cut by micro_batch_size; one process: all of them; sharded: padded to the busiest rank's)."""
            rows = [order[m : m + cfg.minibatch_size] for m in range(0, B, cfg.minibatch_size)]
            return [(mb, rank_micro_batches(mb, mbs, world, equal=sharded)) for mb in rows]

        epochs = [minibatches(torch.randperm(B, generator=g).tolist()) for _ in range(cfg.ppo_epochs)]
        first = RankMicroBatches.joined([micro for _, micro in epochs[0]])  # old/ref/value passes see the rows as epoch 1 will
        with timer("logprob"), torch.no_grad(), autocast(policy, bf16):
            old_logp, ent, old_values = over_micro_batches_on_ranks(
                r, first, 3, lambda sub: policy_pass(sub, entropy=True), device, world)
            with reference_mode(policy, ref_model) as ref:
                [ref_logp] = over_micro_batches_on_ranks(r, first, 1, lambda sub: response_logprobs(ref, sub, T)[:1],
                                                         device, world)
        rewards, kl = kl_shaped_rewards(scores, old_logp, ref_logp, mask, beta)
        adv, returns = gae(rewards, old_values, mask, cfg.gamma, cfg.lam)
        adv = whiten(adv, mask)
        modules.train()
        sums = dict.fromkeys(LOSS_STATS, 0.0)  # every rank the same keys, to sum over ranks
        grad_norms = 0.0
        n_updates = 0

        def nothing(sub: Rollout) -> None:  # sharded: as many forwards and backwards as the busiest rank, adding nothing
            with autocast(policy, bf16):
                zero = response_logprobs(policy, sub, T)[0].sum() * 0 + response_values(value, sub).sum() * 0
            zero.backward()

        with timer("update"):  # forward, backward and optimizer steps
            for minibatches in epochs:
                for rows, micro_batches in minibatches:
                    n_tokens = float(mask[rows].sum())  # losses: means over the whole minibatch's tokens
                    for idx in micro_batches:
                        sub = rollout_subset(r, idx)
                        Rs, sub_mask = sub.response_ids.size(1), sub.response_mask.float()
                        with autocast(policy, bf16):
                            logp, _, v = policy_pass(sub)
                        pg, pst = ppo_policy_loss(logp, old_logp[idx, :Rs], adv[idx, :Rs], sub_mask, cfg.clip, n_tokens)
                        vf, vst = ppo_value_loss(v, old_values[idx, :Rs], returns[idx, :Rs], sub_mask, cfg.vf_clip, n_tokens)
                        backward_share(pg + cfg.vf_coef * vf, sharded, world)
                        for k, val in {**pst, **vst}.items():
                            sums[k] = sums.get(k, 0.0) + val
                    run_padding(r, micro_batches, nothing)
                    if not sharded:
                        distributed.sum_gradients(params, world)  # each rank's loss is its share of the minibatch's
                    grad_norms += clip_and_step(optimizer, params, cfg.optim.max_grad_norm)
                    n_updates += 1
        sums = {**distributed.sum_over_ranks(sums, world), "grad_norm": grad_norms}
        seq_kl = kl.sum(1)  # (B,) Σ_t k1 per response
        non_score = -beta * seq_kl
        state.extra["kl_coef"] = ctl.update(float(seq_kl.mean()), B)
        avg = {k: v / n_updates for k, v in sums.items()}
        return {
            "objective/kl": float(seq_kl.mean()), "objective/kl_coef": beta,
            "objective/entropy": float((ent * mask).sum(1).mean()),
            "objective/non_score_reward": float(non_score.mean()),
            "objective/rlhf_reward": float((scores + non_score).mean()), "objective/scores": float(scores.mean()),
            "policy/approxkl_avg": avg["policy/approxkl"], "policy/clipfrac_avg": avg["policy/clipfrac"],
            "loss/policy_avg": avg["loss/policy"], "loss/value_avg": avg["loss/value"],
            "val/clipfrac_avg": avg["val/clipfrac"], "val/ratio": avg["val/ratio"],
            "val/num_eos_tokens": int(r.finished.sum()), "grad_norm": avg["grad_norm"],
            "proxy/score": float(raw.mean()), "gold/train_score": float(gold_scores.mean()),
            "completions/mean_length": float(r.response_lengths.float().mean()),
            "completions/clipped_ratio": float((~r.finished).float().mean()),
            "lr": scheduler.get_last_lr()[0], "episode": (state.step + 1) * B, **timer.metrics(), **rollout_metrics(engine),
        }

    callbacks = [*reward_watch(reward_fn, out), *callbacks]
    gold_eval = start_gold_eval(cfg.gold_eval, model=policy, tokenizer=tok, run_dir=out) if world.is_main else None
    if gold_eval:
        callbacks = [gold_eval, *callbacks]
    state = run_rl_loop(modules=modules, optimizer=optimizer, scheduler=scheduler, step_fn=step, total_steps=cfg.steps,
                        run_dir=out, ckpt=cfg.checkpoint, callbacks=callbacks, desc="ppo",
                        init_extra={"kl_coef": cfg.kl_coef})
    close_rollout_engine(engine)
    full = distributed.full_state_dict(policy)  # optim.fsdp: every rank sends its shards to rank 0
    if not world.is_main:  # rank 0 alone writes; every rank returns its summary
        return distributed.from_main(None, world)
    if gold_eval:
        gold_eval.evaluate_now(state.step)
    save_final_model(policy, tok, out / "model", state_dict=full)
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    last = [m for m in lines if "objective/scores" in m][-5:]
    keys = ("objective/scores", "objective/kl", "proxy/score", "gold/train_score", "completions/mean_length")
    summary = {"model": str(out / "model"), "steps": state.step,
               **{k: sum(m[k] for m in last) / len(last) for k in keys if last and k in last[0]}}
    summary = finite(summary)
    atomic_write_text(out / "rl_results.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return distributed.from_main(summary, world)
