"""``report.html`` from a ``postlab run`` directory: what changed, by how much, and at what cost.

Sections: a header line (postlab/torch/transformers versions, commit and date from the final eval's ``meta``,
hardware from ``summary.json``'s ``machine``); headline numbers (the reward model's accuracy against its
own labels beside its accuracy against gold, marked when below chance); held-out gold score per category
after each stage with standard errors and n, as bars with ± SE error bars and as a table (undefined
figures read "n/a", in every text and plot); the reward model; best-of-n (proxy and gold against
sqrt(KL)); RL curves (proxy, gold, KL, length) and gold/proxy against sqrt(KL) as points coloured by
step; the Elo leaderboard of the stage checkpoints; where ``postlab calibration --run`` has written
``calibration.json``, the checkpoints' reliability diagrams side by side (postlab/report/calibration.py); answers
side by side; the SFT data;
the machine (CPU, bf16 flags, measured matmul speed, the dtype chosen and why) and what the time budget
scaled down; timings against the prediction; the resolved config. Every plot is a matplotlib figure embedded as base64 PNG, so the file
can be mailed or archived as is. Everything shown is read from files in the run directory.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

from postlab.errors import ConfigError
from postlab.utils.io import atomic_write_text

STAGE_COLOURS = ("#9e9e9e", "#1f77b4", "#2ca02c", "#d62728")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str) -> str:
    return f'<figure><img class="plot" alt="{html.escape(alt)}" src="data:image/png;base64,{b64}"><figcaption>{html.escape(alt)}</figcaption></figure>'


def _esc(x) -> str:
    return html.escape(str(x))


def _undefined(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _fmt(x, nd: int = 3) -> str:
    if _undefined(x):
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return _esc(x)


def _num(x, spec: str) -> str:
    """``format(x, spec)``, or "n/a" where the figure is undefined (None in summary.json, NaN)."""
    return "n/a" if _undefined(x) else format(x, spec)


def _minutes(seconds) -> str:
    return "n/a" if _undefined(seconds) else f"{seconds / 60:.1f} min"


def _table(head: list[str], rows: list[list], cls: str = "") -> str:
    th = "".join(f"<th>{_esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, _Raw) else _fmt(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


class _Raw(str):
    """Already-escaped HTML for a table cell."""


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- plots ---


def plot_categories(stage_gold: dict[str, dict], stage_se: dict[str, dict[str, float]]) -> str:
    """Bars of gold per category after each stage, each with an error bar of ± its standard error
    (``stage_se[stage][category]``, "overall" included; none where it is unknown)."""
    plt = _plt()
    names = list(stage_gold)
    cats = ["overall", *sorted(next(iter(stage_gold.values()))["by_category"])]
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(names)
    nan = float("nan")
    for s, name in enumerate(names):
        g = stage_gold[name]
        vals = [g["overall"] if c == "overall" else g["by_category"].get(c) for c in cats]
        vals = [nan if _undefined(v) else v for v in vals]  # undefined: no bar
        se = [stage_se.get(name, {}).get(c) for c in cats]
        ax.bar([i + (s - (len(names) - 1) / 2) * width for i in range(len(cats))], vals, width, label=name,
               color=STAGE_COLOURS[s % len(STAGE_COLOURS)], yerr=[nan if _undefined(e) else e for e in se],
               error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "#333"})
    ax.set_xticks(range(len(cats)), cats, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("gold score (held-out test)")
    ax.legend(ncols=len(names))
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def _series(metrics: list[dict], key: str) -> tuple[list[int], list[float]]:
    pts = [(m["step"], m[key]) for m in metrics if key in m and m[key] is not None and "step" in m]
    return [p[0] for p in pts], [float(p[1]) for p in pts]


def plot_rl_curves(metrics: list[dict]) -> str | None:
    panels = [
        ("proxy reward (RM)", ["proxy/score", "objective/scores", "rewards/margins"]),
        ("gold score", ["gold/train_score", "gold/score"]),
        ("KL to SFT (nats / response)", ["objective/kl", "kl"]),
        ("response length (tokens)", ["completions/mean_length"]),
    ]
    if not any(_series(metrics, k)[0] for _, keys in panels for k in keys):
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.2))
    for ax, (title, keys) in zip(axes, panels):
        for key in keys:
            x, y = _series(metrics, key)
            if x:
                ax.plot(x, y, marker="o" if len(x) < 30 else None, ms=3,
                        label={"gold/train_score": "on RL rollouts", "gold/score": "held-out eval (greedy)"}.get(key, key))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
        if len(ax.get_lines()) > 1 or title == "gold score":
            ax.legend(fontsize=7)
    return _png(fig)


def plot_vs_sqrt_kl(metrics: list[dict]) -> str | None:
    """Proxy and gold score of the RL rollouts against sqrt(KL), one point per logged step coloured by the
    step: KL is noisy from step to step, so a line through the points would double back on itself."""
    kl_key = "objective/kl" if _series(metrics, "objective/kl")[0] else "kl"
    steps, kl = _series(metrics, kl_key)
    if not steps:
        return None
    by_step = {m["step"]: m for m in metrics if "step" in m}
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    points = None
    for ax, key, label in zip(axes, ("proxy/score", "gold/train_score"), ("proxy reward (RM)", "gold score")):
        pts = [(s, math.sqrt(max(kv, 0.0)), by_step[s][key]) for s, kv in zip(steps, kl)
               if not _undefined(by_step[s].get(key))]
        if pts:
            points = ax.scatter([p[1] for p in pts], [p[2] for p in pts], c=[p[0] for p in pts], cmap="viridis",
                                vmin=min(steps), vmax=max(steps), s=18)
        else:
            ax.text(0.5, 0.5, "n/a (not logged)", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("sqrt(KL to SFT)")
        ax.set_ylabel(f"{label} on RL rollouts")
        ax.grid(alpha=0.3)
    if points is not None:
        fig.colorbar(points, ax=list(axes), label="RL step")
    return _png(fig)


def plot_bon(rows: list[dict]) -> str | None:
    from postlab.train.bon import figure

    return _png(figure(rows)) if rows else None


def plot_rm(rm: dict, metrics: list[dict]) -> str:
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    labels = ["vs labels", "vs gold (clear pairs)"]
    vals = [rm.get("accuracy_vs_labels"), rm.get("accuracy_vs_gold")]
    ax1.bar(labels, [float("nan") if _undefined(v) else v for v in vals], color=["tab:blue", "tab:green"])
    for i, v in enumerate(vals):  # the figure on each bar; "n/a" where there is no bar
        ax1.text(i, 0.03 if _undefined(v) else v + 0.02, _fmt(v), ha="center", va="bottom", fontsize=9)
    ax1.axhline(0.5, color="k", ls="--", lw=1, label="chance")
    ax1.set_ylim(0, 1)
    ax1.set_title("held-out accuracy", fontsize=10)
    ax1.legend()
    x, y = _series(metrics, "rewards/accuracies")
    if x:
        ax2.plot(x, y, alpha=0.4, label="train batch")
        w = len(y) // 10
        if w > 1:  # a running mean of one step is the batch curve again
            ax2.plot(x[w - 1:], [sum(y[i - w + 1 : i + 1]) / w for i in range(w - 1, len(y))], label=f"mean of {w}")
    ex, ey = _series(metrics, "eval_rewards/accuracies")
    if ex:
        ax2.plot(ex, ey, "o", color="tab:red", label="held-out")
    ax2.set_title("reward-model accuracy during training", fontsize=10)
    ax2.set_xlabel("step")
    ax2.set_ylim(0, 1)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    return _png(fig)


def plot_leaderboard(rows: list[dict]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 0.6 * len(rows) + 1.2))
    rows = list(reversed(rows))
    y = range(len(rows))
    ax.errorbar([r["elo"] for r in rows], y,
                xerr=[[r["elo"] - r["ci_low"] for r in rows], [r["ci_high"] - r["elo"] for r in rows]],
                fmt="o", capsize=4)
    ax.set_yticks(list(y), [r["model"] for r in rows])
    ax.set_xlabel("Elo (Bradley–Terry, gold-judged; 95% bootstrap CI)")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


# --- page ---

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:14px} th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
.samples td{text-align:left;vertical-align:top;white-space:pre-wrap;overflow-wrap:anywhere;max-width:330px;font-size:13px}
.headline{display:flex;gap:1.5em;flex-wrap:wrap}.headline div{background:#f6f8fa;border-radius:6px;padding:.6em 1em}
.headline b{display:block;font-size:1.6em} figure{margin:1em 0} figcaption{font-size:13px;color:#555}
img.plot{max-width:100%} pre{background:#f6f8fa;padding:1em;overflow:auto;font-size:12px}
.note{color:#555;font-size:14px} .bad{color:#c62828}
"""


