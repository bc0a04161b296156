"""Issue 17 item 7: one vocabulary across commands, and TRL's names accepted as aliases (postlab.config.ALIASES)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from postlab.config import ALIASES, describe_aliases, load_config
from postlab.errors import ConfigError
from postlab.train.ppo import PPOConfig
from postlab.train.sample import SampleConfig
from postlab.train.sft import SFTConfig

from conftest import write_jsonl

ROOT = Path(__file__).resolve().parents[1]


def postlab(*args):
    return subprocess.run([sys.executable, "-m", "postlab", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ})


def test_trl_names_set_the_canonical_fields(chat_file):
    cfg = load_config(SFTConfig, None, [f"data.train_file={chat_file}", "learning_rate=1e-4", "output_dir=runs/x",
                                        "gradient_accumulation_steps=4", "use_peft=true", "num_train_epochs=2",
                                        "per_device_train_batch_size=3", "max_steps=7", "max_length=256",
                                        "lora_r=4", "model_name_or_path=tiny", "save_total_limit=2"])
    assert cfg.optim.lr == 1e-4 and cfg.out_dir == "runs/x" and cfg.optim.grad_accum == 4 and cfg.lora.enabled
    assert cfg.optim.epochs == 2 and cfg.optim.batch_size == 3 and cfg.optim.max_steps == 7
    assert cfg.data.max_seq_len == 256 and cfg.lora.r == 4 and cfg.model == "tiny" and cfg.checkpoint.keep_last == 2


def test_one_vocabulary_for_output_steps_and_progress(chat_file):
    sft = load_config(SFTConfig, None, [f"data.train_file={chat_file}", "out=runs/a", "steps=5", "progress=false"])
    assert sft.out_dir == "runs/a" and sft.optim.max_steps == 5 and sft.checkpoint.progress is False
    sample = load_config(SampleConfig, None, ["suite=spec", "out_dir=c.jsonl", "checkpoint.progress=false"])
    assert sample.out == "c.jsonl" and sample.progress is False
    assert load_config(SampleConfig, None, ["suite=spec", "output_dir=d.jsonl"]).out == "d.jsonl"
    ppo = load_config(PPOConfig, None, ["max_steps=3", "learning_rate=1e-6", "output_dir=runs/p", "progress=false"])
    assert ppo.steps == 3 and ppo.optim.lr == 1e-6 and ppo.out_dir == "runs/p" and ppo.checkpoint.progress is False


def test_alias_and_canonical_key_together_is_an_error(chat_file):
    with pytest.raises(ConfigError, match=r"learning_rate.*optim\.lr"):
        load_config(SFTConfig, None, [f"data.train_file={chat_file}", "learning_rate=1e-4", "optim.lr=1e-3"])
    with pytest.raises(ConfigError, match=r"out_dir"):
        load_config(SFTConfig, None, [f"data.train_file={chat_file}", "output_dir=a", "out=b"])


def test_aliases_in_yaml_and_overrides_on_top(chat_file, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"train_file": str(chat_file)}, "learning_rate": 1e-4, "output_dir": "r"}))
    cfg = load_config(SFTConfig, path, ["optim.lr=3e-4"])  # the command line wins over the file, as for any key
    assert cfg.optim.lr == 3e-4 and cfg.out_dir == "r"


def test_a_canonical_key_is_never_rewritten():
    # `seed` is sampling.seed in sample, but compare has a top-level `seed` of its own
    from postlab.evals.compare import CompareConfig

    assert load_config(SampleConfig, None, ["suite=spec", "out=c.jsonl", "seed=5"]).sampling.seed == 5
    cfg = load_config(CompareConfig, None, ["a=tiny", "b=tiny", "suite=spec", "seed=5"])
    assert cfg.seed == 5


def test_unknown_alias_target_is_still_an_unknown_key():
    with pytest.raises(ConfigError, match="use_peft: unknown key"):
        load_config(SampleConfig, None, ["suite=spec", "out=c.jsonl", "use_peft=true"])


def test_every_alias_means_something_somewhere_and_is_documented():
    from postlab.evals.compare import CompareConfig
    from postlab.evals.elo import LeaderboardConfig
    from postlab.evals.harness import EvalConfig
    from postlab.train.dpo import DPOConfig
    from postlab.train.grpo import GRPOConfig
    from postlab.train.pretrain import PretrainConfig
    from postlab.train.rm import RMConfig

    configs = [SFTConfig, PretrainConfig, SampleConfig, PPOConfig, GRPOConfig, DPOConfig, RMConfig, EvalConfig,
               CompareConfig, LeaderboardConfig]
    used = {line.split(" ")[0] for cls in configs for line in describe_aliases(cls)}
    assert used == set(ALIASES)
    docs = (ROOT / "docs" / "cli.md").read_text()
    for alias, targets in ALIASES.items():
        assert f"`{alias}`" in docs, alias
        for target in targets:
            assert f"`{target}`" in docs, (alias, target)


def test_help_lists_the_aliases_of_the_command():
    r = postlab("sft", "--help")
    assert r.returncode == 0
    assert "learning_rate = optim.lr" in r.stdout and "output_dir = out_dir" in r.stdout


def test_ppo_defaults_work_with_few_prompts_per_step():
    cfg = load_config(PPOConfig, None, ["prompts_per_step=4"])
    assert cfg.minibatch_size == 4
    assert load_config(PPOConfig, None, []).minibatch_size == 8
    with pytest.raises(ConfigError, match="minibatch_size"):
        load_config(PPOConfig, None, ["prompts_per_step=4", "minibatch_size=6"])


def test_run_help_shows_the_presets_values():
    from postlab.run import PRESETS

    r = postlab("run", "--help")
    assert r.returncode == 0
    default_section = r.stdout.split("With --preset")[0]
    knob_lines = [line for line in default_section.splitlines() if line.strip().startswith("rl_steps ")]
    assert len(knob_lines) == 1, r.stdout
    line = knob_lines[0]
    assert "default None" not in line
    assert f"{PRESETS['default'].rl_steps!r} in preset default" in line and f"{PRESETS['tiny'].rl_steps!r} in preset tiny" in line
    from postlab.run import Knobs

    lines = {line.strip().split(" ")[0]: line for line in default_section.splitlines() if line.startswith("    ")}
    for knob in Knobs.model_fields:
        assert "in preset default" in lines[knob] and "in preset tiny" in lines[knob], lines[knob]


@pytest.mark.parametrize("module, presets", [("reasoning", ("reasoning", "reasoning-tiny")),
                                             ("agent", ("agent", "agent-tiny"))])
def test_run_help_shows_the_preset_modules_knobs(module, presets):
    """The reasoning and agent presets are modules of their own (postlab/presets/) with knobs of their own:
    `postlab run --help` lists those too, each with its value in each of the module's presets."""
    import importlib

    Knobs = importlib.import_module(f"postlab.presets.{module}").Knobs
    r = postlab("run", "--help")
    assert r.returncode == 0
    section = next(part for part in r.stdout.split("With --preset")[1:] if part.lstrip().startswith(presets[0]))
    lines = {line.strip().split(" ")[0]: line for line in section.splitlines() if line.startswith("    ")}
    for knob in Knobs.model_fields:
        assert all(f"in preset {p}" in lines[knob] for p in presets), lines.get(knob, section)


def test_sft_takes_out_and_trl_names_on_the_command_line(chat_file, tmp_path):
    r = postlab("sft", "--out", tmp_path / "run", "model=tiny", f"data.train_file={chat_file}", "max_steps=2",
                "learning_rate=1e-3", "progress=false")
    assert r.returncode == 0, r.stderr[-2000:]
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["optim"]["max_steps"] == 2 and saved["optim"]["lr"] == 1e-3 and saved["checkpoint"]["progress"] is False


def test_sample_takes_out_as_an_option(tmp_path):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"id": "p0", "messages": [{"role": "user", "content": "hi"}]}])
    r = postlab("sample", "--out", tmp_path / "c.jsonl", "model=tiny", f"prompts={prompts}", "k=1",
                "sampling.max_new_tokens=2", "dtype=fp32", "progress=false")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "c.jsonl").is_file()


def test_leaderboard_takes_overrides_like_every_command():
    r = postlab("leaderboard", "tiny", "tiny", "bogus_knob=1")
    assert r.returncode == 2 and "bogus_knob: unknown key" in r.stderr and "Traceback" not in r.stderr, r.stderr[-1500:]
