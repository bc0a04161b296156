"""``postlab compare``: win rate of A over B on a suite, judged by the gold rater, simulated raters
or a model judge (`judge:<url>[#model]`, `judge:<model>`, `judge-lc:...`; postlab.raters.judge).

A and B are each a model (built-in name, directory, hub id) or a JSONL file of responses (an eval
samples file, or IFEval's `{prompt, response}` rows). With simulated raters and judges each pair is
shown in a random order (seeded per item), so position bias cancels out on average (a judge also
asks both orders itself).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field

from postlab.config import Section
from postlab.errors import ConfigError
from postlab.evals.generate import Response, generate_responses, read_responses
from postlab.evals.harness import load_engine
from postlab.evals.winrate import WinRate, win_rate
from postlab.machine import AutoDType
from postlab.raters.registry import RATER_HELP, check_rater, compare_all, make_rater
from postlab.raters.simulated import num_words
from postlab.rollout import SamplingParams
from postlab.tasks.suite import Item, load_suite
from postlab.utils.io import atomic_write_text


class CompareConfig(Section):
    """postlab compare: pairwise win rate of A over B on a suite."""

    a: str = Field(..., description="model A: built-in name, directory, hub id, or a responses JSONL file")
    b: str = Field(..., description="model B: same forms as a")
    suite: str = Field("spec", description="built-in suite name or JSONL file")
    split: Literal["train", "test", "all"] = Field("test", description="which split")
    limit: int | None = Field(None, ge=1, description="only the first N items")
    rater: str = Field("gold", description=RATER_HELP)
    seed: int = Field(0, description="seed of the simulated raters and judges, and of the presentation order")
    out: str | None = Field(None, description="also write the result and per-item judgements as JSON here")
    batch_size: int = Field(32, ge=1, description="prompts generated together")
    dtype: AutoDType = Field("auto", validate_default=True,
                             description="weights dtype for generation; auto = the faster on this machine (postlab.machine)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where to generate")
    sampling: SamplingParams = Field(default_factory=lambda: SamplingParams(temperature=0.0, max_new_tokens=256, seed=0),
                                     description="decoding for models (greedy by default)")
    progress: bool = Field(True, description="show progress bars")

    def check(self) -> None:
        super().check()
        check_rater(self.rater)
        for side in ("a", "b"):
            value = getattr(self, side)
            if value.endswith(".jsonl") and not Path(value).is_file():
                raise ConfigError(f"{side}: responses file not found: {value}")


def _responses(source: str, items: list[Item], cfg: CompareConfig, name: str) -> list[Response]:
    if source.endswith(".jsonl") and Path(source).is_file():
        return read_responses(source, items)
    engine = load_engine(source, cfg.dtype, cfg.device)
    return generate_responses(engine, items, cfg.sampling, batch_size=cfg.batch_size, progress=cfg.progress,
                              desc=f"generate {name}")


def judge(items: list[Item], a: list[str], b: list[str], rater: str, seed: int = 0) -> list[dict]:
    """Per-item judgements: outcome for A (1, ½, 0) and who was shown first."""
    a_first = [rater == "gold" or random.Random(f"{seed}|order|{it.id}").random() < 0.5 for it in items]
    prefs = compare_all(make_rater(rater, seed), [(it, ra, rb) if first else (it, rb, ra)
                                                  for it, ra, rb, first in zip(items, a, b, a_first)])
    rows = []
    for it, pref, first in zip(items, prefs, a_first):
        a_won = {"a": first, "b": not first}.get(pref.choice)
        rows.append({"id": it.id, "category": it.category, "outcome": 0.5 if a_won is None else float(a_won),
                     "rater_id": pref.rater_id, "a_shown_first": first})
    return rows


def compare(cfg: CompareConfig) -> tuple[WinRate, list[dict]]:
    items = load_suite(cfg.suite, split=None if cfg.split == "all" else cfg.split, limit=cfg.limit)
    if not items:
        raise ConfigError(f"suite {cfg.suite!r} has no items in split {cfg.split!r}")
    a = [r.text for r in _responses(cfg.a, items, cfg, "A")]
    b = [r.text for r in _responses(cfg.b, items, cfg, "B")]
    rows = judge(items, a, b, cfg.rater, cfg.seed)
    result = win_rate([r["outcome"] for r in rows], [num_words(t) for t in a], [num_words(t) for t in b], seed=cfg.seed)
    if cfg.out:
        atomic_write_text(Path(cfg.out), json.dumps({"a": cfg.a, "b": cfg.b, "suite": cfg.suite, "split": cfg.split,
                                                     "rater": cfg.rater, **result.__dict__, "judgements": rows},
                                                    indent=2) + "\n")
    return result, rows


def main(cfg: CompareConfig) -> None:
    r, _ = compare(cfg)
    print(f"win rate of A over B ({cfg.rater} rater, n={r.n}): {r.win_rate:.3f} ± {r.se:.3f}")
    print(f"length-controlled win rate: {r.lc_win_rate:.3f} ± {r.lc_se:.3f}  (length coefficient {r.length_coef:+.2f})")
    if cfg.out:
        print(f"wrote {cfg.out}", file=sys.stderr)
