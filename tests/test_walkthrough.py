"""Issue 17's target, kept as a test: a new user's walkthrough of the command line on the tiny model.

Every README command (adapted to `model=tiny` / `--preset tiny`), each mistyped command and option, each bad
file the issue names, a rerun of `postlab run` with a changed knob and an interrupted `postlab sample` — each
run as a user runs it (a subprocess), each one's stderr free of tracebacks, each refusal a message that says
what is wrong and what to do. One `postlab run --preset tiny` (started first, in the background, while the
error cases run) provides the models and data the later steps reuse.
"""

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from postlab import __version__
from postlab.run import STAGES

from conftest import conv, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _argv(args) -> list[str]:
    return [sys.executable, "-m", "postlab", *map(str, args)]


def postlab(*args, cwd=None):
    r = subprocess.run(_argv(args), capture_output=True, text=True, cwd=cwd or ROOT, env=ENV, timeout=300)
    assert "Traceback" not in r.stderr, f"postlab {' '.join(map(str, args))}\n{r.stderr[-3000:]}"
    return r


def together(*commands, workers=3):
    """Run independent commands side by side (each a tuple of arguments, or a callable); results in order."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(c) if callable(c) else pool.submit(postlab, *c) for c in commands]
        return [f.result() for f in futures]


def ok(r):
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def refused(r, *says, one_line=True):
    """A refusal: exit 2, the message says each of `says`; `one_line`: nothing else on stderr."""
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    for s in says:
        assert s in r.stderr, (s, r.stderr[-2000:])
    if one_line:
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-2000:]
    return r


class Walk:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.R = tmp / "R"
        self.run_err = tmp / "run.stderr"
        with open(self.run_err, "w") as err:
            self.run = subprocess.Popen(_argv(["run", "--preset", "tiny", "--out", self.R, "progress=false"]),
                                        stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT, env=ENV)
        self.chat = write_jsonl(tmp / "chat.jsonl", [conv(f"Question {i}?", f"Answer {i} is {i * 7}.") for i in range(8)])

    def finished_run(self) -> str:
        rc = self.run.wait(timeout=300)
        err = self.run_err.read_text()
        assert rc == 0 and "Traceback" not in err, err[-3000:]
        return err


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    w = Walk(tmp_path_factory.mktemp("walk"))
    yield w
    if w.run.poll() is None:
        w.run.kill()
        w.run.wait()


# --- 1. mistyped commands and options: exit 2, one line, a hint ---


def test_mistyped_commands_are_one_line_with_a_hint(walk):
    chat, tmp = walk.chat, walk.tmp
    stf, learning_rate, lrr, tinny, spek, version, helped = together(
        ("stf",),
        ("sft", "--learning_rate", "1e-4"),
        ("sft", "model=tiny", f"data.train_file={chat}", f"out_dir={tmp / 'lrr'}", "optim.lrr=1e-4"),
        ("sft", "model=tinny", f"data.train_file={chat}", f"out_dir={tmp / 'tinny'}"),
        ("eval", "--model", "tiny", "--suite", "spek", "--out", tmp / "spek.json"),
        ("--version",),
        ("--help",))
    refused(stf, "No such command 'stf'", "Did you mean 'sft'?")
    refused(learning_rate, "No such option: --learning_rate", "learning_rate=VALUE", "'postlab sft --help'")
    # a config error is a header and one line per bad key, each with its hint
    refused(lrr, "optim.lrr: unknown key (did you mean 'optim.lr'?)", one_line=False)
    assert len(lrr.stderr.strip().splitlines()) == 2
    refused(tinny, "unknown model 'tinny'", "did you mean 'tiny'?", "built-in names: smollm2-135m-instruct, tiny")
    refused(spek, "spek: not a built-in suite (spec, arith, countdown, wordprob, reasoning)")
    for run_dir in ("lrr", "tinny"):
        assert not (tmp / run_dir).exists()  # a refused command leaves nothing behind
    assert not (tmp / "spek.json").exists()
    assert ok(version).stdout.strip() == f"postlab {__version__}"
    assert "--version" in ok(helped).stdout and "sft" in helped.stdout


# --- 2. bad files: file:line and what is wrong, nothing written ---


def test_bad_files_name_the_line_and_what_is_wrong(walk):
    tmp = walk.tmp
    good = conv("a", "b")
    bad_json = write_jsonl(tmp / "bad_json.jsonl", [good, '{"messages": [{"role": "user", "content": "x"}'])
    bad_shape = write_jsonl(tmp / "bad_shape.jsonl", [good, {"text": "hello"}])
    one_sided = write_jsonl(tmp / "one_sided.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"},
                                                      {"prompt": "p", "chosen": "a"}])
    long_prompts = write_jsonl(tmp / "long_prompts.jsonl", [  # tiny: 2048 positions, byte tokens
        {"id": "short", "messages": [{"role": "user", "content": "hi"}]},
        {"id": "huge", "messages": [{"role": "user", "content": "x" * 2100}]}])
    suite = write_jsonl(tmp / "items.jsonl", [{"key": 7, "prompt": "Say hi.", "instruction_id_list": ["punctuation:no_comma"],
                                               "kwargs": [{}]},
                                              {"key": 8, "prompt": "Say bye.", "instruction_id_list": ["punctuation:no_comma"],
                                               "kwargs": [{}]}])
    dup = write_jsonl(tmp / "dup.jsonl", [{"id": "7", "response": "hi"}, {"id": "8", "response": "bye"},
                                          {"id": "7", "response": "hello"}])
    o = tmp / "bad_out"
    sft_json, sft_shape, rm_side, sample_long, eval_dup = together(
        ("sft", "model=tiny", f"data.train_file={bad_json}", f"out_dir={o / 'sft1'}"),
        ("sft", "model=tiny", f"data.train_file={bad_shape}", f"out_dir={o / 'sft2'}"),
        ("rm", "model=tiny", f"data.train_file={one_sided}", f"out_dir={o / 'rm'}"),
        ("sample", "model=tiny", f"prompts={long_prompts}", f"out={o / 'c.jsonl'}", "k=1", "sampling.max_new_tokens=2",
         "progress=false"),
        ("eval", "--suite", suite, "--split", "all", "--responses", dup, "--out", o / "e.json"))
    refused(sft_json, f"{bad_json}:2: invalid JSON")
    refused(sft_shape, f"{bad_shape}:2: a 'text' row is raw language-modelling data", "SFT needs 'messages'")
    refused(rm_side, f"{one_sided}:2: missing 'rejected' (expected prompt, chosen, rejected)")
    refused(sample_long, f"{long_prompts}: prompt 'huge' is 2119 tokens, longer than the model's context of 2048",
            "shorten it or leave it out")
    refused(eval_dup, f"{dup}:3: a second response for id '7' (the first is on line 1); keep one response per id")
    assert not o.exists()  # no run directory, no .partial, no results file


# --- 3. an interrupted sample: resumed by the same command, refused with other settings ---


def test_an_interrupted_sample_resumes_and_refuses_other_settings(walk):
    tmp = walk.tmp / "sample"
    tmp.mkdir()
    prompts = write_jsonl(tmp / "p.jsonl", [{"id": f"p{i}", "messages": [{"role": "user", "content": f"Count to {i}."}]}
                                            for i in range(24)])
    args = ["sample", "model=tiny", f"prompts={prompts}", "k=2", "batch_size=2", "sampling.max_new_tokens=32",
            "seed=0", "progress=false"]
    out, partial = tmp / "c.jsonl", tmp / "c.jsonl.partial"

    def interrupted():
        p = subprocess.Popen(_argv([*args, f"out={out}"]), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             cwd=ROOT, env=ENV)
        deadline = time.monotonic() + 120
        while not (partial.exists() and partial.stat().st_size > 0) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert "Traceback" not in p.stderr.read().decode()
        return p

    killed = interrupted()
    assert killed.returncode == -signal.SIGKILL, "the sample finished before it could be interrupted"
    assert partial.exists() and not out.exists()
    written = partial.read_text()
    # another model (k, sampling and prompts are fingerprinted alike: tests/test_rerun_guards.py)
    refused(postlab(*args, f"out={out}", "k=3", "model=smollm2-135m-instruct"),
            f"{partial}: was written with other settings", "model: 'tiny' then, 'smollm2-135m-instruct' now",
            "k: 2 then, 3 now", f"delete {partial}", "to start over", "or rerun with the settings it was written with")
    assert partial.read_text() == written  # the refusals left it alone
    resumed = ok(postlab(*args, f"out={out}"))
    assert "resuming after" in resumed.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted((r["prompt_id"], r["sample_index"]) for r in rows) == sorted((f"p{i}", j) for i in range(24) for j in range(2))
    kept = written.split("\n")[:-1]  # lines the killed run finished
    assert out.read_text().splitlines()[:len(kept) // 2 * 2] == kept[:len(kept) // 2 * 2]  # whole batches kept as written
    assert not partial.exists()


# --- 4. the README's commands, on the tiny model, reusing the run's outputs ---
# (PPO, best-of-n, the leaderboard and the report page ran inside `postlab run` above.)


def test_readme_commands_run_on_the_tiny_model(walk):
    walk.finished_run()
    R, tmp = walk.R, walk.tmp / "readme"
    tmp.mkdir()
    sft_model, rm_model = R / "sft" / "model", R / "rm" / "model"
    small = ["progress=false"]

    def preferences():  # sample -> label, as in the README's "Preferences" block
        ok(postlab("sample", "model=tiny", "suite=spec", "split=train", "limit=3", "k=2", f"out={tmp / 'cands.jsonl'}",
                   "sampling.temperature=1.0", "sampling.max_new_tokens=8", *small))
        return ok(postlab("label", "--candidates", tmp / "cands.jsonl", "--rater", "simulated", "--out", tmp / "prefs.jsonl"))

    def evals():  # a model's answers, then the same answers graded as a response file, then compared
        ok(postlab("eval", "--model", sft_model, "--suite", "spec", "--limit", "3", "--out", tmp / "e.json",
                   "sampling.max_new_tokens=8", *small))
        rows = [json.loads(x) for x in (tmp / "e.samples.jsonl").read_text().splitlines()]
        write_jsonl(tmp / "a.jsonl", [{"id": row["id"], "response": row["response"]} for row in rows])
        write_jsonl(tmp / "b.jsonl", [{"id": row["id"], "response": "I can't help with that."} for row in rows])
        graded = ok(postlab("eval", "--suite", "spec", "--limit", "3", "--responses", tmp / "a.jsonl", "--out",
                            tmp / "e_resp.json"))
        return graded, ok(postlab("compare", "--a", tmp / "a.jsonl", "--b", tmp / "b.jsonl", "--suite", "spec",
                                  "--limit", "3", "--rater", "gold", "--out", tmp / "cmp.json"))

    listing = [("--help",), ("sft", "--help"), ("models", "list"), ("suites", "list")]
    results = together(
        *listing,
        preferences,
        evals,
        ("sft", "model=tiny", f"data.train_file={R / 'data' / 'sft.jsonl'}", "lora.enabled=true", "optim.max_steps=2",
         f"out_dir={tmp / 'sft'}", *small),
        ("rm", "model=tiny", f"data.train_file={R / 'data' / 'prefs.jsonl'}", f"out_dir={tmp / 'rm'}",
         "optim.max_steps=2", *small),
        ("dpo", f"model={sft_model}", f"data.train_file={R / 'data' / 'prefs.jsonl'}", "loss=ipo", "optim.max_steps=2",
         f"out_dir={tmp / 'dpo'}", *small),
        ("grpo", "model=tiny", "reward.source=gold", "advantage=rloo", "k=2", "prompts_per_step=2", "steps=1",
         "sampling.max_new_tokens=8", f"out_dir={tmp / 'grpo'}", *small),
        ("bon", "--policy", sft_model, "--rm", rm_model, "--suite", "spec", "--n", "1,2", "--out", tmp / "bon",
         "limit=2", "sampling.max_new_tokens=8", *small),
        ("report", R))
    for r in results[:len(listing)] + results[len(listing) + 2:]:
        ok(r)
    _, cmp = results[len(listing) + 1]
    assert len((tmp / "prefs.jsonl").read_text().splitlines()) >= 1
    assert json.loads((tmp / "rm" / "rm_results.json").read_text())["accuracy_vs_labels"] is not None
    for model in ("sft", "rm", "dpo", "grpo"):
        assert (tmp / model / "model" / "config.json").is_file(), model
    assert json.loads((tmp / "e.json").read_text())["n"] == 3
    # a model's answers graded as a response file score what the model scored
    assert json.loads((tmp / "e_resp.json").read_text())["overall"] == json.loads((tmp / "e.json").read_text())["overall"]
    assert "win rate of A over B (gold rater" in cmp.stdout and "length-controlled win rate" in cmp.stdout
    assert (tmp / "bon").is_dir() and (R / "report.html").is_file()


# --- 5. rerun the recipe with a changed knob: the stages it affects rerun, the summary is theirs ---


def test_rerun_with_another_algorithm_reports_what_it_ran(walk):
    walk.finished_run()
    R = walk.R
    before = json.loads((R / "summary.json").read_text())
    assert before["algo"] == "ppo" and before["stages"]["rl"]["train"]["algo"] == "ppo"
    started = time.time()
    r = ok(postlab("run", "--preset", "tiny", "--out", R, "progress=false", "algo=grpo", "rl_steps=2"))
    assert "redoing rl: algo, rl_steps changed" in r.stderr
    assert r.stderr.count("skipping") == STAGES.index("rl")  # everything before RL is kept
    s = json.loads((R / "summary.json").read_text())
    assert s["algo"] == "grpo" and s["stages"]["rl"]["train"]["algo"] == "grpo" and s["stages"]["rl"]["train"]["steps"] == 2
    # every RL number in the summary was produced by this rerun
    assert (R / "eval" / "rl.json").stat().st_mtime >= started
    assert s["stages"]["rl"]["gold"]["overall"] == json.loads((R / "eval" / "rl.json").read_text())["overall"]
    steps = [json.loads(x)["step"] for x in (R / "rl" / "metrics.jsonl").read_text().splitlines() if '"reward"' in x]
    assert steps == [1, 2]
    assert {row["model"] for row in s["stages"]["leaderboard"]["rows"]} == {"base", "sft", "grpo"}
    assert s["stages"]["sft"] == before["stages"]["sft"] and s["stages"]["rm"] == before["stages"]["rm"]
    assert json.loads((R / "resolved_config.json").read_text())["algo"] == "grpo"
