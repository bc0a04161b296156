"""``postlab dpo``: direct preference optimisation of the policy (DPO, or IPO with ``loss=ipo``).

Trains the policy itself on TRL-format preference rows (`postlab label` writes them), with no reward
model and no sampling. The reference π_ref is the starting policy: its log-probs of every chosen and
rejected response are computed once, before training, and stored with the pairs — so only one copy of
the model is ever held (with LoRA, π_ref is the same model with its adapters disabled). Held-out
pairs are whole prompts. Math: docs/algorithms/dpo.md.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from postlab.algos.dpo import PREFERENCE_LOSSES, PreferenceLoss, response_lengths, sequence_logps
from postlab.algos.lm import IGNORE_INDEX
from postlab.config import Section
from postlab.data.collate import LMBatch, collate
from postlab.data.preferences import PreferencePair, encode_prompt, encode_response, load_preferences
from postlab.errors import DataError
from postlab.evals.callback import GoldEvalConfig, start_gold_eval
from postlab.models.load import check_model_name
from postlab.models.prepare import count_parameters, prepare_model, save_final_model
from postlab.train import distributed
from postlab.train.common import DEVICE_HELP, CheckpointConfig, Device, LoraConfig, OptimConfig
from postlab.train.loop import TrainResult, latest_checkpoint, start_run_dir, train_loop
from postlab.train.rm import RMDataConfig, split_by_prompt
from postlab.utils.io import atomic_write_text, finite


class DPOConfig(Section):
    """postlab dpo: optimise the policy directly on pairwise preferences (DPO / IPO)."""

    model: str = Field("smollm2-135m-instruct", description="starting policy, also the reference: built-in name, directory (usually the SFT policy) or hub id")
    out_dir: str = Field("runs/dpo", description="run directory: config, metrics, checkpoints, final model, dpo_results.json")
    device: Device = Field("auto", description=DEVICE_HELP)
    data: RMDataConfig = Field(..., description="preference data (TRL format), held out by prompt")
    loss: Literal["dpo", "ipo"] = Field("dpo", description="dpo: −log σ(β·h) on summed log-probs; ipo: (h − 1/(2β))² on token-mean log-probs")
    beta: float = Field(0.1, gt=0, description="β: strength of the implicit KL pull towards the reference (τ for ipo); smaller lets the policy move further")
    optim: OptimConfig = Field(default_factory=lambda: OptimConfig(lr=1e-6, batch_size=8, epochs=1.0, warmup_steps=10),
                               description="optimiser and loop (batch_size counts pairs; lr 1e-6 is for full fine-tuning, use ~5e-5 with lora.enabled)")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA adapters; the reference is the model with adapters disabled")
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig, description="eval, checkpoints, logging")
    gold_eval: GoldEvalConfig = Field(default_factory=GoldEvalConfig,
                                      description="gold-rated held-out evals every N steps, with jump alarms (off by default)")


@dataclass
class DPOBatch:
    seqs: LMBatch  # (2B, T) chosen rows then rejected rows, right-padded; labels on response + EOS only
    ref_logps: torch.Tensor | None  # (2B,) summed log π_ref(y|x), same order; None while computing it


@dataclass
class DPOObjective:
    pad_id: int
    beta: float
    preference: PreferenceLoss
    bf16: bool = False

    def collate(self, examples: list[dict]) -> DPOBatch:
        rows = [(e[key], e["prompt_len"]) for key in ("chosen_ids", "rejected_ids") for e in examples]
        seqs = collate([{"input_ids": ids, "labels": [IGNORE_INDEX] * n + ids[n:]} for ids, n in rows], self.pad_id)
        ref = None
        if "ref_logp_c" in examples[0]:
            ref = torch.tensor([e["ref_logp_c"] for e in examples] + [e["ref_logp_r"] for e in examples])
        return DPOBatch(seqs, ref)

    def units(self, batch: DPOBatch) -> int:
        return batch.seqs.input_ids.size(0) // 2

    def num_tokens(self, batch: DPOBatch) -> int:
        return batch.seqs.num_tokens

    def logps(self, model, batch: DPOBatch) -> torch.Tensor:
        """Summed log π(y|x) of every row, chosen then rejected: (2B,). One forward for both sides."""
        device = next(model.parameters()).device
        s = batch.seqs
        logits = model(input_ids=s.input_ids.to(device), attention_mask=s.attention_mask.to(device)).logits  # (2B, T, V)
        with torch.autocast(device_type=device.type, enabled=False):  # sequence_logps upcasts by itself
            return sequence_logps(logits, s.labels.to(device))

    def _loss(self, pi_logps: torch.Tensor, batch: DPOBatch, total_pairs: int):
        ref_logps = batch.ref_logps.to(pi_logps.device)
        if self.preference.token_mean:
            lengths = response_lengths(batch.seqs.labels).to(pi_logps.device)  # (2B,)
            pi_logps, ref_logps = pi_logps / lengths, ref_logps / lengths
        B = pi_logps.numel() // 2
        return self.preference.fn(pi_logps[:B], pi_logps[B:], ref_logps[:B], ref_logps[B:],
                                  beta=self.beta, total_pairs=total_pairs)

    def loss(self, model, batch: DPOBatch, total_units: int):
        return self._loss(self.logps(model, batch), batch, total_units)

    @torch.no_grad()
    def evaluate(self, model, examples: Sequence[dict], batch_size: int) -> dict[str, float]:
        sums: dict[str, float] = {}
        for batch, pi_logps in self.scan_logps(model, examples, batch_size):
            _, stats = self._loss(pi_logps, batch, len(examples))
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
        return {f"eval_{k}": v for k, v in sums.items()}

    @torch.no_grad()
    def scan_logps(self, model, examples: Sequence[dict], batch_size: int):
        """Yield (batch, summed log-probs (2B,)) for consecutive batches of ``examples``, in eval mode."""
        was_training = model.training
        model.eval()
        device_type = next(model.parameters()).device.type
        try:
            for i in range(0, len(examples), batch_size):
                batch = self.collate(list(examples[i : i + batch_size]))
                with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=self.bf16):
                    yield batch, self.logps(model, batch).cpu()
        finally:
            model.train(was_training)


@torch.no_grad()
def store_reference_logps(model, examples: list[dict], objective: DPOObjective, batch_size: int) -> None:
    """Set ``ref_logp_c``, ``ref_logp_r`` (summed log π_ref) on every example, π_ref being ``model`` as
    it is now — with LoRA, with its adapters disabled, so the base weights serve as the reference."""
    from peft import PeftModel

    disabled = model.disable_adapter() if isinstance(model, PeftModel) else nullcontext()
    with disabled:
        for i, (_, logps) in enumerate(objective.scan_logps(model, examples, batch_size)):
            chunk = examples[i * batch_size : (i + 1) * batch_size]
            B = len(chunk)
            for e, c, r in zip(chunk, logps[:B].tolist(), logps[B:].tolist()):
                e["ref_logp_c"], e["ref_logp_r"] = c, r


def _prompt_len(tok, prompt) -> int:
    """Tokens of the prompt with its generation header: the prefix ``encode_response`` puts first."""
    return len(encode_prompt(tok, prompt))


def encode_pairs(tok, pairs: list[PreferencePair], max_seq_len: int, source: str) -> list[dict]:
    out, skipped = [], 0
    for p in pairs:
        c, r = encode_response(tok, p.prompt, p.chosen), encode_response(tok, p.prompt, p.rejected)
        if max(len(c), len(r)) > max_seq_len:  # truncating would cut the EOS the policy must learn to emit
            skipped += 1
            continue
        out.append({"chosen_ids": c, "rejected_ids": r, "prompt_len": _prompt_len(tok, p.prompt)})
    if skipped:
        print(f"warning: {source}: {skipped} pair(s) longer than data.max_seq_len={max_seq_len} skipped", file=sys.stderr)
    if not out:
        raise DataError(f"{source}: no usable preference pairs")
    return out


@distributed.data_parallel
def train(cfg: DPOConfig) -> dict:
    out = Path(cfg.out_dir)
    if cfg.optim.fsdp and cfg.gold_eval.every:
        distributed.refuse_fsdp("not combined with gold_eval (its generations run on rank 0 alone)")
    latest_checkpoint(out, cfg.checkpoint)  # a rerun without checkpoint.resume=true is refused before any loading
    # Model name and data are checked before the run directory is made: a mistake leaves nothing behind.
    check_model_name(cfg.model)
    pairs = load_preferences(cfg.data.train_file)
    if cfg.data.eval_file:
        train_pairs, eval_pairs = pairs, load_preferences(cfg.data.eval_file)
    else:
        train_pairs, eval_pairs = split_by_prompt(pairs, cfg.data.eval_fraction, cfg.optim.seed)
    model, tok = prepare_model(cfg.model, device=cfg.device, lora=cfg.lora, seed=cfg.optim.seed)
    examples = encode_pairs(tok, train_pairs, cfg.data.max_seq_len, cfg.data.train_file)
    eval_examples = encode_pairs(tok, eval_pairs, cfg.data.max_seq_len, "held-out pairs") if eval_pairs else []
    start_run_dir(cfg, out, cfg.checkpoint)
    objective = DPOObjective(tok.pad_token_id, cfg.beta, PREFERENCE_LOSSES[cfg.loss], bf16=cfg.optim.bf16)
    # Before train_loop, which may load a checkpoint: the model still holds the starting weights here,
    # also on resume, so π_ref is always the starting policy.
    store_reference_logps(model, examples + eval_examples, objective, cfg.optim.batch_size)
    trainable, total = count_parameters(model)
    print(f"dpo ({cfg.loss}, beta {cfg.beta}): {len(examples)} train / {len(eval_examples)} held-out pairs; "
          f"training {trainable:,} of {total:,} parameters", file=sys.stderr)
    main = distributed.is_main()  # under torchrun, rank 0 alone runs gold evals and writes
    gold = start_gold_eval(cfg.gold_eval, model=model, tokenizer=tok, run_dir=out) if main else None
    result: TrainResult = train_loop(model=model, examples=examples, eval_examples=eval_examples, objective=objective,
                                     optim=cfg.optim, ckpt=cfg.checkpoint, run_dir=out, desc=cfg.loss,
                                     callbacks=[gold] if gold else [])
    if gold:
        gold.evaluate_now(result.state.step)
    summary = {"model": str(out / "model"), "loss": cfg.loss, "beta": cfg.beta, "train_pairs": len(examples),
               "eval_pairs": len(eval_examples), "steps": result.state.step, **result.eval_metrics}
    summary = finite(summary)
    full = distributed.full_state_dict(model)  # optim.fsdp: every rank sends its shards to rank 0
    if main:
        save_final_model(model, tok, out / "model", state_dict=full)
        atomic_write_text(out / "dpo_results.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return summary
