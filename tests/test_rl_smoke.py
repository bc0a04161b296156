"""Seconds-long RL runs on the tiny model: a synthetic reward rises; only the policy changes."""

import dataclasses
import json

import pytest
import torch

from postlab.tasks.suite import make_item, write_suite


def lowercase_reward(item, response: str) -> float:
    """Synthetic reward: the fraction of the response's characters that are lowercase ASCII letters
    (a random byte-level model writes them ~10% of the time: a dense signal to climb)."""
    return sum("a" <= c <= "z" for c in response) / max(len(response), 1)


def _suite(tmp_path, varied: bool = False):
    """Eight prompts, of one length or (`varied`) of different lengths."""
    items = [make_item(f"p{i}", [{"role": "user", "content": f"Write something, number {i}." + " More." * (i if varied else 0)}],
                       "synthetic", "train", [("keywords:existence", {"keywords": ["a"]})]) for i in range(8)]
    write_suite(items, tmp_path / "suite.jsonl")
    return str(tmp_path / "suite.jsonl")


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("advantage", ["grpo", "rloo"])
def test_grpo_and_rloo_raise_a_synthetic_reward(tmp_path, advantage):
    from postlab.models.load import load_model_and_tokenizer
    from postlab.train.grpo import GRPOConfig, train

    cfg = GRPOConfig(model="tiny", out_dir=str(tmp_path / "run"), suite=_suite(tmp_path), advantage=advantage,
                     k=8, prompts_per_step=2, steps=20, kl_coef=0.01,
                     reward={"source": "python:test_rl_smoke:lowercase_reward"},
                     sampling={"max_new_tokens": 12, "temperature": 1.0, "seed": 0},
                     optim={"lr": 2e-2, "bf16": False, "micro_batch_size": 16},
                     checkpoint={"progress": False, "save_every": 0})
    train(cfg)
    rewards = [m["reward"] for m in _metrics(tmp_path / "run")]
    start, end = sum(rewards[:3]) / 3, sum(rewards[-3:]) / 3
    assert end > start + 0.1 and end > 2 * start, (start, end)
    m = _metrics(tmp_path / "run")[-1]  # where the step's time went: its phases add up to at most the step
    phases = [m["time/sample_s"], m["time/logprob_s"], m["time/update_s"]]
    assert all(p > 0 for p in phases) and sum(phases) <= m["time/step_s"], m
    before, _ = load_model_and_tokenizer("tiny")
    after, _ = load_model_and_tokenizer(str(tmp_path / "run" / "model"))
    changed = [not torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values())]
    assert any(changed)


@pytest.mark.parametrize("value_head", ["model", "shared"])
def test_ppo_raises_a_synthetic_reward_and_leaves_the_reference_alone(tmp_path, value_head):
    from postlab.models.load import load_model_and_tokenizer
    from postlab.train.ppo import PPOConfig, train

    cfg = PPOConfig(model="tiny", out_dir=str(tmp_path / "run"), suite=_suite(tmp_path), prompts_per_step=16,
                    steps=20, ppo_epochs=2, minibatch_size=8, kl_coef=0.01, value_head=value_head,
                    reward={"source": "python:test_rl_smoke:lowercase_reward", "missing_eos_penalty": None},
                    sampling={"max_new_tokens": 12, "temperature": 1.0, "seed": 0},
                    optim={"lr": 1e-2, "bf16": False, "micro_batch_size": 8},
                    checkpoint={"progress": False, "save_every": 0})
    train(cfg)
    m = _metrics(tmp_path / "run")
    assert all(m[-1][f"time/{p}_s"] > 0 for p in ("sample", "logprob", "update")), m[-1]
    scores = [x["objective/scores"] for x in m]
    start, end = sum(scores[:3]) / 3, sum(scores[-3:]) / 3
    assert end > start + 0.1 and end > 2 * start, (start, end)
    for key in ("objective/kl", "objective/entropy", "objective/non_score_reward", "objective/rlhf_reward",
                "policy/approxkl_avg", "policy/clipfrac_avg", "loss/policy_avg", "loss/value_avg", "val/clipfrac_avg",
                "val/ratio", "val/num_eos_tokens", "lr", "episode", "proxy/score", "gold/train_score"):
        assert key in m[-1], key
    assert m[-1]["objective/kl"] > 0
    fresh, _ = load_model_and_tokenizer("tiny")
    trained, _ = load_model_and_tokenizer(str(tmp_path / "run" / "model"))
    assert any(not torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), trained.state_dict().values()))