def _samples_section(run_dir: Path, evals: dict[str, str], n: int) -> str:
    cols = {}
    for name, path in evals.items():
        cols[name] = {row["id"]: row for row in _read_jsonl(Path(path))}
    if not cols or n == 0:
        return ""
    first = next(iter(cols.values()))
    ids = [i for i in first if all(i in c for c in cols.values())]
    # one item per category first, then the rest in file order
    seen, picked = set(), []
    for i in ids:
        if first[i]["category"] not in seen:
            seen.add(first[i]["category"])
            picked.append(i)
    picked += [i for i in ids if i not in picked]
    rows = []
    for i in picked[:n]:
        conv = "\n".join(f"[{m['role']}] {m['content']}" for m in first[i]["messages"])
        rows.append([_Raw(f"<b>{_esc(first[i]['category'])}</b>\n{_esc(conv)}")]
                    + [_Raw(f"<i>gold {c[i]['score']:.2f}</i>\n{_esc(c[i]['response'])}") for c in cols.values()])
    return _table(["prompt", *cols], rows, "samples")


def _machine_section(m: dict, scaled: dict) -> str:
    mm = m.get("matmul_gflops")
    ref = m.get("reference", {})
    flags = ", ".join(f"{f} {'yes' if on else 'no'}" for f, on in m.get("flags", {}).items())
    rows = [["CPU", m.get("cpu")], ["cores / torch threads", f"{_fmt(m.get('cores'))} / {_fmt(m.get('threads'))}"],
            ["bf16-relevant flags", flags], ["torch", m.get("torch")],
            ["device", m.get("device") if m.get("device") == "cpu" else f"{m.get('device')}: {m.get('device_name')}"],
            ["matmul GFLOP/s (fp32 / bf16)",
             f"{_num(mm.get('fp32'), '.0f')} / {_num(mm.get('bf16'), '.0f')} ({_fmt(mm.get('n'))}² matmul, best call; "
             f"{'cached from ' + str(mm.get('measured_at')) if mm.get('cached') else 'measured at the start of this run'})"
             if mm else "not measured"],
            ["dtype", _Raw(f"<b>{_esc(m.get('dtype'))}</b>: {_esc(m.get('dtype_why'))}")],
            ["speed against the reference machine",
             ("n/a" if _undefined(m.get("slowdown")) else f"{m['slowdown']:.2f}x its stage times")
             + f" (reference: {_fmt(ref.get('cpu'))}, matmul fp32 {_num(ref.get('fp32_gflops'), '.0f')} / bf16 "
             f"{_num(ref.get('bf16_gflops'), '.0f')} GFLOP/s, ran {_fmt(ref.get('dtype'))})"]]
    if scaled.get("budget_minutes"):
        rows.append(["time budget", f"{scaled['budget_minutes']:g} min: predicted {scaled['predicted_minutes_unscaled']:.1f} min "
                     f"as configured, {scaled['predicted_minutes']:.1f} min as run"
                     + ("" if scaled.get("fits") else " (over budget: every cut is at its floor)")])
    else:
        rows.append(["time budget", "none (budget_minutes=0)"])
    html_ = "<h2>Machine and time budget</h2>" + _table(["", ""], rows)
    changes = scaled.get("changes") or []
    if changes:
        html_ += "<p class='note'>Scaled down to fit the budget (knobs set on the command line are never cut):</p>"
        html_ += _table(["knob", "from", "to", "why"], [[c["knob"], c["from"], c["to"], c["why"]] for c in changes])
    elif scaled.get("budget_minutes"):
        html_ += "<p class='note'>The run fits the budget as configured: nothing was scaled.</p>"
    return html_


