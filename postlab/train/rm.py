"""``postlab rm``: a reward model from pairwise preferences (Bradley–Terry).

The policy backbone plus a scalar head read at the final (EOS) token, trained on TRL-format
preference rows (`postlab label` writes them). Reports held-out accuracy against the labels and
against gold on pairs where gold has a clear margin, then centres the rewards so that the responses
it was trained on (the SFT policy's samples) average 0. Math: docs/algorithms/reward_model.md.

With ``trainable_layers=N`` only the top N transformer layers, the final norm and the head train: the
hidden states entering the first trained layer are computed once per distinct sequence by the frozen
layers below it (``LayerInputCache``), and every step runs only the top N layers on them.
"""

from __future__ import annotations

import json
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from postlab.algos.reward import bradley_terry_loss, length_controlled_bt_loss
from postlab.config import Section
from postlab.data.preferences import PreferencePair, encode_response, load_preferences
from postlab.data.split import split_holdout
from postlab.errors import ConfigError, DataError
from postlab.models.load import check_model_name
from postlab.models.prepare import apply_lora, count_parameters, pick_device, save_final_model
from postlab.models.cpu_attention import use_for_training
from postlab.models.reward import OFFSET_KEY, backbone_and_head, last_token_index, load_reward_model, rewards
from postlab.models.reward import layer_view
from postlab.models.reward import right_pad as _pad
from postlab.train import distributed
from postlab.train.common import DEVICE_HELP, CheckpointConfig, Device, LoraConfig, OptimConfig
from postlab.train.loop import TrainResult, latest_checkpoint, start_run_dir, train_loop
from postlab.utils.io import atomic_write_text, finite

# Margin m_i per strength label with margin=strength (Llama 2 uses a larger margin for clearer pairs).
STRENGTH_MARGINS = {"slightly better": 0.0, "better": 0.5, "much better": 1.0}


class RMDataConfig(Section):
    """Preference data."""

    train_file: str = Field(..., description="preferences ({prompt, chosen, rejected} or implicit-prompt {chosen, rejected}, TRL format): JSONL, a directory of shards, .parquet, .arrow or a save_to_disk directory (required)")
    eval_file: str | None = Field(None, description="held-out preferences; if unset, eval_fraction of the prompts in train_file are held out")
    eval_fraction: float = Field(0.1, ge=0, lt=1, description="fraction of prompts (all their pairs) held out when eval_file is unset")
    max_seq_len: int = Field(1024, ge=8, description="pairs with a longer prompt + response are skipped")

    def check(self) -> None:
        for name in ("train_file", "eval_file"):
            value = getattr(self, name)
            if value is not None and not Path(value).exists():
                raise ConfigError(f"data.{name}: file not found: {value}")


class RMConfig(Section):
    """postlab rm: train a reward model on pairwise preferences."""

    model: str = Field("smollm2-135m-instruct", description="backbone: built-in name, directory (usually the SFT policy) or hub id")
    out_dir: str = Field("runs/rm", description="run directory: config, metrics, checkpoints, final model, rm_results.json")
    device: Device = Field("auto", description=DEVICE_HELP)
    data: RMDataConfig
    margin: Literal["none", "strength"] = Field("none", description="BT margin term: none, or from the strength label (slightly 0 / better 0.5 / much 1)")
    clear_margin: float = Field(0.3, gt=0, le=1, description="gold margin at or above which a held-out pair counts for accuracy_vs_gold")
    length_control: bool = Field(False, description="Bradley–Terry with a length term (algos.reward.length_controlled_bt_loss): a learned β takes the raters' taste for length and the reward is kept uncorrelated with length in each batch, so it scores the rest; β is reported as length_beta and is not part of the saved model")
    optim: OptimConfig = Field(default_factory=lambda: OptimConfig(lr=1e-5, batch_size=8, epochs=1.0, warmup_steps=5),
                               description="optimiser and loop (batch_size counts pairs, or prompts with group_by_prompt)")
    group_by_prompt: bool = Field(False, description="all of a prompt's comparisons as one batch element, each response "
                                  "scored once per step (InstructGPT, Ouyang et al. 2022 §3.5): a response in k pairs costs "
                                  "one forward, not k; batch_size then counts prompts")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA adapters (the score head trains fully)")
    trainable_layers: int = Field(0, ge=0, description="train only the top N transformer layers + final norm + score head, "
                                  "on the frozen bottom's hidden states computed once per distinct sequence and cached "
                                  "(0 = every weight: full fine-tuning)")
    activation_cache: Literal["memory", "disk"] = Field("memory", description="with trainable_layers: keep the cached hidden "
                                                        "states in RAM, or in a memory-mapped file in out_dir (deleted after "
                                                        "training) for sets larger than RAM; fp32, 4·hidden bytes per token")
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig, description="eval, checkpoints, logging")

    def check(self) -> None:
        if self.length_control and self.optim.fsdp:
            raise ConfigError("length_control: not combined with optim.fsdp (its β is one unsharded scalar)")
        super().check()
        if self.trainable_layers and self.lora.enabled:
            raise ConfigError("trainable_layers: choose either trainable_layers or lora.enabled=true, not both")
        if self.trainable_layers and self.optim.compile:
            raise ConfigError("trainable_layers: optim.compile does not apply to the cached top-layer path; set it to false")


