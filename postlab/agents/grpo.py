"""Multi-turn GRPO / RLOO over environment episodes (``postlab env train``).

Each step: draw ``tasks_per_step`` tasks from the environment's train split, play k episodes of each
(``run_episodes``: the model's tokens kept as sampled, environment tokens between its turns), score each
episode with the environment's reward, turn the rewards into advantages within each task's group
(``algos/pg.py``: GRPO's (r − mean)/std or RLOO's leave-one-out), and take one optimizer step on the
clipped surrogate of ``loss_type`` with the episode's **loss mask**: only the model's tokens carry loss,
the tool results and chat-template tokens between its turns are context. Every token of an episode
gets its episode's advantage; with ``turn_shaping`` = c > 0 the tokens of each model turn get c times
that turn's tool outcome on top (−1 a failed or unparsable call, +1 calls that worked, 0 none). Math:
docs/algorithms/grpo.md, with the mask and the shaping of docs/agents.md.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from postlab.agents.envs import env_rows, make_env
from postlab.agents.metrics import summarize
from postlab.agents.rollout import collate_episodes, run_episodes
from postlab.algos.kl import kl_k1, masked_mean
from postlab.algos.pg import ADVANTAGES, LOSSES, BatchTotals, rows_with_signal, zero_std_groups
from postlab.config import Section
from postlab.errors import ConfigError
from postlab.models.prepare import pick_device, load_reference, prepare_model, save_final_model
from postlab.rollout import SamplingParams, TorchEngine
from postlab.train import distributed
from postlab.train.common import DEVICE_HELP, CheckpointConfig, Device, LoraConfig
from postlab.train.loop import TrainState, start_run_dir
from postlab.train.rl_common import (PhaseTimes, RLOptimConfig, autocast, clip_and_step, entropy_mean, make_optimizer,
                                     over_micro_batches, prompt_batches, reference_mode, response_logprobs,
                                     rollout_subset, run_rl_loop, split_batches)
from postlab.utils.io import atomic_write_text, finite


class AgentGRPOConfig(Section):
    """postlab env train: multi-turn GRPO / RLOO on an environment's episodes."""

    model: str = Field("smollm2-135m-instruct", description="policy to start from: built-in name, directory or hub id")
    out_dir: str = Field("runs/agent", description="run directory: config, metrics, checkpoints, final model")
    device: Device = Field("auto", description=DEVICE_HELP)
    env: str = Field("calculator", description="environment (postlab env list); tasks from its train split")
    max_turns: int | None = Field(None, ge=1, description="assistant turns per episode (default: the environment's)")
    max_total_tokens: int = Field(512, ge=16, description="tokens per episode after the prompt (model + environment)")
    sandbox_tier: Literal["namespaces", "unsafe"] = Field("namespaces", description="sandbox of code-running tools")
    fault_rate: float = Field(0.0, ge=0, le=1, description="share of train tasks whose first valid tool call fails "
                              "with a transient fault (calculator); 0 = none")
    advantage: Literal["grpo", "rloo"] = Field("grpo", description="grpo: (r − mean)/std in the group; rloo: r − mean of the others")
    scale_rewards: bool = Field(True, description="grpo: divide by the group std")
    loss_type: Literal["grpo", "dapo", "dr_grpo"] = Field("dapo", description="loss aggregation over the model's tokens "
                                                                             "(algos/pg.py); dapo = mean over the batch's model tokens")
    k: int = Field(4, ge=2, description="episodes per task (group size)")
    tasks_per_step: int = Field(2, ge=1, description="tasks per step (episodes per step = k · tasks_per_step)")
    steps: int = Field(20, ge=1, description="RL steps (each: play, score, update)")
    epsilon: float = Field(0.2, gt=0, description="the ratio's clip 1 ± ε (one update per batch: the ratio is 1)")
    kl_coef: float = Field(0.0, ge=0, description="β: k3 KL penalty to the reference on the model's tokens")
    turn_shaping: float = Field(0.0, ge=0, description="c: per-turn shaping, added to the advantage of each model turn's "
                                "tokens: −c for a call that did not parse or a tool that failed, +c for tool calls that "
                                "worked, 0 otherwise (0 = off: every token gets its episode's advantage)")
    sampling: SamplingParams = Field(default_factory=lambda: SamplingParams(temperature=1.0, max_new_tokens=96, seed=0),
                                     description="per-turn sampling (seed + step per step)")
    optim: RLOptimConfig = Field(default_factory=lambda: RLOptimConfig(lr=1e-5), description="optimiser")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA adapters (reference = adapters off)")
    checkpoint: CheckpointConfig = Field(default_factory=lambda: CheckpointConfig(save_every=10),
                                         description="checkpoints, resume, logging")


