"""Reruns and resumable outputs never mix or misreport two runs (issue 17, "wrong results without a
word"): a sample file is continued only by the settings that began it, a refused training rerun leaves the
run directory as it was and names the key that resumes, duplicate responses are an error, results files
are valid JSON, and RL says when a resume finds nothing to resume."""

import json
import re
import shutil

import pytest

from postlab.config import load_config
from postlab.errors import ConfigError, DataError
from postlab.evals.generate import read_responses
from postlab.rollout import TorchEngine
from postlab.tasks.suite import make_item, write_suite
from postlab.train.sample import SampleConfig, fingerprint_path, sample
from postlab.utils.journal import model_identity as _model_identity

from conftest import conv, write_jsonl

PROMPTS = [{"id": f"p{i}", "messages": [{"role": "user", "content": f"say {i}"}]} for i in range(3)]


def _sample_cfg(tmp_path, out, *extra):
    prompts = tmp_path / "p.jsonl"
    if not prompts.exists():
        write_jsonl(prompts, PROMPTS)
    return load_config(SampleConfig, None, ["model=tiny", f"prompts={prompts}", "k=4", "batch_size=4", "dtype=fp32",
                                            "sampling.max_new_tokens=8", "progress=false", f"out={out}", *extra])


def _interrupted_sample(tmp_path, monkeypatch, out):
    """Sample until the second batch, then Ctrl-C: ``out.partial`` holds the first batch."""
    real, calls = TorchEngine.generate, {"n": 0}

    def generate(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(TorchEngine, "generate", generate)
    with pytest.raises(KeyboardInterrupt):
        sample(_sample_cfg(tmp_path, out))
    monkeypatch.setattr(TorchEngine, "generate", real)
    return tmp_path / (out.name + ".partial")


def test_sample_continues_a_partial_file_only_with_the_settings_that_began_it(tmp_path, monkeypatch):
    whole = sample(_sample_cfg(tmp_path, tmp_path / "whole.jsonl"))
    out = tmp_path / "c.jsonl"
    partial = _interrupted_sample(tmp_path, monkeypatch, out)
    first_batch = partial.read_text()
    assert len(first_batch.splitlines()) == 4 and fingerprint_path(partial).is_file()
    for extra, says in ((["k=2"], "k: 4 then, 2 now"),
                        (["sampling.temperature=0.5"], "sampling.temperature: 0.7 then, 0.5 now"),
                        (["batch_size=2"], "batch_size: 4 then, 2 now"),
                        (["model=some/other-model"], "model: 'tiny' then, 'some/other-model' now")):
        with pytest.raises(ConfigError, match=says) as e:
            sample(_sample_cfg(tmp_path, out, *extra))
        assert "delete" in str(e.value) and "to start over" in str(e.value)
    write_jsonl(tmp_path / "p.jsonl", [*PROMPTS[:2], {"id": "p2", "messages": [{"role": "user", "content": "other"}]}])
    with pytest.raises(ConfigError, match="prompts: '3 prompts, sha256 [0-9a-f]+' then"):
        sample(_sample_cfg(tmp_path, out))
    assert partial.read_text() == first_batch  # every refusal left the partial file alone
    write_jsonl(tmp_path / "p.jsonl", PROMPTS)
    done = sample(_sample_cfg(tmp_path, out))  # the settings that began it: continued, as if never interrupted
    assert done.read_text() == whole.read_text()
    assert not partial.exists() and not fingerprint_path(partial).exists()


def test_sample_refuses_a_partial_file_with_no_record_of_what_wrote_it(tmp_path):
    out = tmp_path / "c.jsonl"
    partial = tmp_path / "c.jsonl.partial"
    partial.write_text(json.dumps({"prompt_id": "p0", "sample_index": 0, "completion": "x"}) + "\n")
    with pytest.raises(ConfigError, match="no record of the model, k, sampling and prompts") as e:
        sample(_sample_cfg(tmp_path, out))
    assert f"delete {partial}" in str(e.value)


def test_a_model_directory_is_identified_by_its_content_not_its_path(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    (a / "config.json").write_text("{}")
    (a / "model.safetensors").write_bytes(b"weights v1")
    shutil.copytree(a, tmp_path / "moved")
    assert _model_identity(str(a)) == _model_identity(str(tmp_path / "moved")) != _model_identity("tiny")
    (a / "model.safetensors").write_bytes(b"weights v2")  # retrained in place
    assert _model_identity(str(a)) != _model_identity(str(tmp_path / "moved"))


# --- a refused training rerun writes nothing and names checkpoint.resume ---


def _recipe_configs(tmp_path):
    from postlab.train import dpo, grpo, ppo, pretrain, rm, sft

    chat = write_jsonl(tmp_path / "chat.jsonl", [conv("Hi?", "Hello.")] * 4)
    prefs = write_jsonl(tmp_path / "prefs.jsonl", [{"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go."}] * 4)
    text = tmp_path / "corpus.txt"
    text.write_text("some text " * 50)
    return {
        "sft": (sft, sft.SFTConfig, [f"data.train_file={chat}"]),
        "rm": (rm, rm.RMConfig, [f"data.train_file={prefs}"]),
        "dpo": (dpo, dpo.DPOConfig, [f"data.train_file={prefs}"]),
        "ppo": (ppo, ppo.PPOConfig, ["reward.source=gold"]),
        "grpo": (grpo, grpo.GRPOConfig, ["reward.source=gold"]),
        "pretrain": (pretrain, pretrain.PretrainConfig, [f"data.files=[{text}]"]),
    }


@pytest.mark.parametrize("recipe", ["sft", "rm", "dpo", "ppo", "grpo", "pretrain"])
def test_a_refused_rerun_leaves_the_run_directory_as_it_was(tmp_path, recipe):
    module, cls, extra = _recipe_configs(tmp_path)[recipe]
    run = tmp_path / "run"
    (run / "checkpoints" / "step-0000003").mkdir(parents=True)
    (run / "config.yaml").write_text("lr: the first run's\n")
    cfg = load_config(cls, None, ["model=tiny", f"out_dir={run}", "checkpoint.progress=false", *extra])
    with pytest.raises(ConfigError, match=r"already has checkpoints \(step-0000003\); rerun with checkpoint\.resume=true"):
        module.train(cfg)
    assert (run / "config.yaml").read_text() == "lr: the first run's\n"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.yaml"]


# --- evals and results files ---


def test_duplicate_responses_are_an_error_naming_the_line(tmp_path):
    from postlab.tasks.suite import load_suite

    items = load_suite("spec", split="test", limit=2)
    rows = [{"id": items[0].id, "response": "first"}, {"id": items[1].id, "response": "x"},
            {"id": items[0].id, "response": "second"}]
    says = re.escape(f"r.jsonl:3: a second response for id '{items[0].id}' (the first is on line 1); keep one response per id")
    with pytest.raises(DataError, match=says):
        read_responses(write_jsonl(tmp_path / "r.jsonl", rows), items)
    rows = [{"prompt": items[0].prompt, "response": "a"}, {"prompt": items[0].prompt, "response": "b"}]
    with pytest.raises(DataError, match=r"q.jsonl:2: a second response for prompt .*keep one response per prompt"):
        read_responses(write_jsonl(tmp_path / "q.jsonl", rows), items)


def test_rm_results_are_valid_json_when_no_pair_has_a_gold_margin(tmp_path):
    from postlab.train.rm import RMConfig, train

    pairs = [{"prompt": f"Say {i}.", "chosen": "apple zebra", "rejected": "stone", "prompt_id": str(i)} for i in range(8)]
    cfg = RMConfig(model="tiny", out_dir=str(tmp_path / "rm"),
                   data={"train_file": str(write_jsonl(tmp_path / "t.jsonl", pairs)),
                         "eval_file": str(write_jsonl(tmp_path / "e.jsonl", pairs[:4]))},
                   optim={"max_steps": 1, "batch_size": 4, "bf16": False}, checkpoint={"progress": False})
    res = train(cfg)
    saved = json.loads((tmp_path / "rm" / "rm_results.json").read_text(),
                       parse_constant=lambda c: pytest.fail(f"rm_results.json holds {c}, which is not JSON"))
    assert saved["accuracy_vs_gold"] is None and saved["gold_clear_pairs"] == 0 and res == saved


def test_rl_says_it_starts_fresh_when_resume_finds_no_checkpoint(tmp_path, capsys):
    from postlab.train.grpo import GRPOConfig, train

    items = [make_item(f"p{i}", [{"role": "user", "content": f"Write {i}."}], "synthetic", "train",
                       [("keywords:existence", {"keywords": ["a"]})]) for i in range(4)]
    write_suite(items, tmp_path / "suite.jsonl")
    args = dict(model="tiny", out_dir=str(tmp_path / "run"), suite=str(tmp_path / "suite.jsonl"), k=2, prompts_per_step=2,
                reward={"source": "gold"}, sampling={"max_new_tokens": 4, "seed": 0}, optim={"lr": 1e-3, "bf16": False})
    train(GRPOConfig(steps=1, checkpoint={"progress": False, "resume": True}, **args))
    err = capsys.readouterr().err
    assert f"no checkpoint in {tmp_path / 'run' / 'checkpoints'} to resume from; starting fresh at step 0" in err
    train(GRPOConfig(steps=2, checkpoint={"progress": False, "resume": True}, **args))
    err = capsys.readouterr().err
    assert "resuming from step-0000001" in err and "starting fresh" not in err
