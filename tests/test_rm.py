"""Reward models: Bradley–Terry math, reward read at the EOS under any padding, a tiny RM learning."""

import json
import math
import random

import pytest
import torch

from postlab.algos.reward import bradley_terry_loss
from postlab.data.preferences import PreferencePair, encode_response, load_preferences
from postlab.errors import DataError
from postlab.models.reward import OFFSET_KEY, last_token_index, load_reward_model, rewards

from conftest import write_jsonl


def test_bradley_terry_by_hand():
    loss, s = bradley_terry_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0]))
    expected = (-math.log(1 / (1 + math.exp(-1))) + math.log(2)) / 2
    assert loss.item() == pytest.approx(expected)
    assert s["rewards/accuracies"] == 0.5 and s["rewards/margins"] == 0.5
    assert s["rewards/chosen"] == 0.5 and s["rewards/rejected"] == 0.0
    loss, _ = bradley_terry_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0]), margin=torch.tensor([1.0, 0.0]))
    assert loss.item() == pytest.approx(math.log(2))
    # normalised by the step's pair count: two halves sum to the whole
    a, _ = bradley_terry_loss(torch.tensor([1.0]), torch.tensor([0.0]), total_pairs=2)
    b, _ = bradley_terry_loss(torch.tensor([0.0]), torch.tensor([0.0]), total_pairs=2)
    assert (a + b).item() == pytest.approx(expected)


def test_gradient_pushes_chosen_up():
    r_c, r_r = torch.zeros(3, requires_grad=True), torch.zeros(3, requires_grad=True)
    bradley_terry_loss(r_c, r_r)[0].backward()
    assert (r_c.grad < 0).all() and (r_r.grad > 0).all()  # descent raises chosen, lowers rejected


def test_last_token_index_left_and_right_padding():
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert last_token_index(mask).tolist() == [2, 4, 4]


def test_reward_is_read_at_eos_under_left_and_right_padding():
    torch.manual_seed(0)
    model, tok = load_reward_model("tiny")
    model.eval()
    prompt = [{"role": "user", "content": "hi"}]
    short, long = encode_response(tok, prompt, "ok"), encode_response(tok, prompt, "a longer answer here")
    assert short[-1] == tok.eos_token_id
    alone = [rewards(model, torch.tensor([s]), torch.ones(1, len(s), dtype=torch.long)).item() for s in (short, long)]
    T, pad = len(long), tok.pad_token_id
    right = torch.tensor([short + [pad] * (T - len(short)), long])
    left = torch.tensor([[pad] * (T - len(short)) + short, long])
    rmask = (torch.arange(T)[None] < torch.tensor([[len(short)], [T]])).long()
    lmask = rmask.flip(1)
    with torch.no_grad():
        assert rewards(model, right, rmask).tolist() == pytest.approx(alone, abs=1e-5)
        assert rewards(model, left, lmask).tolist() == pytest.approx(alone, abs=1e-5)
        # transformers' own pooling (last non-pad token) agrees on right padding
        hf = model(input_ids=right, attention_mask=rmask).logits.squeeze(-1)
    assert hf.tolist() == pytest.approx(alone, abs=1e-5)


def test_preference_file_errors_name_the_line(tmp_path):
    ok = {"prompt": "Hi?", "chosen": "Hello!", "rejected": "Go away."}
    path = write_jsonl(tmp_path / "p.jsonl", [ok, {"prompt": "x", "chosen": "y"}])
    with pytest.raises(DataError, match="p.jsonl:2: missing 'rejected'"):
        load_preferences(path)
    path = write_jsonl(tmp_path / "q.jsonl", [ok, {**ok, "chosen": [{"role": "user", "content": "y"}]}])
    with pytest.raises(DataError, match="q.jsonl:2: chosen: conversation has no assistant turn"):
        load_preferences(path)
    pairs = load_preferences(write_jsonl(tmp_path / "r.jsonl", [ok, PreferencePair(
        [{"role": "user", "content": "a"}], "b", "c", prompt_id="7", gold_margin=0.5).to_json()]))
    assert pairs[0].prompt == [{"role": "user", "content": "Hi?"}] and pairs[1].prompt_id == "7"


