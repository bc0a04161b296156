"""`postlab calibration --run R` (issue 21 §1): a tiny `postlab run` directory's base, SFT and RL checkpoints and
reward model into R/calibration.json and reliability diagrams in R/report.html; a rerun skips what is done, an
interrupted one keeps what it finished, a changed checkpoint is rescored and flagged as stale until it is."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from postlab.config import load_config
from postlab.errors import ConfigError
from postlab.science import calibration
from postlab.science.calibration import CalibrationConfig

ROOT = Path(__file__).resolve().parents[1]
FAST = ["limit=8", "bootstrap=20", "progress=false"]


def postlab(*args):
    return subprocess.run([sys.executable, "-m", "postlab", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)


def calibrate(run_dir, *extra):
    from postlab.cli import app

    app(["calibration", "--run", str(run_dir), *FAST, *extra], standalone_mode=False)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished tiny run, calibrated once; tests that change it work on a copy."""
    out = tmp_path_factory.mktemp("run") / "tiny"
    r = postlab("run", "--preset", "tiny", "--out", out, "progress=false")
    assert r.returncode == 0, r.stderr[-3000:]
    before = (out / "report.html").read_text()
    r = postlab("calibration", "--run", out, *FAST)
    assert r.returncode == 0, r.stderr[-3000:]
    return out, before, r.stdout


@pytest.fixture
def copy(tiny_run, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(tiny_run[0], out)
    return out


def _count_scoring(monkeypatch) -> list[str]:
    """The labels scored from now on (the real scoring still runs)."""
    scored, real = [], calibration.score_items

    def counting(*args, desc="", **kw):
        scored.append(desc)
        return real(*args, desc=desc, **kw)

    monkeypatch.setattr(calibration, "score_items", counting)
    return scored


def _figures(path: Path) -> dict:
    r = json.loads(path.read_text())
    r.pop("meta")
    return r


def test_report_shows_every_checkpoint_and_the_reward_model(tiny_run):
    out, before, stdout = tiny_run
    algo = json.loads((out / "summary.json").read_text())["algo"]
    r = json.loads((out / "calibration.json").read_text())
    assert list(r["models"]) == ["base", "sft", algo] and r["n_items"] == 8
    assert r["models"]["sft"]["model"] == "{run_dir}/sft/model"  # portable: the directory can move
    assert list(r["differences"]) == ["sft - base", f"{algo} - base"]
    for m in r["models"].values():
        assert m["ece_ci"][0] <= m["ece_ci"][1] and len(m["bins"]) >= 1
    rm = r["reward_model"]
    assert rm["split"] == "heldout" and rm["pairs_file"] == "{run_dir}/data/prefs.jsonl" and rm["vs_labels"]["n"] > 0
    assert (out / "calibration.png").stat().st_size > 0
    page = (out / "report.html").read_text()
    assert "Calibration (multiple choice)" in page and "Calibration (multiple choice)" not in before
    assert page.count('<img class="plot"') == before.count('<img class="plot"') + 1
    section = page[page.index("Calibration (multiple choice)"):]
    section = section[: section.index("<h2>")]
    assert "reliability diagrams" in section and 'src="data:image/png;base64,' in section
    rows = re.findall(r"<tr><td>([^<]+)</td><td>(\d+)</td><td>([^<]+)</td>", section)
    assert [(label, n) for label, n, _ in rows[:3]] == [("base", "8"), ("sft", "8"), (algo, "8")]
    assert rows[0][2] == f"{r['models']['base']['accuracy']:.3f} [{r['models']['base']['accuracy_ci'][0]:.3f}, " \
                         f"{r['models']['base']['accuracy_ci'][1]:.3f}]"
    assert "sft − base" in section and "vs labels" in section and "Not up to date" not in section
    assert re.findall(r'src="([^"]+)"', page) == [s for s in re.findall(r'src="([^"]+)"', page)
                                                  if s.startswith("data:image/png;base64,")]  # self-contained
    assert "wrote " in stdout and "report.html" in stdout


def test_a_rerun_skips_what_is_done(tiny_run, copy, monkeypatch, capsys):
    def no_scoring(*args, **kw):
        raise AssertionError("scored again")

    monkeypatch.setattr(calibration, "score_items", no_scoring)
    monkeypatch.setattr(calibration, "score_rm_pairs", no_scoring)
    (copy / "report.html").unlink()
    calibrate(copy)
    said = capsys.readouterr().out
    algo = json.loads((copy / "summary.json").read_text())["algo"]
    for label in ("base", "sft", algo, "reward model"):
        assert f"calibration: {label} already scored with these settings (skipped)" in said
    assert _figures(copy / "calibration.json") == _figures(tiny_run[0] / "calibration.json")
    assert "Calibration (multiple choice)" in (copy / "report.html").read_text()


def test_a_changed_checkpoint_is_flagged_then_rescored_alone(copy, monkeypatch):
    record = copy / "stages" / "sft.json"
    rec = json.loads(record.read_text())
    record.write_text(json.dumps({**rec, "seconds": rec["seconds"] + 1}))  # as a rerun of the stage leaves it
    from postlab.report import build_report

    build_report(copy)
    assert "Not up to date: the run's sft changed" in (copy / "report.html").read_text()
    scored = _count_scoring(monkeypatch)
    calibrate(copy)
    assert scored == ["sft"]
    assert "Not up to date" not in (copy / "report.html").read_text()


def test_other_settings_rescore_every_checkpoint(copy, monkeypatch):
    scored = _count_scoring(monkeypatch)
    calibrate(copy, "scoring=cloze")
    algo = json.loads((copy / "summary.json").read_text())["algo"]
    assert scored == ["base", "sft", algo]
    assert json.loads((copy / "calibration.json").read_text())["scoring"] == "cloze"


def test_an_interrupted_run_keeps_the_checkpoints_it_finished(copy, monkeypatch):
    (copy / "calibration.json").unlink()
    real = calibration.score_items

    class Killed(Exception):
        pass

    def killed_at_sft(*args, desc="", **kw):
        if desc == "sft":
            raise Killed
        return real(*args, desc=desc, **kw)

    monkeypatch.setattr(calibration, "score_items", killed_at_sft)
    with pytest.raises(Killed):
        calibrate(copy)
    kept = json.loads((copy / "calibration.json").read_text())
    assert list(kept["models"]) == ["base"] and list(kept["scores"]) == ["base"]
    monkeypatch.setattr(calibration, "score_items", real)
    scored = _count_scoring(monkeypatch)
    calibrate(copy)
    algo = json.loads((copy / "summary.json").read_text())["algo"]
    assert scored == ["sft", algo]
    assert list(json.loads((copy / "calibration.json").read_text())["models"]) == ["base", "sft", algo]


def test_run_options_are_checked_up_front(tiny_run, tmp_path):
    out = tiny_run[0]
    with pytest.raises(ConfigError, match="models, out come from the run directory"):
        load_config(CalibrationConfig, None, [f"run={out}", "models=[tiny]", f"out={tmp_path}/r.json"])
    with pytest.raises(ConfigError, match="summary.json not found"):
        load_config(CalibrationConfig, None, [f"run={tmp_path}"])
    assert load_config(CalibrationConfig, None, [f"run={out}"]).run == str(out)  # calibration.json there: resumed
    bad = postlab("calibration", "--run", tmp_path / "nowhere")
    assert bad.returncode != 0 and "not a directory" in bad.stderr and "Traceback" not in bad.stderr