@pytest.mark.parametrize("varied", [False, True], ids=["shared prompts", "plain pass"])
def test_a_shared_value_head_reads_the_hidden_state_that_predicts_each_token(tmp_path, varied):
    """V(s_t) from the policy's own pass = head(last hidden state at the position predicting token t), whether the
    rows share their prompts (the prompt runs once) or not; the log-probs are response_logprobs' own."""
    from postlab.models.load import load_model_and_tokenizer
    from postlab.rollout.types import Rollout
    from postlab.train.rl_common import positions, response_logprobs, response_logprobs_and_values

    model, _ = load_model_and_tokenizer("tiny")
    g = torch.Generator().manual_seed(0)
    B, P, R = 4, 6, 5
    ids = torch.randint(3, 200, (B, P + R), generator=g)
    if not varied:
        ids[:, :P] = ids[0, :P]  # one prompt for every row
    mask = torch.ones_like(ids)
    if varied:
        mask[1, :2] = 0  # a shorter, left-padded prompt
    response_mask = torch.ones(B, R, dtype=torch.long)
    response_mask[2, 3:] = 0
    r = Rollout(prompt_ids=ids[:, :P], prompt_mask=mask[:, :P], response_ids=ids[:, P:], response_mask=response_mask,
                logprobs=torch.zeros(B, R), texts=[""] * B, finished=torch.ones(B, dtype=torch.bool), pad_id=0)
    head = torch.nn.Linear(model.config.hidden_size, 1)
    with torch.no_grad():
        logp, ent, values = response_logprobs_and_values(model, head, r, 1.0, entropy=True)
        want_logp, want_ent = response_logprobs(model, r, 1.0, entropy=True)
        h = model.model(input_ids=r.input_ids, attention_mask=r.attention_mask,
                        position_ids=positions(r.attention_mask)).last_hidden_state
        want = head(h[:, P - 1 : P + R - 1]).squeeze(-1) * response_mask
    torch.testing.assert_close(logp, want_logp)
    torch.testing.assert_close(ent, want_ent)
    torch.testing.assert_close(values, want, atol=1e-5, rtol=1e-4)
    assert values[2, 3:].eq(0).all() and values[0].ne(0).all()


def test_a_shared_value_head_is_refused_where_it_cannot_work(tmp_path):
    from postlab.errors import ConfigError
    from postlab.train.ppo import PPOConfig

    base = dict(model="tiny", out_dir=str(tmp_path / "run"), suite=_suite(tmp_path), value_head="shared")
    with pytest.raises(ConfigError, match="value_model"):
        PPOConfig(**base, value_model="tiny").check()
    with pytest.raises(ConfigError, match="fsdp"):
        PPOConfig(**base, optim={"fsdp": True}).check()


def test_rl_recipes_run_the_gold_eval_callback_and_resume(tmp_path):
    from postlab.train.grpo import GRPOConfig, train

    args = dict(model="tiny", out_dir=str(tmp_path / "run"), suite=_suite(tmp_path), k=2, prompts_per_step=2,
                reward={"source": "gold"}, sampling={"max_new_tokens": 6, "seed": 0},
                optim={"lr": 1e-3, "bf16": False},
                gold_eval={"every": 2, "suites": [_suite(tmp_path)], "split": "train", "limit": 4,
                           "max_new_tokens": 6})
    train(GRPOConfig(steps=3, checkpoint={"progress": False, "save_every": 1}, **args))
    m = _metrics(tmp_path / "run")
    assert [x["step"] for x in m if "gold/score" in x] == [0, 2, 3]
    assert "gold/synthetic" in m[-1]
    # the gold reward brings the reward-hacking watch: every step reports it
    assert all({"hacking/full_marks_frac", "hacking/flagged_frac"} <= set(x) for x in m if "reward" in x)
    # resume: a longer run continues from step 3 instead of starting over
    train(GRPOConfig(steps=5, checkpoint={"progress": False, "save_every": 1, "resume": True}, **args))
    steps = [x["step"] for x in _metrics(tmp_path / "run") if "reward" in x]
    assert steps == [1, 2, 3, 4, 5]


