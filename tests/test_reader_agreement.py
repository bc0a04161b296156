"""scripts/reader_agreement.py: Cohen's kappa by hand, and gold's pass-precision against two readings."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from reader_agreement import kappa  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "reader_agreement.py"


def test_kappa_by_hand():
    # 10 answers: both pass 4, both fail 3, first only 2, second only 1: p_o = 0.7;
    # first passes 0.6, second 0.5: p_e = 0.6·0.5 + 0.4·0.5 = 0.5; kappa = (0.7 − 0.5) / 0.5 = 0.4
    pairs = [(True, True)] * 4 + [(False, False)] * 3 + [(True, False)] * 2 + [(False, True)]
    assert kappa(pairs) == pytest.approx(0.4)
    assert kappa([(True, True), (False, False)]) == pytest.approx(1.0)
    assert kappa([(True, False), (False, True)]) == pytest.approx(-1.0)


def test_two_readings_of_the_shipped_audit_rows(tmp_path):
    # three shipped audit rows of one check, each read again: the first agreeing, the others flipped
    rows = [json.loads(line) for line in (Path(__file__).resolve().parents[1] / "postlab" / "assets" /
                                          "gold_audit.jsonl").read_text().splitlines()]
    rows = [r for r in rows if [c["id"] for c in r["checks"]] == ["answer:number"]][:3]
    audit = tmp_path / "audit.jsonl"
    audit.write_text("".join(json.dumps(r) + "\n" for r in rows))
    flip = [{"key": r["key"], "human": {"checks": [r["human"]["checks"][0] != (i > 0)], "good": False, "note": ""}}
            for i, r in enumerate(rows)]
    second = tmp_path / "second.jsonl"
    second.write_text("".join(json.dumps(r) + "\n" for r in flip))
    out = subprocess.run([sys.executable, str(SCRIPT), "--audit", str(audit), "--second", str(second)],
                         check=True, capture_output=True, text=True).stdout
    assert "3 answers read a second time" in out
    assert "answer:number: read twice 3, readings agree  33.3" in out
