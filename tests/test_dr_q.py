"""DR.Q: the InfoNCE term, the faded prioritised replay, DR.Q's settings, and MR.Q underneath."""

import math

import numpy as np
import pytest
import torch
from test_mrq import ACT, N_ACT, OBS, SMALL, discrete_replay, fixed_batch, replay

from baselines.dr_q import DRQAgent, DRQConfig, info_nce
from baselines.mrq import MRQ, MRQConfig
from iqrl.config.build import build_config
from iqrl.config.run import ConfigError
from iqrl.core.replay import SequenceReplay, fade_weight, nstep_targets

from agent_helpers import params, same

# MR.Q's values of the keys DR.Q's code sets otherwise (module docstring's table)
MRQ_VALUES = {
    "enc_lr": 1e-4,
    "enc_weight_decay": 1e-4,
    "value_weight_decay": 1e-4,
    "policy_weight_decay": 1e-4,
    "done_weight": 0.1,
    "value_grad_clip": 20.0,
    "pre_activ_weight": 1e-5,
}


def make(**kw):
    torch.manual_seed(0)
    return DRQAgent(DRQConfig(**{**SMALL, **kw}), OBS, ACT, torch.device("cpu"), seed=0)


# ---------------------------------------------------------------------------------- InfoNCE


def test_info_nce_on_a_hand_computed_example():
    """pred rows (1, 0), (0, 2); targets (3, 0), (1, 1); T = 0.1. Cosines: row 0 [1, 1/sqrt2], row 1
    [0, 1/sqrt2]; l_0 = log(1 + e^{(1/sqrt2 - 1)/T}), l_1 = log(1 + e^{(0 - 1/sqrt2)/T})."""
    pred, target = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    r = 1 / math.sqrt(2)
    expected = [math.log1p(math.exp((r - 1) / 0.1)), math.log1p(math.exp(-r / 0.1))]
    assert info_nce(pred, target, 0.1).tolist() == pytest.approx(expected, abs=1e-6)
    # cosine similarity: the lengths of either side do not matter; the temperature sharpens
    assert torch.allclose(info_nce(5 * pred, 0.5 * target, 0.1), info_nce(pred, target, 0.1))
    assert info_nce(pred, target, 1.0).tolist() == pytest.approx(
        [math.log1p(math.exp(r - 1)), math.log1p(math.exp(-r))], abs=1e-6
    )


def test_info_nce_gradient_is_softmax_minus_labels_through_the_normalisation():
    """d mean_b l_b / d pred_b = (I - p_b p_b^T) / |pred_b| * sum_b' (P_bb' - [b = b']) t_b' / (T B), with
    p, t the normalised rows and P the row softmax of the cosine logits."""
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(4, 3, generator=g).requires_grad_(), torch.randn(4, 3, generator=g)
    info_nce(pred, target, 0.1).mean().backward()
    with torch.no_grad():
        p, t = pred / pred.norm(dim=-1, keepdim=True), target / target.norm(dim=-1, keepdim=True)
        probs = torch.softmax(p @ t.T / 0.1, -1)
        d_p = (probs - torch.eye(4)) @ t / (0.1 * 4)
        expected = (d_p - (d_p * p).sum(-1, keepdim=True) * p) / pred.norm(dim=-1, keepdim=True)
    assert torch.allclose(pred.grad, expected, atol=1e-6)


