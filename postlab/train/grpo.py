"""``postlab grpo``: critic-free RL with k samples per prompt — GRPO or RLOO advantages.

Each step: draw `prompts_per_step` prompts from the suite, sample k responses to each, score them
with the reward source, turn scores into advantages within each prompt's group (GRPO: normalised by
the group's mean and std; RLOO: minus the mean of the other k − 1), and take `num_iterations`
optimizer steps on the clipped surrogate with a k3 KL penalty to the reference (or, with
`kl_in_reward`, subtract β·KL from the scores instead). Math: docs/algorithms/grpo.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from postlab.algos.kl import kl_k1, masked_mean
from postlab.algos.pg import ADVANTAGES, clipped_pg_loss
from postlab.config import Section, save_config
from postlab.errors import ConfigError
from postlab.evals.callback import GoldEvalConfig, start_gold_eval
from postlab.models.load import load_model_and_tokenizer
from postlab.models.prepare import count_parameters, pick_device, prepare_model, save_final_model
from postlab.raters.gold import GoldRater
from postlab.rollout import SamplingParams, TorchEngine
from postlab.tasks.suite import load_suite
from postlab.train.common import CheckpointConfig, LoraConfig
from postlab.train.loop import TrainState
from postlab.train.rl_common import (RewardConfig, require_sampling_seed, require_torch_device, RLOptimConfig, apply_eos_penalty, autocast, clip_and_step,
                                     entropy_mean, make_optimizer, make_reward_fn, prompt_batches, reference_mode,
                                     response_logprobs, rollout_subset, run_rl_loop)
from postlab.utils.io import atomic_write_text


class GRPOConfig(Section):
    """postlab grpo: GRPO / RLOO on a suite's prompts."""

    model: str = Field("smollm2-135m-instruct", description="policy to start from: built-in name, directory or hub id")
    out_dir: str = Field("runs/grpo", description="run directory: config, metrics, checkpoints, final model")
    device: str = Field("auto", description="where to train: auto (cuda when available) or any torch device: cpu, cuda, cuda:1, mps, ...")
    suite: str = Field("spec", description="prompts: built-in suite name or JSONL")
    split: Literal["train", "test", "all"] = Field("train", description="which split to train on")
    limit: int | None = Field(None, ge=1, description="only the first N items")
    advantage: Literal["grpo", "rloo"] = Field("grpo", description="grpo: (r − mean)/std in the group; rloo: r − mean of the others")
    scale_rewards: bool = Field(True, description="grpo: divide by the group std (false = Dr. GRPO)")
    k: int = Field(8, ge=2, description="samples per prompt (group size)")
    prompts_per_step: int = Field(2, ge=1, description="prompts per step (completions per step = k · prompts_per_step)")
    steps: int = Field(50, ge=1, description="RL steps (each: sample, score, update)")
    num_iterations: int = Field(1, ge=1, description="μ: optimizer steps per sampled batch (ratios leave 1 only when > 1)")
    clip: float = Field(0.2, gt=0, description="ε of the clipped surrogate")
    kl_coef: float = Field(0.04, ge=0, description="β: weight of the KL penalty to the reference")
    kl_in_reward: bool = Field(False, description="subtract β·Σ_t k1 from the scores instead of a k3 loss term")
    reward: RewardConfig = Field(default_factory=RewardConfig, description="reward source")
    sampling: SamplingParams = Field(default_factory=lambda: SamplingParams(temperature=1.0, max_new_tokens=64, seed=0),
                                     description="rollout sampling (seed + step per step)")
    optim: RLOptimConfig = Field(default_factory=lambda: RLOptimConfig(lr=1e-5), description="optimiser")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA adapters (reference = adapters off)")
    checkpoint: CheckpointConfig = Field(default_factory=lambda: CheckpointConfig(save_every=25),
                                         description="checkpoints, resume, logging")
    gold_eval: GoldEvalConfig = Field(default_factory=GoldEvalConfig,
                                      description="gold-rated held-out evals every N steps, with jump alarms (off by default)")

    def check(self) -> None:
        super().check()
        require_sampling_seed(self.sampling)
        require_torch_device(self.device)


