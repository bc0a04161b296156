"""Which attention kernel supervised training lets PyTorch use. On an H200, SFT on batches that pad to a
new length every step ran 1.42x faster in real tokens/s with cuDNN's attention off (it builds a plan per
new shape: benchmarks/gpu.py --order sft_varlen, docs/benchmarks.md); full-length batches keep the default."""

import pytest
import torch

from postlab.models.load import load_model_and_tokenizer
from postlab.train.common import CheckpointConfig, OptimConfig
from postlab.train.loop import train_loop


@pytest.mark.parametrize("lengths,cudnn", [([9, 17, 12, 30, 5, 21, 14, 8], False), ([16] * 8, True)],
                         ids=["varying-lengths", "one-length"])
def test_training_on_varying_lengths_runs_attention_without_cudnn(tmp_path, monkeypatch, lengths, cudnn):
    seen = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(*a, **k):
        seen.append(torch.backends.cuda.cudnn_sdp_enabled())
        return real(*a, **k)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    model, tok = load_model_and_tokenizer("tiny")
    model.config._attn_implementation = "sdpa"
    g = torch.Generator().manual_seed(0)
    examples = [{"input_ids": torch.randint(3, 100, (n,), generator=g).tolist()} for n in lengths]
    train_loop(model=model, examples=examples, eval_examples=[], pad_id=tok.pad_token_id,
               optim=OptimConfig(lr=1e-4, batch_size=2, max_steps=2, bf16=False),
               ckpt=CheckpointConfig(progress=False, save_every=0), run_dir=tmp_path)
    assert seen and set(seen) == {cudnn}
    assert torch.backends.cuda.cudnn_sdp_enabled()  # restored afterwards