def _env_kwargs(cfg: AgentGRPOConfig) -> dict:
    from postlab.agents.envs import env_kwargs

    return env_kwargs(cfg.env, max_turns=cfg.max_turns, sandbox_tier=cfg.sandbox_tier, fault_rate=cfg.fault_rate)


def shaped_advantages(adv: torch.Tensor, signal: torch.Tensor, loss_mask: torch.Tensor, c: float,
                      live: list[int]) -> tuple[torch.Tensor, list[int]]:
    """Per-turn shaping: Â_it = Â_i + c · s_it, where s_it is the tool outcome of the turn token t belongs to
    (−1, 0, +1; ``collate_episodes``' turn_signal). adv: (B,); signal, loss_mask: (B, R). Returns the (B, R)
    advantages and the rows that carry any (those with Â_i ≠ 0 in ``live``, and those with a shaped model token)."""
    shaped = (signal * loss_mask).abs().sum(1).nonzero().squeeze(1).tolist()
    return adv[:, None] + c * signal, sorted(set(live) | set(shaped))


def train(cfg: AgentGRPOConfig, *, make: Callable[[], object] | None = None, rows: list[dict] | None = None) -> dict:
    """Train; ``make`` and ``rows`` replace the named environment and its train split (programmatic use)."""
    if distributed.world().size > 1:  # its ranks would not share the episodes nor sum their gradients
        raise ConfigError("postlab env train runs as one process: launch it without torchrun (docs/scaling.md)")
    out = Path(cfg.out_dir)
    start_run_dir(cfg, out, cfg.checkpoint)
    kwargs = _env_kwargs(cfg) if make is None else {}
    make = make or (lambda: make_env(cfg.env, **kwargs))
    rows = rows if rows is not None else env_rows(cfg.env, "train")
    device = pick_device(cfg.device)
    policy, tok = prepare_model(cfg.model, device=cfg.device, lora=cfg.lora, seed=cfg.optim.seed)
    ref_model = None
    if cfg.kl_coef > 0 and not cfg.lora.enabled:
        ref_model = load_reference(cfg.model, policy)
    engine = TorchEngine(model=policy, tokenizer=tok, decode_dtype=torch.bfloat16 if cfg.optim.bf16 else None)
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer, scheduler = make_optimizer(params, cfg.optim, cfg.steps)
    batch_at = prompt_batches(rows, cfg.tasks_per_step, cfg.optim.seed, 0)
    advantage_fn, loss_fn = ADVANTAGES[cfg.advantage], LOSSES[cfg.loss_type]
    T, bf16 = cfg.sampling.temperature, cfg.optim.bf16
    print(f"agent {cfg.advantage} on {cfg.env}: {len(rows)} tasks, {cfg.tasks_per_step}×{cfg.k} episodes per step",
          file=sys.stderr)

    def advantage_of(rewards: torch.Tensor) -> torch.Tensor:  # (B,) -> (B,)
        return advantage_fn(rewards, cfg.k, scale=cfg.scale_rewards) if cfg.advantage == "grpo" else advantage_fn(rewards, cfg.k)

    def step(state: TrainState) -> dict:
        policy.eval()
        timer = PhaseTimes()
        with timer("sample"):  # episodes: generation and the environment's tools and reward
            tasks = [row for row in batch_at(state.step) for _ in range(cfg.k)]
            episodes = run_episodes(engine, [make() for _ in tasks], tasks,
                                    cfg.sampling.model_copy(update={"seed": cfg.sampling.seed + state.step}),
                                    max_total_tokens=cfg.max_total_tokens)
        batch = collate_episodes(episodes, tok.pad_token_id)
        r = batch.as_rollout().to(device)
        loss_mask = batch.loss_mask.to(device)  # (B, R) 1 on the model's tokens
        rewards = batch.rewards.to(device)  # (B,)
        adv = advantage_of(rewards)
        live = rows_with_signal(adv, cfg.kl_coef)
        if cfg.turn_shaping:
            adv, live = shaped_advantages(adv, batch.turn_signal.to(device), loss_mask, cfg.turn_shaping, live)
        micro_batches = split_batches(live, len(live), cfg.optim.micro_batch_size)[0] if live else []
        ref_logp = None
        if cfg.kl_coef > 0:
            with timer("logprob"), torch.no_grad(), autocast(policy, bf16), reference_mode(policy, ref_model) as ref:
                [ref_logp] = over_micro_batches(r, micro_batches, lambda sub: response_logprobs(ref, sub, T)[:1])
        totals = BatchTotals.of(loss_mask, cfg.max_total_tokens)
        policy.train()
        stats_sum: dict[str, float] = {}
        seen_logp = torch.zeros(r.response_ids.shape, device=device)  # (B, R)
        seen_ent = torch.zeros(r.response_ids.shape, device=device)
        with timer("update"):
            for idx in micro_batches:
                sub = rollout_subset(r, idx)
                Rs = sub.response_ids.size(1)
                with autocast(policy, bf16):
                    logp, ent = response_logprobs(policy, sub, T, entropy=True)
                seen_logp[idx, :Rs], seen_ent[idx, :Rs] = logp.detach().float(), ent.float()
                ref = ref_logp[idx, :Rs] if ref_logp is not None else None
                loss, st = loss_fn(logp, logp.detach(), ref, adv[idx], loss_mask[idx, :Rs], totals, epsilon=cfg.epsilon,
                                   epsilon_high=cfg.epsilon, kl_coef=cfg.kl_coef)
                loss.backward()
                for key, v in st.items():
                    stats_sum[key] = stats_sum.get(key, 0.0) + v
            if not micro_batches:  # no episode carries signal: a zero gradient
                for p in params:
                    p.grad = torch.zeros_like(p)
            grad_norm = clip_and_step(optimizer, params, cfg.optim.max_grad_norm)
        agg = summarize([e.state for e in episodes])
        mask = loss_mask.float()
        metrics = {
            "reward": float(rewards.mean()), "reward_std": float(rewards.view(-1, cfg.k).std(dim=1).mean()),
            "frac_reward_zero_std": float(zero_std_groups(rewards, cfg.k).float().mean()),
            "success_rate": agg["success_rate"], "mean_turns": agg["mean_turns"],
            "tool_call_validity_rate": agg["tool_call_validity_rate"], "recovery_rate": agg["recovery_rate"],
            "episodes_with_errors": agg["episodes_with_errors"], "tool_calls": agg["tool_calls"],
            "kl": float(masked_mean(kl_k1(seen_logp, ref_logp), mask)) if ref_logp is not None and live else 0.0,
            "entropy": entropy_mean(seen_ent[live], mask[live]) if live else float("nan"),
            "loss": stats_sum.get("loss", 0.0), "clip_ratio/region_mean": stats_sum.get("clip_ratio/region_mean", 0.0),
            "completions/mean_length": float(mask.sum(1).mean()),  # model tokens per episode
            "episode/mean_tokens": float(batch.attention_mask.sum(1).float().mean()),
            "frac_rows_skipped": 1 - len(live) / len(episodes),
            **({"shaping/turn_outcome_mean": float(masked_mean(batch.turn_signal.to(device), mask))}
               if cfg.turn_shaping else {}),
            "grad_norm": grad_norm, "lr": scheduler.get_last_lr()[0], "episode": (state.step + 1) * len(episodes),
        }
        return {**finite(metrics), **timer.metrics()}

    state = run_rl_loop(modules=policy, optimizer=optimizer, scheduler=scheduler, step_fn=step, total_steps=cfg.steps,
                        run_dir=out, ckpt=cfg.checkpoint, desc=f"agent-{cfg.advantage}")
    save_final_model(policy, tok, out / "model")
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    last = [m for m in lines if "reward" in m][-5:]

    def mean_of(key: str) -> float | None:  # over the last steps that measured it (validity needs a tool call)
        values = [m[key] for m in last if m.get(key) is not None]
        return sum(values) / len(values) if values else None

    summary = {"model": str(out / "model"), "steps": state.step, "env": cfg.env,
               **{k: mean_of(k) for k in ("reward", "success_rate", "tool_call_validity_rate", "mean_turns")}}
    atomic_write_text(out / "rl_results.json", json.dumps(finite(summary), indent=2) + "\n")
    return summary