@dataclass
class PairBatch:
    """B pairs over S ≤ 2B distinct sequences, each scored once: pair i compares row chosen_row[i] with
    row rejected_row[i]."""

    input_ids: torch.Tensor  # (S, T) the distinct sequences, right-padded, in order of first appearance
    attention_mask: torch.Tensor  # (S, T)
    margin: torch.Tensor  # (B,) BT margin per pair
    gold_margin: torch.Tensor  # (B,) gold(chosen) − gold(rejected); NaN when unknown
    length_chosen: torch.Tensor | None = None  # (B,) log(1 + words) of each chosen response
    length_rejected: torch.Tensor | None = None  # (B,) and of each rejected one
    chosen_row: torch.Tensor | None = None  # (B,) long: the row of each pair's chosen sequence
    rejected_row: torch.Tensor | None = None  # (B,) long: and of its rejected one


def _accuracy_vs_gold(diff: torch.Tensor, gold: torch.Tensor, clear: float) -> tuple[float, int]:
    keep = gold.abs() >= clear  # NaN compares False: unknown gold is left out
    n = int(keep.sum())
    return (float(((diff[keep] > 0) == (gold[keep] > 0)).float().mean()) if n else float("nan")), n


# length_control's β is stored as BETA_SCALE · b: one scalar that every pair informs, it would crawl at the head's
# learning rate (Adam moves a parameter about lr per step: 3e-4 × 100 steps against a β near 0.3).
BETA_SCALE = 100.0
BETA_PARAM = "rm_length_beta"


def length_beta(model) -> torch.Tensor | None:
    """length_control's β (0-dim), or None when the model has none."""
    b = getattr(model, BETA_PARAM, None)
    return None if b is None else b * BETA_SCALE


