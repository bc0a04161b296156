"""Issue 17 item 6: a fast `--help`, unknown model names refused at once, and failures that leave no debris."""

import os
import subprocess
import sys
import time

import pytest

from postlab.errors import ModelError

from conftest import conv, write_jsonl

# Runs the CLI in-process, then says whether torch was imported: the cost of a command's start-up.
PROBE = ("import sys; sys.argv = ['postlab', *sys.argv[1:]]\n"
         "from postlab.cli import main\n"
         "try:\n    main()\nexcept SystemExit:\n    pass\n"
         "print('TORCH_LOADED' if 'torch' in sys.modules else 'TORCH_NOT_LOADED')\n")


def probe(*args, env=None):
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def postlab(*args, env=None):
    return subprocess.run([sys.executable, "-m", "postlab", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def test_top_level_help_does_not_load_torch():
    r = probe("--help")
    assert "sft" in r.stdout and "leaderboard" in r.stdout and "Supervised fine-tuning" in r.stdout
    assert "TORCH_NOT_LOADED" in r.stdout, r.stderr[-2000:]


def test_command_help_is_built_once_then_served_without_torch(tmp_path):
    env = {"POSTLAB_HOME": str(tmp_path / "home")}
    first = probe("sft", "--help", env=env)
    assert "optim.max_steps" in first.stdout and "data.train_file" in first.stdout
    second = probe("sft", "--help", env=env)
    assert "TORCH_NOT_LOADED" in second.stdout, second.stderr[-2000:]
    assert second.stdout.replace("TORCH_NOT_LOADED", "") == first.stdout.replace("TORCH_LOADED", "")
    # another command's help is its own
    ppo = probe("ppo", "--help", env=env)
    assert "ppo_epochs" in ppo.stdout and "data.train_file" not in ppo.stdout


def test_help_of_a_command_without_config_does_not_load_torch():
    for args in (["report", "--help"], ["models", "--help"], ["suites", "--help"]):
        r = probe(*args)
        assert "TORCH_NOT_LOADED" in r.stdout, (args, r.stderr[-2000:])


def test_misspelled_model_fails_at_once_with_did_you_mean():
    from postlab.models.load import resolve_model

    start = time.monotonic()
    with pytest.raises(ModelError) as e:
        resolve_model("smollm2-135m")
    assert time.monotonic() - start < 5
    msg = str(e.value)
    assert "did you mean 'smollm2-135m-instruct'" in msg and "tiny" in msg and "\n" not in msg
    assert "POSTLAB_ALLOW_HUB=1" in msg
    with pytest.raises(ModelError, match="did you mean 'smollm2-135m-instruct'"):
        resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct")  # a hub id that is not cached here


def test_misspelled_model_on_the_command_line_is_one_line_and_leaves_no_run_dir(chat_file, tmp_path):
    start = time.monotonic()
    r = postlab("sft", "model=smollm2-135m", f"data.train_file={chat_file}", f"out_dir={tmp_path / 'o'}")
    assert time.monotonic() - start < 40  # ~50 s of hub retries before
    assert r.returncode == 2 and "Traceback" not in r.stderr
    said = [line for line in r.stderr.splitlines() if not line.startswith("warning: this machine is busy")]
    assert len(said) == 1 and "did you mean 'smollm2-135m-instruct'" in said[0], r.stderr
    assert not (tmp_path / "o").exists()
    r = postlab("models", "fetch", "smollm2-135m")
    assert r.returncode == 2 and "did you mean" in r.stderr and "Traceback" not in r.stderr


def _fake_hub_cache(root, repo_id, files):
    """The Hugging Face cache layout: models--org--name/{refs/main, snapshots/<commit>/...}."""
    entry = root / ("models--" + repo_id.replace("/", "--"))
    commit = "0" * 40
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(commit)
    snap = entry / "snapshots" / commit
    snap.mkdir(parents=True)
    for name, text in files.items():
        (snap / name).write_text(text)
    return snap


def test_cached_hub_model_resolves_to_its_snapshot_and_downloads_need_an_opt_in(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from postlab.models.load import resolve_model

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    snap = _fake_hub_cache(tmp_path, "org/cached-model", {"config.json": "{}"})
    monkeypatch.delenv("POSTLAB_ALLOW_HUB", raising=False)
    assert resolve_model("org/cached-model") == str(snap)
    with pytest.raises(ModelError, match="not a built-in name, a local directory or a model in the Hugging Face cache"):
        resolve_model("org/other-model")
    monkeypatch.setenv("POSTLAB_ALLOW_HUB", "1")
    assert resolve_model("org/other-model") == "org/other-model"  # left to the hub
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE"):
        resolve_model("org/other-model")


@pytest.mark.parametrize("command", ["sft", "rm", "dpo"])
def test_bad_data_leaves_no_run_dir(command, tmp_path):
    if command == "sft":
        bad = write_jsonl(tmp_path / "bad.jsonl", [conv("a", "b"), '{"messages": [{"role": "user", "content": "x"}]}'])
        says = "bad.jsonl:2"
    else:
        bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"}, "{not json"])
        says = "bad.jsonl:2"
    r = postlab(command, "model=tiny", f"data.train_file={bad}", f"out_dir={tmp_path / 'o'}")
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "o").exists()


def test_sample_refuses_a_prompt_longer_than_the_context_before_writing(tmp_path):
    rows = [{"id": "short", "messages": [{"role": "user", "content": "hi"}]},
            {"id": "huge", "messages": [{"role": "user", "content": "x" * 2100}]}]  # tiny: 2048 positions, byte tokens
    prompts = write_jsonl(tmp_path / "p.jsonl", rows)
    out = tmp_path / "sub" / "c.jsonl"
    r = postlab("sample", "model=tiny", f"prompts={prompts}", f"out={out}", "k=1", "sampling.max_new_tokens=2",
                "dtype=fp32", "progress=false")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "'huge'" in r.stderr and "2048" in r.stderr and "p.jsonl" in r.stderr
    assert not (tmp_path / "sub").exists()


def test_sample_counts_the_new_tokens_against_the_context(tmp_path):
    from postlab.config import load_config
    from postlab.errors import DataError
    from postlab.train.sample import SampleConfig, sample

    prompts = write_jsonl(tmp_path / "p.jsonl", [{"id": "p0", "messages": [{"role": "user", "content": "x" * 2000}]}])
    cfg = load_config(SampleConfig, None, ["model=tiny", f"prompts={prompts}", f"out={tmp_path / 'c.jsonl'}", "k=1",
                                           "sampling.max_new_tokens=100", "dtype=fp32", "progress=false"])
    with pytest.raises(DataError, match="sampling.max_new_tokens"):
        sample(cfg)
    assert not list(tmp_path.glob("c.jsonl*"))
