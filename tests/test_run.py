"""`postlab run --preset tiny`: every stage runs, summary.json has the documented shape, reruns skip
finished stages, an interrupted run continues, other RL algorithms slot in, the report renders; the
machine-aware plan (dtype, time budget) on injected machines."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from postlab import budget
from postlab.data.chat import completion_text

from conftest import CHROMIUM_ARGS, chromium_executable
from postlab.config import load_config
from postlab.run import PRESETS, REFERENCE_KNOBS, REFERENCE_SECONDS, STAGES, RunConfig, machine_record, plan

ROOT = Path(__file__).resolve().parents[1]
REF_S = REFERENCE_SECONDS["default"]


def postlab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "postlab", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "tiny"
    r = postlab("run", "--preset", "tiny", "--out", out, "progress=false")
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r


def _gold_block(g):
    assert isinstance(g["overall"], float) and 0 <= g["overall"] <= 1
    assert isinstance(g["by_category"], dict) and g["by_category"]
    assert all(isinstance(v, float) and 0 <= v <= 1 for v in g["by_category"].values())


def test_summary_has_the_documented_structure(tiny_run):
    out, _ = tiny_run
    s = json.loads((out / "summary.json").read_text())
    assert s["model"] == "tiny" and s["preset"] == "tiny"
    st = s["stages"]
    for stage in ("baseline", "sft", "rl"):
        _gold_block(st[stage]["gold"])
    assert set(st["baseline"]["gold"]["by_category"]) == set(st["rl"]["gold"]["by_category"])
    assert len(st["baseline"]["gold"]["by_category"]) == 9  # every category of the spec suite is evaluated
    for key in ("accuracy_vs_labels", "accuracy_vs_gold"):
        assert key in st["rm"] and (st["rm"][key] is None or 0 <= st["rm"][key] <= 1)
    assert st["rm"]["accuracy_vs_labels"] is not None
    # the reward model is also measured on every gold-decided pair of its held-out prompts' candidates
    assert "accuracy_vs_gold_all_pairs" in st["rm"] and st["rm"]["held_out_prompts"] >= 1
    assert st["rm"]["gold_clear_pairs_all"] >= (st["rm"]["gold_clear_pairs"] or 0)
    # a panel of raters labels each pair: the summary says how many it could not agree on, and the gold-decided share
    c = st["comparisons"]
    assert c["raters_per_pair"] == 3 and c["written"] + c["no_consensus"] + c["ties"] == c["pairs_compared"]
    assert 0 <= c["gold_decided_share"] <= 1
    for key in ("proxy", "kl", "mean_length"):
        assert isinstance(st["rl"][key], float)
    # paired gains on the same held-out items, with their standard errors
    from postlab.evals.metrics import paired_difference, sample_scores

    rl_scores, sft_scores = (sample_scores(out / "eval" / f"{n}.samples.jsonl") for n in ("rl", "sft"))
    gain, se, n = paired_difference(rl_scores, sft_scores)
    assert st["rl"]["gain_over_sft"] == pytest.approx(gain) and st["rl"]["gain_over_sft_se"] == pytest.approx(se)
    assert st["rl"]["gain_over_sft_n"] == n == st["rl"]["gold"]["n"]
    assert isinstance(st["sft"]["gain_over_base"], float) and st["sft"]["gain_over_base_se"] >= 0
    assert set(STAGES) - {"report"} <= set(s["timings_s"])
    assert all(isinstance(v, float) and v >= 0 for v in s["timings_s"].values())
    json.loads((out / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


def test_every_stage_ran_and_left_its_outputs(tiny_run):
    out, r = tiny_run
    for name in STAGES:
        assert (out / "stages" / f"{name}.json").is_file(), name
        assert f"[{STAGES.index(name) + 1}/{len(STAGES)} {name}] running" in r.stderr
    data = json.loads((out / "stages" / "sft_data.json").read_text())["result"]
    assert data["spec_examples"] > 50 and data["template_answers"] > 0
    assert data["conversations"] == data["spec_examples"] + data["template_answers"] + data["rejection_sampled"]
    for f in ("sft/model/model.safetensors", "rm/model/config.json", "rl/model/model.safetensors", "rl/metrics.jsonl",
              "data/prefs.jsonl", "data/candidates.jsonl", "eval/baseline.json", "eval/rl.samples.jsonl",
              "leaderboard.json", "bon.json", "report.html", "resolved_config.json"):
        assert (out / f).is_file(), f
    lb = json.loads((out / "leaderboard.json").read_text())
    assert sorted(row["model"] for row in lb["rows"]) == ["base", "ppo", "sft"]
    # comparisons mix both policies: SFT samples plus the base model's rejection-sampling candidates
    rows = [json.loads(x) for x in (out / "data" / "candidates.jsonl").read_text().splitlines()]
    assert {"base"} == {r.get("policy") for r in rows if "policy" in r} and any("policy" not in r for r in rows)


def test_rerun_skips_every_finished_stage(tiny_run):
    out, _ = tiny_run
    before = {p.name: p.read_text() for p in (out / "stages").iterdir()}
    again = postlab("run", "--preset", "tiny", "--out", out, "progress=false")
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("skipping") == len(STAGES)
    assert {p.name: p.read_text() for p in (out / "stages").iterdir()} == before


def test_an_interrupted_run_continues_where_it_stopped(tmp_path):
    out = tmp_path / "r"
    first = postlab("run", "--preset", "tiny", "--out", out, "progress=false", "stop_after=rm")
    assert first.returncode == 0, first.stderr[-2000:]
    assert (out / "stages" / "rm.json").exists() and not (out / "stages" / "bon.json").exists()
    assert not (out / "summary.json").exists()
    rest = postlab("run", "--preset", "tiny", "--out", out, "progress=false")
    assert rest.returncode == 0, rest.stderr[-2000:]
    assert rest.stderr.count("skipping") == STAGES.index("rm") + 1
    assert (out / "summary.json").exists()


def test_a_rerun_with_another_algo_redoes_rl_and_what_follows(tiny_run, tmp_path):
    """Issue 17's reproduction: a finished PPO run rerun with algo=grpo rl_steps=2 used to skip every stage
    and report PPO's numbers under GRPO's name."""
    src, _ = tiny_run
    out = tmp_path / "switch"
    shutil.copytree(src, out)
    r = postlab("run", "--preset", "tiny", "--out", out, "progress=false", "algo=grpo", "rl_steps=2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "algo \"ppo\" -> \"grpo\", rl_steps 4 -> 2" in r.stderr
    assert "redoing rl: algo, rl_steps changed; deleted rl\n" in r.stderr  # PPO's checkpoints are not resumed
    for name in STAGES[STAGES.index("rl"):]:
        assert f"redoing {name}: algo, rl_steps changed" in r.stderr and f"{name}] running" in r.stderr, name
    assert r.stderr.count("skipping") == STAGES.index("rl")
    assert "grpo: no checkpoint in" in r.stderr and "resuming" not in r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["algo"] == "grpo" and s["stages"]["rl"]["train"]["algo"] == "grpo" and s["stages"]["rl"]["train"]["steps"] == 2
    assert {row["model"] for row in s["stages"]["leaderboard"]["rows"]} == {"base", "sft", "grpo"}
    steps = [json.loads(x)["step"] for x in (out / "rl" / "metrics.jsonl").read_text().splitlines() if '"reward"' in x]
    assert steps == [1, 2]
    resolved = json.loads((out / "resolved_config.json").read_text())
    assert resolved["algo"] == "grpo" and resolved["rl_steps"] == 2


def test_a_rerun_with_a_late_knob_redoes_only_the_stages_from_there(tiny_run, tmp_path):
    src, _ = tiny_run
    out = tmp_path / "boot"
    shutil.copytree(src, out)
    kept = {n: (out / "stages" / f"{n}.json").read_text() for n in STAGES[:STAGES.index("leaderboard")]}
    r = postlab("run", "--preset", "tiny", "--out", out, "progress=false", "bootstrap=50")
    assert r.returncode == 0, r.stderr[-3000:]
    assert [line for line in r.stderr.splitlines() if line.startswith("redoing")] == [
        "redoing leaderboard: bootstrap changed; deleted leaderboard.json",
        "redoing report: bootstrap changed; deleted report.html"]
    assert r.stderr.count("skipping") == STAGES.index("leaderboard")
    assert {n: (out / "stages" / f"{n}.json").read_text() for n in kept} == kept
    assert (out / "report.html").is_file() and json.loads((out / "resolved_config.json").read_text())["bootstrap"] == 50


def test_a_moved_run_directory_reads_its_own_files(tiny_run, tmp_path):
    src, _ = tiny_run
    out = tmp_path / "moved"
    shutil.copytree(src, out)
    assert str(src) not in (out / "stages" / "baseline.json").read_text()  # stage files name paths relative to the run
    (out / "stages" / "report.json").unlink()
    r = postlab("run", "--preset", "tiny", "--out", out, "progress=false")
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((out / "summary.json").read_text())
    assert s["stages"]["baseline"]["gold"]["samples"] == str(out / "eval" / "baseline.samples.jsonl")
    assert s["stages"]["rl"]["train"]["model"] == str(out / "rl" / "model")


def test_every_file_a_run_writes_belongs_to_a_stage(tiny_run):
    """A rerun deletes what a stale stage wrote (run_state.OUTPUTS): nothing a stage writes may escape it."""
    from postlab.run_state import _outputs

    out, _ = tiny_run
    claimed = [p for name in STAGES for p in _outputs(out, name)]
    bookkeeping = {"stages", "summary.json", "resolved_config.json", "run_config.yaml", "machine.json"}
    for path in out.rglob("*"):
        rel = path.relative_to(out)
        if path.is_file() and rel.parts[0] not in bookkeeping:
            assert any(path == c or c in path.parents for c in claimed), rel


@pytest.mark.parametrize("algo", ["grpo", "rloo", "dpo", "dpo_rm", "bon_sft", "bon"])
def test_other_rl_algorithms_slot_into_the_recipe(tiny_run, tmp_path, algo):
    src, _ = tiny_run
    out = tmp_path / algo
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("rl"))
    for name in STAGES[STAGES.index("rl"):]:
        (out / "stages" / f"{name}.json").unlink()
    extra = ["bon_replay=true"] if algo == "bon_sft" else []  # the default (no replay) is the simpler path
    r = postlab("run", "--preset", "tiny", "--out", out, "progress=false", f"algo={algo}", *extra)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((out / "summary.json").read_text())
    assert s["algo"] == algo and s["stages"]["rl"]["train"]["algo"] == algo
    assert algo in {row["model"] for row in s["stages"]["leaderboard"]["rows"]}
    if algo == "bon":  # nothing trained: the reward model picks among the greedy answer and bon_n - 1 samples
        n = PRESETS["tiny"].bon_n
        assert not (out / "rl").exists() and s["stages"]["rl"]["train"]["model"] == s["stages"]["sft"]["train"]["model"]
        cands = [json.loads(line) for line in (out / "eval" / "rl.candidates.jsonl").read_text().splitlines()]
        greedy = {r["id"]: r["response"] for r in map(json.loads, (out / "eval" / "sft.samples.jsonl").read_text().splitlines())}
        picks = {r["id"]: r for r in map(json.loads, (out / "eval" / "rl.samples.jsonl").read_text().splitlines())}
        assert len(cands) == n * len(picks) == n * s["stages"]["rl"]["gold"]["n"]
        for pid, row in picks.items():
            mine = [c for c in cands if c["id"] == pid]
            assert [c["candidate"] for c in mine] == list(range(n)) and mine[0]["response"] == greedy[pid]
            best = max(mine, key=lambda c: (c["proxy"], -c["candidate"]))  # ties go to the earlier candidate
            assert row["response"] == best["response"] and row["bon_pick"] == best["candidate"] and best["picked"]
        bon = s["stages"]["rl"]["gold"]["bon"]
        assert bon["picked_greedy"] == sum(r["bon_pick"] == 0 for r in picks.values()) / len(picks)
        assert s["stages"]["rl"]["kl"] == pytest.approx(math.log(n) - (n - 1) / n)
        assert "bon: no weight update" in (out / "report.html").read_text()
        return
    assert (out / "rl" / "model" / "model.safetensors").is_file()
    if algo == "dpo_rm":  # the reward model ranked the sampled candidates into DPO pairs
        rows = [json.loads(line) for line in (out / "data" / "rm_ranked.jsonl").read_text().splitlines()]
        assert rows and all(r["source"] == "rm" and r["chosen"] != r["rejected"] for r in rows)
    if algo == "bon_sft":  # the reward model's confident picks, then the SFT demonstrations replayed
        rows = [json.loads(line) for line in (out / "data" / "bon_sft.jsonl").read_text().splitlines()]
        train = s["stages"]["rl"]["train"]
        picks = [r for r in rows if r.get("source") == "best_of_n"]
        assert len(picks) == train["demonstrations"] == round(0.5 * train["prompts"]) > 0
        assert len(rows) == len(picks) + s["stages"]["sft_data"]["conversations"] == len(picks) + train["replayed"]
        assert [r["reward"] for r in picks] == sorted((r["reward"] for r in picks), reverse=True)
        # picked among the SFT policy's own samples only, never the base model's compared beside them
        own = {(r["prompt_id"], completion_text(r, "own").strip())
               for r in map(json.loads, (out / "data" / "sft_candidates.jsonl").read_text().splitlines())}
        assert all((r["id"], r["messages"][-1]["content"].strip()) in own for r in picks)
        base = [r for r in map(json.loads, (out / "data" / "candidates.jsonl").read_text().splitlines())
                if r.get("policy") == "base"]
        assert base and train["candidates_scored"] <= len(own)
        assert f"the reward model's best finished candidate of {len(picks)} of" in (out / "report.html").read_text()
        # the picks against a random pick and gold's own pick among the same candidates, per category too
        assert train["gold_of_samples"] <= train["gold_of_oracle"] and train["gold_of_picks"] <= train["gold_of_oracle"]
        by = train["picks_by_category"]
        assert sum(q["picks"] for q in by.values()) == len(picks)
        assert set(by) == {r["id"].split("-")[0] for r in picks}
        assert "for gold's own pick" in (out / "report.html").read_text()


def test_report_command_rebuilds_the_page(tiny_run, tmp_path):
    src, _ = tiny_run
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    (out / "report.html").unlink()
    r = postlab("report", out)
    assert r.returncode == 0, r.stderr
    page = (out / "report.html").read_text()
    assert page.count('<img class="plot"') >= 6 and "Leaderboard" in page and "Resolved configuration" in page
    bad = postlab("report", tmp_path / "nowhere")
    assert bad.returncode != 0 and "summary.json" in bad.stderr and "Traceback" not in bad.stderr


def test_eta_scales_reference_times_by_the_pace_so_far(tmp_path):
    from postlab.run import Stages

    ref = {n: 10.0 for n in STAGES}
    st = Stages(tmp_path, None, ref)
    assert "about 2 min to go" in st.eta("fetch")  # 14 stages x 10 s at the reference pace
    st.ran = {"fetch": 20.0}  # this run is twice as slow as the reference
    for n in ("fetch",):
        (tmp_path / "stages" / f"{n}.json").write_text('{"result": {}, "seconds": 20.0}')
    assert "about 4 min to go" in st.eta("baseline")  # 13 stages left x 10 s x 2
    st.reference = {**ref, "baseline": 1000.0}
    assert "about 19 min to go" in st.eta("baseline")  # fetch is too small a share to judge the pace by


def test_summary_and_report_record_the_machine(tiny_run):
    out, r = tiny_run
    s = json.loads((out / "summary.json").read_text())
    m = s["machine"]
    for key in ("cpu", "cores", "threads", "torch", "device", "matmul_gflops", "dtype", "dtype_why", "slowdown"):
        assert key in m, key
    assert set(m["flags"]) == {"amx_bf16", "avx512_bf16", "avx512f", "avx2"}
    assert m["dtype"] == "fp32" and "bf16=false" in m["dtype_why"]  # the tiny preset pins fp32
    assert s["scaled"]["changes"] == [] and s["scaled"]["budget_minutes"] is None
    assert set(s["scaled"]["predicted_s"]) == set(STAGES)
    assert json.loads((out / "machine.json").read_text())["cpu"] == m["cpu"]
    assert "machine: " in r.stderr and "dtype: fp32" in r.stderr and "budget: none" in r.stderr
    page = (out / "report.html").read_text()
    assert "Machine and time budget" in page and "predicted minutes" in page and "bf16-relevant flags" in page


def test_the_tiny_preset_runs_as_it_is(tiny_run):
    out, _ = tiny_run
    resolved = json.loads((out / "resolved_config.json").read_text())
    assert resolved == PRESETS["tiny"].model_dump(mode="json")


def test_report_lists_what_the_budget_scaled_down(tiny_run, tmp_path):
    src, _ = tiny_run
    out = tmp_path / "scaled"
    shutil.copytree(src, out)
    s = json.loads((out / "summary.json").read_text())
    s["scaled"].update(budget_minutes=30, fits=False, predicted_minutes_unscaled=165.3, predicted_minutes=47.8, changes=[
        {"knob": "rl_steps", "from": 10, "to": 4, "why": "to fit the 30-minute budget; samples and steps are cut first"},
        {"knob": "eval_limit", "from": 417, "to": 100, "why": "to fit; held-out eval items are cut last, never below 100"}])
    (out / "summary.json").write_text(json.dumps(s))
    r = postlab("report", out)
    assert r.returncode == 0, r.stderr
    page = (out / "report.html").read_text()
    assert "Scaled down" in page and "rl_steps" in page and "never below 100" in page and "over budget" in page


XEON = {"cpu": "Intel Xeon (no AMX)", "flags": {"amx_bf16": False, "avx512_bf16": False, "avx2": True}, "cores": 2,
        "threads": 2, "torch": "2.x", "device": "cpu", "device_name": "cpu", "cuda_bf16": None,
        "matmul_gflops": {"fp32": 126.0, "bf16": 31.0, "n": 1024, "cached": True}}
AMX = {**XEON, "cpu": "Xeon with AMX", "flags": {"amx_bf16": True, "avx512_bf16": True, "avx2": True},
       "matmul_gflops": {"fp32": 379.0, "bf16": 2507.0, "n": 1024, "cached": True}}


def _plan(*overrides, rec):
    return plan(load_config(RunConfig, None, list(overrides)), rec)


REF_BF16 = budget.REFERENCE_MACHINE["bf16_gflops"]


def _unscaled_minutes(slow: float) -> float:
    """The default preset's predicted minutes before any cut, by hand from the reference run."""
    secs = budget.predict_seconds(PRESETS["default"], REFERENCE_KNOBS["default"], REF_S, slow, 417)
    return sum(secs.values()) / 60


