"""Sizing ``postlab run`` to a time budget on this machine, and the stage times the ETA starts from.

A stage's predicted time is its time in the reference run (``run.REFERENCE_SECONDS``, measured on the
machine the preset was sized on) × this machine's ``slowdown`` × the work the knobs ask of the stage
relative to the reference knobs (``stage_work``: e.g. the RL stage scales with steps × prompts per
step × response tokens). The slowdown is Amdahl's law over the matmul share of the reference time:

    slowdown = s · (reference matmul GFLOP/s ÷ this machine's, each in the dtype it runs) + (1 − s)

with s = ``MATMUL_SHARE`` = 0.2, from docs/benchmarks.md: on the reference machine bf16 SFT runs
2.14× faster than fp32 while its bf16 matmul peak is 6.6× fp32's, and 6.6·s + (1 − s) = 2.14 gives
s ≈ 0.2 (the rest — attention, elementwise ops, decoding overheads — does not speed up with AMX). The
prediction starts the ETA and sizes the run; the run's own pace corrects both once a telling share has
run: after each stage, if the stages so far took longer than predicted by a factor (the pace) at which
the rest would overrun the budget, ``keep_to_pace`` cuts the knobs of the stages still to run (never
those of a stage that has run), as ``fit_budget`` cuts them before the start.

When the predicted total is over the budget, ``fit_budget`` cuts knobs in ``TIERS``, each tier scaled
by one factor down to its ``FLOORS`` before the next tier moves: samples and steps first, then the SFT
data and epochs, then held-out eval items last and never below 100, so the evaluation still tells
(±0.04 standard error on the gold score at 100 items). Knobs set on the command line are never cut.
Every change is returned with its reason; nothing is scaled silently.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence

# The machine the reference stage times were measured on (a quiet `postlab run`, 2026-11-30): a 2-core AMD EPYC
# (Zen 5 family) with avx512_bf16 and no AMX; square-matmul peaks as postlab.machine measured them. The default
# preset ran bf16 there.
REFERENCE_MACHINE = {"cpu": "2-core AMD EPYC with avx512_bf16, no AMX (2026-11-30)", "fp32_gflops": 230.0,
                     "bf16_gflops": 996.0}
MATMUL_SHARE = 0.2

SPEC_EXAMPLES = 87  # SFT conversations from the spec's GOOD examples
RS_ACCEPTANCE = 0.165  # share of rejection-sampling prompts that yield a demonstration (16 of 97 in the reference run)

TIERS = (
    ("samples and steps", "samples and steps are cut first",
     ("rs_prompts", "rs_k", "sample_prompts", "rl_steps", "probe_prompts")),
    ("SFT data and epochs", "SFT data and epochs are cut once samples and steps are at their floors",
     ("demos_per_category", "sft_epochs")),
    ("held-out eval items", "held-out eval items are cut last, never below 100",
     ("eval_limit",)),
)
# Lowest values a budget may cut to (a preset already lower keeps its own); demos_per_category: a
# fraction of each category's count, so the mix keeps its proportions.
FLOORS = {"rs_prompts": 48, "rs_k": 2, "sample_prompts": 32, "rl_steps": 4, "probe_prompts": 24,
          "demos_per_category": 0.25, "sft_epochs": 1.0, "eval_limit": 100}


# A reward model trained on its top layers over cached activations costs this share of full fine-tuning over
# one epoch, cache included (benchmarks/rm_speed.py: 4.5x faster at N=4, docs/benchmarks.md).
RM_TOP_LAYERS_COST = 0.22
# Share of compared pairs a five-rater panel keeps, by the share of its votes the winner needs (rows) and the
# panel's mean margin toward it (columns, PANEL_MARGINS), on run r2's 3,333 compared pairs of SmolLM2 candidates
# (scripts/panel_experiments.py keep-grid runs/r2; the default, 5 of 5 at 0.7, kept 470: 0.141).
PANEL_MARGINS = (0.0, 0.15, 0.3, 0.5, 0.7)
PANEL_KEEP = {3 / 5: (1.0, 0.728, 0.591, 0.419, 0.273),
              4 / 5: (0.535, 0.497, 0.449, 0.354, 0.244),
              5 / 5: (0.189, 0.189, 0.187, 0.175, 0.141)}


def panel_keep(raters: int, min_votes: int | None, min_strength: float) -> float:
    """Share of compared pairs a panel keeps (``raters`` judges; the winner needs ``min_votes`` of them, None = a
    strict majority; mean margin ≥ ``min_strength``): PANEL_KEEP's row of the largest vote share and column of the
    largest margin not above the panel's own, so a setting between the measured ones is predicted to keep more
    pairs, not fewer. One rater keeps every verdict."""
    if raters <= 1:
        return 1.0
    need = raters // 2 + 1 if min_votes is None else min(min_votes, raters)
    row = max((v for v in PANEL_KEEP if v <= need / raters + 1e-9), default=min(PANEL_KEEP))
    col = max(i for i, m in enumerate(PANEL_MARGINS) if m <= min_strength + 1e-9)
    return PANEL_KEEP[row][col]


def labelled_pairs(k) -> float:
    """Pairs the reward model is expected to train on (``k``: run.Knobs)."""
    compared = k.sample_prompts * min(k.pairs_per_prompt, math.comb(k.sample_k + k.rs_k, 2))
    return compared * panel_keep(k.panel_raters, k.panel_min_votes, k.panel_min_strength)


def slowdown(gflops: float | None, reference_gflops: float, share: float = MATMUL_SHARE) -> float:
    """Stage-time multiplier against the reference machine; 1 when this machine was not measured."""
    if not gflops:
        return 1.0
    return share * reference_gflops / gflops + (1 - share)


def stage_work(k, test_items: int) -> dict[str, float]:
    """Work each knob-dependent stage does, in units proportional to its time (``k``: run.Knobs)."""
    evals = min(k.eval_limit or test_items, test_items) * k.eval_max_new_tokens
    return {
        "baseline": evals, "sft_eval": evals, "rl_eval": evals,
        "sft_data": k.rs_prompts * k.rs_k * k.rs_max_new_tokens,
        "sft": sft_conversations(k) * k.sft_epochs,
        "sample": k.sample_prompts * k.sample_k * k.sample_max_new_tokens,
        "rm": labelled_pairs(k) * k.rm_epochs * (RM_TOP_LAYERS_COST if k.rm_trainable_layers else 1.0),
        "bon": k.sample_prompts * k.sample_k,
        "rl": k.rl_steps * k.rl_prompts_per_step * k.rl_max_new_tokens,
        "probe": k.probe_prompts * k.rl_max_new_tokens,
    }


def sft_conversations(k) -> float:
    """SFT demonstrations the knobs ask for (spec examples, template answers, rejection-sampled)."""
    return SPEC_EXAMPLES + sum(k.demos_per_category.values()) + RS_ACCEPTANCE * k.rs_prompts


def replay_conversations(k) -> float:
    """SFT demonstrations ``bon_replay`` adds: all of them (true), or the template answers of its categories."""
    if isinstance(k.bon_replay, bool):
        return sft_conversations(k) if k.bon_replay else 0.0
    return float(sum(k.demos_per_category.get(c, 0) for c in k.bon_replay))


# Share of a stage's reference time that does not grow with its work. The reward-model stage loads the policy,
# caches the frozen layers' activations of every distinct sequence and scores the held-out pairs: runs r2 and r3
# (the same 2-core AMD EPYC, avx512_bf16, no AMX, bf16; the same candidates; 371 and 1,485 training pairs) took
# 210 and 543 s, 99 s + 0.30 s a pair, so about 0.3 of the reference stage's 339 s is fixed.
FIXED_SHARE = {"rm": 0.3}


def predict_seconds(k, ref_k, ref_seconds: dict[str, float], slow: float, test_items: int) -> dict[str, float]:
    """Each stage's predicted seconds: reference seconds × slowdown × (f + (1 − f) · work(k) / work(ref_k)), f its
    FIXED_SHARE (0 for most).

    ``algo=bon_sft``'s RL stage is not made of RL steps (``bon_sft_seconds``)."""
    work, ref_work = stage_work(k, test_items), stage_work(ref_k, test_items)

    def scale(s: str) -> float:
        if not ref_work.get(s):
            return 1.0
        f = FIXED_SHARE.get(s, 0.0)
        return f + (1 - f) * work[s] / ref_work[s]

    out = {s: t * slow * scale(s) for s, t in ref_seconds.items()}
    if getattr(k, "algo", None) == "bon_sft" and "rl" in out:
        out["rl"] = bon_sft_seconds(k, ref_seconds["sft"] / ref_work["sft"], slow)
    if getattr(k, "algo", None) == "bon" and "rl_eval" in out:
        out["rl"], out["probe"] = slow, slow
        out["rl_eval"] = bon_eval_seconds(k, ref_seconds["sample"] / ref_work["sample"], slow, test_items)
    return out


