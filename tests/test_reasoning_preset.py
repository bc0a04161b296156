"""`postlab run --preset reasoning`: its control rewards, stage plan, budget, and a tiny end-to-end run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from postlab.config import load_config
from postlab.presets import reasoning as preset
from postlab.run_state import stale_stages
from postlab.presets.rewards import format_reward, random_reward
from postlab.tasks.suite import load_suite


@pytest.fixture(scope="module")
def items():
    test = load_suite("reasoning", split="test")
    return {"arith": next(it for it in test if it.category == "arith"),
            "countdown": next(it for it in test if it.category == "countdown")}


def test_random_reward_is_a_fixed_coin_flip_blind_to_correctness(items):
    it = items["arith"]
    right = f"Answer: {it.checks[0].kwargs['answer']}"
    assert random_reward(it, right) == random_reward(it, right)  # the same on every call (resume-safe)
    flips = [random_reward(it, f"step {i}\nAnswer: {i}") for i in range(400)]
    assert set(flips) == {0.0, 1.0} and 0.4 < sum(flips) / len(flips) < 0.6
    # blind: right and wrong answers get 1 equally often over many items
    test = [x for x in load_suite("reasoning", split="test") if x.category == "arith"]
    rights = [random_reward(x, f"Answer: {x.checks[0].kwargs['answer']}") for x in test]
    assert 0.3 < sum(rights) / len(rights) < 0.7


def test_format_reward_pays_for_a_well_formed_answer_right_or_wrong(items):
    a, c = items["arith"], items["countdown"]
    assert format_reward(a, "3 + 4 = 7\nAnswer: 7") == 1.0
    assert format_reward(a, "Answer: 123456") == 1.0  # wrong, but a number
    assert format_reward(a, "I think it is seven.") == 0.0
    assert format_reward(c, "Answer: (1 + 2) * 3") == 1.0  # an expression, right or not
    assert format_reward(c, "Answer: (1 + ") == 0.0
    assert format_reward(c, "no idea") == 0.0


def test_stage_names_run_every_arm_for_every_seed():
    k = preset.PRESETS["reasoning"].model_copy(update={"seeds": [0, 7], "controls": ["random"]})
    names = preset.stage_names(k)
    assert names[:6] == ("fetch", "baseline", "sft_data", "sft", "sft_eval", "star")
    assert names[6:14] == ("rl", "rl_eval", "control_random", "control_random_eval",
                           "rl_s7", "rl_s7_eval", "control_random_s7", "control_random_s7_eval")
    assert names[-2:] == ("test_time", "report")
    firsts = preset.first_stages(k)
    assert firsts["rl_lr"] == "rl" and firsts["sft_lr"] == "sft" and firsts["max_seq_len"] == "sft"
    assert firsts["test_time_samples"] == "test_time" and firsts["budget_minutes"] is None
    assert preset.stage_outputs(k)["control_random_s7_eval"] == ("eval/control_random_s7.*",)
    # more seeds or controls redo nothing finished; another first seed redoes its arms and what follows
    assert stale_stages(["seeds", "controls"], names, firsts) == {}
    assert list(stale_stages(["first_seed"], names, firsts))[0] == "rl"
    assert list(stale_stages(["sft_epochs"], names, firsts))[0] == "sft"


def test_seeds_and_controls_must_be_distinct():
    from postlab.errors import ConfigError

    for bad in ("seeds=[1,1]", "seeds=[]", "controls=[random,random]"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            load_config(preset.RunConfig, None, ["preset=reasoning-tiny", bad]).knobs()


def test_a_slow_machine_cuts_rl_steps_first_and_never_a_knob_set_by_hand():
    k = preset.PRESETS["reasoning"].model_copy(update={"bf16": True})
    fast = sum(preset.predict_seconds(k, "reasoning", 1.0).values())
    cut, changes = preset.fit(k, preset.predicted_total("reasoning", 3.0), fast * 1.5, fixed=set())
    assert changes and changes[0]["knob"] == "rl_steps" and cut.rl_steps < k.rl_steps
    assert sum(preset.predict_seconds(cut, "reasoning", 3.0).values()) <= fast * 1.5 or cut.eval_limit == 100
    kept, changes = preset.fit(k, preset.predicted_total("reasoning", 3.0), fast * 1.5, fixed={"rl_steps"})
    assert kept.rl_steps == k.rl_steps and all(c["knob"] != "rl_steps" for c in changes)
    same, none = preset.fit(k, preset.predicted_total("reasoning", 1.0), fast * 2, fixed=set())
    assert same == k and none == []


def test_tiny_run_end_to_end_then_a_changed_rl_knob_redoes_only_rl_and_later(tmp_path):
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "postlab", "run", "--preset", "reasoning-tiny", "--out", str(out), "progress=false"]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    s = json.loads((out / "summary.json").read_text())
    st = s["stages"]
    for stage in ("baseline", "sft", "rl"):
        assert 0.0 <= st[stage]["accuracy"] <= 1.0 and st[stage]["by_difficulty"]
        cells = st[stage]["by_suite_level"]
        assert set(cells) == {"arith", "countdown"}
        assert sum(c["n"] for levels in cells.values() for c in levels.values()) == st[stage]["n"]
    assert {"gain_over_sft", "gain_over_sft_se"} <= set(st["rl"])
    assert {"random_reward", "format_reward"} == set(s["controls"])
    assert all("gain" in c for c in s["controls"].values())
    assert 0.0 <= s["test_time"]["pass_at_1"] <= 1.0 and "maj_at_4" in s["test_time"]
    v = s["test_time"]["vote_census"]  # maj@4 − pass@1 decomposed, exactly (tests/test_test_time.py)
    assert s["test_time"]["maj_at_4"] - s["test_time"]["pass_at_1"] == pytest.approx(v["gain"] - v["loss"])
    assert (out / "report.html").read_text().count("<img") >= 3 and "voting: maj@4" in (out / "report.html").read_text()
    sft_mtime = (out / "stages" / "sft.json").stat().st_mtime
    again = subprocess.run(cmd + ["rl_steps=3"], check=True, capture_output=True, text=True, timeout=600)
    assert "redoing rl:" in again.stderr and "redoing sft:" not in again.stderr
    assert (out / "stages" / "sft.json").stat().st_mtime == sft_mtime
    assert json.loads((out / "stages" / "rl.json").read_text())["result"]["steps"] == 3


def test_a_cut_never_raises_a_knob_set_below_its_floor():
    k = preset.PRESETS["reasoning"].model_copy(update={"bf16": True, "test_time_limit": 8, "rl_steps": 2})
    cut, changes = preset.fit(k, preset.predicted_total("reasoning", 5.0), 60.0, fixed=set())
    assert cut.test_time_limit == 8 and cut.rl_steps == 2 and cut.eval_limit == 100
    assert [c["knob"] for c in changes] == ["eval_limit"]


def test_a_run_behind_its_pace_cuts_only_knobs_of_stages_still_to_run_and_a_rerun_replays_the_cuts(tmp_path, monkeypatch):
    """The reasoning preset keeps to its budget at its own pace, as the default preset does: its SFT took
    1.3x its prediction on the machine its plan was sized for, so RL steps (not yet run) are cut, never the
    eval items (the baseline has run with them); the ETA follows; a rerun replays the cuts from the
    recorded stage times."""
    from postlab.run import Stages, preset_paced

    monkeypatch.delenv("POSTLAB_DTYPE", raising=False)  # bf16=auto decided on `rec`, as on the reference machine
    rec = {"cpu": "the reference machine", "flags": {"amx_bf16": False, "avx512_bf16": True, "avx2": True},
           "cores": 2, "threads": 2, "torch": "2.x", "device": "cpu", "device_name": "cpu", "cuda_bf16": None,
           "matmul_gflops": {"fp32": 230.0, "bf16": 996.0, "n": 1024, "cached": True}}
    cfg = load_config(preset.RunConfig, None, ["preset=reasoning", f"out={tmp_path}"])
    k0, _, scaled = preset.plan(cfg, rec)
    assert scaled["fits"] and scaled["changes"] == []
    names, planned = preset.stage_names(k0), dict(scaled["predicted_s"])

    def pace(k, upto, stages, scaled, say):
        return preset_paced(cfg, k, upto, stages, scaled, order=names, first_stage=preset.first_stages(k), say=say,
                            predict=lambda x, slow: preset.predict_seconds(x, "reasoning", slow), fit=preset.fit)

    stages, k = Stages(tmp_path, None, scaled["predicted_s"], names=names), k0
    for name in names[: names.index("sft_eval") + 1]:
        seconds = (1.3 if name in ("sft", "sft_eval") else 1.0) * planned[name]
        (stages.dir / f"{name}.json").write_text(json.dumps({"result": {}, "seconds": seconds}))
        k = pace(k, name, stages, scaled, say=True)
    assert scaled["changes"] and {c["after"] for c in scaled["changes"]} <= {"sft", "sft_eval"}
    assert all("its predicted stage times" in c["why"] for c in scaled["changes"])
    assert k.rl_steps < k0.rl_steps and k.eval_limit == k0.eval_limit  # the evals stay paired
    assert scaled["pace"]["after"] == "sft_eval" and scaled["pace"]["pace"] > 1.15
    assert stages.reference["rl"] < planned["rl"] and stages.reference == pytest.approx(scaled["predicted_s"], abs=0.06)
    spent = sum(json.loads((stages.dir / f"{n}.json").read_text())["seconds"] for n in names[: names.index("sft_eval") + 1])
    rest = sum(t for n, t in preset.predict_seconds(k, "reasoning", scaled["slowdown"]).items()
               if n not in names[: names.index("sft_eval") + 1])
    assert spent + scaled["pace"]["pace"] * rest <= 30 * 60 + 1  # the cut run fits at that pace
    _, _, again = preset.plan(cfg, rec)
    rerun, k_again = Stages(tmp_path, None, again["predicted_s"], names=names), k0
    for name in names:
        if not rerun.done(name):
            break
        k_again = pace(k_again, name, rerun, again, say=False)
    assert k_again == k and again["changes"] == scaled["changes"]


def test_fresh_demonstrations_join_the_train_splits_in_the_sft_data_and_its_work(tmp_path):
    k = preset.PRESETS["reasoning-tiny"].model_copy(update={"sft_demos": 4, "sft_fresh_demos": 6})
    data = preset.sft_data(tmp_path, k)
    rows = [json.loads(line) for line in open(data["file"])]
    assert data["conversations"] == 10 and [r["id"].split("-")[1] for r in rows] == ["train"] * 4 + ["fresh0"] * 6
    test_prompts = {it.messages[0]["content"] for it in load_suite("reasoning", split="test")}
    assert not test_prompts & {r["messages"][0]["content"] for r in rows}
    assert preset.work(k, "sft") == 10 * k.sft_epochs
    firsts = preset.first_stages(k)
    assert list(stale_stages(["sft_fresh_demos"], preset.stage_names(k), firsts))[0] == "sft_data"