def test_lora_policy_update_leaves_the_reference_untouched():
    """With LoRA the reference is the base with adapters disabled: a policy-gradient step moves the
    policy's log-probs and leaves the reference's exactly where they were."""
    from postlab.algos.pg import BatchTotals, grpo_loss
    from postlab.models.load import load_model_and_tokenizer
    from postlab.models.prepare import apply_lora
    from postlab.rollout import SamplingParams, TorchEngine
    from postlab.train.common import LoraConfig
    from postlab.train.rl_common import reference_mode, response_logprobs

    base, tok = load_model_and_tokenizer("tiny")
    fresh, _ = load_model_and_tokenizer("tiny")
    policy = apply_lora(base, LoraConfig(enabled=True, r=4), seed=0)
    r = TorchEngine(model=policy, tokenizer=tok).generate([[{"role": "user", "content": "hi"}]] * 4,
                                                          SamplingParams(temperature=1.0, max_new_tokens=8, seed=0))
    with torch.no_grad():
        ref_before = response_logprobs(fresh, r, 1.0)[0]
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=0.05)
    for _ in range(3):
        logp, _ = response_logprobs(policy, r, 1.0)
        loss, _ = grpo_loss(logp, logp.detach(), None, torch.tensor([1.0, -1.0, 1.0, -1.0]), r.response_mask,
                            BatchTotals.of(r.response_mask, 8), epsilon=0.2, epsilon_high=0.2, kl_coef=0.0)
        loss.backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        pol = response_logprobs(policy, r, 1.0)[0]
        with reference_mode(policy, None) as ref:
            ref_after = response_logprobs(ref, r, 1.0)[0]
    assert not torch.allclose(pol, ref_before, atol=1e-3)
    torch.testing.assert_close(ref_after, ref_before, atol=1e-5, rtol=0)


def ragged(recipe, monkeypatch):
    """Make `recipe`'s engine end its responses at different lengths (the tiny random model rarely
    emits EOS, and micro-batch weighting only matters when lengths differ)."""
    real = recipe.TorchEngine

    class Ragged(real):
        def generate(self, conversations, params, **kw):
            r = real.generate(self, conversations, params, **kw)
            R = r.response_ids.size(1)
            keep = torch.tensor([1 + (5 * b) % R for b in range(r.response_ids.size(0))])  # (B,) lengths
            mask = (torch.arange(R)[None, :] < keep[:, None]).long()
            ids = r.response_ids.masked_fill(mask == 0, r.pad_id)
            texts = self.tokenizer.batch_decode([row[:n].tolist() for row, n in zip(ids, keep)], skip_special_tokens=True)
            return dataclasses.replace(r, response_ids=ids, response_mask=mask, logprobs=r.logprobs * mask,
                                       finished=r.finished | (keep < R), texts=texts)

    monkeypatch.setattr(recipe, "TorchEngine", Ragged)


def first_step_grads(recipe, cfg, monkeypatch) -> list[torch.Tensor]:
    """The gradients of the first optimizer step of `recipe.train(cfg)`, before clipping."""
    grads = []
    real = recipe.clip_and_step

    def spy(optimizer, params, max_grad_norm):
        if not grads:
            grads.extend(p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params)
        return real(optimizer, params, max_grad_norm)

    monkeypatch.setattr(recipe, "clip_and_step", spy)
    recipe.train(cfg)
    return grads


def test_ppo_micro_batch_size_does_not_change_the_gradient(tmp_path, monkeypatch):
    """PPO's losses are means over the minibatch's tokens: accumulating them over micro-batches of
    responses of different lengths must give the full minibatch's gradient."""
    from postlab.train import ppo

    ragged(ppo, monkeypatch)
    grads = {}
    for micro in (1, 4):
        cfg = ppo.PPOConfig(model="tiny", out_dir=str(tmp_path / f"run{micro}"), suite=_suite(tmp_path), prompts_per_step=4,
                            minibatch_size=4, ppo_epochs=1, steps=1, kl_coef=0.05,
                            reward={"source": "python:test_rl_smoke:lowercase_reward"},
                            sampling={"max_new_tokens": 12, "temperature": 1.0, "seed": 0},
                            optim={"lr": 1e-2, "bf16": False, "micro_batch_size": micro},
                            checkpoint={"progress": False, "save_every": 0})
        grads[micro] = first_step_grads(ppo, cfg, monkeypatch)
    assert any(g.abs().max() > 1e-3 for g in grads[4])
    for g1, g4 in zip(grads[1], grads[4]):
        torch.testing.assert_close(g1, g4, atol=1e-6, rtol=0)


