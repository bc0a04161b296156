"""RL math by hand: GAE, KL-shaped rewards, PPO clipped losses, KL estimators, GRPO/RLOO advantages."""

import math

import pytest
import torch

from postlab.algos.kl import kl_k1, kl_k3, masked_mean
from postlab.algos.pg import BatchTotals, grpo_advantages, grpo_loss, rloo_advantages
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


def clipped_pg_loss(logp, old_logp, ref_logp, advantages, mask, *, clip, kl_coef):
    """GRPO's loss on a whole batch, with a symmetric clip."""
    totals = BatchTotals.of(mask, mask.size(1))
    return grpo_loss(logp, old_logp, ref_logp, advantages, mask, totals, epsilon=clip, epsilon_high=clip, kl_coef=kl_coef)


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


# The GRPO family's losses on one batch, by hand. Two responses of 3 and 1 tokens, ρ = 1 (π_θ = π_old),
# Â = (1, −2), L_max = 4: per-token loss ℓ = −Â, so row 0 is (−1, −1, −1) and row 1 is (2).
LOGP, MASK, ADV = torch.zeros(2, 3), T([[1, 1, 1], [1, 0, 0]]), T([1.0, -2.0])
K3 = math.exp(-0.5) + 0.5 - 1  # k3 when log π_ref = log π − 0.5
BY_HAND = {  # loss_type: (loss, d loss / d logp of row 0's tokens, of row 1's token, loss with β = 0.1 and that k3)
    "grpo": (0.5, -1 / 6, 1.0, 0.5 + 0.1 * K3),  # (1/2)(mean(−1, −1, −1) + mean(2))
    "bnpo": (-0.25, -1 / 4, 0.5, -0.25 + 0.1 * K3),  # (−3 + 2) / 4 tokens
    "dapo": (-0.25, -1 / 4, 0.5, -0.25 + 0.1 * K3),
    "dr_grpo": (-0.125, -1 / 8, 0.25, -0.125 + 0.1 * K3 * 4 / 8),  # (−3 + 2) / (2 responses · L_max 4)
    "rloo": (0.5, -1 / 2, 1.0, 0.5 + 0.1 * K3 * 4 / 2),  # (1/2)(−Â_0 − Â_1) with ρ_i = exp Σ_t log ρ_t
}


@pytest.mark.parametrize("loss_type", sorted(BY_HAND))
def test_loss_aggregations_by_hand(loss_type):
    from postlab.algos.pg import LOSSES

    loss_fn, (want, d_row0, d_row1, want_kl) = LOSSES[loss_type], BY_HAND[loss_type]
    totals = BatchTotals.of(MASK, max_len=4)
    logp = LOGP.clone().requires_grad_(True)
    loss, s = loss_fn(logp, logp.detach(), None, ADV, MASK, totals, epsilon=0.2, epsilon_high=0.2, kl_coef=0.0)
    loss.backward()
    assert loss.item() == pytest.approx(want) and s["loss"] == pytest.approx(want)
    assert logp.grad.flatten().tolist() == pytest.approx([d_row0] * 3 + [d_row1, 0.0, 0.0])
    loss_kl, _ = loss_fn(LOGP, LOGP, LOGP - 0.5, ADV, MASK, totals, epsilon=0.2, epsilon_high=0.2, kl_coef=0.1)
    assert loss_kl.item() == pytest.approx(want_kl)


