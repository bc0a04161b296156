"""Model loading: built-in names (the embedded SmolLM2, the tiny test model), local directories, hub ids."""

from postlab.models.load import load_model_and_tokenizer, resolve_model

__all__ = ["load_model_and_tokenizer", "resolve_model"]