def train(cfg: GRPOConfig, callbacks=()) -> dict:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    items = load_suite(cfg.suite, split=None if cfg.split == "all" else cfg.split, limit=cfg.limit)
    if not items:
        raise ConfigError(f"suite {cfg.suite!r} has no items in split {cfg.split!r}")
    device = pick_device(cfg.device)
    policy, tok = prepare_model(cfg.model, device=cfg.device, lora=cfg.lora, seed=cfg.optim.seed)
    ref_model = None
    needs_ref = cfg.kl_coef > 0
    if needs_ref and not cfg.lora.enabled:  # a frozen copy; with LoRA the reference is the base (adapters off)
        ref_model, _ = load_model_and_tokenizer(cfg.model)
        ref_model.to(device).eval().requires_grad_(False)
    reward_fn, reward_name = make_reward_fn(cfg.reward, device=str(device), bf16=cfg.optim.bf16)
    gold = GoldRater()
    # bf16 sampling copies when training in bf16 autocast (log-probs are recomputed by the trainer)
    engine = TorchEngine(model=policy, tokenizer=tok, decode_dtype=torch.bfloat16 if cfg.optim.bf16 else None)
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer, scheduler = make_optimizer(params, cfg.optim, cfg.steps)
    batch_at = prompt_batches(items, cfg.prompts_per_step, cfg.optim.seed, 0)
    advantage_fn = ADVANTAGES[cfg.advantage]
    trainable, total = count_parameters(policy)
    print(f"{cfg.advantage}: {len(items)} prompts, {cfg.prompts_per_step}×{cfg.k} completions per step, "
          f"reward {cfg.reward.source}; training {trainable:,} of {total:,} parameters", file=sys.stderr)
    bf16 = cfg.optim.bf16
    T = cfg.sampling.temperature

    def step(state: TrainState) -> dict:
        batch_items = [it for it in batch_at(state.step) for _ in range(cfg.k)]  # k samples of a prompt adjacent
        policy.eval()
        r = engine.generate([it.messages for it in batch_items],
                            cfg.sampling.model_copy(update={"seed": cfg.sampling.seed + state.step})).to(device)
        B, mask = len(batch_items), r.response_mask
        raw = torch.tensor(reward_fn(batch_items, r.texts), dtype=torch.float32, device=device)
        scores = apply_eos_penalty(raw, r.finished, cfg.reward.missing_eos_penalty)
        gold_scores = raw if reward_name == "gold" else torch.tensor(
            [gold.score(it, t) for it, t in zip(batch_items, r.texts)], device=device)
        # With one update per batch and the KL as a loss term, π_old is π_θ itself: its log-probs and
        # entropy come from the training forward below, which saves a forward pass of the policy.
        need_old = cfg.num_iterations > 1 or cfg.kl_in_reward
        with torch.no_grad(), autocast(policy, bf16):
            ref_logp = None
            if needs_ref:
                with reference_mode(policy, ref_model) as ref:
                    ref_logp = response_logprobs(ref, r, T)[0].float()  # (B, R)
            old_logp, ent = response_logprobs(policy, r, T, entropy=True) if need_old else (None, None)
        shaped = scores
        if cfg.kl_in_reward and ref_logp is not None:  # β = 0: nothing to subtract, and no reference was loaded
            shaped = scores - cfg.kl_coef * kl_k1(old_logp, ref_logp).mul(mask).sum(1)
        adv = advantage_fn(shaped, cfg.k, scale=cfg.scale_rewards) if cfg.advantage == "grpo" else advantage_fn(shaped, cfg.k)
        policy.train()
        stats_sum: dict[str, float] = {}
        grad_norm = 0.0
        seen_logp = torch.zeros(r.response_ids.shape, device=device)  # (B, R)
        seen_ent = torch.zeros(r.response_ids.shape, device=device)  # (B, R)
        for it in range(cfg.num_iterations):
            for s in range(0, B, cfg.optim.micro_batch_size):
                idx = list(range(s, min(B, s + cfg.optim.micro_batch_size)))
                sub = rollout_subset(r, idx)
                Rs = sub.response_ids.size(1)
                with autocast(policy, bf16):
                    logp, ent_mb = response_logprobs(policy, sub, T, entropy=old_logp is None)
                if old_logp is None:
                    seen_logp[idx, :Rs], seen_ent[idx, :Rs] = logp.detach().float(), ent_mb.float()
                old = old_logp[idx, :Rs] if old_logp is not None else logp.detach()
                ref = ref_logp[idx, :Rs] if (ref_logp is not None and not cfg.kl_in_reward) else None
                loss, st = clipped_pg_loss(logp, old, ref, adv[idx], sub.response_mask.to(logp.device), clip=cfg.clip,
                                           kl_coef=0.0 if cfg.kl_in_reward else cfg.kl_coef)
                (loss * len(idx) / B).backward()
                for key, v in st.items():
                    stats_sum[key] = stats_sum.get(key, 0.0) + v * len(idx) / B / cfg.num_iterations
            grad_norm = clip_and_step(optimizer, params, cfg.optim.max_grad_norm)
        if old_logp is None:
            old_logp, ent = seen_logp, seen_ent
        seq_kl = kl_k1(old_logp, ref_logp).mul(mask).sum(1) if ref_logp is not None else torch.zeros(B, device=device)
        grouped = scores.view(-1, cfg.k)
        lengths = r.response_lengths.float()
        metrics = {
            "reward": float(scores.mean()), "reward_std": float(grouped.std(dim=1).mean()),
            f"rewards/{reward_name}/mean": float(raw.mean()),
            "frac_reward_zero_std": float((grouped.std(dim=1) == 0).float().mean()),
            "kl": float(masked_mean(kl_k1(old_logp, ref_logp), mask)) if ref_logp is not None else 0.0,
            "objective/kl": float(seq_kl.mean()),
            "entropy": entropy_mean(ent, mask),
            "clip_ratio/region_mean": stats_sum.get("clip_ratio/region_mean", 0.0),
            "clip_ratio/low_mean": stats_sum.get("clip_ratio/low_mean", 0.0),
            "clip_ratio/high_mean": stats_sum.get("clip_ratio/high_mean", 0.0),
            "loss": stats_sum.get("loss", 0.0),
            "completions/mean_length": float(lengths.mean()),
            "completions/clipped_ratio": float((~r.finished).float().mean()),
            "proxy/score": float(raw.mean()), "gold/train_score": float(gold_scores.mean()),
            "grad_norm": grad_norm, "lr": scheduler.get_last_lr()[0], "episode": (state.step + 1) * B,
        }
        return metrics

    gold_eval = start_gold_eval(cfg.gold_eval, model=policy, tokenizer=tok, run_dir=out)
    if gold_eval:
        callbacks = [gold_eval, *callbacks]
    state = run_rl_loop(modules=policy, optimizer=optimizer, scheduler=scheduler, step_fn=step, total_steps=cfg.steps,
                        run_dir=out, ckpt=cfg.checkpoint, callbacks=callbacks, desc=cfg.advantage)
    if gold_eval:
        gold_eval.evaluate_now(state.step)
    save_final_model(policy, tok, out / "model")
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    last = [m for m in lines if "reward" in m][-5:]
    summary = {"model": str(out / "model"), "steps": state.step,
               **{k: sum(m[k] for m in last) / len(last) for k in ("reward", "objective/kl", "completions/mean_length",
                                                                    "gold/train_score") if last and k in last[0]}}
    atomic_write_text(out / "rl_results.json", json.dumps(summary, indent=2) + "\n")
    return summary
