"""``postlab survey``: whose opinions does a model's answer distribution reflect? (docs/science.md)

Following OpinionQA (Santurkar et al. 2023, "Whose opinions do language models reflect?") and GlobalOpinionQA
(Durmus et al. 2023): for each multiple-choice opinion question the model's answer distribution D_m(q) comes from
its option-letter probabilities averaged over cyclic option orders (postlab/science/options.py), unconditioned
and conditioned on each persona. Against each human group's distribution H_g(q), the similarity is

    S(P, Q) = 1 − W1(P, Q) / (K − 1)    ordinal options (W1 on the positions 0..K−1, its maximum is K − 1)
    S(P, Q) = 1 − JSD(P, Q)             otherwise (JSD the Jensen–Shannon distance, base 2, in [0, 1])

and the representativeness of a predictor for group g is R_g = mean_q S(D(q), H_g(q)); ``representativeness`` is
the mean of R_g over groups. Baselines: ``uniform`` (every option equally likely) and ``marginal`` (the mean of the
groups' distributions, the same for every group). ``steered``: R_g of the model given g's persona; ``steerability``
= steered − unconditioned representativeness; ``steer_specificity`` = mean over g of R_g(persona g) minus the mean
over other groups h of R_h(persona g). ``invalid_rate`` = the probability mass on no option letter. Intervals:
95% bootstrap over questions.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from postlab.config import Section
from postlab.errors import ConfigError
from postlab.machine import AutoDType
from postlab.science.common import check_models, check_out, each_model, meta
from postlab.science.metrics import bootstrap_interval
from postlab.science.options import option_distributions, prompts_for_orders
from postlab.science.survey_data import Persona, SurveyQuestion, builtin_survey, load_personas, load_questions
from postlab.utils.io import atomic_write_text, finite

INSTRUCTION = "Answer with the letter of one option."
PERSONA_LEAD = "Answer the following question as this person would."


def wasserstein_ordinal(p: Sequence[float], q: Sequence[float]) -> float:
    """W1 between two distributions on the positions 0..K−1: Σ_k |F_p(k) − F_q(k)| over k < K−1 (F the CDF)."""
    fp = fq = 0.0
    total = 0.0
    for a, b in zip(p[:-1], q[:-1]):
        fp += a
        fq += b
        total += abs(fp - fq)
    return total


def js_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen–Shannon distance, base 2: sqrt(½ KL(p‖m) + ½ KL(q‖m)) with m = (p + q)/2; in [0, 1]."""
    def kl(a: Sequence[float], m: Sequence[float]) -> float:
        return sum(x * math.log2(x / y) for x, y in zip(a, m) if x > 0)

    m = [(a + b) / 2 for a, b in zip(p, q)]
    return math.sqrt(max(0.0, (kl(p, m) + kl(q, m)) / 2))


def similarity(p: Sequence[float], q: Sequence[float], ordinal: bool) -> float:
    """1 − W1/W1_max for ordinal options, 1 − Jensen–Shannon distance otherwise; 1 = the same distribution."""
    if ordinal:
        return 1 - wasserstein_ordinal(p, q) / (len(p) - 1)
    return 1 - js_distance(p, q)


def similarity_matrix(preds: Sequence[Sequence[float]], questions: Sequence[SurveyQuestion],
                      groups: Sequence[str]) -> np.ndarray:
    """S[q, g] = similarity(preds[q], H_g(q)); NaN where question q has no distribution for group g. (Q, G)"""
    S = np.full((len(questions), len(groups)), np.nan)
    for i, (p, q) in enumerate(zip(preds, questions)):
        for j, g in enumerate(groups):
            if g in q.human:
                S[i, j] = similarity(p, q.human[g], q.ordinal)
    return S


def representativeness(S: np.ndarray) -> tuple[float, list[float]]:
    """(mean over groups of R_g, [R_g]) with R_g = the mean of S[:, g] over the questions that have group g."""
    with np.errstate(invalid="ignore"):
        by_group = [float(np.nanmean(S[:, j])) if np.isfinite(S[:, j]).any() else float("nan") for j in range(S.shape[1])]
    defined = [r for r in by_group if not math.isnan(r)]
    return (sum(defined) / len(defined) if defined else float("nan")), by_group


def marginal(question: SurveyQuestion) -> list[float]:
    """The mean of the groups' distributions (each group weighted equally)."""
    dists = list(question.human.values())
    return [sum(d[k] for d in dists) / len(dists) for k in range(len(question.options))]


def _with_ci(stat: Callable[[np.ndarray], float], n: int, resamples: int, seed: int) -> tuple[float, list[float]]:
    return stat(np.arange(n)), list(bootstrap_interval(stat, n, resamples=resamples, seed=seed))


