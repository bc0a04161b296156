"""Reward models: a causal LM backbone with a scalar head read at the last real token (the EOS).

Saved as a plain Hugging Face sequence-classification model (`num_labels=1`), so
`AutoModelForSequenceClassification.from_pretrained(dir)` loads it; transformers also pools the
last non-pad token, which is the EOS because postlab's pad token differs from EOS. The offset that
centres the SFT policy's rewards on 0 is stored in `config.json` as `postlab_reward_offset` and
subtracted by postlab's `RewardModelRater` (plain transformers returns the raw score; preferences and
reward differences are the same either way).
"""

from __future__ import annotations

import copy

import torch

from postlab.errors import ModelError

OFFSET_KEY = "postlab_reward_offset"


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last attended token, for left or right padding. (B, T) -> (B,)."""
    T = attention_mask.size(1)
    return T - 1 - attention_mask.flip(1).long().argmax(dim=1)


def load_reward_model(name: str, dtype: torch.dtype = torch.float32):
    """(model, tokenizer): a sequence-classification model with one output, dropout off. From a
    causal LM checkpoint the scalar head is freshly initialised (transformers' init, std
    initializer_range)."""
    from transformers import AutoModelForSequenceClassification

    from postlab.models.load import disable_dropout, load_tokenizer, resolve_model

    tok = load_tokenizer(name)
    path = resolve_model(name)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=dtype)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load {name!r} as a reward model: {e}") from None
    if len(tok) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tok))
    model.config.pad_token_id = tok.pad_token_id
    disable_dropout(model)
    return model, tok


def layer_view(body, layers: torch.nn.ModuleList, norm: torch.nn.Module):
    """The backbone running only ``layers`` then ``norm``, sharing their weights. A shallow copy
    with its own module table, so the backbone's own forward still builds the attention mask,
    position ids and rotary embeddings (for any transformers version); fed ``inputs_embeds``, it
    starts from given hidden states instead of the embeddings."""
    view = copy.copy(body)
    view._modules = {**body._modules, "layers": layers, "norm": norm}
    return view


def shared_bottom(models) -> int:
    """How many bottom layers (with the embeddings) the reward models share weight for weight, as proxies trained
    from one policy with only their top layers do; 0 when they share no layer or are not plain models (peft)."""
    if len(models) < 2 or any(hasattr(m, "get_base_model") for m in models):
        return 0
    bodies = [getattr(m, "model", None) for m in models]
    if not all(hasattr(b, "layers") and hasattr(b, "embed_tokens") for b in bodies) or \
            any(len(b.layers) != len(bodies[0].layers) for b in bodies):
        return 0

    def same(modules) -> bool:
        first = dict(modules[0].named_parameters())
        return all(dict(mod.named_parameters()).keys() == first.keys() and
                   all(torch.equal(p, first[name]) for name, p in mod.named_parameters()) for mod in modules[1:])

    if not same([b.embed_tokens for b in bodies]):
        return 0
    shared = 0
    while shared < len(bodies[0].layers) and same([b.layers[shared] for b in bodies]):
        shared += 1
    return shared


def rewards_sharing_bottom(models, start: int, input_ids: torch.Tensor,
                           attention_mask: torch.Tensor) -> list[torch.Tensor]:
    """``rewards`` of each model, with the ``start`` bottom layers they share (``shared_bottom``) run once, from the
    first model: (B, T) -> one (B,) float32 per model, equal to each model's own ``rewards``."""
    body = models[0].model
    position_ids = (attention_mask.long().cumsum(dim=1) - 1).clamp_min(0)
    h_s = layer_view(body, body.layers[:start], torch.nn.Identity())(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).last_hidden_state  # (B, T, H)
    idx = last_token_index(attention_mask)
    out = []
    for m in models:
        top = layer_view(m.model, m.model.layers[start:], m.model.norm)
        h = top(inputs_embeds=h_s, attention_mask=attention_mask, position_ids=position_ids).last_hidden_state
        out.append(m.score(h[torch.arange(h.size(0), device=h.device), idx]).squeeze(-1).float())
    return out


def backbone_and_head(model):
    """The transformer body and the score head, through a peft wrapper if there is one."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.model, inner.score


def right_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows -> ids (B, T) right-padded with ``pad_id``, and their attention mask (B, T)."""
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


def rewards(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """r(x, y) at each row's last real token. input_ids, attention_mask: (B, T) -> (B,) float32.

    Runs the body once and the head only on the B pooled states (not on all B·T positions)."""
    body, head = backbone_and_head(model)
    position_ids = (attention_mask.long().cumsum(dim=1) - 1).clamp_min(0)  # left padding: positions from 0
    h = body(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).last_hidden_state  # (B, T, H)
    idx = last_token_index(attention_mask)  # (B,)
    h_last = h[torch.arange(h.size(0), device=h.device), idx]  # (B, H)
    return head(h_last).squeeze(-1).float()  # (B,)


def reward_offset(model) -> float:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return float(getattr(inner.config, OFFSET_KEY, 0.0) or 0.0)
