"""DPO / IPO: hand-computed losses, sequence log-probs, the reference held fixed, a tiny policy learning."""

import json
import math
import random

import pytest
import torch

from postlab.algos.dpo import PREFERENCE_LOSSES, dpo_loss, ipo_loss, response_lengths, sequence_logps
from postlab.algos.lm import IGNORE_INDEX

from conftest import write_jsonl

# Two pairs, β = 0.1. Pair 1: h = (−10 − −11) − (−12 − −11) = 2.  Pair 2: h = (−5 − −5) − (−4 − −5) = −1.
PI_C, PI_R = torch.tensor([-10.0, -5.0]), torch.tensor([-12.0, -4.0])
REF_C, REF_R = torch.tensor([-11.0, -5.0]), torch.tensor([-11.0, -5.0])


def test_dpo_loss_by_hand():
    loss, s = dpo_loss(PI_C, PI_R, REF_C, REF_R, beta=0.1)
    # −log σ(0.2) = log(1 + e^−0.2) = 0.598139;  −log σ(−0.1) = log(1 + e^0.1) = 0.744397
    assert loss.item() == pytest.approx((0.5981388694 + 0.7443966601) / 2)
    assert s["loss"] == pytest.approx(0.6712677647)
    # implicit rewards β(log π − log π_ref): chosen (0.1, 0), rejected (−0.1, 0.1)
    assert s["rewards/chosen"] == pytest.approx(0.05) and s["rewards/rejected"] == pytest.approx(0.0)
    assert s["rewards/margins"] == pytest.approx(0.05) and s["rewards/accuracies"] == 0.5
    assert s["logps/chosen"] == -7.5 and s["logps/rejected"] == -8.0
    # policy = reference: h = 0, loss log 2, no pair counted as won
    loss, s = dpo_loss(REF_C, REF_R, REF_C, REF_R, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2)) and s["rewards/accuracies"] == 0.0
    # normalised by the step's pair count: two halves sum to the whole
    a, _ = dpo_loss(PI_C[:1], PI_R[:1], REF_C[:1], REF_R[:1], beta=0.1, total_pairs=2)
    b, _ = dpo_loss(PI_C[1:], PI_R[1:], REF_C[1:], REF_R[1:], beta=0.1, total_pairs=2)
    assert (a + b).item() == pytest.approx(0.6712677647)


def test_ipo_loss_by_hand():
    loss, s = ipo_loss(PI_C, PI_R, REF_C, REF_R, beta=0.1)
    # target 1/(2τ) = 5:  ((2 − 5)² + (−1 − 5)²) / 2 = (9 + 36) / 2
    assert loss.item() == pytest.approx(22.5) and s["loss"] == pytest.approx(22.5)
    assert s["rewards/margins"] == pytest.approx(0.05) and s["rewards/accuracies"] == 0.5
    loss, _ = ipo_loss(torch.tensor([-1.0]), torch.tensor([-2.0]), torch.tensor([-1.0]), torch.tensor([-2.0]), beta=0.5)
    assert loss.item() == pytest.approx(1.0)  # h = 0, target 1
    assert not PREFERENCE_LOSSES["dpo"].token_mean and PREFERENCE_LOSSES["ipo"].token_mean


@pytest.mark.parametrize("loss_fn", [dpo_loss, ipo_loss])
def test_descent_raises_chosen_relative_to_rejected(loss_fn):
    pi_c, pi_r = torch.full((3,), -4.0, requires_grad=True), torch.full((3,), -4.0, requires_grad=True)
    loss_fn(pi_c, pi_r, torch.full((3,), -4.0), torch.full((3,), -4.0), beta=0.1)[0].backward()
    assert (pi_c.grad < 0).all() and (pi_r.grad > 0).all()


def test_ipo_pulls_back_past_its_target():
    pi_c, pi_r = torch.tensor([4.0], requires_grad=True), torch.tensor([-4.0], requires_grad=True)
    ipo_loss(pi_c, pi_r, torch.zeros(1), torch.zeros(1), beta=0.1)[0].backward()  # h = 8 > 5
    assert pi_c.grad.item() > 0 and pi_r.grad.item() < 0  # unlike DPO, which would push further