def baseline_report(S: np.ndarray, groups: list[str], resamples: int, seed: int) -> dict:
    value, ci = _with_ci(lambda idx: representativeness(S[idx])[0], len(S), resamples, seed)
    return {"representativeness": value, "representativeness_ci": ci,
            "representativeness_by_group": dict(zip(groups, representativeness(S)[1]))}


def model_survey_metrics(S: np.ndarray, S_uniform: np.ndarray, cross: dict[str, np.ndarray] | None,
                         groups: list[str], *, resamples: int, seed: int) -> dict:
    """One model's figures. S: (Q, G) unconditioned similarities; S_uniform: the uniform baseline's; cross:
    persona group g -> (Q, G) similarities of the model given g's persona to every group (None: no personas)."""
    n = len(S)
    out = baseline_report(S, groups, resamples, seed)
    out["minus_uniform"], out["minus_uniform_ci"] = _with_ci(
        lambda idx: representativeness(S[idx])[0] - representativeness(S_uniform[idx])[0], n, resamples, seed + 1)
    if not cross:
        return out
    steered_groups = [g for g in groups if g in cross]
    cols = [groups.index(g) for g in steered_groups]

    def steered(idx: np.ndarray) -> np.ndarray:  # (Q', G'): the model given g's persona against g
        return np.stack([cross[g][idx, groups.index(g)] for g in steered_groups], axis=1)

    def steerability(idx: np.ndarray) -> float:
        return representativeness(steered(idx))[0] - representativeness(S[idx][:, cols])[0]

    def specificity(idx: np.ndarray) -> float:
        gaps = []
        for g in steered_groups:
            by_group = representativeness(cross[g][idx])[1]
            own = by_group[groups.index(g)]
            others = [r for h, r in zip(groups, by_group) if h != g and not math.isnan(r)]
            if others and not math.isnan(own):
                gaps.append(own - sum(others) / len(others))
        return sum(gaps) / len(gaps) if gaps else float("nan")

    value, ci = _with_ci(lambda idx: representativeness(steered(idx))[0], n, resamples, seed + 2)
    out["steered"] = {"representativeness": value, "representativeness_ci": ci,
                      "representativeness_by_group": dict(zip(steered_groups, representativeness(steered(np.arange(n)))[1]))}
    out["steerability"], out["steerability_ci"] = _with_ci(steerability, n, resamples, seed + 3)
    out["steer_specificity"], out["steer_specificity_ci"] = _with_ci(specificity, n, resamples, seed + 4)
    return out


class SurveyConfig(Section):
    """postlab survey: simulated survey answers of one or more models against human (or synthetic) distributions."""

    models: list[str] = Field(default_factory=lambda: ["smollm2-135m-instruct"],
                              description="models side by side: built-in names, directories or hub ids, each optionally "
                                          "labelled as label=model")
    questions: str = Field("builtin", description="builtin (the synthetic survey) | a questions JSONL (docs/science.md)")
    personas: str | None = Field(None, description="personas JSONL ({group, text} per line); default: the built-in "
                                                   "survey's personas with questions=builtin, else none")
    use_personas: bool = Field(True, description="also answer as each persona (steerability); false = unconditioned only")
    orders: int | None = Field(None, ge=1, description="option orders averaged per question (cyclic shifts); "
                                                       "null = all of them")
    limit: int | None = Field(None, ge=1, description="only the first N questions")
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples over questions for the 95% intervals")
    seed: int = Field(0, description="seed of the bootstrap")
    batch_size: int = Field(16, ge=1, description="prompts per forward pass")
    dtype: AutoDType = Field("fp32", validate_default=True, description="weights dtype: fp32 | bf16 | auto")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where to run the models")
    out: str = Field("survey/results.json", description="results JSON; <stem>.questions.jsonl beside it")
    overwrite: bool = Field(False, description="replace an existing out file")
    progress: bool = Field(True, description="show a progress bar")

    def check(self) -> None:
        super().check()
        check_out(self.out, self.overwrite)
        check_models(self.models)
        for key in ("questions", "personas"):
            value = getattr(self, key)
            if value not in (None, "builtin") and not Path(value).exists():
                raise ConfigError(f"{key}: file not found: {value}")


def load_survey(cfg: SurveyConfig) -> tuple[list[SurveyQuestion], list[Persona]]:
    if cfg.questions == "builtin":
        questions, personas = builtin_survey()
    else:
        questions, personas = load_questions(cfg.questions), []
    if cfg.personas is not None:
        personas = load_personas(cfg.personas)
    return questions[: cfg.limit], personas if cfg.use_personas else []