@dataclass
class RewardObjective:
    pad_id: int
    clear_margin: float = 0.3

    def collate(self, examples: list[dict]) -> PairBatch:
        pairs = pairs_of(examples)
        rows: dict[tuple[int, ...], int] = {}  # distinct sequence -> its row

        def row(ids) -> int:
            return rows.setdefault(tuple(ids), len(rows))

        chosen, rejected = [row(p["chosen_ids"]) for p in pairs], [row(p["rejected_ids"]) for p in pairs]
        ids, mask = _pad([list(s) for s in rows], self.pad_id)

        def column(key: str, default=None) -> torch.Tensor:
            return torch.tensor([p[key] if default is None else p.get(key, default) for p in pairs], dtype=torch.float32)

        return PairBatch(ids, mask, column("margin"), column("gold_margin"), column("length_chosen", 0.0),
                         column("length_rejected", 0.0), torch.tensor(chosen), torch.tensor(rejected))

    def units(self, batch: PairBatch) -> int:
        return batch.margin.numel()

    def fsdp_roots(self, model) -> tuple:
        """The parts ``score`` calls one by one (the body, then the head on the pooled states), which
        ``optim.fsdp`` shards as separate roots (``distributed.shard_model``)."""
        return backbone_and_head(model)

    def num_tokens(self, batch: PairBatch) -> int:
        return int(batch.attention_mask.sum())

    def score(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """r(x, y) per row. (B, T) -> (B,)."""
        device = next(model.parameters()).device
        return rewards(model, input_ids.to(device), attention_mask.to(device))

    def _rewards(self, model, batch: PairBatch) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.score(model, batch.input_ids, batch.attention_mask)  # (S,)
        return r[batch.chosen_row.to(r.device)], r[batch.rejected_row.to(r.device)]  # (B,), (B,)

    def loss(self, model, batch: PairBatch, total_units: int):
        r_c, r_r = self._rewards(model, batch)
        margin = batch.margin.to(r_c.device)
        margin = margin if bool(margin.any()) else None
        beta = length_beta(model)
        if beta is not None:
            return length_controlled_bt_loss(r_c, r_r, batch.length_chosen.to(r_c.device),
                                             batch.length_rejected.to(r_c.device), beta, margin, total_units)
        return bradley_terry_loss(r_c, r_r, margin, total_units)

    @torch.no_grad()
    def evaluate(self, model, examples: Sequence[dict], batch_size: int) -> dict[str, float]:
        was_training = model.training
        model.eval()
        sums: dict[str, float] = {}
        diffs, golds = [], []
        total = len(pairs_of(examples))
        for i in range(0, len(examples), batch_size):
            batch = self.collate(list(examples[i : i + batch_size]))
            r_c, r_r = self._rewards(model, batch)
            _, stats = bradley_terry_loss(r_c, r_r, None, total)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            diffs.append((r_c - r_r).cpu())
            golds.append(batch.gold_margin)
        model.train(was_training)
        acc_gold, n_gold = _accuracy_vs_gold(torch.cat(diffs), torch.cat(golds), self.clear_margin)
        return {**{f"eval_{k}": v for k, v in sums.items()}, "eval_accuracy_vs_gold": acc_gold,
                "eval_gold_clear_pairs": n_gold}


def freeze_bottom(model, trainable_layers: int) -> int:
    """Freeze the embeddings and every layer below the top ``trainable_layers`` (the final norm and
    the score head stay trainable); returns the index of the first trained layer."""
    body = model.model
    L = len(body.layers)
    if trainable_layers > L:
        raise ConfigError(f"trainable_layers: {trainable_layers} is more than the model's {L} layers")
    start = L - trainable_layers
    body.requires_grad_(False)
    body.layers[start:].requires_grad_(True)
    body.norm.requires_grad_(True)
    return start


def _position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    return (attention_mask.long().cumsum(dim=1) - 1).clamp_min(0)  # as models.reward.rewards: left padding from 0


class LayerInputCache:
    """h_s(x, y): the hidden states entering layer ``start`` at every real token of a sequence,
    computed once by the frozen layers below it and reused by every pair, epoch and held-out
    evaluation that holds the sequence. Causal attention makes a token's state independent of what
    follows it, so states computed in one right-padded batch serve any other batch.

    Stored as one (total tokens, H) fp32 tensor, in RAM or memory-mapped from ``path``."""

    def __init__(self, *, model, sequences: Sequence[Sequence[int]], start: int, pad_id: int, batch_size: int,
                 bf16: bool, path: Path | None = None):
        """``bf16``: run the frozen layers under bf16 autocast, as the full forward would in training."""
        self.start, self.path = start, path
        distinct = sorted({tuple(s) for s in sequences}, key=len)  # similar lengths batched together
        n, H = sum(len(s) for s in distinct), model.config.hidden_size
        if path is None:
            self.h = torch.empty(n, H)
        else:
            path.unlink(missing_ok=True)
            self.h = torch.from_file(str(path), shared=True, size=n * H, dtype=torch.float32).view(n, H)
        self.index: dict[tuple[int, ...], tuple[int, int]] = {}  # sequence -> (first row in h, length)
        bottom = layer_view(model.model, model.model.layers[:start], torch.nn.Identity())
        device = next(model.parameters()).device
        was_training, row = model.training, 0
        model.eval()
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            for i in range(0, len(distinct), batch_size):
                chunk = distinct[i : i + batch_size]
                ids, mask = _pad([list(s) for s in chunk], pad_id)
                h = bottom(input_ids=ids.to(device), attention_mask=mask.to(device),
                           position_ids=_position_ids(mask).to(device)).last_hidden_state  # (b, T, H)
                for j, s in enumerate(chunk):
                    self.h[row : row + len(s)] = h[j, : len(s)].float().cpu()
                    self.index[s] = (row, len(s))
                    row += len(s)
        model.train(was_training)

    @property
    def num_sequences(self) -> int:
        return len(self.index)

    def batch(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Cached states of each row's real tokens, placed where its tokens are: (B, T) -> (B, T, H);
        zeros at padding (masked out by attention, never read out)."""
        out = torch.zeros(*input_ids.shape, self.h.size(1))
        for b in range(input_ids.size(0)):
            keep = attention_mask[b].bool()
            first, n = self.index[tuple(input_ids[b, keep].tolist())]
            out[b, keep] = self.h[first : first + n]
        return out

    def close(self) -> None:
        """Delete the memory-mapped file, if any (the cache can always be recomputed)."""
        self.h = torch.empty(0)
        if self.path is not None:
            self.path.unlink(missing_ok=True)


@dataclass(kw_only=True)
class CachedRewardObjective(RewardObjective):
    """``RewardObjective`` with the layers below ``cache.start`` frozen: each step runs only the top
    layers, the final norm and the head, on the cached hidden states."""

    cache: LayerInputCache

    def score(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        body, head = model.model, model.score
        device = next(model.parameters()).device
        top = layer_view(body, body.layers[self.cache.start :], body.norm)
        h_s = self.cache.batch(input_ids, attention_mask).to(device)  # (B, T, H)
        mask = attention_mask.to(device)
        h = top(inputs_embeds=h_s, attention_mask=mask, position_ids=_position_ids(mask)).last_hidden_state  # (B, T, H)
        h_last = h[torch.arange(h.size(0), device=device), last_token_index(mask)]  # (B, H)
        return head(h_last).squeeze(-1).float()  # (B,)


def _cache_name() -> str:
    """The on-disk activation cache's file name: one per process under torchrun."""
    rank = distributed.world().rank
    return f"activation_cache.rank{rank}.f32" if rank else "activation_cache.f32"


def encode_pairs(tok, pairs: list[PreferencePair], cfg: RMConfig, source: str) -> list[dict]:
    out, skipped = [], 0
    for p in pairs:
        c, r = encode_response(tok, p.prompt, p.chosen), encode_response(tok, p.prompt, p.rejected)
        if max(len(c), len(r)) > cfg.data.max_seq_len:
            skipped += 1
            continue
        margin = STRENGTH_MARGINS.get(p.strength or "", 0.0) if cfg.margin == "strength" else 0.0
        out.append({"chosen_ids": c, "rejected_ids": r, "margin": margin, "prompt_key": p.prompt_id or json.dumps(p.prompt),
                    "gold_margin": float("nan") if p.gold_margin is None else p.gold_margin,
                    "length_chosen": _log_length(p.chosen), "length_rejected": _log_length(p.rejected)})
    if skipped:
        print(f"warning: {source}: {skipped} pair(s) longer than data.max_seq_len={cfg.data.max_seq_len} skipped",
              file=sys.stderr)
    if not out:
        raise DataError(f"{source}: no usable preference pairs")
    return out


def _log_length(response: str) -> float:
    """ℓ = log(1 + words), the length the simulated raters' verbosity bias reads (postlab.raters.simulated)."""
    from postlab.raters.simulated import num_words

    return math.log1p(num_words(response))


def split_by_prompt(pairs: list[PreferencePair], fraction: float, seed: int):
    """Hold out whole prompts, so no held-out response was seen in training."""
    groups: dict[str, list[PreferencePair]] = {}
    for p in pairs:
        groups.setdefault(p.prompt_id or json.dumps(p.prompt), []).append(p)
    train_keys, eval_keys = split_holdout(sorted(groups), fraction, seed)
    return [p for k in train_keys for p in groups[k]], [p for k in eval_keys for p in groups[k]]


def pairs_of(examples: Sequence[dict]) -> list[dict]:
    """The pairs of a list of examples: each is a pair, or (group_by_prompt) a prompt's group of them."""
    return [p for e in examples for p in e.get("pairs", [e])]


def group_by_prompt(examples: list[dict]) -> list[dict]:
    """One example per prompt holding all its pairs, in order of first appearance; ``num_tokens`` counts its
    distinct sequences' tokens (what a step runs: ``loop.example_length``)."""
    groups: dict[str, list[dict]] = {}
    for e in examples:
        groups.setdefault(e["prompt_key"], []).append(e)
    return [{"pairs": ps, "num_tokens": sum(len(s) for s in sequences(ps))} for ps in groups.values()]


def sequences(examples: Sequence[dict]) -> list[tuple[int, ...]]:
    """The distinct token sequences (both sides of each pair), sorted."""
    return sorted({tuple(p[k]) for p in pairs_of(examples) for k in ("chosen_ids", "rejected_ids")})


@torch.no_grad()
def mean_reward(model, objective: RewardObjective, examples: list[dict], batch_size: int, max_responses: int = 256,
                bf16: bool = False) -> float:
    """Mean raw reward over the distinct responses in `examples` (both sides of each pair); a seeded
    sample of `max_responses` of them when there are more (the mean's standard error is then ~σ/16).
    With `bf16`, forwards run under bf16 autocast as in training."""
    seqs = sequences(examples)
    if len(seqs) > max_responses:
        seqs = random.Random(0).sample(seqs, max_responses)
    device = next(model.parameters()).device
    total = 0.0
    model.eval()
    for i in range(0, len(seqs), batch_size):
        ids, mask = _pad([list(s) for s in seqs[i : i + batch_size]], objective.pad_id)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            total += float(objective.score(model, ids, mask).sum())
    return total / len(seqs)


@distributed.data_parallel
def train(cfg: RMConfig) -> dict:
    cfg.check()
    if cfg.optim.fsdp and cfg.trainable_layers:
        distributed.refuse_fsdp("not combined with trainable_layers (the frozen bottom layers' cache); "
                                "set trainable_layers=0 to train every layer sharded")
    out = Path(cfg.out_dir)
    latest_checkpoint(out, cfg.checkpoint)  # a rerun without checkpoint.resume=true is refused before any loading
    # Model name and data are checked before the run directory is made: a mistake leaves nothing behind.
    check_model_name(cfg.model)
    pairs = load_preferences(cfg.data.train_file)
    if cfg.data.eval_file:
        train_pairs, eval_pairs = pairs, load_preferences(cfg.data.eval_file)
    else:
        train_pairs, eval_pairs = split_by_prompt(pairs, cfg.data.eval_fraction, cfg.optim.seed)
    torch.manual_seed(cfg.optim.seed)  # the new score head's init
    model, tok = load_reward_model(cfg.model)
    model.to(pick_device(cfg.device))
    use_for_training(model)  # on a CPU: the hand-written attention backward on short sequences (cpu_attention.py)
    if cfg.lora.enabled:
        model = apply_lora(model, cfg.lora, cfg.optim.seed, task_type="SEQ_CLS")
    examples = encode_pairs(tok, train_pairs, cfg, cfg.data.train_file)
    eval_examples = encode_pairs(tok, eval_pairs, cfg, "held-out pairs") if eval_pairs else []
    start_run_dir(cfg, out, cfg.checkpoint)
    objective = RewardObjective(tok.pad_token_id, cfg.clear_margin)
    if cfg.trainable_layers:
        start = freeze_bottom(model, cfg.trainable_layers)
        cache = LayerInputCache(model=model, sequences=sequences(examples + eval_examples), start=start,
                                pad_id=tok.pad_token_id, batch_size=cfg.optim.batch_size * 2, bf16=cfg.optim.bf16,
                                path=out / _cache_name() if cfg.activation_cache == "disk" else None)
        print(f"rm: cached the inputs of layer {start} for {cache.num_sequences} distinct sequences "
              f"({cache.h.numel() * 4 / 2**30:.2f} GiB, {cfg.activation_cache})", file=sys.stderr)
        objective = CachedRewardObjective(pad_id=tok.pad_token_id, clear_margin=cfg.clear_margin, cache=cache)
    if cfg.length_control:
        model.register_parameter(BETA_PARAM, torch.nn.Parameter(torch.zeros((), device=next(model.parameters()).device)))
    trainable, total = count_parameters(model)
    print(f"rm: {len(examples)} train / {len(eval_examples)} held-out pairs; training {trainable:,} of "
          f"{total:,} parameters", file=sys.stderr)
    n_pairs = len(examples)
    if cfg.group_by_prompt:
        examples, eval_examples = group_by_prompt(examples), group_by_prompt(eval_examples)
        print(f"rm: grouped by prompt: {len(examples)} train / {len(eval_examples)} held-out prompts", file=sys.stderr)
    try:
        result: TrainResult = train_loop(model=model, examples=examples, eval_examples=eval_examples,
                                         objective=objective, optim=cfg.optim, ckpt=cfg.checkpoint, run_dir=out, desc="rm")
        offset = mean_reward(model, objective, examples, cfg.optim.batch_size * 2, bf16=cfg.optim.bf16)
    finally:
        if isinstance(objective, CachedRewardObjective):
            objective.cache.close()
    beta = length_beta(model)
    if beta is not None:
        beta = float(beta.detach())
        delattr(model, BETA_PARAM)  # not part of the reward model: its head alone is the reward
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    setattr(inner.config, OFFSET_KEY, offset)
    ev = result.eval_metrics
    summary = {"model": str(out / "model"), "train_pairs": n_pairs, "eval_pairs": len(pairs_of(eval_examples)),
               "accuracy_vs_labels": ev.get("eval_rewards/accuracies"), "accuracy_vs_gold": ev.get("eval_accuracy_vs_gold"),
               "gold_clear_pairs": ev.get("eval_gold_clear_pairs"), "clear_margin": cfg.clear_margin,
               "eval_loss": ev.get("eval_loss"), "reward_offset": offset, "steps": result.state.step,
               **({"length_beta": beta} if beta is not None else {})}
    summary = finite(summary)
    full = distributed.full_state_dict(model)  # optim.fsdp: every rank sends its shards to rank 0
    if distributed.is_main():  # under torchrun, rank 0 alone writes
        save_final_model(model, tok, out / "model", state_dict=full)
        atomic_write_text(out / "rm_results.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return summary