def test_infonce_pairs_each_model_prediction_with_the_target_encoders_next_state():
    """The term of the rollout is sum_t mean_b l(zhat_{t+1}, zbar_s(o_{t+1})), zhat the model's z_s rows on
    z_sa unrolled from z_s(o_0), zbar from the target encoder."""
    agent, r = make(), replay()
    b = fixed_batch(r, 5)
    terms = agent.encoder_terms(b, False)
    with torch.no_grad():
        zs, expected = agent.encoder.zs(b.obs[:, 0]), 0.0
        for t in range(5):
            _, zs, _ = agent.encoder.model_all(zs, b.action[:, t])
            expected += info_nce(zs, agent.encoder_target.zs(b.obs[:, t + 1]), 0.1).mean()
    assert terms["infonce_loss"].item() == pytest.approx(float(expected), rel=1e-6)
    _, metrics = agent.encoder_loss(b, False)
    weighted = metrics["consistency_loss"] + 0.1 * metrics["reward_loss"] + 0.1 * metrics["infonce_loss"]
    assert metrics["repr_loss"].item() == pytest.approx(weighted.item(), rel=1e-6)  # done_weight 0


def test_infonce_gradient_reaches_the_online_encoder_only_through_zhat():
    agent, r = make(), replay()
    b = fixed_batch(r, 5)
    agent.encoder_terms(b, False)["infonce_loss"].backward()
    enc = agent.encoder
    for net in (enc.zs_net, enc.za, enc.zsa_net):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    w = enc.model.weight.grad  # rows: done (1), next z_s (zs_dim), reward logits (65)
    assert (w[0] == 0).all() and (w[9:] == 0).all() and (w[1:9].abs().sum(-1) > 0).all()
    for net in (agent.encoder_target, agent.value, agent.policy, agent.value_target, agent.policy_target):
        assert all(p.grad is None for p in net.parameters())


def test_infonce_mask_per_window_and_the_codes_broadcast():
    """Default: mean_b m_b l_b; DRQ-1: the code's (l [B] * m [B, 1]).mean() = mean(m) mean(l)."""
    g = torch.Generator().manual_seed(1)
    z, target = torch.randn(6, 8, generator=g), torch.randn(6, 1, 8, generator=g)
    valid = torch.tensor([[1.0], [1.0], [0.0], [1.0], [0.0], [1.0]])
    loss = info_nce(z, target[:, 0], 0.1)
    own = make().infonce_term([(None, z, None)], target, valid)
    code = make(official_infonce_mask_broadcast=True).infonce_term([(None, z, None)], target, valid)
    assert own.item() == pytest.approx((loss * valid[:, 0]).mean().item(), rel=1e-6)
    assert code.item() == pytest.approx((loss * valid[:, 0].reshape(-1, 1)).mean().item(), rel=1e-6)
    assert abs(own.item() - code.item()) > 1e-3
    ones = torch.ones(6, 1)  # no terminal: the two agree
    assert make().infonce_term([(None, z, None)], target, ones).item() == pytest.approx(
        make(official_infonce_mask_broadcast=True).infonce_term([(None, z, None)], target, ones).item()
    )


# ---------------------------------------------------------------------------------- faded replay


def test_fade_weight_values_and_the_codes_recursion():
    ages = torch.tensor([0, 1, 2, 10_000, 23_024, 23_025, 10**6])
    w = fade_weight(ages, 0.9999, 0.1)
    assert w[:3].tolist() == pytest.approx([1.0, 0.9999, 0.9999**2], rel=1e-12)
    assert w[3].item() == pytest.approx(0.9999**10_000, rel=1e-12)  # ~ e^-1
    assert w[4].item() == pytest.approx(0.9999**23_024) and w[4] > 0.1  # ln 0.1 / ln 0.9999 = 23 024.7
    assert w[5:].tolist() == [0.1, 0.1]
    # DR.Q's buffer: every add multiplies all weights by 0.9999 and sets the new slot's to 1
    code = torch.zeros(50)
    for i in range(50):
        code = code * 0.5
        code[i] = 1
    assert torch.allclose(code.double().clamp(0.1, 1), fade_weight(49 - torch.arange(50), 0.5, 0.1))