def test_plan_on_a_slow_cpu_picks_fp32_and_cuts_to_the_budget(monkeypatch):
    monkeypatch.delenv("POSTLAB_DTYPE", raising=False)
    k, mach, scaled = _plan(rec=XEON)
    assert k.bf16 is False and mach["dtype"] == "fp32" and "126" in mach["dtype_why"]
    # slowdown = 0.2 x 996 / 126 + 0.8 (the reference ran bf16 at 996 GFLOP/s): stage times about 2.4x longer
    assert mach["slowdown"] == pytest.approx(0.2 * REF_BF16 / 126 + 0.8, abs=1e-3)
    assert scaled["predicted_minutes_unscaled"] == pytest.approx(_unscaled_minutes(mach["slowdown"]), abs=0.1)
    assert scaled["predicted_minutes_unscaled"] > 30 >= scaled["predicted_minutes"] - 0.05 and scaled["fits"]
    knobs = {c["knob"] for c in scaled["changes"]}
    assert {"rs_prompts", "sample_prompts"} <= knobs and "eval_limit" not in knobs  # samples first
    assert "rl_steps" not in knobs  # the default RL stage (bon_sft) takes no time per rl_step: not cut
    assert all(c["why"] for c in scaled["changes"])


def test_plan_on_a_much_slower_cpu_cuts_to_the_floors_and_says_it_is_over(monkeypatch):
    monkeypatch.delenv("POSTLAB_DTYPE", raising=False)
    slow_cpu = {**XEON, "matmul_gflops": {"fp32": 20.0, "bf16": 5.0, "n": 1024, "cached": True}}
    k, mach, scaled = _plan(rec=slow_cpu)
    assert scaled["fits"] is False and k.eval_limit == 100 and k.rl_steps == 10  # bon_sft: rl_steps saves nothing
    assert {"rs_prompts", "sample_prompts", "sft_epochs", "eval_limit"} <= {c["knob"] for c in scaled["changes"]}


