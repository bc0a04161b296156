"""``postlab run``: the end-to-end job on a preset. For now: fetch the model, sample before, LoRA SFT on
the built-in demonstrations, sample after. Later stages (reward model, RL, evals, report) join here.

Resumable: each stage writes its outputs atomically and is skipped when they exist; SFT resumes from
its newest checkpoint.
"""

from __future__ import annotations

import json
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field

from postlab.config import Section, save_config
from postlab.data.chat import validate_messages
from postlab.data.jsonl import read_jsonl
from postlab.models.load import load_model_and_tokenizer, resolve_model
from postlab.rollout import SamplingParams, TorchEngine
from postlab.train import sft
from postlab.train.common import CheckpointConfig, LoraConfig, OptimConfig
from postlab.utils.io import atomic_write_text

PRESETS = {
    # SmolLM2-135M-Instruct, LoRA, bf16 autocast: ~2 minutes on 2 CPU cores.
    "default": dict(model="smollm2-135m-instruct", steps=40, lr=3e-4, lora=True, bf16=True),
    # The tiny random model: seconds; for CI smoke tests of the whole chain.
    "tiny": dict(model="tiny", steps=20, lr=3e-3, lora=False, bf16=False),
}


class RunConfig(Section):
    """postlab run: the end-to-end recipe on a preset."""

    preset: Literal["default", "tiny"] = Field("default", description="default = SmolLM2-135M-Instruct; tiny = random test model")
    out_dir: str | None = Field(None, description="run directory (default runs/<preset>)")
    model: str | None = Field(None, description="override the preset's model (built-in name, directory or hub id)")
    steps: int = Field(0, ge=0, description="SFT optimizer steps (0 = the preset's)")
    max_new_tokens: int = Field(48, ge=1, description="tokens to generate for each before/after sample")
    progress: bool = Field(True, description="show progress bars")


def _demo_file(name: str) -> str:
    return str(resources.files("postlab") / "assets" / name)


def greedy_samples(model_dir: str, prompts: list[list[dict]], max_new_tokens: int) -> list[str]:
    model, tok = load_model_and_tokenizer(model_dir)
    engine = TorchEngine(model=model, tokenizer=tok)
    return [t.strip() for t in engine.generate(prompts, SamplingParams(temperature=0, max_new_tokens=max_new_tokens)).texts]


def _stage(out: Path, name: str, timings: dict, fn):
    """Run ``fn`` unless ``out/<name>.json`` exists; store its JSON result atomically."""
    path = out / f"{name}.json"
    if path.exists():
        print(f"[{name}] done already ({path}), skipping", file=sys.stderr)
        return json.loads(path.read_text())
    print(f"[{name}] running", file=sys.stderr)
    t0 = time.perf_counter()
    result = fn()
    timings[name] = round(time.perf_counter() - t0, 2)
    atomic_write_text(path, json.dumps(result, indent=2, ensure_ascii=False))
    return result


def run(cfg: RunConfig) -> dict:
    preset = PRESETS[cfg.preset]
    out = Path(cfg.out_dir or f"runs/{cfg.preset}")
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "run_config.yaml")
    model_name = cfg.model or preset["model"]
    timings: dict[str, float] = {}
    prompts = [validate_messages(row["messages"], f"demo_prompts.jsonl:{i}", need_assistant=False)
               for i, row in read_jsonl(_demo_file("demo_prompts.jsonl"))]

    model_dir = _stage(out, "fetch", timings, lambda: {"path": resolve_model(model_name)})["path"]
    before = _stage(out, "samples_before", timings, lambda: greedy_samples(model_dir, prompts, cfg.max_new_tokens))
    sft_cfg = sft.SFTConfig(
        model=model_dir, out_dir=str(out / "sft"),
        data=sft.SFTDataConfig(train_file=_demo_file("demos.jsonl"), eval_fraction=0.0, max_seq_len=256),
        optim=OptimConfig(lr=preset["lr"], max_steps=cfg.steps or preset["steps"], batch_size=4, warmup_steps=4,
                          bf16=preset["bf16"]),
        lora=LoraConfig(enabled=preset["lora"]),
        checkpoint=CheckpointConfig(save_every=10, resume=True, progress=cfg.progress),
    )
    train_stats = _stage(out, "sft", timings, lambda: _run_sft(sft_cfg))
    after = _stage(out, "samples_after", timings,
                   lambda: greedy_samples(str(out / "sft" / "model"), prompts, cfg.max_new_tokens))

    print("\n=== before / after SFT (held-out prompts, greedy) ===")
    for p, b, a in zip(prompts, before, after):
        print(f"\nUSER:   {p[-1]['content']}\nBEFORE: {b}\nAFTER:  {a}")
    summary = {"model": model_name, "preset": cfg.preset,
               "stages": {"sft": train_stats},
               "samples": [{"prompt": p[-1]["content"], "before": b, "after": a} for p, b, a in zip(prompts, before, after)],
               "timings_s": timings}
    old = out / "summary.json"
    if old.exists():  # keep timings of stages finished by an earlier invocation
        summary["timings_s"] = {**json.loads(old.read_text()).get("timings_s", {}), **timings}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False))
    print(f"\nsummary: {out / 'summary.json'}")
    return summary


def _run_sft(cfg: sft.SFTConfig) -> dict:
    result = sft.train(cfg)
    losses = result.train_losses
    return {"conversations": result.num_examples, "steps": result.state.step,
            "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None}