def _marker_pairs(n, seed):
    rng = random.Random(seed)
    words = "apple river stone cloud table green quick paper music light".split()
    rows = []
    for i in range(n):
        base = " ".join(rng.choice(words) for _ in range(rng.randint(2, 5)))
        other = " ".join(rng.choice(words) for _ in range(rng.randint(2, 5)))
        rows.append({"prompt": f"Say something {i % 7}.", "chosen": base + " zebra", "rejected": other,
                     "prompt_id": str(i), "gold_margin": 1.0})
    return rows


def test_tiny_reward_model_learns_a_marker_preference(tmp_path):
    from postlab.raters.reward_model import RewardModelRater
    from postlab.train.rm import RMConfig, train

    train_file = write_jsonl(tmp_path / "train.jsonl", _marker_pairs(256, 0))
    eval_file = write_jsonl(tmp_path / "eval.jsonl", _marker_pairs(64, 1))
    cfg = RMConfig(model="tiny", out_dir=str(tmp_path / "rm"),
                   data={"train_file": str(train_file), "eval_file": str(eval_file)},
                   optim={"lr": 3e-3, "batch_size": 16, "epochs": 3, "bf16": False, "warmup_steps": 0},
                   checkpoint={"progress": False})
    res = train(cfg)
    assert res["accuracy_vs_labels"] >= 0.9 and res["accuracy_vs_gold"] >= 0.9 and res["gold_clear_pairs"] == 64
    metrics = [json.loads(line) for line in (tmp_path / "rm" / "metrics.jsonl").read_text().splitlines()]
    assert {"rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"} <= set(metrics[0])
    # The saved model: plain transformers loads it; postlab's rater subtracts the stored offset.
    from transformers import AutoModelForSequenceClassification

    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm" / "model")
    offset = getattr(hf.config, OFFSET_KEY)
    assert offset == pytest.approx(res["reward_offset"])
    rater = RewardModelRater(str(tmp_path / "rm" / "model"))
    prompt = [{"role": "user", "content": "Say something 3."}]
    ids = encode_response(rater.tokenizer, prompt, "green stone zebra")
    with torch.no_grad():
        raw = hf(input_ids=torch.tensor([ids])).logits.item()
    assert rater.score_texts([prompt], ["green stone zebra"])[0] == pytest.approx(raw - offset, abs=1e-4)
    assert rater.score_texts([prompt], ["green stone zebra"])[0] > rater.score_texts([prompt], ["green stone"])[0]


@pytest.mark.parametrize("trainable_layers", [1, 2])  # tiny has 2 layers: cache layer 1's inputs, or the embeddings
def test_cached_top_layers_give_the_full_forward_rewards_and_gradients(trainable_layers):
    from postlab.train.rm import CachedRewardObjective, LayerInputCache, RewardObjective, _pad, freeze_bottom

    torch.manual_seed(0)
    model, tok = load_reward_model("tiny")
    start = freeze_bottom(model, trainable_layers)
    assert start == 2 - trainable_layers
    prompt = [{"role": "user", "content": "hi"}]
    seqs = [encode_response(tok, prompt, t) for t in ("ok", "a longer answer here", "mid size", "x y")]
    # batches of 3 sorted by length: the cache pass itself pads the shorter sequences
    cache = LayerInputCache(model=model, sequences=seqs + seqs[:1], start=start, pad_id=tok.pad_token_id,
                            batch_size=3, bf16=False)
    assert cache.num_sequences == 4 and cache.h.shape == (sum(map(len, seqs)), model.config.hidden_size)
    full, cached = RewardObjective(tok.pad_token_id), CachedRewardObjective(pad_id=tok.pad_token_id, cache=cache)
    ids, mask = _pad(seqs, tok.pad_token_id)  # right-padded
    left_ids = torch.stack([row.roll(int((1 - m).sum())) for row, m in zip(ids, mask)])  # left-padded
    left_mask = mask.flip(1)
    model.eval()
    with torch.no_grad():
        alone = [full.score(model, torch.tensor([s]), torch.ones(1, len(s), dtype=torch.long)).item() for s in seqs]
        for i, m in ((ids, mask), (left_ids, left_mask)):
            assert full.score(model, i, m).tolist() == pytest.approx(alone, abs=1e-5)
            assert cached.score(model, i, m).tolist() == pytest.approx(alone, abs=1e-5)
    # the same BT loss gradient on every trained weight
    model.train()
    grads = []
    for objective in (full, cached):
        model.zero_grad()
        objective.loss(model, objective.collate([{"chosen_ids": seqs[0], "rejected_ids": seqs[1], "margin": 0.0,
                                                  "gold_margin": 1.0}]), 1)[0].backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    assert "score.weight" in grads[0] and f"model.layers.{start}.mlp.up_proj.weight" in grads[0]
    frozen = ("model.embed_tokens.", *(f"model.layers.{i}." for i in range(start)))
    assert not any(n.startswith(frozen) for n in grads[0])
    for n, g in grads[0].items():
        assert torch.allclose(grads[1][n], g, atol=1e-5), n