def _hacking_section(rl_dir: Path, n: int = 10) -> str:
    """Full-mark RL samples the reward-hacking watch flagged (RL against the gold rater only)."""
    from postlab.evals.hacking import read_flagged

    rows = read_flagged(rl_dir)
    if not rows:
        return ""
    return (f"<h3>Reward-hacking watch</h3><p class='note'>{len(rows)} full-mark samples looked degenerate "
            "(postlab.evals.hacking); the first ones:</p>"
            + _table(["step", "item", "flags", "prompt", "response"],
                     [[r["step"], r["item_id"], ", ".join(r["flags"]), r["prompt"][:200], r["response"][:400]]
                      for r in rows[:n]]))


def _panel_note(c: dict) -> str:
    """One sentence on how the comparisons were labelled and how much signal they carry."""
    panel = (f"A panel of {c['raters_per_pair']} simulated raters judged each of {_fmt(c.get('pairs_compared'))} pairs "
             f"and {_fmt(c.get('no_consensus'))} were dropped without consensus; " if c.get("raters_per_pair") else "")
    return (panel + f"gold prefers one side in {_fmt(c.get('gold_decided'))} of the {_fmt(c.get('written'))} labelled pairs "
            f"({_fmt(c.get('gold_decided_share'))}), and the labels agree with gold on "
            f"{_fmt(c.get('agreement_with_gold'))} of those.")