def bon_eval_seconds(k, sample_s_per_token: float, slow: float, test_items: int) -> float:
    """``algo=bon``: bon_n − 1 samples per eval item (timed per sampled token as the sample stage), then the
    reward model scores all bon_n candidates of each item (``BON_SCORE_S`` each); grading the picks is cheap."""
    items = min(k.eval_limit or test_items, test_items)
    sampled = items * (k.bon_n - 1) * k.eval_max_new_tokens
    return slow * (sample_s_per_token * sampled + BON_SCORE_S * items * k.bon_n)


# algo=bon_sft on the reference machine (run d6, 2026-11-30): the reward model scored 1,676 finished candidates
# (70% of the 2,400 sampled) in about 130 s of the stage's 310 s; a held-out gold eval costs about 0.22 s per item.
BON_FINISHED = 0.7
BON_SCORE_S = 0.078
GOLD_EVAL_ITEM_S = 0.22


def bon_sft_seconds(k, sft_s_per_conversation_epoch: float, slow: float) -> float:
    """``algo=bon_sft``: the reward model scores the SFT policy's finished samples (``BON_SCORE_S`` each), the policy is
    fine-tuned on the kept picks and any replayed SFT demonstrations (timed per conversation-epoch as the SFT
    stage), and five held-out gold evals watch it (start, then every quarter)."""
    scored = BON_FINISHED * k.sample_prompts * k.sample_k  # the SFT policy's own samples (run.bon_sft_stage)
    tuned = (k.bon_keep * k.sample_prompts + replay_conversations(k)) * k.sft_epochs
    evals = 5 * k.rl_gold_limit if k.rl_gold_every else 0
    return slow * (BON_SCORE_S * scored + sft_s_per_conversation_epoch * tuned + GOLD_EVAL_ITEM_S * evals)


