"""``report.html`` of a ``postlab run --preset reasoning`` directory: the headline, accuracy by difficulty per
stage, the RL arms' training curves beside the controls', test-time compute curves, the checkpoints' reliability
diagrams where ``postlab calibration --run`` has written them, machine and timings."""

from __future__ import annotations

import json
import re
from pathlib import Path

from postlab.report.calibration import calibration_section
from postlab.report.html import (STAGE_COLOURS, _esc, _img, _minutes, _num, _plt, _png, _read_jsonl, _table,
                                 write_page)

ARM_COLOURS = {"rl": "#2ca02c", "control_random": "#9467bd", "control_format": "#ff7f0e"}


def plot_by_level(evals: dict[str, dict]) -> str:
    """Grouped bars: held-out accuracy per suite and difficulty level for each stage (n per bar in the label)."""
    plt = _plt()
    first = next(iter(evals.values()))["by_suite_level"]
    cells = [(suite, lvl, cell["n"]) for suite, levels in first.items() for lvl, cell in levels.items()]
    fig, ax = plt.subplots(figsize=(max(7, 0.8 * len(cells)), 3.6))
    width = 0.8 / max(1, len(evals))
    for j, (name, e) in enumerate(evals.items()):
        xs = [i + (j - (len(evals) - 1) / 2) * width for i in range(len(cells))]
        ax.bar(xs, [e["by_suite_level"].get(suite, {}).get(lvl, {}).get("accuracy", 0.0) for suite, lvl, _ in cells],
               width, color=STAGE_COLOURS[j % len(STAGE_COLOURS)], label=name)
    ax.set_xticks(range(len(cells)), [f"{suite} L{lvl}\n(n={n})" for suite, lvl, n in cells], fontsize=7)
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def plot_arms(curves: dict[str, list[dict]]) -> str | None:
    """Training-batch accuracy (gold on the rollouts) and response length per step, one line per RL arm."""
    if not any(curves.values()):
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for arm, rows in curves.items():
        steps = [m["step"] for m in rows]
        colour = ARM_COLOURS.get(re.sub(r"_s\d+$", "", arm))  # the arm of every seed in one colour
        axes[0].plot(steps, [m["gold/train_score"] for m in rows], label=arm, color=colour, alpha=0.85)
        axes[1].plot(steps, [m["completions/mean_length"] for m in rows], label=arm, color=colour, alpha=0.85)
    axes[0].set_ylabel("accuracy of the step's rollouts")
    axes[1].set_ylabel("mean response tokens")
    for ax in axes:
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def build_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html`` from the run's summary.json and files; returns its path."""
    from postlab.evals.test_time import figure, vote_line

    run_dir = Path(run_dir)
    s = json.loads((run_dir / "summary.json").read_text())
    st, controls, tt = s["stages"], s["controls"], s["test_time"]
    gain = st["rl"]
    parts = [f"<h1>postlab run --preset {_esc(s['preset'])}: {_esc(s['model'])}</h1>",
             f"<p class='note'>Held-out test split of the <b>{_esc(s['suite'])}</b> suite ({st['baseline']['n']} items, "
             "greedy); accuracy = the final answer is exactly right (arith) or the expression reaches the target "
             "under the rules (countdown). Gains are paired on the same items (mean ± SE).</p>"]
    parts.append("<div class='headline'>" + "".join(f"<div>{_esc(label)}<b>{value}</b></div>" for label, value in (
        ("base → SFT → RL", f"{st['baseline']['accuracy']:.3f} → {st['sft']['accuracy']:.3f} → {st['rl']['accuracy']:.3f}"),
        ("RL − SFT", f"{100 * gain['gain_over_sft']:+.1f} ± {100 * gain['gain_over_sft_se']:.1f}"),
        *((f"{name.replace('_', ' ')} control", f"{100 * c['gain']:+.1f} ± {100 * c['gain_se']:.1f}")
          for name, c in controls.items()),
        ("total time", _minutes(s["timings_s"].get("total"))))) + "</div>")

    parts.append("<h2>Accuracy by stage</h2>")
    evals = {"base": st["baseline"], "sft": st["sft"], "rl": st["rl"]}
    cats = sorted(st["baseline"].get("by_category") or {})
    rows = [[name, e["accuracy"], e["accuracy_se"], *((e.get("by_category") or {}).get(c) for c in cats)]
            for name, e in evals.items()]
    rows += [[f"control: {name}", c["accuracy"], None, *([None] * len(cats))] for name, c in controls.items()]
    parts.append(_table(["stage", "accuracy", "SE", *cats], rows))
    parts.append(_img(plot_by_level(evals), "held-out accuracy by suite and difficulty level (arith levels 5–6 and "
                                            "countdown levels 4–5 are held out of training)"))
    seeds = s.get("seeds") or {}
    if seeds and len(seeds.get("rl", {}).get("per_seed", [])) > 1:
        parts.append("<h2>Seeds</h2>")
        parts.append(_table(["arm", "gain over SFT, mean over seeds", "sd over seeds", "per seed"],
                            [[arm, x["gain_mean"], x["gain_spread_sd"],
                              ", ".join(f"{p['seed']}: {100 * p['gain']:+.1f}" for p in x["per_seed"])]
                             for arm, x in seeds.items()]))

    parts.append("<h2>RL: the verifiable reward against the controls</h2>")
    curves = {name: [m for m in _read_jsonl(run_dir / name / "metrics.jsonl") if "reward" in m]
              for name in sorted(p.name for p in run_dir.iterdir() if p.is_dir() and (p / "metrics.jsonl").exists()
                                 and (p.name.startswith("rl") or p.name.startswith("control_")))}
    c = plot_arms(curves)
    if c:
        parts.append(_img(c, "accuracy of each step's rollouts (gold, whatever the arm's reward) and response length"))
    parts.append(_table(["arm", "reward", "rollout accuracy first → last fifth", "held-out accuracy", "gain over SFT"],
                        [["rl", st["rl"]["train"]["reward_source"],
                          f"{_num(st['rl']['train']['train_accuracy_first'], '.2f')} → {_num(st['rl']['train']['train_accuracy_last'], '.2f')}",
                          st["rl"]["accuracy"], f"{100 * gain['gain_over_sft']:+.1f} ± {100 * gain['gain_over_sft_se']:.1f}"]]
                        + [[name, c["train"]["reward_source"],
                            f"{_num(c['train']['train_accuracy_first'], '.2f')} → {_num(c['train']['train_accuracy_last'], '.2f')}",
                            c["accuracy"], f"{100 * c['gain']:+.1f} ± {100 * c['gain_se']:.1f}"]
                           for name, c in controls.items()]))

    parts.append("<h2>Test-time compute (the RL policy)</h2>")
    n = tt["samples"]
    parts.append(f"<p class='note'>{tt['items']} test items, {n} samples each at temperature {tt['temperature']}: "
                 f"pass@1 {tt['pass_at_1']:.3f}, maj@{n} {tt[f'maj_at_{n}']:.3f}, pass@{n} {tt['pass_at_k'][str(n)]:.3f}."
                 + (f" {_esc(vote_line(tt['vote_census'], n))}." if "vote_census" in tt else "") + "</p>")
    ks = sorted(tt["pass_at_k"], key=int)
    parts.append(_img(_png(figure({"ks": ks, **{x: tt[x] for x in ("pass_at_k", "pass_at_k_se", "maj_at_k", "maj_at_k_se")}})),
                      "accuracy against k samples per item (pass@k: any of k right; maj@k: the majority answer right)"))
    if st.get("star", {}).get("rounds"):
        parts.append("<h2>STaR rounds</h2>")
        parts.append(_table(["round", "prompts", "prompts solved", "right chains kept"],
                            [[r["round"], r["prompts"], r["prompts_solved"], r["kept"]] for r in st["star"]["rounds"]]))
    parts.append(calibration_section(run_dir))
    return write_page(run_dir, s, parts, f"postlab reasoning report: {s['model']}")