def test_ppo_first_epoch_ratio_is_exactly_one_under_bf16(tmp_path, monkeypatch):
    """Old and new log-probs come from identical forward passes (same rows, same padding), so before
    the first update ρ = 1 exactly, even in bf16."""
    from postlab.train import ppo

    ragged(ppo, monkeypatch)
    seen = []
    real = ppo.ppo_policy_loss

    def spy(logp, old_logp, *args, **kw):
        seen.append((logp.detach().clone(), old_logp.clone()))
        return real(logp, old_logp, *args, **kw)

    monkeypatch.setattr(ppo, "ppo_policy_loss", spy)
    cfg = ppo.PPOConfig(model="tiny", out_dir=str(tmp_path / "run"), suite=_suite(tmp_path, varied=True), prompts_per_step=6,
                        minibatch_size=6, ppo_epochs=1, steps=1, kl_coef=0.05,
                        reward={"source": "python:test_rl_smoke:lowercase_reward"},
                        sampling={"max_new_tokens": 12, "temperature": 1.0, "seed": 0},
                        optim={"lr": 1e-2, "bf16": True, "micro_batch_size": 2},
                        checkpoint={"progress": False, "save_every": 0})
    ppo.train(cfg)
    assert len(seen) == 3
    for logp, old in seen:
        assert torch.equal(logp, old)
    m = _metrics(tmp_path / "run")[-1]
    assert m["policy/approxkl_avg"] == 0.0 and m["policy/clipfrac_avg"] == 0.0 and m["val/ratio"] == pytest.approx(1.0, abs=1e-6)


def test_grpo_kl_in_reward_without_a_kl_coef_trains(tmp_path):
    from postlab.train.grpo import GRPOConfig, train

    cfg = GRPOConfig(model="tiny", out_dir=str(tmp_path / "run"), suite=_suite(tmp_path), k=2, prompts_per_step=2, steps=1,
                     kl_in_reward=True, kl_coef=0.0, reward={"source": "python:test_rl_smoke:lowercase_reward"},
                     sampling={"max_new_tokens": 6, "seed": 0}, optim={"lr": 1e-3, "bf16": False},
                     checkpoint={"progress": False, "save_every": 0})
    train(cfg)
    assert _metrics(tmp_path / "run")[-1]["kl"] == 0.0