def test_trainable_layers_trains_only_the_top(tmp_path):
    from transformers import AutoModelForSequenceClassification

    from postlab.train.rm import RMConfig, train

    train_file = write_jsonl(tmp_path / "train.jsonl", _marker_pairs(256, 0))
    eval_file = write_jsonl(tmp_path / "eval.jsonl", _marker_pairs(64, 1))
    cfg = RMConfig(model="tiny", out_dir=str(tmp_path / "rm"), trainable_layers=1, activation_cache="disk",
                   data={"train_file": str(train_file), "eval_file": str(eval_file)},
                   optim={"lr": 3e-3, "batch_size": 16, "epochs": 3, "bf16": False, "warmup_steps": 0},
                   checkpoint={"progress": False})
    res = train(cfg)
    assert res["accuracy_vs_labels"] >= 0.9 and res["accuracy_vs_gold"] >= 0.9
    assert not (tmp_path / "rm" / "activation_cache.f32").exists()
    before, _ = load_reward_model("tiny")
    after = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm" / "model").state_dict()
    for name, w in before.state_dict().items():
        if name.startswith(("model.embed_tokens.", "model.layers.0.")):
            assert torch.equal(after[name], w), name  # frozen: byte-identical
        elif name.startswith(("model.layers.1.", "model.norm.")):
            assert not torch.equal(after[name], w), name


def test_a_prompts_comparisons_in_one_batch_score_each_response_once():
    # InstructGPT's batching: 4 responses in all 6 pairs of a prompt are 4 forwards, not 12, for the same loss and
    # gradient as the 6 pairs batched the old way (each side its own row) and as the pairs one at a time.
    from postlab.train.rm import RewardObjective, _pad, bradley_terry_loss, group_by_prompt

    torch.manual_seed(0)
    model, tok = load_reward_model("tiny")
    prompt = [{"role": "user", "content": "hi"}]
    seqs = [encode_response(tok, prompt, t) for t in ("ok", "a longer answer here", "mid size", "x y")]
    pairs = [{"chosen_ids": seqs[i], "rejected_ids": seqs[j], "margin": 0.5 * (i % 2), "gold_margin": 1.0,
              "prompt_key": "p"} for i in range(4) for j in range(i + 1, 4)]
    objective = RewardObjective(tok.pad_token_id)
    (group,) = group_by_prompt(pairs)
    batch = objective.collate([group])
    assert batch.input_ids.size(0) == 4 and batch.margin.tolist() == [0.0] * 3 + [0.5] * 2 + [0.0]
    assert group["num_tokens"] == sum(map(len, seqs))
    model.train()
    model.zero_grad()
    loss, stats = objective.loss(model, batch, 6)
    loss.backward()
    grouped = {n: q.grad.clone() for n, q in model.named_parameters()}
    # reference: every pair's two sides as their own rows, 2B rows, by hand
    model.zero_grad()
    ids, mask = _pad([p["chosen_ids"] for p in pairs] + [p["rejected_ids"] for p in pairs], tok.pad_token_id)
    r = objective.score(model, ids, mask)
    ref, _ = bradley_terry_loss(r[:6], r[6:], torch.tensor([p["margin"] for p in pairs]), 6)
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), abs=1e-6)
    for n, q in model.named_parameters():
        assert torch.allclose(grouped[n], q.grad, atol=1e-6), n
    # and the same numbers from the same pairs collated ungrouped (duplicates scored once there too)
    assert objective.loss(model, objective.collate(pairs), 6)[0].item() == pytest.approx(ref.item(), abs=1e-6)
    assert objective.collate(pairs).input_ids.size(0) == 4
    model.eval()
    ev = objective.evaluate(model, [group], batch_size=1)
    assert ev["eval_gold_clear_pairs"] == 6 and ev["eval_loss"] == pytest.approx(
        bradley_terry_loss(r[:6].detach(), r[6:].detach(), None, 6)[0].item(), abs=1e-5)


