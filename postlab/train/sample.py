"""``postlab sample``: K responses per prompt -> candidates JSONL, the input of labeling and reward models.

Rows: ``{"prompt_id", "sample_index", "prompt": [messages], "completion": [{"role": "assistant",
"content": text}], "messages": [messages], "logprob_sum", "num_tokens", "finish_reason"}``: ``prompt`` and
``completion`` are TRL's conversational prompt-completion shape, ``messages`` (the prompt followed by the
reply) its conversational language-modelling shape. Readers take the text with
``postlab.data.chat.completion_text``, which also reads the plain-string ``completion`` of older files.

Written incrementally to ``<out>.partial`` and renamed at the end; a rerun continues an interrupted
file (each batch's seed depends only on its index, so resumed output equals uninterrupted output).
What wrote the partial file (model, k, batch size, dtype, sampling, prompts) is recorded beside it in
``<out>.partial.fingerprint.json``; a rerun that differs in any of them is refused rather than mixing
two runs' samples in one file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field
from tqdm.auto import tqdm

from postlab.config import Section
from postlab.data.chat import validate_messages
from postlab.data.rows import read_rows
from postlab.errors import ConfigError, DataError
from postlab.machine import AutoDType
from postlab.models.load import load_model_and_tokenizer
from postlab.models.prepare import pick_device
from postlab.rollout import SamplingParams, TorchEngine
from postlab.utils.journal import check_fingerprint, digest, model_identity, write_fingerprint
from postlab.utils.journal import fingerprint_file as fingerprint_path

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


class SampleConfig(Section):
    """postlab sample: K sampled responses per prompt."""

    model: str = Field("smollm2-135m-instruct", description="built-in name, local HF directory or hub id")
    prompts: str | None = Field(None, description="prompts: {\"messages\": [...]} or TRL prompt-only {\"prompt\": [...] | str} rows, optional \"id\"; a trailing assistant turn is dropped (JSONL, a directory of shards, .parquet, .arrow or a save_to_disk directory)")
    suite: str | None = Field(None, description="or: a suite (built-in name or JSONL); prompt_id is the item id")
    split: Literal["train", "test", "all"] = Field("train", description="with suite: which split")
    limit: int | None = Field(None, ge=1, description="with suite: only the first N items")
    out: str = Field(..., description="candidates JSONL to write")
    k: int = Field(4, ge=1, description="samples per prompt")
    batch_size: int = Field(16, ge=1, description="sequences generated together")
    dtype: AutoDType = Field("auto", validate_default=True, description="weights dtype for sampling: fp32, bf16, or auto = the faster on this machine (postlab.machine)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where to sample")
    sampling: SamplingParams = Field(default_factory=lambda: SamplingParams(temperature=0.7, max_new_tokens=128, seed=0),
                                     description="temperature, top_p, top_k, max_new_tokens, seed")
    progress: bool = Field(True, description="show a progress bar")

    def check(self) -> None:
        super().check()
        if (self.prompts is None) == (self.suite is None):
            raise ConfigError("prompts / suite: give exactly one of them")
        if self.prompts is not None and not Path(self.prompts).exists():
            raise ConfigError(f"prompts: file not found: {self.prompts}")
        if self.sampling.seed is None:
            raise ConfigError("sampling.seed: postlab sample needs a seed so interrupted runs resume identically")


def load_prompts(path: str) -> list[tuple[str, list[dict]]]:
    """(prompt_id, messages ending with a non-assistant turn) for each row: ``messages``, or TRL's
    prompt-only ``prompt`` (a list of messages, or a string taken as one user turn). The id is the
    row's ``id``, else its line number (its position in a Parquet/Arrow/shard source)."""
    out = []
    for where, key, row in read_rows(path):
        if not isinstance(row, dict) or ("messages" not in row and "prompt" not in row):
            raise DataError(f"{where}: expected an object with a 'messages' key (or TRL's prompt-only 'prompt')")
        if "messages" in row:
            msgs = validate_messages(row["messages"], where, need_assistant=False)
        elif isinstance(row["prompt"], str):
            if not row["prompt"].strip():
                raise DataError(f"{where}: 'prompt' is empty")
            msgs = [{"role": "user", "content": row["prompt"]}]
        else:
            msgs = validate_messages(row["prompt"], f"{where}: prompt", need_assistant=False)
        if msgs[-1]["role"] == "assistant":
            msgs = msgs[:-1]
        if not msgs:
            raise DataError(f"{where}: nothing left to prompt with after dropping the final assistant turn")
        out.append((str(row.get("id", key)), msgs))
    return out


def sample_fingerprint(cfg: SampleConfig, prompts: list[tuple[str, list[dict]]]) -> dict:
    """Everything that decides a candidates file's rows: two runs with equal fingerprints write equal files."""
    sampling = {f"sampling.{key}": value for key, value in cfg.sampling.model_dump(mode="json").items()}
    return {"model": model_identity(cfg.model), "k": cfg.k, "batch_size": cfg.batch_size, "dtype": cfg.dtype,
            **sampling, "prompts": f"{len(prompts)} prompts, sha256 {digest(prompts)[:16]}"}


def check_resumable(partial: Path, fingerprint: dict) -> None:
    """Refuse to continue ``partial`` unless it was written with this ``fingerprint``."""
    check_fingerprint(partial, fingerprint, kind="sample file", what="the model, k, sampling and prompts")


def context_length(model) -> int | None:
    """Positions the model was built for (None where its config does not say)."""
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        if isinstance(n := getattr(model.config, key, None), int):
            return n
    return None


def check_prompt_lengths(engine: TorchEngine, prompts: list[tuple[str, list[dict]]], max_new_tokens: int,
                         source: str) -> None:
    """Refuse a prompt that, with ``max_new_tokens`` more, does not fit the model's context (decoding past it
    is meaningless, and a huge prompt would ask for an impossible allocation)."""
    n_ctx = context_length(engine.model)
    if n_ctx is None:
        return
    for (pid, _), ids in zip(prompts, engine.encode_prompts([msgs for _, msgs in prompts])):
        if len(ids) > n_ctx:
            raise DataError(f"{source}: prompt {pid!r} is {len(ids)} tokens, longer than the model's context of "
                            f"{n_ctx} tokens; shorten it or leave it out")
        if len(ids) + max_new_tokens > n_ctx:
            raise DataError(f"{source}: prompt {pid!r} is {len(ids)} tokens; with sampling.max_new_tokens="
                            f"{max_new_tokens} it does not fit the model's context of {n_ctx} tokens; shorten it "
                            f"or lower sampling.max_new_tokens")


def sample(cfg: SampleConfig) -> Path:
    if cfg.suite is not None:
        from postlab.tasks.suite import load_suite

        items = load_suite(cfg.suite, split=None if cfg.split == "all" else cfg.split, limit=cfg.limit)
        prompts = [(it.id, it.messages) for it in items]
    else:
        prompts = load_prompts(cfg.prompts)
    jobs = [(pid, i, msgs) for pid, msgs in prompts for i in range(cfg.k)]
    batches = [jobs[i : i + cfg.batch_size] for i in range(0, len(jobs), cfg.batch_size)]
    out, partial = Path(cfg.out), Path(cfg.out + ".partial")
    fingerprint = sample_fingerprint(cfg, prompts)
    if partial.exists():
        check_resumable(partial, fingerprint)
    # The model loads and every prompt is measured before anything is written: a refusal leaves nothing behind.
    model, tok = load_model_and_tokenizer(cfg.model, dtype=DTYPES[cfg.dtype])
    model.to(pick_device(cfg.device))
    engine = TorchEngine(model=model, tokenizer=tok)
    check_prompt_lengths(engine, prompts, cfg.sampling.max_new_tokens, cfg.prompts or f"suite {cfg.suite}")
    out.parent.mkdir(parents=True, exist_ok=True)
    done = 0
    if partial.exists():  # resume: keep whole batches already written
        # Whole rows only: a kill mid-write can leave half of one after the last "\n" (and splitlines would
        # also split a completion at U+2028 or U+0085, which json.dumps(ensure_ascii=False) writes as they are).
        lines = partial.read_text(encoding="utf-8").split("\n")[:-1]
        done = len(lines) // cfg.batch_size
        partial.write_text("".join(line + "\n" for line in lines[: done * cfg.batch_size]))
        print(f"sample: resuming after {done} of {len(batches)} batches", file=sys.stderr)
    else:
        write_fingerprint(partial, fingerprint)
    bar = tqdm(total=len(jobs), initial=done * cfg.batch_size, desc="sample", unit="resp", disable=not cfg.progress)
    with open(partial, "a", encoding="utf-8") as f:
        for b in range(done, len(batches)):
            batch = batches[b]
            params = cfg.sampling.model_copy(update={"seed": cfg.sampling.seed + b})
            r = engine.generate([msgs for _, _, msgs in batch], params)
            lp_sum, n_tok, reasons = r.logprobs.sum(1).tolist(), r.response_lengths.tolist(), r.finish_reasons()
            for j, (pid, i, msgs) in enumerate(batch):
                reply = {"role": "assistant", "content": r.texts[j]}
                f.write(json.dumps({"prompt_id": pid, "sample_index": i, "prompt": msgs, "completion": [reply],
                                    "messages": [*msgs, reply], "logprob_sum": lp_sum[j], "num_tokens": n_tok[j],
                                    "finish_reason": reasons[j]}, ensure_ascii=False) + "\n")
            f.flush()
            bar.update(len(batch))
    bar.close()
    partial.replace(out)
    fingerprint_path(partial).unlink(missing_ok=True)
    return out
