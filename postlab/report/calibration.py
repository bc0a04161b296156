"""The report's calibration section, read from the run's ``calibration.json`` (``postlab calibration --run``):
reliability diagrams of every checkpoint side by side (and the reward model's), the figures with their 95%
bootstrap intervals, and each checkpoint's paired difference from the base. Absent without that file."""

from __future__ import annotations

import json
from pathlib import Path

from postlab.errors import ConfigError
from postlab.report.html import _Raw, _esc, _fmt, _img, _png, _table, _undefined
from postlab.science.calibration import reliability_figure
from postlab.science.calibration_run import CALIBRATION_FILE, checkpoints, panels, reward_model

METRICS = (("accuracy", "accuracy"), ("mean_confidence", "mean confidence"), ("ece", "ECE"),
           ("ece_equal_count", "ECE (equal-count)"), ("brier", "Brier"), ("nll", "NLL"))
SCORING = {"letters": "the options listed with letters, P(next token = letter) averaged over option orders",
           "cloze": "P(the reply is exactly the option's text), the options not shown"}


def _with_ci(m: dict, key: str) -> str:
    ci = m.get(f"{key}_ci") or [None, None]
    return f"{_fmt(m.get(key))} [{_fmt(ci[0])}, {_fmt(ci[1])}]"


def _difference(d: dict, key: str) -> _Raw:
    """A paired difference with its interval, in bold where the interval excludes 0 (a measured change)."""
    lo, hi = d.get(f"{key}_ci") or [None, None]
    text = _esc(f"{_fmt(d.get(key))} [{_fmt(lo)}, {_fmt(hi)}]")
    measured = not (_undefined(lo) or _undefined(hi)) and (lo > 0 or hi < 0)
    return _Raw(f"<b>{text}</b>" if measured else text)


def _stale(run_dir: Path, r: dict) -> list[str]:
    """The checkpoints (and reward model) the run holds now that calibration.json did not score as they are."""
    try:
        now = checkpoints(run_dir)
    except ConfigError:
        return []
    scores = r.get("scores") or {}
    out = [label for label, (_, record) in now.items()
           if ((scores.get(label) or {}).get("key") or {}).get("checkpoint") != record]
    rm = reward_model(run_dir)
    if rm is not None and r.get("rm_scores") and r["rm_scores"]["key"].get("checkpoint") != rm[1]:
        out.append("reward model")
    return out


def calibration_section(run_dir: Path) -> str:
    path = Path(run_dir) / CALIBRATION_FILE
    if not path.is_file():
        return ""
    r = json.loads(path.read_text(encoding="utf-8"))
    meta = r.get("meta") or {}
    cfg = meta.get("config") or {}
    parts = ["<h2>Calibration (multiple choice)</h2>",
             f"<p class='note'>{_fmt(r.get('n_items'))} questions of the <b>{_esc(r.get('suite'))}</b> suite, scored "
             f"by <b>{_esc(r.get('scoring'))}</b> ({_esc(SCORING.get(r.get('scoring'), ''))}); confidence = the top "
             "option probability. Intervals: 95% bootstrap over questions; differences are paired (one resample "
             "scores both checkpoints) and in bold where the interval excludes 0. ECE floor: the ECE a perfectly "
             "calibrated model with the same confidences shows on this many questions. "
             f"From {CALIBRATION_FILE} (<code>postlab calibration --run</code>, {_esc(meta.get('date'))}).</p>"]
    stale = _stale(Path(run_dir), r)
    if stale:
        parts.append(f"<p class='note bad'>Not up to date: the run's {_esc(', '.join(stale))} changed or was not "
                     "scored; rerun <code>postlab calibration --run</code> to score it.</p>")
    if json.loads((Path(run_dir) / "summary.json").read_text()).get("algo") == "bon":
        parts.append("<p class='note'>algo=bon has no RL checkpoint: its policy is the SFT checkpoint with best-of-n "
                     "at inference, so the SFT checkpoint's calibration is its own.</p>")
    shown = panels(r)
    if shown:
        parts.append(_img(_png(reliability_figure(shown, int(cfg.get("bins", 10)))),
                          "reliability diagrams: accuracy per equal-width confidence bin (bars, 95% Wilson "
                          "intervals; red dots: each bin's accuracy at its mean confidence) against the diagonal; "
                          "below, items per bin"))
    rows = [[label, m.get("n"), *(_with_ci(m, k) for k, _ in METRICS), f"{_fmt(m.get('ece_floor'))}",
             _fmt(m.get("temperature"), 2), _with_ci(m, "ece_after_temperature")]
            for label, m in r.get("models", {}).items()]
    parts.append(_table(["checkpoint", "n", *(name for _, name in METRICS), "ECE floor", "T*", "ECE after T"], rows))
    differences = r.get("differences") or {}
    if differences:
        parts.append(_table(["paired difference", *(name for _, name in METRICS)],
                            [[pair.replace(" - ", " − "), *(_difference(d, k) for k, _ in METRICS)]
                             for pair, d in differences.items()]))
    rm = r.get("reward_model")
    if rm:
        parts.append(f"<p class='note'>The reward model: predicted P(chosen) = σ(r_chosen − r_rejected) on "
                     f"{_fmt(rm.get('pairs'))} pairs of its held-out prompts "
                     f"({_esc(str(rm.get('pairs_file')).replace('{run_dir}/', ''))}), against "
                     "the raters' labels and, on pairs with a clear gold margin, against gold.</p>")
        parts.append(_table(["reward model", "pairs", "accuracy", "mean confidence", "ECE", "Brier", "NLL", "T*",
                             "ECE after T"],
                            [[key.replace("_", " "), m.get("n"), _with_ci(m, "accuracy"), _with_ci(m, "mean_confidence"),
                              _with_ci(m, "ece"), _with_ci(m, "brier"), _with_ci(m, "nll"), _fmt(m.get("temperature"), 2),
                              _with_ci(m, "ece_after_temperature")]
                             for key in ("vs_labels", "vs_gold") if (m := rm.get(key))]))
    return "".join(parts)
