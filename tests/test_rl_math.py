"""RL math by hand: GAE, KL-shaped rewards, PPO clipped losses, KL estimators, GRPO/RLOO advantages."""

import math

import pytest
import torch

from postlab.algos.kl import kl_k1, kl_k3, masked_mean
from postlab.algos.pg import clipped_pg_loss, grpo_advantages, rloo_advantages
from postlab.algos.ppo import (AdaptiveKLController, gae, kl_shaped_rewards, ppo_policy_loss, ppo_value_loss,
                               whiten)

T = torch.tensor


def test_gae_by_hand():
    adv, ret = gae(T([[0.0, 0.0, 1.0]]), T([[0.5, 0.5, 0.5]]), T([[1, 1, 1]]), gamma=1.0, lam=0.95)
    assert adv.tolist()[0] == pytest.approx([0.45125, 0.475, 0.5])
    assert ret.tolist()[0] == pytest.approx([0.95125, 0.975, 1.0])


def test_gae_ignores_padding_and_bootstraps_zero_after_the_end():
    adv, ret = gae(T([[0.0, 1.0, 0.0]]), T([[0.5, 0.5, 9.0]]), T([[1, 1, 0]]), gamma=1.0, lam=0.95)
    assert adv.tolist()[0] == pytest.approx([0.475, 0.5, 0.0])
    assert ret.tolist()[0] == pytest.approx([0.975, 1.0, 0.0])
    adv, _ = gae(T([[0.0, 1.0]]), T([[0.0, 0.0]]), T([[1, 1]]), gamma=0.5, lam=1.0)
    assert adv.tolist()[0] == pytest.approx([0.5, 1.0])  # discounting


def test_kl_shaped_rewards_put_the_score_on_the_last_real_token():
    r, kl = kl_shaped_rewards(T([2.0, 1.0]), T([[-1.0, -2.0], [-1.0, -3.0]]), T([[-1.5, -1.0], [-1.0, 0.0]]),
                              T([[1, 1], [1, 0]]), beta=0.1)
    assert kl.flatten().tolist() == pytest.approx([0.5, -1.0, 0.0, 0.0])
    assert r.tolist()[0] == pytest.approx([-0.05, 2.1])
    assert r.tolist()[1] == pytest.approx([1.0, 0.0])


def test_ppo_policy_loss_by_hand():
    logp, old = torch.log(T([[1.5, 0.5]])), T([[0.0, 0.0]])
    loss, s = ppo_policy_loss(logp, old, T([[1.0, 1.0]]), T([[1, 1]]), clip=0.2)
    assert loss.item() == pytest.approx(-0.85) and s["policy/clipfrac"] == 0.5
    loss, s = ppo_policy_loss(logp, old, T([[-1.0, -1.0]]), T([[1, 1]]), clip=0.2)
    assert loss.item() == pytest.approx(1.15) and s["policy/clipfrac"] == 0.5
    assert s["policy/approxkl"] == pytest.approx(0.5 * (math.log(1.5) ** 2 + math.log(0.5) ** 2) / 2)
    assert s["val/ratio"] == pytest.approx(1.0)


def test_ppo_value_loss_by_hand():
    loss, s = ppo_value_loss(T([[1.0, 0.0]]), T([[0.5, 0.5]]), T([[0.0, 0.0]]), T([[1, 1]]), clip=0.2)
    assert loss.item() == pytest.approx(0.5 * (1.0 + 0.09) / 2) and s["val/clipfrac"] == 0.5


def test_kl_estimators_by_hand():
    logp, ref = torch.log(T([0.5])), torch.log(T([0.25]))
    assert kl_k1(logp, ref).item() == pytest.approx(math.log(2))
    assert kl_k3(logp, ref).item() == pytest.approx(-0.5 + math.log(2))
    assert kl_k3(ref, ref).item() == 0.0
    # both unbiased for KL(p||q) when y ~ p: check on a two-token distribution exactly
    p, q = T([0.7, 0.3]), T([0.4, 0.6])
    true_kl = (p * (p / q).log()).sum()
    assert (p * kl_k1(p.log(), q.log())).sum().item() == pytest.approx(true_kl.item())
    assert (p * kl_k3(p.log(), q.log())).sum().item() == pytest.approx(true_kl.item())