def test_plan_on_a_faster_machine_keeps_the_preset(monkeypatch):
    monkeypatch.delenv("POSTLAB_DTYPE", raising=False)
    k, mach, scaled = _plan(rec=AMX)
    assert k.bf16 is True and mach["slowdown"] == pytest.approx(0.2 * REF_BF16 / 2507 + 0.8, abs=1e-3)
    assert scaled["predicted_minutes_unscaled"] == pytest.approx(_unscaled_minutes(mach["slowdown"]), abs=0.1)
    assert scaled["fits"] and scaled["changes"] == [] and k == PRESETS["default"].model_copy(update={"bf16": True})
    reference = {**AMX, "matmul_gflops": {"fp32": budget.REFERENCE_MACHINE["fp32_gflops"], "bf16": REF_BF16,
                                          "n": 1024, "cached": True}}
    assert _plan(rec=reference)[1]["slowdown"] == pytest.approx(1.0)


def test_plan_keeps_what_the_command_line_sets(monkeypatch):
    monkeypatch.delenv("POSTLAB_DTYPE", raising=False)
    k, mach, scaled = _plan("bf16=true", "rl_steps=10", "eval_limit=417", rec=XEON)
    assert k.bf16 is True and mach["dtype"] == "bf16" and "bf16=true" in mach["dtype_why"]
    assert k.rl_steps == 10 and k.eval_limit == 417
    assert not {"rl_steps", "eval_limit"} & {c["knob"] for c in scaled["changes"]}
    # bf16 at 31 GFLOP/s: 0.2 x 996 / 31 + 0.8
    assert mach["slowdown"] == pytest.approx(0.2 * REF_BF16 / 31 + 0.8, abs=1e-3)