def test_faded_sampling_draws_starts_in_proportion_to_priority_times_fade():
    r = SequenceReplay(OBS, ACT, seq_len=1, seed=0)
    r.start_episode(np.zeros(OBS, np.float32))
    for t in range(8):
        r.add(np.zeros(ACT, np.float32), 0.0, np.zeros(OBS, np.float32), False, t == 7)
    r.update_priorities(torch.tensor([0, 7]), torch.tensor([2.0, 0.5]))
    prio = torch.tensor([2.0, 1, 1, 1, 1, 1, 1, 0.5], dtype=torch.float64)
    fade = (0.5 ** (7 - torch.arange(8.0, dtype=torch.float64))).clamp(0.1, 1)
    n = 200_000
    counts = torch.bincount(r.sample(n, prioritized=True, fade_decay=0.5, fade_floor=0.1).index, minlength=8)
    assert torch.allclose(counts.double() / n, prio * fade / (prio * fade).sum(), atol=4e-3)
    # fade_decay = 1 is LAP alone, the very same draws
    r.generator.manual_seed(5)
    lap = r.sample(64, prioritized=True).index
    r.generator.manual_seed(5)
    assert torch.equal(r.sample(64, prioritized=True, fade_decay=1.0, fade_floor=0.1).index, lap)


def test_both_batches_are_drawn_faded():
    agent, r = make(target_update_every=2), replay()
    calls, sample = [], r.sample
    r.sample = lambda n, L, **kw: (calls.append((L, kw)), sample(n, L, **kw))[1]
    agent.update(r, 0)
    faded = {"prioritized": True, "fade_decay": 0.9999, "fade_floor": 0.1}
    assert calls == [(5, faded)] * 2 + [(3, faded)]


# ---------------------------------------------------------------------------------- DR.Q's RL and MR.Q's


def test_defaults_are_the_codes():
    c = DRQConfig()
    assert (c.infonce_weight, c.infonce_temperature, c.fade_decay, c.fade_floor) == (0.1, 0.1, 0.9999, 0.1)
    assert c.enc_mlp_dims == [750, 750] and (c.enc_lr, c.value_lr, c.policy_lr) == (3e-4, 3e-4, 3e-4)
    assert (c.enc_weight_decay, c.value_weight_decay, c.policy_weight_decay) == (0.01, 0.01, 0.01)
    assert (c.done_weight, c.value_grad_clip, c.pre_activ_weight, c.reward_scaling) == (0.0, 0.0, 0.0, False)
    assert (c.zs_dim, c.za_dim, c.zsa_dim, c.mlp_dims, c.batch_size) == (512, 256, 512, [512, 512], 256)
    assert (c.enc_horizon, c.q_horizon, c.target_update_every, c.lap_alpha, c.lap_min_priority) == (
        5,
        3,
        250,
        0.4,
        1.0,
    )
    assert build_config(["agent=dr-q", "task=walker-walk"]).agent == c
    with pytest.raises(ConfigError, match="agent.fade_decay"):
        build_config(["agent=dr-q", "agent.fade_decay=1.5"])
    with pytest.raises(ConfigError, match="agent.infonce_temperature"):
        build_config(["agent=dr-q", "agent.infonce_temperature=0"])


def test_td_target_is_unscaled_and_the_value_step_unclipped():
    """y = R + gamma^3 min_j Qbar_j (DRQ.py:229-230): after the first sync both reward scales are 1, where
    MR.Q's (reward_scaling) takes s = mean |r| of the buffer."""
    agent, r = make(target_update_every=4), replay()
    metrics = agent.update(r, 0)
    assert agent.reward_scale == agent.target_reward_scale == 1.0
    assert "grad_norm_value" not in metrics  # no clip_grad_norm_ in DR.Q's value step
    b = fixed_batch(r, 3)
    ret, discount, _ = nstep_targets(b.reward, b.terminal, b.valid, 0.99, 3)
    state = agent.generator.get_state()
    y = agent.td_target(b, agent.target_reward_scale, agent.reward_scale, **agent.target_draws(32))
    agent.generator.set_state(state)
    with torch.no_grad():
        zs = agent.encoder_target.zs(b.obs[:, 3])
        a = torch.tanh(agent.policy_target(zs))
        a = (a + (torch.randn(a.shape, generator=agent.generator) * 0.2).clamp(-0.3, 0.3)).clamp(-1, 1)
        q = agent.value_target(agent.encoder_target.zsa(zs, a)).squeeze(-1).amin(0)
    assert torch.allclose(y, ret + discount * q, atol=1e-6)
    scaled = make(target_update_every=4, reward_scaling=True, value_grad_clip=20.0)
    assert "grad_norm_value" in scaled.update(r, 0)
    assert scaled.reward_scale == pytest.approx(r.reward_abs_mean()) and scaled.target_reward_scale == 1.0


