"""Crash safety (issue 16, item 15): ``postlab run --preset tiny`` killed with SIGKILL at points inside its
stages and in the middle of its model, checkpoint, summary and report writes, rerun each time,
ends with the summary.json an uninterrupted run writes (every number that depends only on seeds) and
leaves no partial file behind, in the run directory or in POSTLAB_HOME.

The kills come from outside (the test's SIGKILL at a random moment) and from inside: the run is started
through LAUNCHER, which wraps a few library calls (os.replace/os.rename, torch.save, AdamW.step,
TorchEngine.generate_ids) to SIGKILL its own process on the n-th such call inside a given stage. Nothing
in postlab knows about it. Which call and when are drawn from a seed, printed on failure
(POSTLAB_CRASH_SEED=<seed> repeats a draw).
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAUNCHER = r"""
import json, os, re, signal, sys

import torch

crash = json.loads(os.environ["CRASH_AT"])  # {"stage", "event", "match", "n"}, or {} for no crash
stage = [None]
calls = [0]


def before(event, fn, path_at=None):
    def wrapped(*args, **kwargs):
        events = crash.get("event", [])
        if crash and stage[0] == crash["stage"] and event in (events if isinstance(events, list) else [events]):
            path = str(args[path_at]) if path_at is not None else ""
            if re.search(crash.get("match", ""), path):
                calls[0] += 1
                if calls[0] == crash.get("n", 1):
                    os.kill(os.getpid(), signal.SIGKILL)
        return fn(*args, **kwargs)
    return wrapped


os.replace = before("rename", os.replace, 1)
os.rename = before("rename", os.rename, 1)
torch.save = before("save", torch.save, 1)
torch.optim.AdamW.step = before("step", torch.optim.AdamW.step)

from postlab import run
from postlab.rollout import TorchEngine

TorchEngine.generate_ids = before("generate", TorchEngine.generate_ids)
run_stage = run.Stages.run


def tracked(self, name, fn):
    stage[0] = name
    return run_stage(self, name, fn)


run.Stages.run = tracked
from postlab.cli import main

sys.argv = ["postlab", *sys.argv[1:]]
main()
"""

PARTIAL = (".tmp-", ".old-")  # atomic writes in flight (postlab.utils.io)


def start(out: Path, home: Path, log: Path, crash: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "POSTLAB_HOME": str(home), "PYTHONPATH": str(ROOT), "CRASH_AT": json.dumps(crash or {})}
    with open(log, "w") as f:
        return subprocess.Popen([sys.executable, "-c", LAUNCHER, "run", "--preset", "tiny", "--out", str(out),
                                 "progress=false"], stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def kill_after(proc: subprocess.Popen, trigger: Path, delay: float, timeout: float = 300) -> None:
    """SIGKILL ``proc`` ``delay`` seconds after ``trigger`` appears (if it still runs then)."""
    deadline = time.monotonic() + timeout
    while not trigger.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)


def kill_plan(rng: random.Random) -> list[dict]:
    """One kill per attempt, in run order: a hooked call inside a stage, or an outside kill at a random moment.
    The writes (model, checkpoint, summary, report) are hit every time; the kills inside stages vary by seed."""
    in_eval_or_sampling = rng.choice([
        {"stage": "baseline", "event": "generate", "n": rng.randint(1, 4)},  # between eval batches
        {"stage": "sft_data", "event": "generate", "n": rng.randint(2, 3)},  # the sample file partly written
    ])
    return [
        {"stage": "fetch", "event": "rename", "match": r"models/tiny$"},  # the model built, not yet in place
        in_eval_or_sampling,
        {"stage": "sft", "event": "rename", "match": r"sft/model$"},  # final checkpoint written, model not
        {"after": "stages/sft_eval.json", "delay": round(rng.uniform(0.0, 4.0), 2)},  # anywhere in sample/label/rm
        # half a checkpoint; or, when the outside kill landed in rm after its last checkpoint (the rerun resumes
        # there and saves none), the reward model written and not yet in place
        {"stage": "rm", "event": ["save", "rename"], "match": r"optimizer\.pt$|rm/model$"},
        {"stage": "rl", "event": "step", "n": rng.randint(1, 8)},  # mid-PPO
        {"stage": "leaderboard", "event": "rename", "match": r"summary\.json$"},  # the summary's write
        {"stage": "report", "event": "rename", "match": r"report\.html$"},  # the report's write
    ]


def seed_dependent(summary: dict, out: Path) -> dict:
    """summary.json without what varies between identical runs: timings, the machine and what its measured
    speed scales (predicted times; a home with a cached speed measurement predicts other times), the run's path."""
    drop = {"timings_s", "machine", "scaled"}

    def norm(x):
        if isinstance(x, dict):
            return {k: norm(v) for k, v in x.items() if k not in drop}
        if isinstance(x, list):
            return [norm(v) for v in x]
        if isinstance(x, str):
            return x.replace(str(out), "{run}")
        return x

    return norm(summary)