def answer_distributions(model, tok, questions: list[SurveyQuestion], preamble: str | None, *, orders: int | None,
                         batch_size: int, progress: bool, desc: str) -> list[tuple[list[float], float]]:
    prompts = [prompts_for_orders(q.question, q.options, instruction=INSTRUCTION, n_orders=orders, preamble=preamble)
               for q in questions]
    return option_distributions(model, tok, prompts, batch_size=batch_size, progress=progress, desc=desc)


def _mean_dists(dists: list[list[float]]) -> list[float]:
    return [sum(d[k] for d in dists) / len(dists) for k in range(len(dists[0]))]


def run(cfg: SurveyConfig) -> dict:
    started = time.time()
    questions, personas = load_survey(cfg)
    groups = sorted({g for q in questions for g in q.human})
    persona_groups = sorted({p.group for p in personas})
    S_uniform = similarity_matrix([[1 / len(q.options)] * len(q.options) for q in questions], questions, groups)
    S_marginal = similarity_matrix([marginal(q) if q.human else [] for q in questions], questions, groups)
    results: dict = {"questions": cfg.questions, "n_questions": len(questions), "groups": groups,
                     "personas": [{"group": p.group, "text": p.text} for p in personas],
                     "orders": cfg.orders or "all"}
    if groups:
        results["uniform"] = baseline_report(S_uniform, groups, cfg.bootstrap, cfg.seed)
        results["marginal"] = baseline_report(S_marginal, groups, cfg.bootstrap, cfg.seed)
    results["models"] = {}
    rows = [{"id": q.id, "question": q.question, "options": q.options, "ordinal": q.ordinal, "human": q.human,
             "model": {}} for q in questions]
    for label, name, model, tok in each_model(cfg.models, cfg.dtype, cfg.device):
        kw = {"orders": cfg.orders, "batch_size": cfg.batch_size, "progress": cfg.progress}
        plain = answer_distributions(model, tok, questions, None, desc=label, **kw)
        by_group: dict[str, list[list[tuple[list[float], float]]]] = {}
        for p in personas:
            by_group.setdefault(p.group, []).append(answer_distributions(
                model, tok, questions, f"{PERSONA_LEAD} {p.text}", desc=f"{label}/{p.group}", **kw))
        steered = {g: [_mean_dists([runs[k][i][0] for k in range(len(runs))]) for i in range(len(questions))]
                   for g, runs in by_group.items()}
        steered_mass = [m for runs in by_group.values() for r in runs for _, m in r]
        report: dict = {"model": name}
        if groups:
            S = similarity_matrix([d for d, _ in plain], questions, groups)
            cross = {g: similarity_matrix(steered[g], questions, groups) for g in persona_groups if g in groups}
            report.update(model_survey_metrics(S, S_uniform, cross or None, groups, resamples=cfg.bootstrap,
                                               seed=cfg.seed))
        report["invalid_rate"] = 1 - sum(m for _, m in plain) / len(plain)
        report["invalid_rate_steered"] = (1 - sum(steered_mass) / len(steered_mass)) if steered_mass else None
        results["models"][label] = report
        for i, row in enumerate(rows):
            row["model"][label] = {"unconditioned": [round(x, 5) for x in plain[i][0]],
                                   **{g: [round(x, 5) for x in steered[g][i]] for g in steered}}
    results["meta"] = meta(cfg.model_dump(mode="json"), started)
    out = Path(cfg.out)
    atomic_write_text(out.with_name(out.stem + ".questions.jsonl"), "".join(json.dumps(r) + "\n" for r in rows))
    atomic_write_text(out, json.dumps(finite(results), indent=2) + "\n")
    return results


def _ci(value, ci) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def format_table(results: dict) -> str:
    lines = []
    for base in ("uniform", "marginal"):
        if base in results:
            lines.append(f"{base + ' baseline':<24} representativeness {_ci(results[base]['representativeness'], results[base]['representativeness_ci'])}")
    for label, m in results["models"].items():
        line = f"{label:<24} invalid {m['invalid_rate']:.3f}"
        if "representativeness" in m:
            line += (f"  representativeness {_ci(m['representativeness'], m['representativeness_ci'])}"
                     f"  minus uniform {_ci(m['minus_uniform'], m['minus_uniform_ci'])}")
        if "steered" in m:
            line += (f"  steered {_ci(m['steered']['representativeness'], m['steered']['representativeness_ci'])}"
                     f"  steerability {_ci(m['steerability'], m['steerability_ci'])}"
                     f"  specificity {_ci(m['steer_specificity'], m['steer_specificity_ci'])}")
        lines.append(line)
    return "\n".join(lines)


def main(cfg: SurveyConfig) -> None:
    results = run(cfg)
    print(format_table(results))
    print(f"wrote {cfg.out}")