def test_rloo_gradient_is_sequence_level_reinforce(tmp_path, monkeypatch):
    """RLOO (Ahmadian et al. 2024) treats a whole response as one action: with one update per batch
    its gradient is −(1/B) Σ_i Â_i ∇ log π(o_i), Â the leave-one-out advantage, with no 1/|o_i| per
    response (responses here have different lengths, where the two differ)."""
    from postlab.algos.pg import rloo_advantages
    from postlab.models.load import load_model_and_tokenizer
    from postlab.train import grpo
    from postlab.train.rl_common import response_logprobs

    ragged(grpo, monkeypatch)
    rollouts = []
    ragged_generate = grpo.TorchEngine.generate

    def keep(self, *a, **kw):
        rollouts.append(ragged_generate(self, *a, **kw))
        return rollouts[-1]

    monkeypatch.setattr(grpo.TorchEngine, "generate", keep)
    cfg = grpo.GRPOConfig(model="tiny", out_dir=str(tmp_path / "run"), suite=_suite(tmp_path), advantage="rloo", k=4,
                          prompts_per_step=1, steps=1, kl_coef=0.0, reward={"source": "python:test_rl_smoke:lowercase_reward"},
                          sampling={"max_new_tokens": 12, "temperature": 1.0, "seed": 0},
                          optim={"lr": 1e-3, "bf16": False, "micro_batch_size": 4},
                          checkpoint={"progress": False, "save_every": 0})
    got = first_step_grads(grpo, cfg, monkeypatch)
    r = rollouts[0]
    A = rloo_advantages(torch.tensor([lowercase_reward(None, t) for t in r.texts]), k=4)
    assert len(set(r.response_lengths.tolist())) > 1 and A.abs().max() > 0
    policy, _ = load_model_and_tokenizer("tiny")
    logp, _ = response_logprobs(policy, r, 1.0)
    (-(A * logp.sum(1)).sum() / len(A)).backward()
    for g, p in zip(got, [p for p in policy.parameters() if p.requires_grad]):
        torch.testing.assert_close(g, p.grad, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kl_in_reward", [False, True])
def test_grpo_first_iteration_ratio_is_exactly_one_under_bf16(tmp_path, monkeypatch, kl_in_reward):
    """With π_old computed before the update (num_iterations > 1, or kl_in_reward), old and new
    log-probs come from identical forward passes, so the first iteration's ρ is exactly 1 in bf16."""
    from postlab.algos import pg
    from postlab.train import grpo

    ragged(grpo, monkeypatch)
    seen = []
    real = pg.LOSSES["grpo"]

    def spy(logp, old_logp, *args, **kw):
        seen.append((logp.detach().clone(), old_logp.clone()))
        return real(logp, old_logp, *args, **kw)

    monkeypatch.setitem(pg.LOSSES, "grpo", spy)
    cfg = grpo.GRPOConfig(model="tiny", out_dir=str(tmp_path / "run"), suite=_suite(tmp_path, varied=True), k=2,
                          prompts_per_step=3, steps=1, num_iterations=1 if kl_in_reward else 2, kl_in_reward=kl_in_reward,
                          reward={"source": "python:test_rl_smoke:lowercase_reward"},
                          sampling={"max_new_tokens": 12, "temperature": 1.0, "seed": 0},
                          optim={"lr": 1e-2, "bf16": True, "micro_batch_size": 2},
                          checkpoint={"progress": False, "save_every": 0})
    grpo.train(cfg)
    first = seen[:3]  # the first iteration's micro-batches, before any update
    assert len(first) == 3
    for logp, old in first:
        assert torch.equal(logp, old)


def half_constant_reward(item, response: str) -> float:
    """0 for prompts p0–p3 whatever the response (groups with no signal), lowercase_reward for the rest."""
    return 0.0 if item.id in ("p0", "p1", "p2", "p3") else lowercase_reward(item, response)


def grpo_config(tmp_path, **kw):
    from postlab.train.grpo import GRPOConfig

    args = dict(model="tiny", out_dir=str(tmp_path / "run"), suite=_suite(tmp_path), k=2, prompts_per_step=2, steps=2,
                kl_coef=0.01, reward={"source": "python:test_rl_smoke:lowercase_reward"},
                sampling={"max_new_tokens": 6, "temperature": 1.0, "seed": 0},
                optim={"lr": 1e-2, "bf16": False, "micro_batch_size": 16}, checkpoint={"progress": False, "save_every": 0})
    return GRPOConfig(**{**args, **kw})


def test_dynamic_sampling_trains_only_on_groups_with_a_signal(tmp_path, monkeypatch):
    from postlab.algos import pg
    from postlab.train import grpo

    advantages = []
    real = pg.LOSSES["grpo"]

    def spy(logp, old_logp, ref_logp, adv, *args, **kw):
        advantages.append(adv.detach().clone())
        return real(logp, old_logp, ref_logp, adv, *args, **kw)

    monkeypatch.setitem(pg.LOSSES, "grpo", spy)
    grpo.train(grpo_config(tmp_path, steps=4, dynamic_sampling=True, max_refill_rounds=3,
                           reward={"source": "python:test_rl_smoke:half_constant_reward"}))
    m = _metrics(tmp_path / "run")
    assert len(advantages) == 4
    for adv in advantages:  # every trained group has responses scored differently
        assert (adv.view(-1, 2).abs().sum(1) > 0).all()
    assert any(x["dynamic_sampling/rounds"] > 1 for x in m) and all(1 <= x["dynamic_sampling/groups"] <= 2 for x in m)
    assert any(x["frac_reward_zero_std"] > 0 for x in m)


def test_overlong_filtering_masks_the_loss_of_truncated_responses(tmp_path, monkeypatch):
    from postlab.algos import pg
    from postlab.train import grpo

    ragged(grpo, monkeypatch)
    rollouts, masks = [], []
    ragged_generate = grpo.TorchEngine.generate

    def keep(self, *a, **kw):
        rollouts.append(ragged_generate(self, *a, **kw))
        return rollouts[-1]

    real = pg.LOSSES["dapo"]

    def spy(logp, old_logp, ref_logp, adv, mask, *args, **kw):
        masks.append(mask.clone())
        return real(logp, old_logp, ref_logp, adv, mask, *args, **kw)

    monkeypatch.setattr(grpo.TorchEngine, "generate", keep)
    monkeypatch.setitem(pg.LOSSES, "dapo", spy)
    grpo.train(grpo_config(tmp_path, steps=1, k=4, loss_type="dapo", mask_truncated_completions=True,
                           sampling={"max_new_tokens": 12, "temperature": 1.0, "seed": 0}))
    r, mask = rollouts[0], masks[0]
    assert (~r.finished).any() and r.finished.any()
    R = mask.size(1)
    assert torch.equal(mask, r.response_mask[:, :R] * r.finished[:, None])


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dapo", "dr_grpo", "rloo"])
def test_every_loss_type_trains(tmp_path, loss_type):
    from postlab.models.load import load_model_and_tokenizer
    from postlab.train.grpo import train

    train(grpo_config(tmp_path, loss_type=loss_type, num_iterations=2, epsilon_high=0.28, scale_rewards=False))
    m = _metrics(tmp_path / "run")
    for key in ("loss", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean", "frac_reward_zero_std",
                "completions/mean_length_rewarded", "completions/mean_length_unrewarded"):
        assert key in m[-1], key
    before, _ = load_model_and_tokenizer("tiny")
    after, _ = load_model_and_tokenizer(str(tmp_path / "run" / "model"))
    assert any(not torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()))