def differences(got, want, at: str = "") -> list[str]:
    """Where two JSON values differ, as dotted paths."""
    if isinstance(got, dict) and isinstance(want, dict):
        return [d for k in sorted(set(got) | set(want)) for d in differences(got.get(k), want.get(k), f"{at}.{k}")]
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        return [d for i, (g, w) in enumerate(zip(got, want)) for d in differences(g, w, f"{at}[{i}]")]
    return [] if got == want else [f"{at}: {got!r} after the kills, {want!r} uninterrupted"]


def leftovers(*roots: Path) -> list[str]:
    return sorted(str(p) for root in roots for p in root.rglob("*")
                  if p.name.startswith(PARTIAL) or ".tmp" in p.name or ".partial" in p.name)


def test_a_run_killed_anywhere_and_rerun_ends_as_an_uninterrupted_run(tmp_path):
    seed = int(os.environ.get("POSTLAB_CRASH_SEED") or random.randrange(1 << 32))
    rng = random.Random(seed)
    ref_out, out, home = tmp_path / "ref", tmp_path / "crashed", tmp_path / "home"
    # The uninterrupted run, beside the interrupted ones, with the tests' model cache (the tiny model built already).
    ref = start(ref_out, Path(os.environ["POSTLAB_HOME"]), tmp_path / "ref.log")
    killed = []
    for i, crash in enumerate(kill_plan(rng)):
        if "stage" in crash and (out / "stages" / f"{crash['stage']}.json").exists():
            continue  # an earlier outside kill came after this stage finished
        log = tmp_path / f"attempt-{i}.log"
        if "after" in crash:
            proc = start(out, home, log)
            kill_after(proc, out / crash["after"], crash["delay"])
        else:
            proc = start(out, home, log, crash)
        rc = proc.wait(timeout=300)
        assert rc == -signal.SIGKILL, f"seed {seed}: {crash} did not kill the run (exit {rc}):\n{log.read_text()[-3000:]}"
        killed.append(crash)
    final = start(out, home, tmp_path / "final.log")
    assert final.wait(timeout=300) == 0, f"seed {seed}: the rerun failed:\n{(tmp_path / 'final.log').read_text()[-3000:]}"
    assert ref.wait(timeout=300) == 0, (tmp_path / "ref.log").read_text()[-3000:]
    assert len(killed) >= len(kill_plan(random.Random(0))) - 1, f"seed {seed}: only {killed} killed the run"

    got = seed_dependent(json.loads((out / "summary.json").read_text()), out)
    want = seed_dependent(json.loads((ref_out / "summary.json").read_text()), ref_out)
    differ = differences(got, want)
    assert not differ, f"seed {seed}, kills {killed}: summary.json differs from the uninterrupted run's: {differ}"
    assert (out / "report.html").is_file()
    assert not leftovers(out, home), f"seed {seed}, kills {killed}: partial files left behind"


# --- what the kills found, one focused test each ---


def test_sft_losses_survive_a_kill_after_the_final_checkpoint(tmp_path, chat_file):
    """Killed after SFT's final checkpoint but before its model was saved, the rerun resumes at the last
    step and trains no more: the stage still reports the whole run's first and last loss, not None."""
    from postlab.run import PRESETS, train_sft

    k = PRESETS["tiny"].model_copy(update={"sft_batch_size": 2})  # 4 steps
    straight = train_sft("tiny", str(chat_file), tmp_path / "a", k, progress=False)
    train_sft("tiny", str(chat_file), tmp_path / "b", k, progress=False)
    shutil.rmtree(tmp_path / "b" / "sft" / "model")  # as a kill before the model's rename leaves it
    resumed = train_sft("tiny", str(chat_file), tmp_path / "b", k, progress=False)
    assert resumed["first_loss"] is not None and resumed["last_loss"] is not None
    assert {key: v for key, v in resumed.items() if key != "model"} == {key: v for key, v in straight.items() if key != "model"}


