"""Pretraining / continued pretraining on plain text: documents packed into next-token blocks."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import Field

from postlab.config import Section
from postlab.data.split import split_holdout
from postlab.data.text import load_text_blocks
from postlab.errors import ConfigError
from postlab.models.prepare import count_parameters, prepare_model, save_final_model
from postlab.train import distributed
from postlab.train.common import DEVICE_HELP, CheckpointConfig, Device, LoraConfig, OptimConfig
from postlab.train.loop import TrainResult, start_run_dir, train_loop


class PretrainDataConfig(Section):
    """Text corpus."""

    files: list[str] = Field(..., min_length=1, description="plain UTF-8 text files; each file is one document (required)")
    block_size: int = Field(256, ge=8, description="tokens per packed training block")
    eval_fraction: float = Field(0.05, ge=0, lt=1, description="fraction of blocks held out for eval loss")

    def check(self) -> None:
        for i, f in enumerate(self.files):
            if not Path(f).is_file():
                raise ConfigError(f"data.files[{i}]: file not found: {f}")


class PretrainConfig(Section):
    """postlab pretrain: next-token training on packed plain-text blocks."""

    model: str = Field("tiny", description="built-in name, local HF directory or hub id")
    from_scratch: bool = Field(False, description="re-initialise all weights from the model's config (true pretraining)")
    out_dir: str = Field("runs/pretrain", description="run directory: config, metrics, checkpoints, final model")
    device: Device = Field("auto", description=DEVICE_HELP)
    data: PretrainDataConfig
    optim: OptimConfig = Field(default_factory=lambda: OptimConfig(lr=1e-3), description="optimiser and loop")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA adapters")
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig, description="eval, checkpoints, logging")


@distributed.data_parallel
def train(cfg: PretrainConfig) -> TrainResult:
    out = Path(cfg.out_dir)
    start_run_dir(cfg, out, cfg.checkpoint)
    model, tok = prepare_model(cfg.model, device=cfg.device, lora=cfg.lora, seed=cfg.optim.seed,
                               from_scratch=cfg.from_scratch)
    blocks = load_text_blocks(cfg.data.files, tok, cfg.data.block_size)
    train_blocks, eval_blocks = split_holdout(blocks, cfg.data.eval_fraction, cfg.optim.seed)
    examples = [{"input_ids": b} for b in train_blocks]
    eval_examples = [{"input_ids": b} for b in eval_blocks]
    trainable, total = count_parameters(model)
    print(f"pretrain: {len(examples)} train / {len(eval_examples)} held-out blocks of {cfg.data.block_size} tokens; "
          f"training {trainable:,} of {total:,} parameters", file=sys.stderr)
    result = train_loop(model=model, examples=examples, eval_examples=eval_examples, pad_id=tok.pad_token_id,
                        optim=cfg.optim, ckpt=cfg.checkpoint, run_dir=out, desc="pretrain")
    full = distributed.full_state_dict(model)  # optim.fsdp: every rank sends its shards to rank 0
    if distributed.is_main():  # under torchrun, rank 0 alone writes
        save_final_model(model, tok, out / "model", state_dict=full)
    return result