def test_whiten_and_masked_mean():
    x, m = T([[1.0, 3.0, 100.0]]), T([[1, 1, 0]])
    w = whiten(x, m)
    assert w.tolist()[0][:2] == pytest.approx([-1.0, 1.0], abs=1e-4) and w[0, 2] == 0
    assert masked_mean(x, m).item() == 2.0


def test_grpo_and_rloo_advantages_by_hand():
    scores = T([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    a = grpo_advantages(scores, k=3)
    std = math.sqrt(1 / 3)
    assert a.tolist()[:3] == pytest.approx([(2 / 3) / (std + 1e-4), -(1 / 3) / (std + 1e-4), -(1 / 3) / (std + 1e-4)])
    assert a.tolist()[3:] == [0.0, 0.0, 0.0]  # identical rewards: no signal
    assert grpo_advantages(scores, k=3, scale=False).tolist()[:3] == pytest.approx([2 / 3, -1 / 3, -1 / 3])
    assert rloo_advantages(scores, k=3).tolist() == pytest.approx([1.0, -0.5, -0.5, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError):
        rloo_advantages(scores, k=1)


def test_clipped_pg_loss_averages_within_then_across_responses():
    logp = T([[-1.0, -1.0], [-1.0, -1.0]])
    loss, s = clipped_pg_loss(logp, logp, None, T([1.0, 2.0]), T([[1, 1], [1, 0]]), clip=0.2, kl_coef=0.0)
    assert loss.item() == pytest.approx(-1.5) and s["clip_ratio/region_mean"] == 0.0
    ref = logp - 0.5
    loss_kl, s = clipped_pg_loss(logp, logp, ref, T([1.0, 2.0]), T([[1, 1], [1, 0]]), clip=0.2, kl_coef=0.1)
    k3 = math.exp(-0.5) + 0.5 - 1
    assert loss_kl.item() == pytest.approx(-1.5 + 0.1 * k3) and s["kl"] == pytest.approx(k3)


def test_clipped_pg_gradient_direction():
    logp = torch.zeros(2, 3, requires_grad=True)
    loss, _ = clipped_pg_loss(logp, logp.detach(), None, T([1.0, -1.0]), torch.ones(2, 3), clip=0.2, kl_coef=0.0)
    loss.backward()
    assert (logp.grad[0] < 0).all() and (logp.grad[1] > 0).all()  # descent: raise A>0, lower A<0


def test_adaptive_kl_controller():
    c = AdaptiveKLController(beta=0.1, target=6.0, horizon=10000)
    assert c.update(12.0, 100) == pytest.approx(0.1 * (1 + 0.2 * 0.01))
    c = AdaptiveKLController(beta=0.1, target=6.0, horizon=10000)
    assert c.update(5.4, 100) == pytest.approx(0.1 * (1 - 0.1 * 0.01))


def test_missing_eos_penalty_is_subtracted_from_the_score():
    """TRL's `missing_eos_penalty`: a response that never stopped keeps its score, minus the penalty."""
    from postlab.train.rl_common import apply_eos_penalty

    scores, finished = T([0.5, 0.2, -0.3]), T([True, False, False])
    assert apply_eos_penalty(scores, finished, 1.0).tolist() == pytest.approx([0.5, -0.8, -1.3])
    assert apply_eos_penalty(scores, finished, None).tolist() == pytest.approx([0.5, 0.2, -0.3])


def test_reward_config_takes_the_old_eos_penalty_name_as_its_negative():
    from postlab.train.rl_common import RewardConfig

    assert RewardConfig(missing_eos_penalty=1.0).missing_eos_penalty == 1.0
    assert RewardConfig(eos_penalty=-1.0).missing_eos_penalty == 1.0
    assert RewardConfig(eos_penalty=None).missing_eos_penalty is None
    with pytest.raises(ValueError):
        RewardConfig(missing_eos_penalty=-1.0)