def test_with_dr_qs_terms_off_and_mrqs_values_the_update_is_mrqs_bit_for_bit():
    """infonce_weight 0, fade_decay 1, reward_scaling on and MR.Q's values of the other keys: DR.Q's
    update is MR.Q's, parameters and metrics identical over bursts and RL steps, terminals included."""
    off = {**SMALL, **MRQ_VALUES, "target_update_every": 3}
    torch.manual_seed(0)
    mrq = MRQ(MRQConfig(**off), OBS, ACT, torch.device("cpu"), seed=0)
    drq = make(**off, infonce_weight=0.0, fade_decay=1.0, reward_scaling=True)
    r1, r2 = replay(terminal=True), replay(terminal=True)
    for k in range(7):
        m1, m2 = mrq.update(r1, 0), drq.update(r2, 0)
        assert m1.keys() == m2.keys() and all(torch.equal(m1[k], m2[k]) for k in m1)
        if k == 3:
            mrq_after_4 = params(mrq.encoder)
    for net in ("encoder", "value", "policy", "encoder_target", "value_target", "policy_target"):
        assert same(getattr(drq, net), params(getattr(mrq, net)))
    # each of DR.Q's two additions alone changes the encoder's course
    for alone in ({"fade_decay": 1.0}, {"infonce_weight": 0.0}):
        agent, r = make(**off, reward_scaling=True, **alone), replay(terminal=True)
        for _ in range(4):
            agent.update(r, 0)
        assert not same(agent.encoder, mrq_after_4)


def test_from_pixels_the_update_trains_mrqs_cnn_with_the_infonce_term_and_faded_draws():
    shape = (9, 32, 32)  # 3 stacked RGB frames
    torch.manual_seed(0)
    agent = DRQAgent(DRQConfig(**SMALL, target_update_every=2), shape, ACT, torch.device("cpu"), seed=0)
    g = np.random.default_rng(0)
    r = SequenceReplay(shape, ACT, seq_len=5, frame_stack=3)
    r.start_episode(g.integers(0, 256, shape, dtype=np.uint8))
    for t in range(40):
        r.add(g.uniform(-1, 1, ACT), g.random(), g.integers(0, 256, shape, dtype=np.uint8), False, t == 39)
    before = params(agent.encoder.zs_net)
    metrics = agent.update(r, 0)
    assert metrics["infonce_loss"] > 0 and torch.isfinite(metrics["q_loss"])
    assert not same(agent.encoder.zs_net, before)


def test_discrete_actions_reach_the_model_one_hot_and_train():
    from iqrl.core.spaces import ActionSpec

    torch.manual_seed(0)
    cfg = DRQConfig(**SMALL, target_update_every=2)
    agent = DRQAgent(cfg, OBS, N_ACT, torch.device("cpu"), seed=0, action_spec=ActionSpec.discrete(N_ACT))
    r = discrete_replay()
    before = params(agent.encoder)
    metrics = agent.update(r, 0)
    assert metrics["infonce_loss"] > 0 and torch.isfinite(metrics["actor_loss"])
    assert not same(agent.encoder, before) and agent.encoder.za.in_features == N_ACT
    assert agent.act(torch.randn(3, OBS).numpy(), explore=False).dtype == np.int64
