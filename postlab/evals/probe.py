"""A fixed reward probe during RL: gold, proxy and KL(π‖π_ref) of the live policy on the same prompts,
every N steps — a ``run_rl_loop`` callback.

Why: a step's own samples measure the step's prompts (``prompts_per_step`` of them, a new draw each step),
so a curve of gold and proxy over steps mostly shows which prompts were drawn. The probe answers the
same ``limit`` prompts, ``samples`` times each, every time, with the same seeds (common random numbers:
two policies that agree sample the same tokens), so the differences between its points are the policy's.

At step s it samples y ~ π_s(·|x) at the recipe's temperature T for every probe prompt x and records
per prompt the mean reward-source score (proxy), the mean gold score, and

    KL(π_s ‖ π_ref)(x) ≈ mean over samples of Σ_t [log π_s(y_t | x, y_<t) − log π_ref(y_t | x, y_<t)]

(k1, unbiased for the sequence KL; both log-probs at T). Each point is appended to ``run_dir/probe.jsonl``
(``step``, the means over prompts with their standard errors, and ``per_prompt``: {item id: {gold, proxy,
kl}}) and the step's metrics get ``probe/gold``, ``probe/proxy``, ``probe/kl``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from pydantic import Field

from postlab.config import Section
from postlab.evals.metrics import mean_se
from postlab.rollout import SamplingParams
from postlab.rollout.sampling import row_params
from postlab.tasks.suite import Item

PROBE = "probe.jsonl"


class ProbeConfig(Section):
    """A fixed probe of the live policy during RL (off by default)."""

    every: int = Field(0, ge=0, description="probe every N optimizer steps and before the first (0 = off)")
    limit: int = Field(32, ge=1, description="probe prompts: the first N of the prompts the recipe trains on")
    samples: int = Field(2, ge=1, description="samples per probe prompt (the same seeds at every probe)")
    seed: int = Field(7919, description="sampling seed of the probe (every row seeded on its own from it, the same at every probe)")


def summarise(step: int, ids: list[str], gold: list[float], proxy: list[float], kl: list[float], samples: int) -> dict:
    """One probe point from per-row scores, rows ordered prompt by prompt (``samples`` adjacent rows each):
    per-prompt means, then means and standard errors over prompts (0 for one prompt)."""
    per_prompt = {}
    for j, item_id in enumerate(ids):
        part = slice(j * samples, (j + 1) * samples)
        per_prompt[item_id] = {name: sum(v[part]) / samples for name, v in (("gold", gold), ("proxy", proxy), ("kl", kl))}
    row = {"step": step}
    for name in ("gold", "proxy", "kl"):
        row[name], row[f"{name}_se"] = mean_se([p[name] for p in per_prompt.values()])
    return {**row, "per_prompt": per_prompt}


def read_probe(run_dir: str | Path) -> list[dict]:
    """The probe points of a run, one per step (a resumed run's repeat of a step replaces the earlier one)."""
    path = Path(run_dir) / PROBE
    if not path.exists():
        return []
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows[row["step"]] = row
    return [rows[s] for s in sorted(rows)]


class RewardProbe:
    """The callback: ``start()`` probes step 0 (unless the run directory already holds it), then every
    ``cfg.every`` steps. ``logprobs(model, rollout)`` gives (B, R) log-probs at the recipe's temperature;
    ``reference()`` is a context manager yielding π_ref. It samples on rank 0 alone, so not from a sharded policy
    (``postlab grpo`` refuses ``probe.every`` with ``optim.fsdp``)."""

    def __init__(self, *, cfg: ProbeConfig, items: list[Item], engine, policy, reference, logprobs, reward_fn,
                 gold, sampling: SamplingParams, run_dir: str | Path):
        self.cfg, self.items = cfg, items[: cfg.limit]
        self.engine, self.policy, self.reference, self.logprobs = engine, policy, reference, logprobs
        self.reward_fn, self.gold, self.run_dir = reward_fn, gold, Path(run_dir)
        self.sampling = sampling

    def start(self) -> None:
        if not any(r["step"] == 0 for r in read_probe(self.run_dir)):
            self.measure(0)

    def __call__(self, state, metrics: dict) -> None:
        if state.step % self.cfg.every == 0:
            row = self.measure(state.step)
            metrics.update({"probe/gold": row["gold"], "probe/proxy": row["proxy"], "probe/kl": row["kl"]})

    @torch.no_grad()
    def measure(self, step: int) -> dict:
        jobs = [it for it in self.items for _ in range(self.cfg.samples)]
        params = row_params(self.sampling, self.cfg.seed, range(len(jobs)))
        was_training = self.policy.training
        self.policy.eval()
        r = self.engine.generate([it.messages for it in jobs], params)
        device = next(self.policy.parameters()).device
        r = r.to(device)
        mask = r.response_mask.to(device).float()
        logp = self.logprobs(self.policy, r)
        with self.reference() as ref:
            ref_logp = self.logprobs(ref, r)
        kl = ((logp - ref_logp) * mask).sum(1).tolist()
        proxy = [float(x) for x in self.reward_fn(jobs, r.texts)]
        gold = [self.gold.score(it, t) for it, t in zip(jobs, r.texts)]
        self.policy.train(was_training)
        row = summarise(step, [it.id for it in self.items], gold, proxy, kl, self.cfg.samples)
        with (self.run_dir / PROBE).open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        return row
