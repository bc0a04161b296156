"""Config sections shared by every training recipe."""

from __future__ import annotations

import importlib.util
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from postlab.config import Section
from postlab.errors import ConfigError
from postlab.machine import AutoBF16
from postlab.train.trackers import missing_message


def _torch_device_name(name: str) -> str:
    if name != "auto":
        import torch  # only once a config is validated: --help stays light

        try:
            torch.device(name)
        except RuntimeError:
            raise ValueError("expected auto or a torch device (cpu, cuda, cuda:1, mps, ...)") from None
    return name


# Every training command's `device`: auto (CUDA when available, else the CPU) or any device torch
# parses. Under torchrun a bare `cuda` is each process's own GPU (postlab.models.prepare.pick_device).
Device = Annotated[str, AfterValidator(_torch_device_name)]
DEVICE_HELP = ("where to train: auto (cuda when available, else cpu) or any torch device: cpu, cuda, cuda:1, mps, ...; "
               "under torchrun, cuda is each process's own GPU (docs/scaling.md)")


class OptimConfig(Section):
    """Optimisation and the training loop."""

    lr: float = Field(2e-5, gt=0, description="peak learning rate (AdamW)")
    weight_decay: float = Field(0.0, ge=0, description="AdamW decoupled weight decay")
    adam_beta1: float = Field(0.9, ge=0, lt=1, description="AdamW beta1")
    adam_beta2: float = Field(0.999, ge=0, lt=1, description="AdamW beta2")
    adam_eps: float = Field(1e-8, gt=0, description="AdamW epsilon")
    schedule: Literal["cosine", "constant"] = Field("cosine", description="learning-rate schedule after warmup")
    warmup_steps: int = Field(0, ge=0, description="linear warmup from 0 to lr over this many optimizer steps")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine floor as a fraction of lr")
    batch_size: int = Field(4, ge=1, description="sequences per micro-batch")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step (loss normalised over the whole step)")
    max_steps: int = Field(0, ge=0, description="optimizer steps to run; 0 = derive from epochs")
    max_seconds: float = Field(0.0, ge=0, description="a time limit (0 = none): from a tenth of the planned steps on (3 at least), training ends at the step that the limit holds at the mean step time so far, re-estimated at every step, and the learning-rate schedule ends there (fewer steps, never more; the planned and run steps are in the result)")
    max_seconds_floor: float = Field(0.0, ge=0, le=1, description="share of the planned steps that max_seconds never cuts below")
    epochs: float = Field(1.0, gt=0, description="passes over the training data (used when max_steps=0)")
    max_grad_norm: float = Field(1.0, ge=0, description="clip the global gradient norm to this (0 = off)")
    bf16: AutoBF16 = Field("auto", validate_default=True, description="bf16 autocast for forward/backward (fp32 master weights); auto = whichever of fp32 and bf16 is faster on this machine (postlab.machine: measured once, cached; bf16 on CUDA when supported)")
    seed: int = Field(0, description="seed for data order, initialisation of new weights and RNG")
    compile: bool = Field(False, description="torch.compile the model's forward (fuses norm/RoPE/SwiGLU ops; ~1 min to compile on a CPU)")
    fsdp: bool = Field(False, description="under torchrun, shard the model over the processes with FSDP2 (fully_shard on each transformer block, then the model) instead of copying it (DDP): each process holds 1/N of the weights, gradients and AdamW state; full fine-tuning or LoRA (docs/scaling.md)")
    group_by_length: bool = Field(False, description="within windows of 16 micro-batches of the shuffled order, sort examples by length, so micro-batches pad less (faster; the order stays a pure function of seed and epoch)")


    def check(self) -> None:
        super().check()
        if self.fsdp:
            from postlab.train.distributed import require_launch_for_fsdp

            require_launch_for_fsdp()
            if self.compile:
                raise ConfigError("optim.fsdp: not combined with optim.compile; set one of them to false")


class CheckpointConfig(Section):
    """Evaluation, checkpoints and logging."""

    eval_every: int = Field(0, ge=0, description="held-out eval loss every N steps (0 = only at the end)")
    save_every: int = Field(0, ge=0, description="atomic checkpoint every N steps (0 = only at the end / on Ctrl-C)")
    keep_last: int = Field(2, ge=1, description="checkpoints to keep (older ones are deleted)")
    resume: bool = Field(False, description="continue from the newest checkpoint in out_dir (exactly: data position, RNG, optimizer)")
    log_every: int = Field(1, ge=1, description="write a metrics line every N steps")
    report_to: list[Literal["jsonl", "tensorboard", "wandb", "mlflow"]] = Field(
        default_factory=lambda: ["jsonl"],
        description="metric sinks; metrics.jsonl is always written; tensorboard: event files in out_dir/tensorboard; "
                    "wandb: Weights & Biases under out_dir/wandb (WANDB_MODE=offline needs no account); mlflow: "
                    "$MLFLOW_TRACKING_URI or out_dir/mlflow.db. Each gets the config; each is a pip extra (postlab[wandb])",
    )
    progress: bool = Field(True, description="show a progress bar with tokens/s and ETA")

    def check(self) -> None:
        super().check()
        for name in self.report_to:
            if name != "jsonl" and importlib.util.find_spec(name) is None:
                raise ConfigError(f"checkpoint.{missing_message(name)}")


class LoraConfig(Section):
    """Low-rank adapters (peft). With LoRA on, the final model is saved with adapters merged."""

    enabled: bool = Field(False, description="train LoRA adapters instead of all weights")
    r: int = Field(16, ge=1, description="adapter rank")
    alpha: float = Field(32.0, gt=0, description="scaling numerator (scale = alpha / r)")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="module names that get adapters",
    )

    def check(self) -> None:
        if self.enabled and not self.target_modules:
            raise ConfigError("lora.target_modules: must name at least one module when lora.enabled=true")
