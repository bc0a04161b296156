"""Logits only where a loss reads them.

A causal LM's forward runs its vocabulary head (H × V, V = 49,152 for SmolLM2) at every position, but an SFT
loss reads only the positions that predict a target token: about 40% of them in the default recipe's
conversations (prompts, system turns and padding carry no loss). For the model families whose logits are
exactly ``lm_head(body(...).last_hidden_state)`` this runs the body, gathers the hidden states of the positions
that predict a target, and applies the head to those alone: the same numbers, without the head's matmul, its
gradient and the softmax work at the other positions (benchmarks/train_step.py measures the gain).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from postlab.algos.lm import IGNORE_INDEX

# Families whose forward computes logits as lm_head(model(...).last_hidden_state), with no scaling or
# soft-capping after the head (Gemma's final_logit_softcapping and Cohere's logit_scale would make it differ).
PLAIN_HEAD_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")


@dataclass
class TargetLogits:
    logits: torch.Tensor  # (N, V) the logits of the N positions that predict a target, in the model's dtype
    targets: torch.Tensor  # (N,) the token each of them predicts


def _causal_lm(model):
    """The Hugging Face causal LM inside ``model`` (itself, or the model a PEFT wrapper holds), or None when
    its forward is not a plain body-then-head one, or when calling its parts would skip a wrapper's hooks
    (torch.compile, FSDP2: the root's forward gathers the sharded head)."""
    from torch.distributed.fsdp import FSDPModule

    if isinstance(model, torch._dynamo.eval_frame.OptimizedModule):
        return None
    if hasattr(model, "get_base_model"):  # peft.PeftModel: LoRA layers sit inside the base model's modules
        model = model.get_base_model()
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) not in PLAIN_HEAD_MODEL_TYPES:
        return None
    if any(isinstance(m, FSDPModule) for m in model.modules()):
        return None
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    body = getattr(model, "model", None)
    if not isinstance(head, torch.nn.Linear) or body is None:
        return None
    return model


def target_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
                  ) -> TargetLogits | None:
    """The logits of the positions t with labels[:, t + 1] != IGNORE_INDEX (the one-step shift applied here),
    or None when ``model`` is not one whose logits this can reproduce: then run its own forward.

    input_ids, attention_mask, labels: (B, T), on the model's device."""
    lm = _causal_lm(model)
    if lm is None:
        return None
    h = lm.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
    y = labels[:, 1:]  # (B, T-1): position t predicts token t + 1
    where = y != IGNORE_INDEX  # (B, T-1)
    return TargetLogits(logits=lm.get_output_embeddings()(h[:, :-1][where]), targets=y[where])