def test_a_rerun_plans_from_the_machine_recorded_at_the_start(tmp_path, monkeypatch):
    from postlab import machine

    (tmp_path / "machine.json").write_text(json.dumps(XEON))
    monkeypatch.setattr(machine, "probe", lambda **kw: pytest.fail("measured again"))
    assert machine_record(tmp_path, measure=True) == XEON


def test_bad_run_options_are_rejected_up_front(tmp_path):
    r = postlab("run", "--preset", "tiny", "--out", tmp_path / "x", "algo=sarsa")
    assert r.returncode != 0 and "algo" in r.stderr
    r = postlab("run", "--preset", "tiny", "--out", tmp_path / "x", "sample_prompts=500")
    assert r.returncode != 0 and "sample_prompts" in r.stderr
    r = postlab("run", "--preset", "tiny", "--out", tmp_path / "x", "stop_after=nope")
    assert r.returncode != 0 and "stop_after" in r.stderr
    r = postlab("run", "--preset", "tiny", "--out", tmp_path / "x", "bon_replay=[refusals]")
    assert r.returncode != 0 and "bon_replay: unknown categories ['refusals']" in r.stderr


def test_bon_replay_replays_all_none_or_the_listed_categories():
    from postlab.run import replayed
    from postlab.tasks.suite import make_item

    items = {i: make_item(i, [{"role": "user", "content": "x"}], i.split("-")[0], "train", [])
             for i in ("refusal-train-0001", "honesty-train-0002", "refusal-train-0003")}
    rows = [{"id": "refusal-train-0001"}, {"id": "honesty-train-0002"}, {"id": "spec-example-1"},
            {"id": "refusal-train-0003"}, {}]
    assert replayed(rows, items, True) == rows and replayed(rows, items, False) == []
    assert replayed(rows, items, ["refusal"]) == [rows[0], rows[3]]  # rows of no train item are not replayed
    assert replayed(rows, items, ["refusal", "honesty"]) == rows[:2] + [rows[3]]