# Stages whose time says nothing about the machine's pace (a download), left out of ``run_pace``.
PACE_EXCLUDED = ("fetch",)


def run_pace(seconds: dict[str, float], predicted: dict[str, float], done: Collection[str]) -> float | None:
    """This run's pace: the ``done`` stages' measured seconds over their predicted seconds (> 1: slower than
    predicted), or None until they cover 5% of the predicted total (too little to tell)."""
    timed = [s for s in done if s in seconds and s in predicted and s not in PACE_EXCLUDED]
    expected = sum(predicted[s] for s in timed)
    if not timed or expected < 0.05 * sum(predicted.values()):
        return None
    return sum(seconds[s] for s in timed) / expected


def keep_to_pace(k, ref_k, ref_seconds: dict[str, float], *, slow: float, budget_s: float, test_items: int,
                 order: Sequence[str], upto: str, seconds: dict[str, float], first_stage: dict[str, str | None],
                 fixed: Collection[str] = ()) -> tuple[object, list[dict], float | None]:
    """After stage ``upto`` of ``order``: (knobs, their cuts, this run's pace). When the stages up to
    ``upto`` took ``seconds`` at a pace (``run_pace``) at which the rest would overrun ``budget_s``, the knobs
    of the stages still to run are cut as ``fit_budget`` cuts them; a knob whose first stage
    (``first_stage``) has run stays, and so does every ``fixed`` one. A pure function of its arguments, so a
    rerun that replays it over the recorded stage times cuts exactly what the first run cut."""
    done = list(order[: list(order).index(upto) + 1])
    pace = run_pace(seconds, predict_seconds(k, ref_k, ref_seconds, slow, test_items), done)
    if pace is None or budget_s <= 0:
        return k, [], pace
    frozen = {n for n, stage in first_stage.items() if stage in done}
    cut, changes = fit_budget(k, ref_k, ref_seconds, slow=slow, budget_s=budget_s, test_items=test_items,
                              fixed={*fixed, *frozen}, done=done, pace=pace,
                              spent_s=sum(seconds.get(s, 0.0) for s in done))
    return cut, [{**c, "after": upto} for c in changes], pace