def test_grpo_config_loss_type_names_and_defaults():
    import typing

    from postlab.algos.pg import LOSSES
    from postlab.train.grpo import GRPOConfig

    names = typing.get_args(typing.get_args(GRPOConfig.model_fields["loss_type"].annotation)[0])
    assert set(names) == set(LOSSES)
    assert GRPOConfig().loss == "grpo" and GRPOConfig(advantage="rloo").loss == "rloo"
    assert GRPOConfig(advantage="rloo", loss_type="dr_grpo").loss == "dr_grpo"


def test_rows_with_signal_skips_zero_advantages_only_without_a_kl_term():
    from postlab.algos.pg import rows_with_signal

    adv = torch.tensor([0.0, 1.5, 0.0, -0.7])
    assert rows_with_signal(adv, kl_coef=0.0) == [1, 3]
    assert rows_with_signal(adv, kl_coef=0.01) == [0, 1, 2, 3]  # each row's KL term carries gradient
    assert rows_with_signal(torch.zeros(4), kl_coef=0.0) == []


@pytest.mark.parametrize("loss_type", ["dapo", "grpo"])
def test_skipping_rows_without_signal_leaves_the_update_unchanged(tmp_path, monkeypatch, loss_type):
    """β = 0: forwarding only the rows with Â ≠ 0 gives the weights and losses of forwarding every row,
    including steps where no row has signal (a zero gradient still moves Adam's momentum). Bit for bit, so
    with one plain pass per micro-batch: the shared prompt pass runs as many prompts as the micro-batch
    holds, and a matmul over other rows may round differently (its own tests bound that)."""
    from postlab.models.load import load_model_and_tokenizer
    from postlab.train import grpo, rl_common
    from postlab.train.shared_prompt import response_logits

    monkeypatch.setattr(rl_common, "response_logits", lambda model, rollout: response_logits(model, rollout, share_prompts=False))

    def run(name):
        grpo.train(grpo_config(tmp_path / name, steps=6, kl_coef=0.0, loss_type=loss_type, prompts_per_step=2,
                               reward={"source": "python:test_rl_smoke:half_constant_reward"}))
        return _metrics(tmp_path / name / "run"), load_model_and_tokenizer(str(tmp_path / name / "run" / "model"))[0]

    (tmp_path / "skip").mkdir(), (tmp_path / "all").mkdir()
    skipped, m_skip = run("skip")
    fractions = [m["frac_rows_skipped"] for m in skipped]
    assert 1.0 in fractions and any(0 < f < 1 for f in fractions), fractions  # both cases happen
    monkeypatch.setattr(grpo, "rows_with_signal", lambda adv, kl_coef: list(range(adv.numel())))
    every, m_all = run("all")
    assert all(m["frac_rows_skipped"] == 0 for m in every)
    for a, b in zip(skipped, every):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-7) and a["reward"] == b["reward"]
    for (name, a), b in zip(m_skip.state_dict().items(), m_all.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), (name, (a - b).abs().max())
