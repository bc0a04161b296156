"""Eval results as lm-eval users expect them (issue 17 item 9): a ``meta`` section (versions, git commit,
UTC date, hardware, the full config), ``_stderr`` beside each metric that has a standard error, and an
earlier result is never overwritten silently; ``postlab run`` still reruns its own eval stages."""

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import postlab
from postlab.errors import ConfigError
from postlab.evals import harness
from postlab.evals.harness import EvalConfig, evaluate, git_hash, samples_path

from conftest import write_jsonl

ROOT = Path(__file__).resolve().parents[1]

SUITE = [{"key": 1, "prompt": "List two fruits without commas.", "instruction_id_list": ["punctuation:no_comma"],
          "kwargs": [{}]},
         {"key": 2, "prompt": "Say hi in quotes.", "instruction_id_list": ["startend:quotation"], "kwargs": [{}]}]
# the first answer passes its check, the second fails it: prompt-level accuracy 0.5 over scores [1, 0]
RESPONSES = [{"id": "1", "response": "Apple and pear"}, {"id": "2", "response": "hi"}]


def postlab_cli(*args):
    return subprocess.run([sys.executable, "-m", "postlab", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)


@pytest.fixture
def graded(tmp_path):
    """A config grading given responses (no model), and its out path."""
    suite = write_jsonl(tmp_path / "suite.jsonl", SUITE)
    resp = write_jsonl(tmp_path / "resp.jsonl", RESPONSES)
    out = tmp_path / "res.json"
    return EvalConfig(suite=str(suite), responses=str(resp), out=str(out), split="all"), out


def test_results_record_versions_commit_date_hardware_and_config(graded, monkeypatch):
    import torch
    import transformers

    from postlab import machine

    def no_measuring(**_):
        raise AssertionError("an eval must not measure the machine")

    monkeypatch.setattr(machine, "measure_matmul", no_measuring)
    cfg, out = graded
    before = datetime.now(timezone.utc).replace(microsecond=0)
    evaluate(cfg)
    meta = json.loads(out.read_text())["meta"]
    assert meta["postlab_version"] == postlab.__version__
    assert meta["torch_version"] == torch.__version__ and meta["transformers_version"] == transformers.__version__
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert meta["git_hash"] == head.stdout.strip()
    date = datetime.fromisoformat(meta["date"])
    assert date.utcoffset() == timedelta(0) and before <= date <= datetime.now(timezone.utc)
    for key in ("cpu", "cores", "threads", "torch", "device", "flags"):
        assert key in meta["hardware"], key
    assert meta["config"] == cfg.model_dump(mode="json") and meta["config"]["overwrite"] is False


def test_git_hash_is_none_outside_a_git_checkout(tmp_path, graded, monkeypatch):
    assert git_hash(tmp_path) is None
    (tmp_path / ".git").mkdir()  # looks like a checkout, but git says it is not one
    assert git_hash(tmp_path) is None

    def no_git(*_, **__):
        raise FileNotFoundError("git")

    monkeypatch.setattr(harness.subprocess, "run", no_git)  # git not installed
    assert git_hash(ROOT) is None
    cfg, out = graded
    assert evaluate(cfg)["meta"]["git_hash"] is None and json.loads(out.read_text())["meta"]["git_hash"] is None


def test_stderr_sits_beside_each_metric_with_a_standard_error(graded):
    cfg, out = graded
    evaluate(cfg)
    text = out.read_text()
    res = json.loads(text)
    assert res["overall_stderr"] == res["overall_se"] == pytest.approx(0.5)  # scores [1, 0]: sqrt(0.5 / 2)
    assert res["by_category_stderr"] == res["by_category_se"] == {"ifeval": pytest.approx(0.5)}
    assert res["prompt_level_strict_acc"] == 0.5 and res["prompt_level_strict_acc_stderr"] == pytest.approx(0.5)
    assert res["prompt_level_loose_acc_stderr"] == pytest.approx(0.5)
    keys = list(res)
    for metric in ("overall", "by_category", "prompt_level_strict_acc", "prompt_level_loose_acc"):
        assert keys[keys.index(metric) + 1] == f"{metric}_stderr", metric


def test_an_existing_result_is_refused_unless_overwrite(graded):
    cfg, out = graded
    evaluate(cfg)
    first, first_samples = out.read_text(), samples_path(out).read_text()
    with pytest.raises(ConfigError, match=f"{re.escape(str(out))} already exists.*overwrite=true"):
        evaluate(cfg)
    assert out.read_text() == first and samples_path(out).read_text() == first_samples
    res = evaluate(cfg.model_copy(update={"overwrite": True}))
    assert res["n"] == 2 and json.loads(out.read_text())["meta"]["config"]["overwrite"] is True


def test_cli_eval_with_the_tiny_model_records_meta_and_refuses_to_overwrite(tmp_path):
    suite = write_jsonl(tmp_path / "suite.jsonl", SUITE)
    out = tmp_path / "tiny.json"
    args = ["eval", "--model", "tiny", "--suite", suite, "--split", "all", "--out", out, "dtype=fp32", "progress=false",
            "sampling.max_new_tokens=4"]
    r = postlab_cli(*args)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["meta"]["config"]["model"] == "tiny" and res["meta"]["postlab_version"] == postlab.__version__
    assert res["overall_stderr"] == res["overall_se"]
    again = postlab_cli(*args)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert again.stderr.strip().splitlines() == [f"error: out: {out} already exists (an earlier result); pass "
                                                 "overwrite=true to replace it, or choose another out="]
    assert json.loads(out.read_text()) == res
    r = postlab_cli(*args, "overwrite=true")
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["meta"]["config"]["overwrite"] is True


def test_postlab_run_reruns_its_own_eval_stage(tmp_path):
    from postlab.run import PRESETS, _evaluate

    k = PRESETS["tiny"].model_copy(update={"eval_limit": 2, "eval_max_new_tokens": 4})
    first = _evaluate("tiny", tmp_path, "sft", k, False)
    second = _evaluate("tiny", tmp_path, "sft", k, False)  # a rerun stage replaces its own eval
    assert second["overall"] == first["overall"] and Path(second["results"]) == tmp_path / "eval" / "sft.json"