def _brute_logps(logits, labels):
    out = []
    for b in range(labels.size(0)):
        total = 0.0
        for t in range(1, labels.size(1)):
            if labels[b, t] != IGNORE_INDEX:
                total = total + torch.log_softmax(logits[b, t - 1].double(), -1)[labels[b, t]]
        out.append(total)
    return torch.stack(out)


def test_sequence_logps_matches_brute_force_with_prompt_and_padding():
    torch.manual_seed(0)
    B, T, V = 3, 7, 5
    logits = torch.randn(B, T, V)
    labels = torch.randint(0, V, (B, T))
    labels[0, :3] = IGNORE_INDEX  # prompt
    labels[1, :2] = IGNORE_INDEX
    labels[1, 5:] = IGNORE_INDEX  # right padding
    labels[2, :6] = IGNORE_INDEX  # one response token
    expected = _brute_logps(logits, labels)
    assert sequence_logps(logits, labels).tolist() == pytest.approx(expected.tolist(), abs=1e-5)  # no-grad path
    z = logits.clone().requires_grad_()
    got = sequence_logps(z, labels)  # the chunked path training uses
    assert got.tolist() == pytest.approx(expected.tolist(), abs=1e-5)
    w = torch.tensor([1.0, -2.0, 0.5])
    (got * w).sum().backward()
    z_ref = logits.double().clone().requires_grad_()
    (_brute_logps(z_ref, labels) * w.double()).sum().backward()
    assert torch.allclose(z.grad.double(), z_ref.grad, atol=1e-5)
    assert response_lengths(labels).tolist() == [4.0, 3.0, 1.0]


def _marker_pairs(n, seed):
    """Chosen responses end with the marker word "zebra"; rejected ones never contain it."""
    rng = random.Random(seed)
    words = "apple river stone cloud table green quick paper music light".split()
    rows = []
    for i in range(n):
        base = " ".join(rng.choice(words) for _ in range(rng.randint(2, 4)))
        other = " ".join(rng.choice(words) for _ in range(rng.randint(2, 4)))
        rows.append({"prompt": f"Say something {i % 7}.", "chosen": base + " zebra", "rejected": other,
                     "prompt_id": str(i)})
    return rows


def _logps(model, tok, examples):
    from postlab.train.dpo import DPOObjective

    objective = DPOObjective(tok.pad_token_id, 0.1, PREFERENCE_LOSSES["dpo"])
    return torch.cat([lp for _, lp in objective.scan_logps(model, examples, 16)])


def test_lora_reference_is_the_model_with_adapters_disabled():
    from postlab.data.preferences import parse_pair
    from postlab.models.prepare import prepare_model
    from postlab.train.common import LoraConfig
    from postlab.train.dpo import DPOObjective, encode_pairs, store_reference_logps

    base, tok = prepare_model("tiny", device="cpu", lora=LoraConfig(), seed=0)
    pairs = [parse_pair(r, "row") for r in _marker_pairs(6, 0)]
    examples = encode_pairs(tok, pairs, 256, "rows")
    e = examples[0]
    assert e["chosen_ids"][: e["prompt_len"]] == e["rejected_ids"][: e["prompt_len"]]
    base_logps = _logps(base, tok, examples)  # (12,): one batch, 6 chosen then 6 rejected
    model, _ = prepare_model("tiny", device="cpu", lora=LoraConfig(enabled=True), seed=0)
    with torch.no_grad():  # stand-in for training: adapters that change the output
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    objective = DPOObjective(tok.pad_token_id, 0.1, PREFERENCE_LOSSES["dpo"])
    store_reference_logps(model, examples, objective, batch_size=4)
    ref = torch.tensor([e["ref_logp_c"] for e in examples] + [e["ref_logp_r"] for e in examples])
    assert ref.tolist() == pytest.approx(base_logps.tolist(), abs=1e-4)
    assert not torch.allclose(_logps(model, tok, examples), base_logps, atol=1e-2)  # adapters are on again


