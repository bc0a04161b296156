"""The run report's header and headline (issue 17 item 11): versions, commit, date and hardware at the
top; the reward model's accuracy against its own labels beside its accuracy against gold, a below-chance
one marked; per-category standard errors and n; "n/a" wherever a figure is undefined."""

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from postlab.report.html import build_report

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "tiny"
    r = subprocess.run([sys.executable, "-m", "postlab", "run", "--preset", "tiny", "--out", str(out), "progress=false"],
                       capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def _rebuilt(src: Path, dest: Path, edit) -> str:
    """The report of a copy of the run whose summary.json went through ``edit``."""
    shutil.copytree(src, dest)
    s = json.loads((dest / "summary.json").read_text())
    edit(s)
    (dest / "summary.json").write_text(json.dumps(s))
    return build_report(dest).read_text()


def test_header_names_versions_commit_date_and_hardware(tiny_run):
    page = (tiny_run / "report.html").read_text()
    meta = json.loads((tiny_run / "eval" / "rl.json").read_text())["meta"]
    machine = json.loads((tiny_run / "summary.json").read_text())["machine"]
    commit = meta["git_hash"][:12] if meta["git_hash"] else "n/a"
    assert (f"postlab {meta['postlab_version']} (commit {commit}), torch {meta['torch_version']}, "
            f"transformers {meta['transformers_version']}; evaluated {meta['date']}; "
            f"hardware: {html.escape(machine['cpu'])}, {machine['cores']} cores, dtype fp32") in page


def test_headline_puts_rm_accuracy_vs_labels_beside_vs_gold(tiny_run):
    page = (tiny_run / "report.html").read_text()
    rm = json.loads((tiny_run / "summary.json").read_text())["stages"]["rm"]
    labels = f"<div>RM acc. vs its labels<b>{rm['accuracy_vs_labels']:.3f}</b></div>"
    assert labels + "<div>RM acc. vs gold<b>" in page


@pytest.mark.parametrize("acc,marked", [(0.4, True), (0.5, False)])
def test_a_below_chance_reward_model_is_marked(tiny_run, tmp_path, acc, marked):
    page = _rebuilt(tiny_run, tmp_path / "copy", lambda s: s["stages"]["rm"].update(accuracy_vs_gold=acc))
    assert (f"<div>RM acc. vs gold<b><span class='bad'>{acc:.3f} (below chance)</span></b></div>" in page) == marked
    assert ("below chance" in page) == marked


def test_category_table_has_standard_errors_and_n_even_when_the_run_moved(tiny_run, tmp_path):
    def moved(s):  # the stage files hold absolute paths; the report finds the evals under the run directory
        for stage in ("baseline", "sft", "rl"):
            s["stages"][stage]["gold"]["results"] = f"/gone/eval/{Path(s['stages'][stage]['gold']['results']).name}"

    page = _rebuilt(tiny_run, tmp_path / "copy", moved)
    evals = {name: json.loads((tiny_run / "eval" / f"{name}.json").read_text()) for name in ("baseline", "sft", "rl")}
    assert "<th>category</th><th>n</th><th>base ± SE</th><th>sft ± SE</th><th>ppo ± SE</th>" in page
    final = evals["rl"]
    assert (f"<td>overall</td><td>{final['n']}</td>"
            + "".join(f"<td>{e['overall']:.3f} ± {e['overall_se']:.3f}</td>" for e in evals.values())) in page
    for cat, n in final["by_category_n"].items():
        cells = "".join(f"<td>{e['by_category'][cat]:.3f} ± {e['by_category_se'][cat]:.3f}</td>" for e in evals.values())
        assert f"<td>{html.escape(cat)}</td><td>{n}</td>{cells}" in page, cat


def test_undefined_figures_read_n_a(tiny_run, tmp_path):
    cat = None

    def undefined(s):
        nonlocal cat
        st = s["stages"]
        st["rm"].update(accuracy_vs_gold=None, accuracy_vs_labels=None)
        st["rl"]["kl"] = None
        s["gain"]["final_minus_baseline"] = None
        cat = sorted(st["rl"]["gold"]["by_category"])[0]
        st["rl"]["gold"]["by_category"][cat] = None
        st["baseline"]["gold"]["results"] = "/gone/eval/old-baseline.json"  # an older run: no eval results file

    page = _rebuilt(tiny_run, tmp_path / "copy", undefined)
    assert "<div>RM acc. vs its labels<b>n/a</b></div><div>RM acc. vs gold<b>n/a</b></div>" in page
    assert "<div>gain (points)<b>n/a</b></div>" in page and "KL(π‖π_SFT) = n/a ±" in page
    row = page[page.index(f"<td>{html.escape(cat)}</td>"):]
    row = row[:row.index("</tr>")]
    assert row.count("n/a") == 3  # the base SE (no results file), the final score, and so the Δ
    figures = page[:page.index("<h2>Best-of-n")] + page[page.index("<h2>RL ("):page.index("<h2>Leaderboard")]
    for bad in (r"\bnan\b", r"\bNone\b", "—"):  # (model answers further down may say anything)
        assert not re.search(bad, figures), bad
