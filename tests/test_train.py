import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM

from postlab.algos.lm import causal_lm_loss
from postlab.config import load_config
from postlab.errors import PostlabError
from postlab.train import pretrain, sft
from postlab.train.loop import TrainingInterrupted, lr_factor


@pytest.fixture(autouse=True)
def fp32_for_auto(monkeypatch):
    """optim.bf16 defaults to auto; these tests compare numbers, so auto is pinned, not this machine's pick."""
    monkeypatch.setenv("POSTLAB_DTYPE", "fp32")


def sft_cfg(chat_file, out, *extra):
    return load_config(sft.SFTConfig, None, [
        "model=tiny", f"out_dir={out}", f"data.train_file={chat_file}", "data.eval_fraction=0",
        "optim.lr=3e-3", "optim.batch_size=4", "checkpoint.progress=false", *extra])


def test_lr_schedule_hand_computed():
    kw = dict(warmup=2, total=10, schedule="cosine", min_ratio=0.0)
    assert lr_factor(0, **kw) == pytest.approx(0.5)
    assert lr_factor(1, **kw) == pytest.approx(1.0)
    assert lr_factor(2, **kw) == pytest.approx(1.0)  # cosine starts at its peak
    assert lr_factor(6, **kw) == pytest.approx(0.5)  # halfway through the decay
    assert lr_factor(10, **kw) == pytest.approx(0.0)
    assert lr_factor(10, **{**kw, "min_ratio": 0.1}) == pytest.approx(0.1)
    assert lr_factor(5, **{**kw, "schedule": "constant"}) == 1.0


def test_causal_lm_loss_hand_computed():
    # Two positions to predict with uniform logits over V=4: loss = log 4; a masked target is ignored.
    logits = torch.zeros(1, 3, 4)
    labels = torch.tensor([[-100, 1, -100]])
    loss, stats = causal_lm_loss(logits, labels, num_target_tokens=1)
    assert loss.item() == pytest.approx(math.log(4))
    assert stats["num_target_tokens"] == 1
    loss2, _ = causal_lm_loss(logits, labels, num_target_tokens=2)  # normalised over the whole step
    assert loss2.item() == pytest.approx(math.log(4) / 2)


def test_sft_overfits_eight_conversations(chat_file, tmp_path):
    result = sft.train(sft_cfg(chat_file, tmp_path / "run", "optim.max_steps=40", "optim.batch_size=8"))
    first, last = result.train_losses[0], result.train_losses[-1]
    assert last < 0.5 * first, (first, last)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "model")  # plain transformers load
    assert model.config.vocab_size == 260
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines if "loss" in m] == list(range(1, 41))
    assert {"loss", "lr", "grad_norm", "tokens_per_s"} <= set(lines[0])


def test_grad_accumulation_is_exact(chat_file, tmp_path):
    """batch 4 x accum 1 == batch 2 x accum 2 == batch 1 x accum 4 (the loss is normalised per step)."""
    weights = []
    for bs, ga in [(4, 1), (2, 2), (1, 4)]:
        out = tmp_path / f"bs{bs}"
        res = sft.train(sft_cfg(chat_file, out, "optim.max_steps=3", f"optim.batch_size={bs}", f"optim.grad_accum={ga}",
                                "optim.max_grad_norm=0"))
        weights.append(AutoModelForCausalLM.from_pretrained(out / "model").state_dict())
        if bs == 4:
            ref_losses = res.train_losses
        else:
            assert res.train_losses == pytest.approx(ref_losses, abs=1e-5)
    for w in weights[1:]:
        for k in w:
            torch.testing.assert_close(w[k], weights[0][k], atol=1e-5, rtol=1e-4)


def test_example_order_groups_by_length_and_stays_a_permutation():
    from postlab.train.loop import ExampleOrder, example_index

    plain = ExampleOrder(10, seed=3)
    assert [plain(k) for k in range(25)] == [example_index(k, 10, 3) for k in range(25)]
    lengths = [5, 50, 7, 30, 1, 80, 9, 60, 2, 40]
    grouped = ExampleOrder(10, seed=3, lengths=lengths, window=4)
    for epoch in range(2):
        order = [grouped(epoch * 10 + k) for k in range(10)]
        base = [example_index(epoch * 10 + k, 10, 3) for k in range(10)]
        assert sorted(order) == list(range(10))
        for w in range(0, 10, 4):  # each window holds the same examples, longest first
            assert set(order[w : w + 4]) == set(base[w : w + 4])
            assert [lengths[i] for i in order[w : w + 4]] == sorted((lengths[i] for i in order[w : w + 4]), reverse=True)