def test_tiny_dpo_learns_a_marker_preference(tmp_path):
    from postlab.data.preferences import load_preferences
    from postlab.models.prepare import prepare_model
    from postlab.train.common import LoraConfig
    from postlab.train.dpo import DPOConfig, encode_pairs, train

    train_file = write_jsonl(tmp_path / "train.jsonl", _marker_pairs(128, 0))
    eval_file = write_jsonl(tmp_path / "eval.jsonl", _marker_pairs(32, 1))
    cfg = DPOConfig(model="tiny", out_dir=str(tmp_path / "dpo"), device="cpu",
                    data={"train_file": str(train_file), "eval_file": str(eval_file)},
                    optim={"lr": 3e-3, "batch_size": 16, "epochs": 3, "bf16": False, "warmup_steps": 0},
                    checkpoint={"progress": False})
    res = train(cfg)
    assert res["eval_rewards/accuracies"] >= 0.9 and res["eval_rewards/margins"] > 0.5
    assert res["eval_pairs"] == 32 and res["steps"] == 24 and res["loss"] == "dpo"
    metrics = [json.loads(line) for line in (tmp_path / "dpo" / "metrics.jsonl").read_text().splitlines()]
    first = metrics[0]  # step 1's forward ran on the starting weights: policy = reference
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-4) and abs(first["rewards/margins"]) < 1e-4
    assert {"rewards/chosen", "rewards/rejected", "rewards/accuracies", "logps/chosen", "logps/rejected"} <= set(first)
    assert metrics[-1]["eval_loss"] < math.log(2) - 0.2
    assert json.loads((tmp_path / "dpo" / "dpo_results.json").read_text()) == res

    # Recompute the held-out rewards from scratch: the saved policy against a freshly loaded starting model.
    start, tok = prepare_model("tiny", device="cpu", lora=LoraConfig(), seed=0)
    final, _ = prepare_model(str(tmp_path / "dpo" / "model"), device="cpu", lora=LoraConfig(), seed=0)
    changed = [n for (n, p), q in zip(start.named_parameters(), final.parameters()) if not torch.equal(p, q)]
    assert changed
    examples = encode_pairs(tok, load_preferences(eval_file), 1024, "eval")
    ref, pi = _logps(start, tok, examples).view(-1, 2, 16), _logps(final, tok, examples).view(-1, 2, 16)
    rewards = 0.1 * (pi - ref)  # (batches, chosen|rejected, 16)
    assert rewards[:, 0].mean().item() == pytest.approx(res["eval_rewards/chosen"], abs=1e-4)
    assert rewards[:, 1].mean().item() == pytest.approx(res["eval_rewards/rejected"], abs=1e-4)


def test_tiny_ipo_with_lora_and_a_held_out_split(tmp_path):
    from postlab.train.dpo import DPOConfig, train

    train_file = write_jsonl(tmp_path / "train.jsonl", _marker_pairs(160, 0))
    cfg = DPOConfig(model="tiny", out_dir=str(tmp_path / "ipo"), device="cpu", loss="ipo", beta=0.5,
                    data={"train_file": str(train_file), "eval_fraction": 0.2},
                    optim={"lr": 1e-2, "batch_size": 16, "epochs": 2, "bf16": False, "warmup_steps": 0},
                    lora={"enabled": True, "r": 8}, checkpoint={"progress": False})
    res = train(cfg)
    assert res["train_pairs"] + res["eval_pairs"] == 160 and res["eval_pairs"] == 32
    assert res["eval_rewards/accuracies"] >= 0.9 and res["eval_rewards/margins"] > 0
    first = json.loads((tmp_path / "ipo" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["loss"] == pytest.approx(1.0, abs=1e-4)  # h = 0 at the start: (0 − 1/(2·0.5))²
