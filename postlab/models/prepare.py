"""Preparing a model for a training stage (device, fresh init, LoRA via peft) and saving the final model."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from postlab.models.cpu_attention import use_for_training
from postlab.train.common import LoraConfig
from postlab.train.distributed import launched, local_rank
from postlab.utils.io import atomic_dir


def pick_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else the CPU; any other name as torch parses it. Under torchrun a
    bare ``cuda`` is this process's GPU, ``cuda:LOCAL_RANK``."""
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    if device.type == "cuda" and device.index is None and launched():
        return torch.device("cuda", local_rank())
    return device


def load_reference(name: str, policy):
    """The frozen reference π_ref, a second copy of `name` beside `policy`, on its device and with its
    attention implementation: the same masks and kernels, so at the first step (π_θ = π_ref) the two
    give identical log-probs and the KL is exactly 0."""
    from postlab.models.load import load_model_and_tokenizer

    ref, _ = load_model_and_tokenizer(name)
    inner = policy.get_base_model() if hasattr(policy, "get_base_model") else policy
    ref.to(next(inner.parameters()).device).eval().requires_grad_(False)
    attn = getattr(inner.config, "_attn_implementation", None)
    if attn and getattr(ref.config, "_attn_implementation", None) != attn:
        ref.set_attn_implementation(attn)
    return ref


def apply_lora(model, cfg: LoraConfig, seed: int, task_type: str = "CAUSAL_LM"):
    """Wrap ``model`` with LoRA adapters (dropout 0; only adapters train — and, for ``SEQ_CLS``, the
    new score head). Seeded for reproducible A init."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    torch.manual_seed(seed)
    peft_cfg = PeftLoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=0.0,
                              target_modules=list(cfg.target_modules), task_type=task_type)
    return get_peft_model(model, peft_cfg)


def prepare_model(name: str, *, device: str, lora: LoraConfig, seed: int, from_scratch: bool = False):
    """Load (model, tokenizer) for training: optionally re-initialised from its config, then LoRA-wrapped;
    on a CPU its attention backward is ``cpu_attention``'s."""
    from transformers import AutoModelForCausalLM

    from postlab.models.load import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(name)
    if from_scratch:
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(model.config)
    model.to(pick_device(device))
    use_for_training(model)  # on a CPU: PyTorch's flash backward is slow on short sequences (cpu_attention.py)
    if lora.enabled:
        model = apply_lora(model, lora, seed)
    return model, tok


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts; tied weights counted once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def save_final_model(model, tokenizer, out: Path, state_dict: dict | None = None) -> Path:
    """Save a Hugging Face model directory (LoRA merged into the weights) in one atomic rename;
    ``state_dict``: the weights to write instead of the model's own (a sharded model's, gathered by
    ``distributed.full_state_dict``)."""
    from peft import PeftModel

    if isinstance(model, PeftModel) and state_dict is not None:  # sharded: merge the gathered weights instead
        state_dict, model = merged_lora_state(model, state_dict), model.get_base_model()
    elif isinstance(model, PeftModel):
        model = model.merge_and_unload()
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)
    return out


def merged_lora_state(model, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A LoRA model's whole state dict (``PeftModel`` names, e.g. gathered from FSDP shards) with every
    adapter merged into its base weight, W + (α/r)·B·A, under the base model's own names: what
    ``merge_and_unload().state_dict()`` would give, computed from the tensors alone (the model's own
    weights may be shards that only a collective could read)."""
    from peft.tuners.lora import LoraLayer

    out = dict(state_dict)
    prefix = "base_model.model."
    for name, layer in model.named_modules():
        if not isinstance(layer, LoraLayer) or getattr(layer, "merged", False):
            continue
        for adapter in layer.active_adapters:
            if layer.use_dora.get(adapter) or getattr(layer, "fan_in_fan_out", False):
                raise ValueError(f"{name}: merging DoRA or fan-in-fan-out LoRA weights from a state dict is not supported")
            a = out.pop(f"{name}.lora_A.{adapter}.weight").float()
            b = out.pop(f"{name}.lora_B.{adapter}.weight").float()
            key = f"{name}.base_layer.weight"
            out[key] = (out[key].float() + (b @ a) * layer.scaling[adapter]).to(out[key].dtype)
    merged = {}
    for k, v in out.items():
        if ".original_module." in k:  # a fully trained module (modules_to_save: a reward model's head)
            continue
        k = re.sub(r"\.modules_to_save\.[^.]+\.", ".", k)  # ... is saved under its own name
        if ".lora_" in k:
            raise ValueError(f"{k}: a LoRA weight of an adapter that is not active")
        k = k[len(prefix):] if k.startswith(prefix) else k
        merged[k.replace(".base_layer.", ".")] = v
    return merged