@pytest.mark.parametrize("trainable_layers", [0, 1])
def test_group_by_prompt_trains_and_reports_pairs(tmp_path, trainable_layers):
    from postlab.train.rm import RMConfig, train

    rows = _marker_pairs(256, 0)
    for i, r in enumerate(rows):  # 8 pairs a prompt
        r["prompt_id"], r["prompt"] = str(i // 8), f"Say something {i // 8}."
    train_file = write_jsonl(tmp_path / "train.jsonl", rows)
    eval_file = write_jsonl(tmp_path / "eval.jsonl", _marker_pairs(64, 1))
    cfg = RMConfig(model="tiny", out_dir=str(tmp_path / "rm"), group_by_prompt=True, trainable_layers=trainable_layers,
                   data={"train_file": str(train_file), "eval_file": str(eval_file)},
                   optim={"lr": 3e-3, "batch_size": 2, "epochs": 3, "bf16": False, "warmup_steps": 0},
                   checkpoint={"progress": False})
    res = train(cfg)
    assert res["train_pairs"] == 256 and res["eval_pairs"] == 64 and res["gold_clear_pairs"] == 64
    assert res["steps"] == 3 * 32 // 2  # 32 prompts a pass, 2 a step
    assert res["accuracy_vs_labels"] >= 0.9 and res["accuracy_vs_gold"] >= 0.9


def test_trainable_layers_config_errors(tmp_path):
    from postlab.errors import ConfigError
    from postlab.train.rm import RMConfig, train

    train_file = write_jsonl(tmp_path / "train.jsonl", _marker_pairs(8, 0))
    base = {"model": "tiny", "out_dir": str(tmp_path / "rm"), "data": {"train_file": str(train_file)}}
    with pytest.raises(ConfigError, match="trainable_layers: choose either"):
        RMConfig(**base, trainable_layers=1, lora={"enabled": True}).check()
    with pytest.raises(ConfigError, match="optim.compile"):
        RMConfig(**base, trainable_layers=1, optim={"compile": True}).check()
    with pytest.raises(ConfigError, match="3 is more than the model's 2 layers"):
        train(RMConfig(**base, trainable_layers=3, checkpoint={"progress": False}))


def test_length_controlled_bradley_terry_by_hand():
    from postlab.algos.reward import length_controlled_bt_loss

    zero, ln2 = torch.zeros(2), math.log(2)
    loss, s = length_controlled_bt_loss(zero, zero, torch.tensor([ln2, 0.0]), torch.tensor([0.0, ln2]), torch.tensor(1.0))
    # z = β·(ℓ_c − ℓ_r) = ±log 2: σ(log 2) = 2/3, σ(−log 2) = 1/3; a constant reward has no correlation to pay
    assert loss.item() == pytest.approx(-(math.log(2 / 3) + math.log(1 / 3)) / 2)
    assert s["length/beta"] == pytest.approx(1.0) and s["length/reward_corr"] == 0.0
    # r = (1, 0 | 0, 0) and ℓ = (1, 0 | 0, 0) correlate perfectly: ρ² = 1 adds λ = 1
    r_c, r_r, l_c, l_r = torch.tensor([1.0, 0.0]), zero, torch.tensor([1.0, 0.0]), zero
    loss, s = length_controlled_bt_loss(r_c, r_r, l_c, l_r, torch.tensor(0.0))
    bt = bradley_terry_loss(r_c, r_r)[0].item()
    assert loss.item() == pytest.approx(bt + 1.0) and s["length/reward_corr"] == pytest.approx(1.0)
    assert length_controlled_bt_loss(r_c, r_r, l_c, l_r, torch.tensor(0.0), decorrelation=0.0)[0].item() == \
        pytest.approx(bt)
    m = torch.tensor([0.3, 0.0])
    assert length_controlled_bt_loss(r_c, r_r, l_c, l_r, torch.tensor(0.0), m, decorrelation=0.0)[0].item() == \
        pytest.approx(bradley_terry_loss(r_c, r_r, m)[0].item())
    _, s = length_controlled_bt_loss(r_c[:1], r_r[:1], l_c[:1], l_r[:1], torch.tensor(0.7), total_pairs=2)
    assert s["length/beta"] == pytest.approx(0.35)  # a micro-batch's share: the step's stats sum to β


def test_length_coefficient_grows_when_longer_answers_win():
    from postlab.algos.reward import length_controlled_bt_loss

    beta = torch.zeros((), requires_grad=True)
    length_controlled_bt_loss(torch.zeros(3), torch.zeros(3), torch.tensor([1.0, 2.0, 0.5]), torch.zeros(3),
                              beta)[0].backward()
    assert beta.grad < 0  # descent raises β: the chosen were the longer


def _length_biased_pairs(n, seed, beta=1.0):
    """Half the pairs differ by a marker ("zebra", length-neutral: both sides get one word); half are ties on
    content that a length-loving rater decided, for the longer answer with probability σ(β·Δℓ) (gold margin 0)."""
    rng = random.Random(seed)
    words = "apple river stone cloud table green quick paper music light".split()
    say = lambda k: " ".join(rng.choice(words) for _ in range(k))  # noqa: E731
    rows = []
    for i in range(n):
        if i % 2:
            rows.append({"prompt": f"Say something {i % 7}.", "chosen": say(rng.randint(2, 5)) + " zebra",
                         "rejected": say(rng.randint(3, 6)), "prompt_id": str(i), "gold_margin": 1.0})
        else:
            long, short = say(rng.randint(9, 12)), say(rng.randint(1, 2))
            dl = math.log1p(len(long.split())) - math.log1p(len(short.split()))
            if rng.random() > 1 / (1 + math.exp(-beta * dl)):
                long, short = short, long
            rows.append({"prompt": f"Say something {i % 7}.", "chosen": long, "rejected": short, "prompt_id": str(i),
                         "gold_margin": 0.0})
    return rows


def test_length_control_moves_the_taste_for_length_out_of_the_reward(tmp_path):
    from transformers import AutoModelForSequenceClassification

    from postlab.raters.reward_model import RewardModelRater
    from postlab.train.rm import BETA_PARAM, RMConfig, train

    train_file = write_jsonl(tmp_path / "train.jsonl", _length_biased_pairs(384, 0))
    eval_file = write_jsonl(tmp_path / "eval.jsonl", _length_biased_pairs(64, 1))
    gaps, results = {}, {}
    for control in (False, True):
        out = tmp_path / f"rm_{control}"
        cfg = RMConfig(model="tiny", out_dir=str(out), length_control=control,
                       data={"train_file": str(train_file), "eval_file": str(eval_file)},
                       optim={"lr": 1e-3, "batch_size": 16, "epochs": 3, "bf16": False, "warmup_steps": 0},
                       checkpoint={"progress": False})
        results[control] = train(cfg)
        rater = RewardModelRater(str(out / "model"))
        prompt = [{"role": "user", "content": "Say something 3."}]
        longs = ["green quick paper music light apple river stone cloud table",
                 "river stone cloud table green quick paper music light apple quick"]
        score = lambda texts: sum(rater.score_texts([prompt] * len(texts), texts)) / len(texts)  # noqa: E731
        gaps[control] = score(longs) - score(["green quick", "stone"])
        marker = rater.score_texts([prompt], ["green quick zebra"])[0] - rater.score_texts([prompt], ["green quick table"])[0]
        assert marker > 0, control  # both learn the marker
    # the pairs' rater had β = 1 (seeds 0–2 of this data: β̂ 1.2–1.5; the long − short gap 0.96–2.41 without
    # length control, −0.09 to −0.70 with it)
    assert "length_beta" not in results[False] and results[True]["length_beta"] > 0.5
    assert abs(gaps[True]) < abs(gaps[False]) / 2, gaps  # the taste for length went to β, not into the reward
    saved = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm_True" / "model").state_dict()
    assert not any(BETA_PARAM in k for k in saved)


def test_length_control_config_errors(tmp_path):
    from postlab.errors import ConfigError
    from postlab.train.rm import RMConfig

    train_file = write_jsonl(tmp_path / "train.jsonl", _marker_pairs(8, 0))
    with pytest.raises(ConfigError, match="length_control: not combined with optim.fsdp"):
        RMConfig(model="tiny", data={"train_file": str(train_file)}, length_control=True, optim={"fsdp": True}).check()
