"""A rerun of `postlab run` with other knobs (postlab.run_state): which stages go stale, by hand, and what
is deleted, on a run directory laid out by hand (no model runs here; tests/test_run.py runs the real thing)."""

import json

from postlab.run import STAGES, Knobs
from postlab.run_state import (FIRST_STAGE, OUTPUTS, changed_knobs, invalidate_changed_stages, portable, resolve,
                               stale_stages)


def test_every_knob_names_the_first_stage_it_affects():
    assert set(FIRST_STAGE) == set(Knobs.model_fields)
    assert {stage for stage in FIRST_STAGE.values() if stage is not None} <= set(STAGES)
    assert set(OUTPUTS) == set(STAGES)


def test_stale_stages_by_hand():
    assert stale_stages(["bootstrap"], STAGES) == {"leaderboard": ["bootstrap"], "report": ["bootstrap"]}
    both = stale_stages(["rl_lr", "sample_k"], STAGES)
    assert list(both) == list(STAGES[STAGES.index("sample"):])
    assert both["label"] == ["sample_k"] and both["rl"] == ["rl_lr", "sample_k"]
    assert list(stale_stages(["model"], STAGES)) == list(STAGES)
    assert stale_stages(["budget_minutes"], STAGES) == {}  # its cuts are compared as the knobs they change


def test_changed_knobs_counts_a_knob_the_record_lacks():
    assert changed_knobs({"rl_steps": 4, "algo": "ppo"}, {"rl_steps": 4, "algo": "grpo", "rm_held_out": 0.25}) == {
        "algo": ("ppo", "grpo"), "rm_held_out": (None, 0.25)}


def _finished_run(out):
    """Every stage's file, an RL checkpoint, an SFT sample file cut short, a summary and the knobs it ran with."""
    (out / "stages").mkdir(parents=True)
    for name in STAGES:
        (out / "stages" / f"{name}.json").write_text('{"result": {}, "seconds": 1.0}')
    for d in ("sft/checkpoints/step-0000002", "rl/checkpoints/step-0000004", "eval", "data"):
        (out / d).mkdir(parents=True)
    for f in ("eval/rl.json", "eval/sft.json", "data/sft_candidates.jsonl.partial",
              "data/sft_candidates.jsonl.partial.fingerprint.json", "data/prefs.jsonl", "summary.json", "leaderboard.json"):
        (out / f).write_text("{}")
    knobs = {"algo": "ppo", "rl_steps": 4, "sample_k": 2, "budget_minutes": 0, "bootstrap": 100}
    (out / "resolved_config.json").write_text(json.dumps(knobs))
    return knobs


def test_a_changed_rl_knob_deletes_rl_and_later_stages_and_the_stale_checkpoint(tmp_path, capsys):
    knobs = _finished_run(tmp_path)
    redo = invalidate_changed_stages(tmp_path, {**knobs, "rl_steps": 2}, STAGES)
    assert redo == list(STAGES[STAGES.index("rl"):])
    assert sorted(p.stem for p in (tmp_path / "stages").iterdir()) == sorted(STAGES[:STAGES.index("rl")])
    assert not (tmp_path / "rl").exists() and not (tmp_path / "eval" / "rl.json").exists()
    assert (tmp_path / "sft" / "checkpoints" / "step-0000002").is_dir() and (tmp_path / "eval" / "sft.json").is_file()
    assert not (tmp_path / "summary.json").exists()
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"knobs differ from {tmp_path / 'resolved_config.json'}: rl_steps 4 -> 2"
    assert err[1:] == ["redoing rl: rl_steps changed; deleted rl", "redoing rl_eval: rl_steps changed; deleted eval/rl.json",
                       "redoing probe: rl_steps changed", "redoing leaderboard: rl_steps changed; deleted leaderboard.json",
                       "redoing report: rl_steps changed"]


def test_a_changed_sample_knob_deletes_the_cut_short_sample_file(tmp_path, capsys):
    knobs = _finished_run(tmp_path)
    invalidate_changed_stages(tmp_path, {**knobs, "sample_k": 4}, STAGES)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == []
    assert "redoing sample: sample_k changed; deleted data/sft_candidates.jsonl.partial, " \
           "data/sft_candidates.jsonl.partial.fingerprint.json" in capsys.readouterr().err


def test_same_knobs_or_a_budget_alone_delete_nothing(tmp_path, capsys):
    knobs = _finished_run(tmp_path)
    assert invalidate_changed_stages(tmp_path, knobs, STAGES) == []
    assert capsys.readouterr().err == ""
    assert invalidate_changed_stages(tmp_path, {**knobs, "budget_minutes": 30}, STAGES) == []
    assert "no finished stage depends on them" in capsys.readouterr().err
    assert len(list((tmp_path / "stages").iterdir())) == len(STAGES) and (tmp_path / "summary.json").exists()


def test_a_fresh_directory_has_nothing_to_compare(tmp_path):
    assert invalidate_changed_stages(tmp_path, {"algo": "ppo"}, STAGES) == []


def test_stage_results_name_paths_relative_to_the_run_directory(tmp_path):
    out = tmp_path / "runs" / "r"
    result = {"model": str(out / "sft" / "model"), "fetched": "/cache/tiny", "files": [str(out / "eval" / "sft.json")],
              "n": 3}
    stored = portable(result, out)
    assert stored == {"model": "{run_dir}/sft/model", "fetched": "/cache/tiny", "files": ["{run_dir}/eval/sft.json"], "n": 3}
    moved = tmp_path / "elsewhere"
    assert resolve(stored, moved) == {"model": str(moved / "sft" / "model"), "fetched": "/cache/tiny",
                                      "files": [str(moved / "eval" / "sft.json")], "n": 3}
    assert resolve(stored, out) == result