@pytest.mark.parametrize("grouped", [False, True])
def test_resume_equivalence(chat_file, tmp_path, grouped):
    """10 steps straight == 5 steps, Ctrl-C (checkpoint), resume, 5 more: same losses and weights."""
    extra = ["optim.max_steps=10", "optim.batch_size=3", "optim.warmup_steps=2", f"optim.group_by_length={grouped}"]
    straight = sft.train(sft_cfg(chat_file, tmp_path / "a", *extra))

    from postlab.train import loop

    calls = {"n": 0}
    real = loop.collate

    def interrupt_after_five(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:  # the 6th optimizer step (one micro-batch each) is cut short
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    loop.collate = interrupt_after_five
    try:
        with pytest.raises(TrainingInterrupted, match="interrupted at step 5/10.*Rerun with checkpoint.resume=true"):
            sft.train(sft_cfg(chat_file, tmp_path / "b", *extra))
    finally:
        loop.collate = real
    assert (tmp_path / "b" / "checkpoints" / "step-0000005").is_dir()
    with pytest.raises(PostlabError, match="rerun with checkpoint.resume=true"):
        sft.train(sft_cfg(chat_file, tmp_path / "b", *extra))
    resumed = sft.train(sft_cfg(chat_file, tmp_path / "b", *extra, "checkpoint.resume=true"))
    assert resumed.train_losses == pytest.approx(straight.train_losses[5:], abs=1e-6)
    logged = [json.loads(x)["loss"] for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert logged == pytest.approx(straight.train_losses, abs=1e-6)
    wa = AutoModelForCausalLM.from_pretrained(tmp_path / "a" / "model").state_dict()
    wb = AutoModelForCausalLM.from_pretrained(tmp_path / "b" / "model").state_dict()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=1e-6, rtol=0)


def test_checkpoints_keep_last(chat_file, tmp_path):
    sft.train(sft_cfg(chat_file, tmp_path / "r", "optim.max_steps=6", "checkpoint.save_every=1", "checkpoint.keep_last=2"))
    names = sorted(p.name for p in (tmp_path / "r" / "checkpoints").iterdir())
    assert names == ["step-0000005", "step-0000006"]


def test_lora_trains_adapters_and_saves_merged(chat_file, tmp_path):
    cfg = sft_cfg(chat_file, tmp_path / "l", "optim.max_steps=5", "lora.enabled=true", "lora.r=4",
                  "lora.target_modules=[q_proj, v_proj]", "checkpoint.eval_every=2", "data.eval_fraction=0.25")
    result = sft.train(cfg)
    assert result.eval_loss is not None
    from postlab.models.load import load_model_and_tokenizer

    base, _ = load_model_and_tokenizer("tiny")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "l" / "model")
    sd_base, sd_merged = base.state_dict(), merged.state_dict()
    assert set(sd_base) == set(sd_merged)  # plain model, no lora_A/lora_B keys
    changed = {k for k in sd_base if not torch.equal(sd_base[k], sd_merged[k])}
    assert changed and all(("q_proj" in k or "v_proj" in k) for k in changed)
    ckpt = next((tmp_path / "l" / "checkpoints").iterdir())
    from safetensors.torch import load_file

    assert all("lora_" in k for k in load_file(str(ckpt / "model.safetensors")))  # only adapters checkpointed


def test_auto_dtype_is_resolved_before_training_and_saved(chat_file, tmp_path, monkeypatch):
    import yaml

    monkeypatch.setenv("POSTLAB_DTYPE", "bf16")  # what auto picks here, decided in postlab.machine
    cfg = sft_cfg(chat_file, tmp_path / "auto", "optim.max_steps=1")
    assert cfg.optim.bf16 is True
    sft.train(cfg)
    assert yaml.safe_load((tmp_path / "auto" / "config.yaml").read_text())["optim"]["bf16"] is True


def test_bf16_autocast_runs(chat_file, tmp_path):
    result = sft.train(sft_cfg(chat_file, tmp_path / "bf", "optim.max_steps=2", "optim.bf16=true"))
    assert all(math.isfinite(x) for x in result.train_losses)


def test_tensorboard_logging(chat_file, tmp_path):
    pytest.importorskip("tensorboard")
    sft.train(sft_cfg(chat_file, tmp_path / "tb", "optim.max_steps=2", "checkpoint.report_to=[jsonl, tensorboard]"))
    assert any((tmp_path / "tb" / "tensorboard").iterdir())