def _eval_results(run_dir: Path, gold: dict) -> dict:
    """The eval results JSON behind a stage's gold block (``gold["results"]``, or its name under
    ``run_dir/eval`` when the run directory was moved); {} when there is none."""
    if not gold.get("results"):
        return {}
    for path in (Path(gold["results"]), run_dir / "eval" / Path(gold["results"]).name):
        if path.is_file():
            return json.loads(path.read_text())
    return {}


def _provenance(meta: dict, m: dict) -> str:
    """One line for the header: versions, commit, date (from the final eval's ``meta``) and hardware."""
    hw = m.get("cpu") if m.get("device", "cpu") == "cpu" else f"{m.get('device_name')} (host {m.get('cpu')})"
    commit = meta.get("git_hash")
    return (f"postlab {_fmt(meta.get('postlab_version'))} (commit {_fmt(commit[:12] if commit else None)}), "
            f"torch {_fmt(meta.get('torch_version') or m.get('torch'))}, "
            f"transformers {_fmt(meta.get('transformers_version'))}; evaluated {_fmt(meta.get('date'))}; "
            f"hardware: {_fmt(hw)}, {_fmt(m.get('cores'))} cores, dtype {_fmt(m.get('dtype'))}")


def _rm_headline(rm: dict) -> list[tuple[str, str]]:
    """The reward model's accuracy against its own labels and against gold; below chance against gold is marked."""
    vs_gold = rm.get("accuracy_vs_gold")
    gold = _fmt(vs_gold)
    if not _undefined(vs_gold) and vs_gold < 0.5:
        gold = f"<span class='bad'>{gold} (below chance)</span>"
    return [("RM acc. vs its labels", _fmt(rm.get("accuracy_vs_labels"))), ("RM acc. vs gold", gold)]


def _category_table(stage_gold: dict[str, dict], stage_results: dict[str, dict], final: str) -> str:
    """Gold per category after each stage, each with its standard error, and the number of items n."""
    def cell(name: str, cat: str) -> str:
        g, res = stage_gold[name], stage_results[name]
        if cat == "overall":
            return f"{_fmt(g.get('overall'))} ± {_fmt(g.get('overall_se'))}"
        return f"{_fmt(g['by_category'].get(cat))} ± {_fmt(res.get('by_category_se', {}).get(cat))}"

    def delta(cat: str):
        get = (lambda g: g.get("overall")) if cat == "overall" else (lambda g: g["by_category"].get(cat))
        after, before = get(stage_gold[final]), get(stage_gold["base"])
        return None if _undefined(after) or _undefined(before) else after - before

    last = stage_results[final]
    cats = sorted(stage_gold["base"]["by_category"])
    rows = [[c, (stage_gold[final].get("n") if c == "overall" else last.get("by_category_n", {}).get(c)),
             *(cell(name, c) for name in stage_gold), delta(c)] for c in ["overall", *cats]]
    return _table(["category", "n", *(f"{name} ± SE" for name in stage_gold), "Δ final − base"], rows)