@pytest.mark.parametrize("loss_type", sorted(BY_HAND))
def test_losses_add_up_over_micro_batches(loss_type):
    """A micro-batch divides by the whole batch's totals: its losses and stats sum to the batch's."""
    from postlab.algos.pg import LOSSES

    g = torch.Generator().manual_seed(0)
    logp, old, ref = (torch.randn(5, 4, generator=g) * 0.3 - 1 for _ in range(3))
    adv, mask = torch.randn(5, generator=g), T([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]])
    totals, kw = BatchTotals.of(mask, max_len=6), dict(epsilon=0.2, epsilon_high=0.28, kl_coef=0.05)
    full, full_stats = LOSSES[loss_type](logp, old, ref, adv, mask, totals, **kw)
    parts = [LOSSES[loss_type](logp[i], old[i], ref[i], adv[i], mask[i], totals, **kw) for i in ([0, 3], [1], [2, 4])]
    assert sum(p[0] for p in parts).item() == pytest.approx(full.item(), abs=1e-6)
    for key, value in full_stats.items():
        assert sum(p[1][key] for p in parts) == pytest.approx(value, abs=1e-6), key


def test_clip_higher_by_hand():
    """DAPO's clip-higher: ρ may rise to 1 + ε_high (0.28) where it would stop at 1 + ε (0.2)."""
    logp, old, mask, totals = torch.log(T([[1.25, 0.7]])), T([[0.0, 0.0]]), T([[1, 1]]), BatchTotals(1, 2, 2)
    loss, s = grpo_loss(logp, old, None, T([1.0]), mask, totals, epsilon=0.2, epsilon_high=0.2, kl_coef=0.0)
    assert loss.item() == pytest.approx(-(1.2 + 0.7) / 2)  # 1.25 clipped to 1.2; 0.7 with Â > 0 is not clipped
    assert (s["clip_ratio/high_mean"], s["clip_ratio/low_mean"], s["clip_ratio/region_mean"]) == (0.5, 0.0, 0.5)
    loss, s = grpo_loss(logp, old, None, T([1.0]), mask, totals, epsilon=0.2, epsilon_high=0.28, kl_coef=0.0)
    assert loss.item() == pytest.approx(-(1.25 + 0.7) / 2) and s["clip_ratio/region_mean"] == 0.0
    loss, s = grpo_loss(logp, old, None, T([-1.0]), mask, totals, epsilon=0.2, epsilon_high=0.28, kl_coef=0.0)
    assert loss.item() == pytest.approx((1.25 + 0.8) / 2)  # Â < 0: 0.7 clipped up to 1 − ε = 0.8
    assert (s["clip_ratio/low_mean"], s["clip_ratio/high_mean"]) == (0.5, 0.0)


def test_zero_std_groups():
    from postlab.algos.pg import zero_std_groups

    assert zero_std_groups(T([1.0, 1.0, 0.0, 1.0, 2.0, 2.0]), k=2).tolist() == [True, False, True]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("temperature", [1.0, 0.7, 0.0])
def test_chunked_token_logprobs_match_log_softmax_in_value_entropy_and_gradient(dtype, temperature):
    """The RL log-probs (chunked, no fp32 (B, R, V) copy) equal log_softmax(z/T)[y], its entropy and
    its gradient; T = 0 (greedy) is read as T = 1."""
    from postlab.algos.lm import token_logprobs

    torch.manual_seed(0)
    z = (torch.randn(3, 37, 501) * 3).to(dtype).requires_grad_(True)
    y = torch.randint(0, 501, (3, 37))
    g = torch.randn(3, 37)
    ref = torch.log_softmax(z.float() / (temperature or 1.0), dim=-1)
    lp_ref = ref.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    ent_ref = -(ref.exp() * ref).sum(-1)
    (lp_ref * g).sum().backward()
    grad_ref, z.grad = z.grad.clone(), None
    lp, ent = token_logprobs(z, y, temperature, entropy=True, chunk=8)  # chunks that do not divide R
    (lp * g).sum().backward()
    assert lp.dtype == torch.float32 and not ent.requires_grad
    torch.testing.assert_close(lp, lp_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(ent, ent_ref.detach(), atol=2e-5, rtol=0)
    tol = {"atol": 1e-6, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 1e-5, "rtol": 2 ** -7}  # bf16: one ulp
    torch.testing.assert_close(z.grad.float(), grad_ref.float(), **tol)
    assert token_logprobs(z, y, temperature)[1] is None
