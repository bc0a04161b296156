"""`postlab run --preset agent`: its stage plan, budget, and a tiny end-to-end run that resumes stage by stage."""

from __future__ import annotations

import json

import pytest

from postlab.config import load_config
from postlab.errors import ConfigError
from postlab.presets import agent as preset
from postlab.run_state import stale_stages


def _fraction(x) -> bool:
    return isinstance(x, float | int) and 0.0 <= x <= 1.0


def test_knobs_redo_only_the_stages_they_affect():
    names, firsts = preset.STAGES, preset.first_stages()
    assert set(firsts) == set(preset.Knobs.model_fields) and set(preset.OUTPUTS) == set(names)
    assert list(stale_stages(["no_tools"], names, firsts)) == ["baseline_no_tools", "rl_no_tools"]
    assert list(stale_stages(["rl_lr"], names, firsts))[0] == "rl"
    assert list(stale_stages(["rl_turn_shaping"], names, firsts))[0] == "rl"
    assert list(stale_stages(["sft_lr"], names, firsts))[0] == "sft"
    assert list(stale_stages(["sft_demos"], names, firsts))[0] == "sft_data"
    assert stale_stages(["budget_minutes"], names, firsts) == {}
    with pytest.raises(ConfigError, match="stop_after"):
        load_config(preset.RunConfig, None, ["preset=agent-tiny", "stop_after=nope"])


def test_a_slow_machine_cuts_rl_steps_first_and_never_a_knob_set_by_hand():
    k = preset.PRESETS["agent"].model_copy(update={"bf16": True})
    fast = sum(preset.predict_seconds(k, "agent", 1.0).values())
    cut, changes = preset.fit(k, preset.predicted_total("agent", 1.5), fast * 1.2, fixed=set())
    assert changes[0]["knob"] == "rl_steps" and cut.rl_steps < k.rl_steps
    assert sum(preset.predict_seconds(cut, "agent", 1.5).values()) <= fast * 1.2 or cut.eval_episodes == 60
    kept, changes = preset.fit(k, preset.predicted_total("agent", 1.5), fast * 1.2, fixed={"rl_steps"})
    assert kept.rl_steps == k.rl_steps and all(c["knob"] != "rl_steps" for c in changes)
    assert preset.fit(k, preset.predicted_total("agent", 1.0), fast * 2, fixed=set()) == (k, [])
    # the floors hold however slow the machine
    floor, _ = preset.fit(k, preset.predicted_total("agent", 50.0), 60.0, fixed=set())
    assert floor.rl_steps == 4 and floor.eval_episodes == 60


def test_tiny_run_end_to_end_then_a_changed_rl_knob_redoes_only_rl_and_later(tmp_path, capsys):
    out = tmp_path / "r"
    args = ["preset=agent-tiny", f"out_dir={out}", "progress=false"]
    preset.run(load_config(preset.RunConfig, None, args))
    s = json.loads((out / "summary.json").read_text())
    st = s["stages"]
    assert s["env"] == "calculator" and s["episodes"] == 6
    for name in ("baseline", "sft", "rl"):
        e = st[name]
        assert _fraction(e["success_rate"]) and e["episodes"] == 6
        # recovery: a fraction of the episodes that hit a tool error; null only when none did
        assert _fraction(e["recovery_rate"]) if e["episodes_with_errors"] else e["recovery_rate"] is None
        assert set(e["success_rate_by_suite"]) == {"arith", "wordprob"}
        assert (out / "eval" / f"{name}.transcripts.jsonl").read_text().count("\n") == 6
    assert st["rl"]["train"]["steps"] == 2 and st["sft"]["train"]["conversations"] > 0
    for name in ("baseline", "rl"):
        assert _fraction(s["no_tools"][name]["success_rate"]) and s["no_tools"][name]["tools"] is False
    assert s["no_tools"]["rl"]["mean_turns"] == 1.0
    assert {"rl_minus_baseline", "sft_minus_baseline", "rl_minus_sft"} == set(s["gain"])
    assert all(-1.0 <= g["gain"] <= 1.0 and g["n"] == 6 for g in s["gain"].values())
    assert set(s["timings_s"]) == {*preset.STAGES, "total"}
    capsys.readouterr()

    sft_mtime = (out / "stages" / "sft.json").stat().st_mtime
    preset.run(load_config(preset.RunConfig, None, args + ["rl_steps=3"]))
    err = capsys.readouterr().err
    assert "redoing rl:" in err and "redoing sft:" not in err and "[4/9 sft] done already" in err
    assert (out / "stages" / "sft.json").stat().st_mtime == sft_mtime
    assert json.loads((out / "summary.json").read_text())["stages"]["rl"]["train"]["steps"] == 3
