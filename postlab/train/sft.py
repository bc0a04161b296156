"""Supervised fine-tuning on chat demonstrations: TRL's ``{"messages": [...]}`` or ``{"prompt",
"completion"}`` rows (JSONL, a directory of shards, Parquet, Arrow or a saved dataset; postlab.data.chat).

Loss only on assistant tokens (end-of-turn token included); in prompt-completion rows, only on the
completion's. Math: docs/algorithms/sft.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import Field

from postlab.config import Section
from postlab.data.chat import IGNORE_INDEX, encode_chat, load_sft_data
from postlab.data.split import split_holdout
from postlab.errors import ConfigError, DataError
from postlab.evals.callback import GoldEvalConfig, start_gold_eval
from postlab.models.load import check_model_name
from postlab.models.prepare import count_parameters, prepare_model, save_final_model
from postlab.train import distributed
from postlab.train.common import DEVICE_HELP, CheckpointConfig, Device, LoraConfig, OptimConfig
from postlab.train.loop import TrainResult, latest_checkpoint, start_run_dir, train_loop


class SFTDataConfig(Section):
    """Demonstration data."""

    train_file: str = Field(..., description="chat data: JSONL ({\"messages\": [...]} or {\"prompt\", \"completion\"} per line), a directory of shards, .parquet, .arrow or a save_to_disk directory (required)")
    eval_file: str | None = Field(None, description="held-out chat data, same formats; if unset, eval_fraction of train_file is held out")
    eval_fraction: float = Field(0.1, ge=0, lt=1, description="fraction of train_file held out for eval loss when eval_file is unset")
    max_seq_len: int = Field(1024, ge=8, description="truncate conversations to this many tokens")

    def check(self) -> None:
        for name in ("train_file", "eval_file"):
            value = getattr(self, name)
            if value is not None and not Path(value).exists():
                raise ConfigError(f"data.{name}: file not found: {value}")


class SFTConfig(Section):
    """postlab sft: fine-tune a chat model on demonstrations."""

    model: str = Field("smollm2-135m-instruct", description="built-in name, local HF directory or hub id")
    out_dir: str = Field("runs/sft", description="run directory: config, metrics, checkpoints, final model")
    device: Device = Field("auto", description=DEVICE_HELP)
    data: SFTDataConfig
    optim: OptimConfig = Field(default_factory=OptimConfig, description="optimiser and loop")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA adapters")
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig, description="eval, checkpoints, logging")
    gold_eval: GoldEvalConfig = Field(default_factory=GoldEvalConfig, description="gold-rated suite evals during training, with jump alarms (off by default)")


def encode_conversations(tokenizer, conversations, max_seq_len: int, source: str) -> list[dict]:
    out, dropped = [], 0
    for ex in conversations:
        enc = encode_chat(tokenizer, ex.messages, max_len=max_seq_len, loss_from=ex.loss_from, tools=ex.tools)
        if all(label == IGNORE_INDEX for label in enc.labels[1:]):
            dropped += 1  # truncation removed every assistant token
            continue
        out.append({"input_ids": enc.input_ids, "labels": enc.labels})
    if dropped:
        print(f"warning: {source}: {dropped} conversation(s) have no assistant tokens within "
              f"data.max_seq_len={max_seq_len} and were skipped", file=sys.stderr)
    if not out:
        raise DataError(f"{source}: no usable conversations (raise data.max_seq_len?)")
    return out


@distributed.data_parallel
def train(cfg: SFTConfig) -> TrainResult:
    out = Path(cfg.out_dir)
    if cfg.optim.fsdp and cfg.gold_eval.every:
        distributed.refuse_fsdp("not combined with gold_eval (its generations run on rank 0 alone)")
    latest_checkpoint(out, cfg.checkpoint)  # a rerun without checkpoint.resume=true is refused before any loading
    # Model name and data are checked before the run directory is made: a mistake leaves nothing behind.
    check_model_name(cfg.model)
    conversations = load_sft_data(cfg.data.train_file)
    if cfg.data.eval_file:
        train_convs, eval_convs = conversations, load_sft_data(cfg.data.eval_file)
    else:
        train_convs, eval_convs = split_holdout(conversations, cfg.data.eval_fraction, cfg.optim.seed)
    model, tok = prepare_model(cfg.model, device=cfg.device, lora=cfg.lora, seed=cfg.optim.seed)
    examples = encode_conversations(tok, train_convs, cfg.data.max_seq_len, cfg.data.train_file)
    eval_examples = encode_conversations(tok, eval_convs, cfg.data.max_seq_len, "held-out set") if eval_convs else []
    start_run_dir(cfg, out, cfg.checkpoint)
    trainable, total = count_parameters(model)
    print(f"sft: {len(examples)} train / {len(eval_examples)} held-out conversations; "
          f"training {trainable:,} of {total:,} parameters", file=sys.stderr)
    main = distributed.is_main()  # under torchrun, rank 0 alone runs gold evals and writes the model
    gold = start_gold_eval(cfg.gold_eval, model=model, tokenizer=tok, run_dir=out) if main else None
    result = train_loop(model=model, examples=examples, eval_examples=eval_examples, pad_id=tok.pad_token_id,
                        optim=cfg.optim, ckpt=cfg.checkpoint, run_dir=out, desc="sft", callbacks=[gold] if gold else [])
    if gold:
        gold.evaluate_now(result.state.step)
    full = distributed.full_state_dict(model)  # optim.fsdp: every rank sends its shards to rank 0
    if main:
        save_final_model(model, tok, out / "model", state_dict=full)
    return result