LEFTOVERS = (".tmp-report.html-1y3h88l3", ".tmp-summary.json-qvzrwfr6", "stages/.tmp-rl_eval.json-ow0z102y",
             "sft/.tmp-model-pp_dm0qa/", ".old-model-4242/")  # what the kills above left before the fix


def _plant(out: Path) -> None:
    for name in LEFTOVERS:
        path = out / name
        if name.endswith("/"):
            path.mkdir(parents=True)
            (path / "model.safetensors").write_bytes(b"half")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("half")


def test_a_rerun_removes_what_killed_writes_left_in_the_run_directory(tmp_path):
    from postlab.run import RunConfig, run

    out = tmp_path / "r"
    _plant(out)
    run(RunConfig(preset="tiny", out_dir=str(out), progress=False, stop_after="fetch"))
    assert not leftovers(out)
    assert (out / "stages" / "fetch.json").is_file()


def test_a_run_directory_in_use_is_refused_and_left_alone(tmp_path):
    from postlab.errors import ConfigError
    from postlab.run import RunConfig, run

    out = tmp_path / "r"
    _plant(out)
    # another `postlab run` on this directory, still alive: it holds the directory's lock
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); "
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)", str(out)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        try:
            run(RunConfig(preset="tiny", out_dir=str(out), progress=False, stop_after="fetch"))
        except ConfigError as e:
            assert "another postlab run" in str(e)
        else:
            raise AssertionError("a second run in a directory in use was not refused")
        assert len(leftovers(out)) == len(LEFTOVERS)  # its writes in flight are untouched
    finally:
        holder.kill()
        holder.wait()
    run(RunConfig(preset="tiny", out_dir=str(out), progress=False, stop_after="fetch"))  # once it is gone
    assert not leftovers(out)
    assert sorted(p.name for p in out.iterdir()) == [  # the lock is the directory's own: no lock file in it
        "machine.json", "resolved_config.json", "run_config.yaml", "sft", "stages"]


def _sample_config(out: Path):
    from postlab.rollout import SamplingParams
    from postlab.train.sample import SampleConfig

    return SampleConfig(model="tiny", suite="spec", split="train", limit=4, k=1, batch_size=2, out=str(out),
                        dtype="fp32", progress=False, sampling=SamplingParams(temperature=1.0, max_new_tokens=8, seed=0))


def _resume_sample(out: Path, partial_text: str) -> str:
    """Continue ``out``'s sampling from a partial file holding ``partial_text``, as a rerun after a kill would."""
    from postlab.tasks.suite import load_suite
    from postlab.train.sample import fingerprint_path, sample, sample_fingerprint
    from postlab.utils.io import atomic_write_text

    partial = out.with_name(out.name + ".partial")
    partial.write_text(partial_text, encoding="utf-8")
    prompts = [(it.id, it.messages) for it in load_suite("spec", split="train", limit=4)]
    atomic_write_text(fingerprint_path(partial), json.dumps(sample_fingerprint(_sample_config(out), prompts)))
    return sample(_sample_config(out)).read_text(encoding="utf-8")


def test_a_sample_file_cut_mid_line_resumes_to_the_uninterrupted_file(tmp_path):
    """A kill while a batch is being written can leave the partial sample file ending in half a line; the
    resumed file must drop it with its batch, not keep it as a whole row."""
    from postlab.train.sample import sample

    straight = sample(_sample_config(tmp_path / "a.jsonl")).read_text(encoding="utf-8")
    rows = straight.split("\n")[:-1]
    assert len(rows) == 4  # two batches of two
    cut = "".join(r + "\n" for r in rows[:3]) + rows[3][: len(rows[3]) // 2]  # the second batch's last row cut short
    assert _resume_sample(tmp_path / "b.jsonl", cut) == straight


def test_a_row_holding_a_unicode_line_separator_counts_as_one_row(tmp_path):
    """json.dumps(ensure_ascii=False) writes U+2028 and U+0085 as they are; str.splitlines splits rows there."""
    from postlab.train.sample import sample

    straight = sample(_sample_config(tmp_path / "a.jsonl")).read_text(encoding="utf-8")
    rows = straight.split("\n")[:-1]
    first = json.loads(rows[0])
    first["completion"] = "one\u2028two\x85three"
    rows[0] = json.dumps(first, ensure_ascii=False)
    resumed = _resume_sample(tmp_path / "b.jsonl", rows[0] + "\n" + rows[1] + "\n")  # the first batch, written
    assert resumed.split("\n")[:-1] == [rows[0], *rows[1:]]