def stage_allowance(k, ref_k, ref_seconds: dict[str, float], *, slow: float, budget_s: float, test_items: int,
                    order: Sequence[str], stage: str, seconds: dict[str, float], first_stage: dict[str, str | None],
                    fixed: Collection[str] = ()) -> float | None:
    """Seconds stage ``stage`` may run and still leave the rest of the run inside ``budget_s`` (None: no budget).

    The stages before it took ``seconds``; the ones after it are predicted at the run's pace so far
    (``run_pace``; 1 until it tells) with the knobs of the tiers cut before this stage's own at their floors
    (the order ``fit_budget`` cuts in: samples and steps go to their floors before SFT data and epochs are
    cut), except knobs set on the command line or used by a stage that has run. A stage that runs over its
    prediction mid-way — which the checks between stages cannot see — stops at this allowance instead."""
    if budget_s <= 0:
        return None
    at = list(order).index(stage)
    done, rest = list(order[:at]), list(order[at + 1:])
    pace = run_pace(seconds, predict_seconds(k, ref_k, ref_seconds, slow, test_items), done) or 1.0
    own = next((i for i, (_, _, names) in enumerate(TIERS) if any(first_stage.get(n) == stage for n in names)), None)
    if own is None:
        raise ValueError(f"stage {stage!r} has no budget knob (none of {[n for t in TIERS for n in t[2]]} is "
                         "first used by it), so it has no allowance of its own")
    settled = {*fixed, *(n for n, st in first_stage.items() if st in done or st == stage)}
    floor = k.model_copy(update={n: _cut(n, getattr(k, n), 0.0, test_items)
                                 for _, _, names in TIERS[:own] for n in names if n not in settled})
    later = predict_seconds(floor, ref_k, ref_seconds, slow, test_items)
    return budget_s - sum(seconds.get(s, 0.0) for s in done) - pace * sum(later.get(s, 0.0) for s in rest)


def keep_preset_to_pace(k, predict: Callable, fit: Callable, *, slow: float, budget_s: float, order: Sequence[str],
                        upto: str, seconds: dict[str, float], first_stage: dict[str, str | None],
                        fixed: Collection[str] = ()) -> tuple[object, list[dict], float | None]:
    """``keep_to_pace`` for a preset with its own plan (agent, reasoning): ``predict(k, slow)`` gives its stages'
    seconds and ``fit(k, total, budget_s, fixed)`` cuts its knobs until ``total(k)`` fits. After stage ``upto``
    the rest is predicted at the run's pace so far, the finished stages at what they took; a knob whose first
    stage has run stays, and so does every ``fixed`` one. A pure function of its arguments (a rerun replays it)."""
    done = list(order[: list(order).index(upto) + 1])
    pace = run_pace(seconds, predict(k, slow), done)
    if pace is None or budget_s <= 0:
        return k, [], pace
    spent = sum(seconds.get(s, 0.0) for s in done)

    def total(kk) -> float:
        return spent + pace * sum(t for s, t in predict(kk, slow).items() if s not in done)

    frozen = {n for n, stage in first_stage.items() if stage in done}
    cut, changes = fit(k, total, budget_s, {*fixed, *frozen})
    why = f"at this run's pace after {upto} ({pace:.2f}x its predicted stage times), over the {budget_s / 60:g}-minute budget"
    return cut, [{**c, "why": why, "after": upto} for c in changes], pace


