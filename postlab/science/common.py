"""Pieces the science commands share: provenance, loading each model in turn, Wilson intervals."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from postlab.errors import ConfigError


def check_out(out: str, overwrite: bool) -> None:
    if not out.endswith(".json"):
        raise ConfigError(f"out: expected a .json path, got {out!r}")
    if Path(out).exists() and not overwrite:
        raise ConfigError(f"out: {out} exists; set overwrite=true to replace it")


def check_models(models: list[str], *, allow_none: bool = False) -> None:
    """Every model spec resolves (names, directories) and labels are distinct, before anything is loaded."""
    from postlab.models.load import check_model_name
    from postlab.science.options import model_label

    if not models and not allow_none:
        raise ConfigError("models: give at least one model (--model M or --models A,B,C)")
    labels = [model_label(m)[0] for m in models]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"models: two models share a label ({', '.join(labels)}); name them as label=model")
    for m in models:
        check_model_name(model_label(m)[1])


def each_model(models: list[str], dtype: str, device: str) -> Iterator[tuple[str, str, object, object]]:
    """(label, model spec, model, tokenizer) for each model in turn; one model is in memory at a time."""
    from postlab.science.options import load_scoring_model, model_label

    for spec in models:
        label, name = model_label(spec)
        model, tok = load_scoring_model(name, dtype, device)
        yield label, name, model, tok
        del model


def meta(config: dict, started: float) -> dict:
    """What produced a result: versions, commit, date, hardware, the config, the time taken and the 1-minute
    load average at the end (above the core count: other jobs shared the machine)."""
    import torch
    import transformers

    from postlab import __version__, machine
    from postlab.evals.harness import git_hash

    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {"postlab_version": __version__, "torch_version": torch.__version__,
            "transformers_version": transformers.__version__, "git_hash": git_hash(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "hardware": machine.probe(measure=False), "cores": os.cpu_count(), "load_average_1m": load,
            "seconds": round(time.time() - started, 1), "config": config}


def wilson_interval(k: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n (Wilson 1927)."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return centre - half, centre + half


def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot
