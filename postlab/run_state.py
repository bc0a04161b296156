"""What a ``postlab run`` directory ran with, and what a rerun with other knobs has to redo.

The run directory records the knobs it ran with in ``resolved_config.json``: the preset's values with the
command line's overrides, ``bf16`` resolved and the time budget's cuts applied (``run.plan``). A rerun
compares its own resolved knobs with them. A changed knob makes the first stage it affects stale, and
every stage after it (each stage reads what the earlier ones wrote): their ``stages/<name>.json``, their
outputs and checkpoints are deleted, one line per stage says so, and the run redoes them. Without this a
rerun skipped every finished stage and reported, say, PPO's numbers under ``algo=grpo``.

Stage results name their files relative to the run directory (``{run_dir}/eval/sft.json``), resolved
when read, so a run directory can be moved or copied and continued there.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

# The first stage each knob affects (None: none by itself). budget_minutes only decides the cuts that
# plan() makes to other knobs, and those are compared as resolved; bf16 is compared as resolved too.
FIRST_STAGE: dict[str, str | None] = {
    "model": "fetch",
    "algo": "rl",
    "bf16": "baseline",
    "budget_minutes": None,
    "eval_limit": "baseline",
    "eval_max_new_tokens": "baseline",
    "batch_size": "baseline",
    "demos_per_category": "sft_data",
    "rs_prompts": "sft_data",
    "rs_k": "sft_data",
    "rs_max_new_tokens": "sft_data",
    "sft_lr": "sft",
    "sft_epochs": "sft",
    "sft_batch_size": "sft",
    "sft_lora": "sft",
    "max_seq_len": "sft",
    "sample_prompts": "sample",
    "sample_k": "sample",
    "sample_max_new_tokens": "sample",
    "pairs_per_prompt": "label",
    "panel_raters": "label",
    "panel_min_votes": "label",
    "panel_min_strength": "label",
    "rm_held_out": "rm",
    "rm_lr": "rm",
    "rm_epochs": "rm",
    "rm_max_seq_len": "rm",
    "rm_trainable_layers": "rm",
    "rm_length_control": "rm",
    "bon_replay": "rl",
    "bon_keep": "rl",
    "bon_n": "rl",
    "bon_temperature": "rl",
    "rl_steps": "rl",
    "rl_prompts_per_step": "rl",
    "rl_lr": "rl",
    "rl_kl_coef": "rl",
    "rl_max_new_tokens": "rl",
    "rl_gold_every": "rl",
    "rl_gold_limit": "rl",
    "probe_prompts": "probe",
    "bootstrap": "leaderboard",
    "report_samples": "report",
    "seed": "sft_data",
}

# What each stage writes under the run directory (glob patterns): deleted when the stage is redone, so no
# stale checkpoint is resumed and no stale partial sample file continued.
OUTPUTS: dict[str, tuple[str, ...]] = {
    "fetch": (),
    "baseline": ("eval/baseline.json", "eval/baseline.samples.jsonl", "eval/baseline.journal.jsonl*"),
    "sft_data": ("data/base_candidates.jsonl*", "data/sft.jsonl"),
    "sft": ("sft",),
    "sft_eval": ("eval/sft.json", "eval/sft.samples.jsonl", "eval/sft.journal.jsonl*"),
    "sample": ("data/sft_candidates.jsonl*", "data/candidates.jsonl"),
    "label": ("data/prefs.jsonl",),
    "rm": ("rm",),
    "bon": ("bon.json",),
    "rl": ("rl", "data/rm_ranked.jsonl"),
    "rl_eval": ("eval/rl.json", "eval/rl.samples.jsonl", "eval/rl.journal.jsonl*", "eval/rl.candidates.jsonl"),
    "probe": (),
    "leaderboard": ("leaderboard.json",),
    "report": ("report.html",),
}

RUN_DIR = "{run_dir}"


def changed_knobs(recorded: dict, now: dict) -> dict[str, tuple]:
    """knob -> (recorded value, value now) for each knob whose value differs (a knob the record lacks counts)."""
    return {name: (recorded.get(name), value) for name, value in now.items() if recorded.get(name) != value}


def stale_stages(changed: Sequence[str], stages: Sequence[str],
                 first_stage: dict[str, str | None] = FIRST_STAGE) -> dict[str, list[str]]:
    """stage -> the changed knobs that make it stale, in stage order: each knob's first stage and every later one."""
    why: dict[str, list[str]] = {}
    for knob in changed:
        first = first_stage[knob]
        if first is not None:
            for stage in stages[stages.index(first):]:
                why.setdefault(stage, []).append(knob)
    return {stage: why[stage] for stage in stages if stage in why}


def _outputs(out: Path, stage: str, outputs: dict[str, tuple[str, ...]] = OUTPUTS) -> list[Path]:
    return sorted(p for pattern in outputs[stage] for p in out.glob(pattern))


def _show(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def invalidate_changed_stages(out: Path, knobs: dict, stages: Sequence[str], *,
                              first_stage: dict[str, str | None] = FIRST_STAGE,
                              outputs: dict[str, tuple[str, ...]] = OUTPUTS) -> list[str]:
    """Compare ``knobs`` (resolved, as JSON) with ``out/resolved_config.json`` and delete every stage the
    changes make stale: its stage file, outputs and checkpoints, and the run's summary.json. Prints what
    changed and one line per stage to redo; returns those stages. A preset with other stages passes its
    own ``first_stage`` (knob -> first stage it affects) and ``outputs`` (stage -> glob patterns)."""
    record = out / "resolved_config.json"
    if not record.exists():
        return []
    changed = changed_knobs(json.loads(record.read_text()), knobs)
    if not changed:
        return []
    print(f"knobs differ from {record}: " + ", ".join(f"{k} {_show(a)} -> {_show(b)}" for k, (a, b) in changed.items()),
          file=sys.stderr)
    stale = {stage: why for stage, why in stale_stages(list(changed), stages, first_stage).items()
             if (out / "stages" / f"{stage}.json").exists() or _outputs(out, stage, outputs)}
    # Stage files first: a stage whose file is gone runs again, whatever an interruption leaves of its outputs.
    for stage in stale:
        (out / "stages" / f"{stage}.json").unlink(missing_ok=True)
    for stage, why in stale.items():
        deleted = _outputs(out, stage, outputs)
        for path in deleted:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        gone = f"; deleted {', '.join(p.relative_to(out).as_posix() for p in deleted)}" if deleted else ""
        print(f"redoing {stage}: {', '.join(why)} changed{gone}", file=sys.stderr)
    if stale:
        (out / "summary.json").unlink(missing_ok=True)
    else:
        print("no finished stage depends on them", file=sys.stderr)
    return list(stale)


def portable(x, out: Path):
    """``x`` with every path under ``out`` written as ``{run_dir}/<relative path>`` (for stage files)."""
    prefix = str(out) + "/"
    if isinstance(x, str) and x.startswith(prefix):
        return f"{RUN_DIR}/{x[len(prefix):]}"
    if isinstance(x, dict):
        return {k: portable(v, out) for k, v in x.items()}
    if isinstance(x, list):
        return [portable(v, out) for v in x]
    return x


def resolve(x, out: Path):
    """The inverse of ``portable``: ``{run_dir}/...`` becomes a path under ``out``, wherever it is now."""
    if isinstance(x, str) and x.startswith(f"{RUN_DIR}/"):
        return str(out / x[len(RUN_DIR) + 1:])
    if isinstance(x, dict):
        return {k: resolve(v, out) for k, v in x.items()}
    if isinstance(x, list):
        return [resolve(v, out) for v in x]
    return x