def test_leaderboard_command_ranks_models(tmp_path):
    out = tmp_path / "lb.json"
    r = postlab("leaderboard", "tiny", "tiny", "--limit", "6", "--out", out, "--set", "bootstrap=20",
                "--set", "max_new_tokens=4", "--set", "progress=false", "--set", 'names=["one","two"]')
    assert r.returncode == 0, r.stderr[-2000:]
    lb = json.loads(out.read_text())
    assert {row["model"] for row in lb["rows"]} == {"one", "two"} and lb["items"] == 6
    assert "Elo" in r.stdout
    bad = postlab("leaderboard", "tiny")
    assert bad.returncode != 0 and "at least two" in bad.stderr


def test_report_renders_in_headless_chromium(tiny_run):
    exe = chromium_executable()
    from playwright.sync_api import sync_playwright

    out, _ = tiny_run
    args = CHROMIUM_ARGS
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=args)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto((out / "report.html").as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate("Array.from(document.images).map(i => ({alt: i.alt, ok: i.complete, w: i.naturalWidth, h: i.naturalHeight}))")
        headings = page.evaluate("Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
        page.screenshot(path=str(artifacts / "report_tiny.png"), full_page=True)
        browser.close()
    assert len(images) >= 6
    assert all(im["ok"] and im["w"] > 100 and im["h"] > 100 for im in images), images
    alts = " ".join(im["alt"] for im in images)
    for what in ("per category", "reward model", "best-of-n", "RL curves", "sqrt(KL)", "Elo"):
        assert what in alts, what
    for h in ("Gold score per category after each stage", "Leaderboard of the stage checkpoints",
              "Answers side by side (held-out items, greedy)", "Timings", "Resolved configuration"):
        assert h in headings


def test_a_rerun_regrades_evals_graded_by_another_version_of_the_gold_rater(tiny_run, tmp_path):
    """An upgrade between a run and its rerun changed the gold rater: the rerun must not report the old scores
    (nor mix them with new ones); it regrades the saved answers and rebuilds the summary."""
    src, _ = tiny_run
    out = tmp_path / "old_ruler"
    shutil.copytree(src, out)
    stage = out / "stages" / "sft_eval.json"
    record = json.loads(stage.read_text())
    samples = out / "eval" / "sft.samples.jsonl"
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    truth = sum(r["score"] for r in rows) / len(rows)
    # what an older, lenient rater left behind: every answer scored 1, recorded under another version
    samples.write_text("".join(json.dumps({**r, "score": 1.0}) + "\n" for r in rows))
    record["result"].update(overall=1.0, ruler="000000000000")
    stage.write_text(json.dumps(record))
    r = postlab("run", "--preset", "tiny", "--out", out, "progress=false")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "regraded sft_eval: the gold rater changed (000000000000 -> " in r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["stages"]["sft"]["gold"]["overall"] == pytest.approx(truth)
    regraded = [json.loads(line)["score"] for line in samples.read_text().splitlines()]
    assert sum(regraded) / len(regraded) == pytest.approx(truth)
    assert "[11/14 rl_eval] done already" in r.stderr and "[13/14 leaderboard] running" in r.stderr


def test_a_run_behind_its_pace_cuts_the_stages_still_to_run_and_a_rerun_replays_the_cuts(tmp_path, monkeypatch):
    """After each stage `paced` checks the run's own pace: here baseline and sft_data took 2.5x their
    predictions on a machine the plan thought fitted, so the knobs of the stages still to run are cut (and
    said, and recorded in `scaled`); a rerun replays the cuts from the recorded stage times, so its knobs are
    the ones the run ran with and no finished stage is redone."""
    from postlab.run import Stages, paced
    from postlab.run_state import FIRST_STAGE, invalidate_changed_stages

    monkeypatch.delenv("POSTLAB_DTYPE", raising=False)
    cfg = load_config(RunConfig, None, [f"out={tmp_path}"])
    k0, _, scaled = _plan(f"out={tmp_path}", rec=AMX)
    assert scaled["fits"] and scaled["changes"] == []
    stages = Stages(tmp_path, None, scaled["predicted_s"])
    predicted = dict(scaled["predicted_s"])
    k = k0
    for name, factor in (("fetch", 30.0), ("baseline", 2.5), ("sft_data", 2.5)):  # each stage 2.5x its prediction
        seconds = factor * stages.reference[name]
        (stages.dir / f"{name}.json").write_text(json.dumps({"result": {}, "seconds": seconds}))
        k = paced(cfg, k, name, stages, scaled)
    assert scaled["changes"] and all("predicted stage times" in c["why"] for c in scaled["changes"])
    for c in scaled["changes"]:  # only knobs of stages still to run when it was cut
        assert STAGES.index(FIRST_STAGE[c["knob"]]) > STAGES.index(c["after"]), c
    assert {c["after"] for c in scaled["changes"]} == {"baseline"}  # cut to fit at 2.5x: still fits after sft_data
    assert scaled["pace"] == {"after": "sft_data", "pace": pytest.approx(2.5, abs=1e-3)}  # fetch left out
    assert (k.eval_limit, k.batch_size, k.bf16) == (k0.eval_limit, k0.batch_size, k0.bf16)
    assert k.sample_prompts < k0.sample_prompts and k.rs_prompts < k0.rs_prompts
    assert stages.reference["sample"] < predicted["sample"]  # the ETA follows the cut knobs
    (tmp_path / "resolved_config.json").write_text(json.dumps(k.model_dump(mode="json")))
    # the rerun: the upfront plan again, then the cuts replayed over the recorded times
    k_again, _, scaled_again = _plan(f"out={tmp_path}", rec=AMX)
    rerun = Stages(tmp_path, None, scaled_again["predicted_s"])
    for name in STAGES:
        if not rerun.done(name):
            break
        k_again = paced(cfg, k_again, name, rerun, scaled_again, say=False)
    assert k_again == k and scaled_again["changes"] == scaled["changes"]
    assert invalidate_changed_stages(tmp_path, k_again.model_dump(mode="json"), STAGES) == []


def test_a_rerun_with_a_later_knob_changed_keeps_what_the_finished_stages_ran_with(tmp_path, monkeypatch):
    """Under a budget a changed knob can move the whole plan: a looser panel gives the reward model more pairs, so
    the plan cuts samples harder, rs_prompts and rs_k included, which would redo SFT data and SFT for a change
    that touches the labels on. A rerun keeps the budget knobs of the finished stages as they ran (unless the
    command line sets them), says so in `scaled`, and fits the budget with the knobs of the stages still to run."""
    from postlab.run import Stages, finished_stage_knobs, plan_around_finished_stages
    from postlab.run_state import FIRST_STAGE, invalidate_changed_stages

    monkeypatch.delenv("POSTLAB_DTYPE", raising=False)
    # the AMD EPYC of runs r2 and r3 (bf16 438 GFLOP/s): the default preset's samples cut part of the way
    EPYC = {**XEON, "cpu": "AMD EPYC", "flags": {"amx_bf16": False, "avx512_bf16": True, "avx2": True},
            "matmul_gflops": {"fp32": 199.0, "bf16": 438.0, "n": 1024, "cached": True}}
    k0, _, scaled = _plan(f"out={tmp_path}", rec=EPYC)
    assert {"rs_prompts", "rs_k", "sample_prompts"} <= {c["knob"] for c in scaled["changes"]}
    for name in STAGES[: STAGES.index("sample") + 1]:  # every stage before the labels, each as long as predicted
        seconds = scaled["predicted_s"].get(name, 1.0)
        (tmp_path / "stages").mkdir(exist_ok=True)
        (tmp_path / "stages" / f"{name}.json").write_text(json.dumps({"result": {}, "seconds": seconds}))
    (tmp_path / "resolved_config.json").write_text(json.dumps(k0.model_dump(mode="json")))
    (tmp_path / "machine.json").write_text(json.dumps(EPYC))

    args = [f"out={tmp_path}", "panel_min_votes=3", "panel_min_strength=0.3"]
    naive, _, _ = _plan(*args, rec=EPYC)
    assert naive.rs_prompts < k0.rs_prompts  # planned afresh, the finished sft_data stage would run again

    cfg = load_config(RunConfig, None, args)
    k, _, scaled2 = _plan(*args, rec=EPYC)
    stages = Stages(tmp_path, None, scaled2["predicted_s"])
    k, scaled2, _ = plan_around_finished_stages(cfg, tmp_path, k, stages, scaled2)
    for name in ("rs_prompts", "rs_k", "demos_per_category", "eval_limit", "sample_prompts"):
        assert getattr(k, name) == getattr(k0, name), name
    assert invalidate_changed_stages(tmp_path, k.model_dump(mode="json"), STAGES) == []  # no finished stage redone
    kept = {c["knob"] for c in scaled2["changes"] if "finished" in c["why"]}
    assert {"rs_prompts", "rs_k", "sample_prompts"} <= kept
    assert all(STAGES.index(FIRST_STAGE[n]) <= STAGES.index("sample") for n in kept)
    # a changed knob that redoes sft_data itself (its token cap) leaves its samples to the budget again
    early = load_config(RunConfig, None, [f"out={tmp_path}", "rs_max_new_tokens=64"])
    held = finished_stage_knobs(tmp_path, early, k0.model_copy(update={"rs_max_new_tokens": 64}))
    assert "rs_prompts" not in held and "sample_prompts" not in held and held["eval_limit"] == k0.eval_limit
    # nothing to keep when nothing moved: an unchanged rerun is planned as before
    k_same, _, scaled_same = _plan(f"out={tmp_path}", rec=EPYC)
    again, scaled_again, _ = plan_around_finished_stages(load_config(RunConfig, None, [f"out={tmp_path}"]), tmp_path,
                                                      k_same, Stages(tmp_path, None, scaled_same["predicted_s"]),
                                                      scaled_same)
    assert again == k0 and scaled_again is scaled_same


def test_sft_gets_what_the_budget_leaves_and_a_stop_at_it_is_recorded(tmp_path, monkeypatch):
    """Before SFT, `sft_allowance` is the budget's allowance for it at the run's pace (None where the command
    line set sft_epochs); an SFT stage that stopped at it is listed with the budget's cuts."""
    from postlab.run import Stages, note_time_limited, sft_allowance
    from postlab.run_state import FIRST_STAGE

    monkeypatch.delenv("POSTLAB_DTYPE", raising=False)
    cfg = load_config(RunConfig, None, [f"out={tmp_path}"])
    k, _, scaled = _plan(f"out={tmp_path}", rec=AMX)
    stages = Stages(tmp_path, None, scaled["predicted_s"])
    for name in ("fetch", "baseline", "sft_data"):
        (stages.dir / f"{name}.json").write_text(json.dumps({"result": {}, "seconds": 2.5 * stages.reference[name]}))
    allowed = sft_allowance(cfg, k, stages, scaled)
    assert allowed == pytest.approx(budget.stage_allowance(
        k, REFERENCE_KNOBS["default"], REFERENCE_SECONDS["default"], slow=scaled["slowdown"], budget_s=1800,
        test_items=417, order=STAGES, stage="sft", seconds=stages.timings(), first_stage=FIRST_STAGE))
    assert 0 < allowed < 1800 - sum(stages.timings().values())
    fixed = load_config(RunConfig, None, [f"out={tmp_path}", "sft_epochs=3"])
    assert sft_allowance(fixed, k, stages, scaled) is None
    # a later stage's knob set on the command line is never cut, so it is not counted at its floor either
    steps_set = load_config(RunConfig, None, [f"out={tmp_path}", f"sample_prompts={k.sample_prompts}"])
    assert sft_allowance(steps_set, k, stages, scaled) == pytest.approx(budget.stage_allowance(
        k, REFERENCE_KNOBS["default"], REFERENCE_SECONDS["default"], slow=scaled["slowdown"], budget_s=1800,
        test_items=417, order=STAGES, stage="sft", seconds=stages.timings(), first_stage=FIRST_STAGE,
        fixed={"sample_prompts"}))
    assert sft_allowance(steps_set, k, stages, scaled) < allowed
    note_time_limited(scaled, "sft", {"steps": 80, "planned_steps": 114, "max_seconds": 600.0})
    assert scaled["changes"][-1]["knob"] == "sft_steps" and scaled["changes"][-1]["to"] == 80
    before = list(scaled["changes"])
    note_time_limited(scaled, "sft", {"steps": 114, "planned_steps": 114, "max_seconds": 600.0})
    assert scaled["changes"] == before  # ran to the end: nothing to record