def test_pretrain_from_scratch_learns_text(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat. " * 200)
    cfg = load_config(pretrain.PretrainConfig, None, [
        "model=tiny", "from_scratch=true", f"out_dir={tmp_path / 'pt'}", f"data.files=[{corpus}]",
        "data.block_size=64", "optim.max_steps=30", "optim.lr=1e-2", "checkpoint.progress=false"])
    result = pretrain.train(cfg)
    assert result.train_losses[-1] < 0.5 * result.train_losses[0]
    assert result.eval_loss is not None and result.eval_loss < result.train_losses[0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_chunked_nll_matches_cross_entropy_value_and_gradient(dtype):
    from postlab.algos.lm import token_nll_sum

    torch.manual_seed(0)
    x = (torch.randn(2, 37, 50) * 3).to(dtype)
    y = torch.randint(0, 50, (2, 37))
    y[0, :5] = -100
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    z = a[:, :-1].float()
    ref = torch.nn.functional.cross_entropy(z.reshape(-1, 50), y[:, 1:].reshape(-1), ignore_index=-100, reduction="sum")
    ours, n = token_nll_sum(b, y, chunk=8)
    assert n == int((y[:, 1:] != -100).sum())
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-5)
    (ref / 70).backward()
    (ours / 70).backward()
    tol = 1e-6 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(b.grad.float(), a.grad.float(), atol=tol, rtol=tol)
    with torch.no_grad():  # the eval path (no autograd) gives the same value
        torch.testing.assert_close(token_nll_sum(x, y)[0], ref.detach(), atol=1e-4, rtol=1e-5)


def test_allocator_tuning_applies_on_linux():
    import sys

    from postlab.utils.memory import keep_freed_memory

    assert keep_freed_memory() is sys.platform.startswith("linux")


def test_steps_in_time_hand_computed():
    from postlab.train.loop import steps_in_time

    # 10 of 100 steps ran in 55 s, the first took 10 s: 45 s / 9 = 5 s a step; 45 s left of 100 hold 9 more -> 19
    assert steps_in_time(10, 100, ran=10, elapsed_s=55, first_step_s=10, max_seconds=100) == 19
    assert steps_in_time(10, 100, ran=10, elapsed_s=55, first_step_s=10, max_seconds=1000) == 100  # never above total
    assert steps_in_time(10, 100, ran=10, elapsed_s=55, first_step_s=10, max_seconds=50) == 10  # over: stop now
    assert steps_in_time(1, 100, ran=1, elapsed_s=55, first_step_s=55, max_seconds=50) == 100  # nothing timed yet
    assert steps_in_time(10, 100, ran=10, elapsed_s=55, first_step_s=10, max_seconds=0) == 100  # no limit
    assert steps_in_time(10, 100, ran=10, elapsed_s=55, first_step_s=10, max_seconds=100, at_least=40) == 40  # a floor
    # resumed at step 40: 4 steps ran in this process, in 13 s (first 4 s): 3 s a step, 7 s left of 20 hold 2 -> 46
    assert steps_in_time(44, 100, ran=4, elapsed_s=13, first_step_s=4, max_seconds=20) == 46


def test_a_time_limit_ends_training_early_and_the_cut_survives_a_resume(chat_file, tmp_path):
    extra = ["optim.max_steps=10", "optim.warmup_steps=0", "checkpoint.save_every=1"]
    res = sft.train(sft_cfg(chat_file, tmp_path / "r", *extra, "optim.max_seconds=0.001"))
    assert (res.state.step, res.planned_steps) == (3, 10)  # timed from 3 steps (a tenth of 10, 3 at least): no time left
    assert (tmp_path / "r" / "model").is_dir()
    again = sft.train(sft_cfg(chat_file, tmp_path / "r", *extra, "checkpoint.resume=true"))
    assert again.state.step == 3 and again.train_losses == []  # the limit's end stands on a resume
    floored = sft.train(sft_cfg(chat_file, tmp_path / "m", *extra, "optim.max_seconds=0.001",
                                "optim.max_seconds_floor=0.5"))
    assert floored.state.step == 5  # never below half the planned steps
    free = sft.train(sft_cfg(chat_file, tmp_path / "f", *extra, "optim.max_seconds=3600"))
    assert (free.state.step, free.planned_steps) == (10, 10)


def test_a_time_limit_follows_the_mean_step_time_as_it_settles(chat_file, tmp_path, monkeypatch):
    """Slow first steps (group_by_length puts each window's longest batches first) must not fix the end: on a
    clock where the first 4 steps take 10 s and the rest 1 s, a 60 s limit first sees room for 6 steps, then
    for more as the mean falls, and ends at 22 of 30 (by hand: at step 22, 58 s spent, (58-10)/21 s a step
    leaves no room for another), within the limit."""
    from postlab.train import loop

    now = [0.0]
    monkeypatch.setattr(loop, "time", type("Clock", (), {"perf_counter": staticmethod(lambda: now[0])}))
    real, steps = loop.collate, [0]

    def timed_collate(*args, **kwargs):  # one micro-batch per step: the step's time passes here
        steps[0] += 1
        now[0] += 10.0 if steps[0] <= 4 else 1.0
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "collate", timed_collate)
    res = sft.train(sft_cfg(chat_file, tmp_path / "r", "optim.max_steps=30", "optim.max_seconds=60"))
    assert (res.state.step, res.planned_steps) == (22, 30) and now[0] <= 60
