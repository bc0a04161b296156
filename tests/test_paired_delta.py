"""scripts/paired_delta.py: the paired gold difference between two samples files, and --regrade grading the
answers again with the current rater instead of trusting the saved scores."""

import json
import subprocess
import sys
from pathlib import Path

from postlab.tasks.suite import load_suite

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "paired_delta.py"


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(*args: str) -> str:
    return subprocess.run([sys.executable, str(SCRIPT), *args], check=True, capture_output=True, text=True).stdout


def test_paired_delta_uses_saved_scores_or_regrades(tmp_path):
    items = [it for it in load_suite("spec", split="test") if it.category == "knowledge"][:2]
    # saved scores that the rater would not give: an empty answer saved as 1.0
    after = _write(tmp_path / "after.jsonl", [{"id": it.id, "category": it.category, "response": "", "score": 1.0}
                                              for it in items])
    before = _write(tmp_path / "before.jsonl", [{"id": it.id, "category": it.category, "response": "", "score": 0.0}
                                                for it in items])
    saved = _run(str(after), str(before))
    assert "delta=+1.000" in saved and "better 2, worse 0" in saved and "knowledge +100.0" in saved
    regraded = _run(str(after), str(before), "--regrade")  # both blank: 0 each, no difference
    assert "delta=+0.000" in regraded and "same 2" in regraded