def _cut(name: str, value, x: float, test_items: int):
    """``value`` scaled by ``x`` (0 < x ≤ 1), not below its floor nor above itself."""
    if name == "demos_per_category":
        return {c: max(min(n, math.ceil(n * FLOORS[name])), round(n * x)) for c, n in value.items()}
    if name == "eval_limit":
        value = min(value or test_items, test_items)
    floor = min(FLOORS[name], value)
    return max(floor, round(value * x, 2) if isinstance(value, float) else round(value * x))


def fit_budget(k, ref_k, ref_seconds: dict[str, float], *, slow: float, budget_s: float, test_items: int,
               fixed: Collection[str] = (), done: Collection[str] = (), pace: float = 1.0,
               spent_s: float = 0.0) -> tuple[object, list[dict]]:
    """(knobs that fit ``budget_s`` as well as the floors allow, [{knob, from, to, why}]). ``fixed``:
    knobs never cut (set on the command line, or used by a stage that has run).

    Mid-run (``keep_to_pace``): ``done`` stages took ``spent_s`` seconds, and the others are predicted
    at ``pace`` × their predicted seconds (the run's own pace so far against its predictions)."""
    def total(kk) -> float:
        predicted = predict_seconds(kk, ref_k, ref_seconds, slow, test_items)
        return spent_s + pace * sum(t for s, t in predicted.items() if s not in done)

    before = total(k)
    if before <= budget_s:
        return k, []
    start = k
    reasons = {}
    for _, reason, names in TIERS:
        # a knob whose cut saves no time under these knobs (rl_steps when the RL stage is bon_sft) stays as it is
        names = [n for n in names if n not in fixed
                 and total(k.model_copy(update={n: _cut(n, getattr(k, n), 0.0, test_items)})) < total(k)]
        if not names:
            continue
        orig = {n: getattr(k, n) for n in names}
        base = k

        def at(x: float, base=base, orig=orig, names=names):
            return base.model_copy(update={n: _cut(n, orig[n], x, test_items) for n in names})

        reasons.update(dict.fromkeys(names, reason))
        if total(at(0.0)) > budget_s:
            k = at(0.0)
            continue
        lo, hi = 0.0, 1.0
        for _ in range(40):  # the largest factor that fits (the time grows with it)
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if total(at(mid)) <= budget_s else (lo, mid)
        k = at(lo)
        break
    if k.sample_prompts > k.rs_prompts:
        k = k.model_copy(update={"sample_prompts": k.rs_prompts})
        reasons.setdefault("sample_prompts", "sample_prompts may not exceed rs_prompts")
    head = (f"to fit the {budget_s / 60:g}-minute budget (predicted {before / 60:.0f} min at {slow:.2f}x the "
            f"reference machine's stage times)") if not done else (
        f"to fit the {budget_s / 60:g}-minute budget (after {len(done)} stages, {spent_s / 60:.1f} min spent, this run "
        f"going at {pace:.2f}x its predicted stage times: {before / 60:.0f} min in all at that pace)")
    changes = []
    for name in (n for _, _, names in TIERS for n in names):  # in the order they are cut
        old, new = getattr(start, name), getattr(k, name)
        if name == "eval_limit":
            old, new = min(old or test_items, test_items), min(new or test_items, test_items)
        if old != new:
            changes.append({"knob": name, "from": old, "to": new, "why": f"{head}; {reasons[name]}"})
    return k, changes