def build_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html`` from the run's files; returns its path."""
    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        raise ConfigError(f"{summary_path}: not found; is {run_dir} a finished `postlab run` directory?")
    s = json.loads(summary_path.read_text())
    st = s["stages"]
    algo = s.get("algo", "rl")
    stage_gold = {"base": st["baseline"]["gold"], "sft": st["sft"]["gold"], algo: st["rl"]["gold"]}
    rl_metrics = _read_jsonl(run_dir / "rl" / "metrics.jsonl")
    rm_metrics = _read_jsonl(run_dir / "rm" / "metrics.jsonl")
    stage_results = {name: _eval_results(run_dir, g) for name, g in stage_gold.items()}
    parts = [f"<h1>postlab run: {_esc(s['model'])}</h1>",
             f"<p class='note'>{_provenance(stage_results[algo].get('meta') or {}, s.get('machine') or {})}</p>",
             f"<p class='note'>preset <b>{_esc(s['preset'])}</b>, RL = <b>{_esc(algo)}</b>, held-out split "
             f"<b>{_esc(s['split'])}</b> of the <b>{_esc(s['suite'])}</b> suite ({st['baseline']['gold']['n']} items, greedy). "
             f"Gold = fraction of each item's behaviour-spec checks passed, averaged over items.</p>"]
    gain = s["gain"]["final_minus_baseline"]
    parts.append("<div class='headline'>" + "".join(
        f"<div>{_esc(label)}<b>{value}</b></div>" for label, value in (
            ("baseline gold", _fmt(st["baseline"]["gold"].get("overall"))),
            ("after SFT", _fmt(st["sft"]["gold"].get("overall"))),
            (f"after {algo}", _fmt(st["rl"]["gold"].get("overall"))),
            ("gain (points)", _num(None if _undefined(gain) else 100 * gain, "+.1f")),
            *_rm_headline(st["rm"]),
            ("total time", _minutes(s["timings_s"].get("total"))))) + "</div>")
    scaled = s.get("scaled") or {}
    if scaled.get("changes"):
        parts.append(f"<p class='note'><b>Scaled down</b> to fit the {scaled['budget_minutes']:g}-minute budget on this "
                     f"machine ({len(scaled['changes'])} knobs: "
                     + ", ".join(_esc(c["knob"]) for c in scaled["changes"])
                     + "); the numbers below come from the smaller run. See <i>Machine and time budget</i>.</p>")

    parts.append("<h2>Gold score per category after each stage</h2>")
    stage_se = {name: {"overall": g.get("overall_se"), **(stage_results[name].get("by_category_se") or {})}
                for name, g in stage_gold.items()}
    parts.append(_img(plot_categories(stage_gold, stage_se),
                      "held-out gold score per category after each stage (error bars: ± 1 standard error)"))
    parts.append(_category_table(stage_gold, stage_results, algo))

    rm = st["rm"]
    parts.append("<h2>Reward model</h2>")
    parts.append(f"<p class='note'>Trained on {_fmt(rm.get('train_pairs'))} simulated-rater pairs (held out: "
                 f"{_fmt(rm.get('eval_pairs'))} pairs of unseen prompts; accuracy vs gold on the "
                 f"{_fmt(rm.get('gold_clear_pairs'))} held-out pairs whose gold margin is at least "
                 f"{_fmt(rm.get('clear_margin'))}: {_fmt(rm.get('accuracy_vs_gold'))}; on every such pair of the held-out "
                 f"prompts' candidates, labelled or not: {_fmt(rm.get('accuracy_vs_gold_all_pairs'))} over "
                 f"{_fmt(rm.get('gold_clear_pairs_all'))} pairs). " + _panel_note(st["comparisons"]) + "</p>")
    parts.append(_img(plot_rm(rm, rm_metrics), "reward model accuracy (held-out) and during training"))

    bon_rows = st.get("bon", {}).get("rows", [])
    parts.append("<h2>Best-of-n against the reward model</h2>")
    b = plot_bon(bon_rows)
    if b:
        parts.append(_img(b, "best-of-n of the SFT policy on the reward model's held-out prompts: proxy and gold vs sqrt(KL)"))
        parts.append(_table(["n", "KL", "proxy", "± SE", "gold", "± SE"],
                            [[r["n"], r["kl"], r["proxy"], r["proxy_se"], r["gold"], r["gold_se"]] for r in bon_rows]))
    else:
        parts.append("<p class='note'>No best-of-n rows (no held-out prompts with enough samples).</p>")

    parts.append(f"<h2>RL ({_esc(algo)})</h2>")
    rl = st["rl"]
    probe = (rl.get("probe") or {}).get("rl") or {}
    where = (f"On the {_fmt(probe.get('prompts'))} held-out eval prompts (best-of-n's picks vs the greedy answers): "
             if algo == "bon" else f"On {_fmt(probe.get('prompts'))} held-out prompts sampled at temperature 1: ")
    parts.append(f"<p class='note'>{where}"
                 f"KL(π‖π_SFT) = {_num(rl['kl'], '.2f')} ± {_num(probe.get('kl_se'), '.2f')} nats per response; "
                 f"proxy reward {_num(rl['proxy'], '+.3f')} (SFT policy: {_num(rl['sft_proxy'], '+.3f')}); mean answer "
                 f"length {_num(rl['mean_length'], '.1f')} words (SFT {_num(st['sft']['gold']['mean_length'], '.1f')}, "
                 f"base {_num(st['baseline']['gold']['mean_length'], '.1f')}).</p>")
    c = plot_rl_curves(rl_metrics)
    if c:
        parts.append(_img(c, "RL curves: proxy reward, gold score, KL and response length per step"))
    v = plot_vs_sqrt_kl(rl_metrics)
    if v:
        parts.append(_img(v, "proxy and gold score of the RL rollouts against sqrt(KL), one point per logged step, "
                             "coloured by step"))
    if not (c or v):
        parts.append("<p class='note'>This algorithm logs no per-step rollout curves (DPO and bon_sft train on "
                     "fixed data).</p>")
    train = rl.get("train", {})
    if algo == "bon" and "bon" in rl["gold"]:
        b = rl["gold"]["bon"]
        parts.append(f"<p class='note'>bon: no weight update. On each held-out prompt the reward model chose among the "
                     f"SFT policy's greedy answer and {_fmt(b['n'] - 1)} samples at temperature {_num(b['temperature'], '.2f')}; "
                     f"it kept the greedy answer on {_num(100 * b['picked_greedy'], '.0f')}% of prompts. Reward of the "
                     f"picks {_num(b['proxy_picks'], '+.3f')} against {_num(b['proxy_greedy'], '+.3f')} for the greedy "
                     f"answers; KL above is best-of-n's analytic log n − (n − 1)/n, not a measurement.</p>")
    if algo == "bon_sft" and "demonstrations" in train:
        parts.append(f"<p class='note'>bon_sft: the reward model's best finished candidate of "
                     f"{_fmt(train['demonstrations'])} of {_fmt(train.get('prompts'))} compared prompts, among the "
                     f"SFT policy's own samples ({_fmt(train.get('candidates_scored'))} scored; mean reward of the picks "
                     f"{_num(train.get('mean_reward_best'), '+.2f')} against {_num(train.get('mean_reward_all'), '+.2f')} "
                     f"for all), {_fmt(train.get('replayed'))} SFT demonstrations replayed, {_fmt(train.get('steps'))} "
                     f"steps. Gold of the picks (recorded, not used) {_num(train.get('gold_of_picks'), '.3f')}, against "
                     f"{_num(train.get('gold_of_samples'), '.3f')} for a random pick among the same candidates and "
                     f"{_num(train.get('gold_of_oracle'), '.3f')} for gold's own pick: the reward model delivered "
                     f"{_num(100 * train['share_of_lift'] if train.get('share_of_lift') is not None else None, '.0f')}% "
                     f"of the lift there was to take.</p>")
        if train.get("picks_by_category"):
            parts.append(_table(["category", "picks", "gold of the picks", "random pick", "gold's pick"],
                                [[c, _fmt(q["picks"]), _num(q["gold_of_picks"], ".2f"), _num(q["gold_of_samples"], ".2f"),
                                  _num(q["gold_of_oracle"], ".2f")] for c, q in train["picks_by_category"].items()]))
    parts.append(_hacking_section(run_dir / "rl"))

    lb = st["leaderboard"]
    parts.append("<h2>Leaderboard of the stage checkpoints</h2>")
    parts.append(f"<p class='note'>Every pair of checkpoints plays one game per held-out item ({_fmt(lb.get('items'))} items); the "
                 "gold rater's higher score wins, equal scores tie (half a win). Bradley–Terry fit, Elo = 400·θ/ln 10 + 1000, "
                 "95% bootstrap CI over items.</p>")
    parts.append(_img(plot_leaderboard(lb["rows"]), "Elo leaderboard with 95% bootstrap confidence intervals"))
    parts.append(_table(["rank", "model", "Elo", "95% CI", "gold", "W-T-L"],
                        [[k + 1, r["model"], _num(r["elo"], ".0f"), f"[{_num(r['ci_low'], '.0f')}, {_num(r['ci_high'], '.0f')}]",
                          r["mean_score"],
                          f"{r['wins']}-{r['ties']}-{r['losses']}"] for k, r in enumerate(lb["rows"])]))

    from postlab.report.calibration import calibration_section  # it imports this module's helpers

    parts.append(calibration_section(run_dir))

    parts.append("<h2>Answers side by side (held-out items, greedy)</h2>")
    evals = {"base": st["baseline"]["gold"].get("samples"), "sft": st["sft"]["gold"].get("samples"),
             algo: st["rl"]["gold"].get("samples")}
    n_samples = json.loads((run_dir / "resolved_config.json").read_text()).get("report_samples", 12) \
        if (run_dir / "resolved_config.json").exists() else 12
    parts.append(_samples_section(run_dir, {k: v for k, v in evals.items() if v}, n_samples))

    data = st.get("sft_data", {})
    parts.append("<h2>SFT demonstrations</h2>")
    kept = ", ".join(f"{c} {n}" for c, n in sorted((data.get("rejection_by_category") or {}).items()))
    parts.append(_table(["source", "conversations"], [
        ["behaviour-spec GOOD examples", data.get("spec_examples")],
        ["template answers (train split, all checks pass)", data.get("template_answers")],
        ["rejection sampling against the gold rater" + (f" (kept per category: {kept})" if kept else ""),
         data.get("rejection_sampled")],
        ["total", data.get("conversations")]]))
    parts.append(f"<p class='note'>Rejection sampling kept the shortest sample that passes every check for "
                 f"{_fmt(data.get('rejection_acceptance'))} of {_fmt(data.get('rejection_prompts'))} train prompts.</p>")

    return write_page(run_dir, s, parts, f"postlab run report: {s['model']}")


def write_page(run_dir: Path, s: dict, parts: list[str], title: str) -> Path:
    """``run_dir/report.html``: ``parts``, then the machine and time budget, the stage timings and the resolved
    configuration from summary.json ``s`` and the run directory (every preset's report ends this way)."""
    scaled = s.get("scaled") or {}
    if s.get("machine"):
        parts.append(_machine_section(s["machine"], scaled))
    parts.append("<h2>Timings</h2>")
    predicted = scaled.get("predicted_s") or {}
    predicted = {**predicted, "total": sum(predicted.values())} if predicted else {}
    parts.append(_table(["stage", "seconds", "minutes", "predicted minutes"],
                        [[k, v, None if _undefined(v) else v / 60, predicted[k] / 60 if k in predicted else None]
                         for k, v in s["timings_s"].items()]))
    cfg_path = run_dir / "resolved_config.json"
    if cfg_path.exists():
        parts.append("<h2>Resolved configuration</h2><pre>" + _esc(cfg_path.read_text()) + "</pre>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>")
    out = run_dir / "report.html"
    atomic_write_text(out, page)
    return out
