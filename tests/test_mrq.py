"""MR.Q agent and the two-hot reward encoding."""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from baselines.mrq import MRQ, MRQConfig
from iqrl.config.build import build_config
from iqrl.config.run import ConfigError
from iqrl.core.replay import SequenceReplay, nstep_targets
from iqrl.core.schedule import PerStep
from iqrl.nn.layers import EnsembleLinear
from iqrl.nn.maths import two_hot, two_hot_bins, two_hot_cross_entropy, two_hot_decode

from agent_helpers import (
    assert_actions_bounded,
    assert_same_continuation,
    params,
    same,
)

OBS, ACT = 6, 2

# ---------------------------------------------------------------------------------- two-hot


def test_two_hot_bins_are_symexp_of_a_linspace():
    bins = two_hot_bins()
    assert bins.shape == (65,) and bins[32] == 0 and torch.equal(bins[:32], -bins[33:].flip(0))
    assert bins[-1].item() == pytest.approx(math.exp(10) - 1) and bins[33].item() == pytest.approx(
        math.expm1(0.3125)
    )


@pytest.mark.parametrize(
    "y", [-20000.0, -3000.0, -17.5, -1.0, -0.05, 0.0, 1e-4, 0.3, 0.9999, 2.0, 7.3, 150.0, 5000.0, 22000.0]
)
def test_two_hot_round_trip(y):
    bins = two_hot_bins()
    w = two_hot(torch.tensor([y]), bins)[0]
    assert w.sum().item() == pytest.approx(1.0, abs=1e-6)
    nz = torch.nonzero(w).flatten().tolist()
    assert 1 <= len(nz) <= 2 and nz[-1] - nz[0] <= 1  # one bin, or two adjacent ones
    assert (w >= 0).all()
    k = nz[0]
    assert bins[k] <= y <= bins[min(k + 1, 64)]
    decoded = two_hot_decode(w.log(), bins).item()  # softmax(log w) = w
    assert decoded == pytest.approx(y, rel=1e-4, abs=1e-5)


def test_two_hot_weights_are_linear_between_bins_and_saturate_outside():
    bins = torch.tensor([-1.0, 0.0, 2.0, 6.0])
    w = two_hot(torch.tensor([[0.5, 3.0], [-5.0, 9.0]]), bins)
    assert w.shape == (2, 2, 4)
    assert w[0, 0].tolist() == pytest.approx([0.0, 0.75, 0.25, 0.0])
    assert w[0, 1].tolist() == pytest.approx([0.0, 0.0, 0.75, 0.25])
    assert w[1, 0].tolist() == [1.0, 0.0, 0.0, 0.0] and w[1, 1].tolist() == [0.0, 0.0, 0.0, 1.0]


def test_two_hot_cross_entropy():
    bins = two_hot_bins()
    y = torch.tensor([0.7, -40.0])
    target = two_hot(y, bins)
    best = target.clamp(min=1e-12).log()
    ce = two_hot_cross_entropy(best, y, bins)
    entropy = -(target * target.clamp(min=1e-12).log()).sum(-1)
    assert torch.allclose(ce, entropy, atol=1e-5)  # the minimum is the target's entropy
    logits = torch.randn(2, 65)
    manual = -(target * torch.log_softmax(logits, -1)).sum(-1)
    assert torch.allclose(two_hot_cross_entropy(logits, y, bins), manual)
    assert (two_hot_cross_entropy(logits, y, bins) > ce).all()


# ---------------------------------------------------------------------------------- agent


# the sizes these tests build MR.Q at (and DR.Q's, tests/test_dr_q.py)
SMALL = {
    "zs_dim": 8,
    "za_dim": 4,
    "zsa_dim": 8,
    "enc_mlp_dims": [16, 16],
    "mlp_dims": [16, 16],
    "batch_size": 32,
}


def make(**kw):
    torch.manual_seed(0)
    return MRQ(MRQConfig(**{**SMALL, **kw}), OBS, ACT, torch.device("cpu"), seed=0)


def replay(n_episodes=3, length=40, seed=0, terminal=False):
    g = torch.Generator().manual_seed(seed)
    r = SequenceReplay(OBS, ACT, seq_len=5, seed=seed)
    for _ in range(n_episodes):
        r.start_episode(torch.randn(OBS, generator=g))
        for t in range(length):
            last = t == length - 1
            r.add(
                torch.rand(ACT, generator=g) * 2 - 1,
                float(torch.rand((), generator=g)) * 2,
                torch.randn(OBS, generator=g),
                terminal and last,
                (not terminal) and last,
            )
    return r


def test_shapes_action_bounds_and_layout():
    agent = make()
    obs = assert_actions_bounded(agent, OBS, ACT)
    zs = agent.encoder.zs(obs)
    assert zs.shape == (5, 8) and (zs >= -1).all()  # ELU(LN(.)) output
    d, z_next, r_logits = agent.encoder.model_all(zs, torch.zeros(5, ACT))
    assert d.shape == (5,) and z_next.shape == (5, 8) and r_logits.shape == (5, 65)
    assert agent.value(agent.encoder.zsa(zs, torch.zeros(5, ACT))).shape == (2, 5, 1)
    assert agent.latent(obs).shape == (5, 8)
    assert (
        agent.spec.seq_len == 5 and isinstance(agent.schedule, PerStep) and agent.spec.updates_per_step == 0.5
    )
    # layer norms without affine parameters; Xavier-uniform (gain sqrt 2) weights and zero biases
    assert not any(
        isinstance(m, nn.LayerNorm)
        for net in (agent.encoder, agent.value, agent.policy)
        for m in net.modules()
    )
    for net in (agent.encoder, agent.value, agent.policy):
        for m in net.modules():
            if isinstance(m, (nn.Linear, EnsembleLinear)):
                fan_in, fan_out = (
                    (m.in_features, m.out_features) if isinstance(m, nn.Linear) else m.weight.shape[1:]
                )
                assert m.weight.abs().max() <= math.sqrt(2) * math.sqrt(6 / (fan_in + fan_out)) + 1e-6
                assert m.weight.std() > 0.5 * math.sqrt(2) * math.sqrt(2 / (fan_in + fan_out))
                assert (m.bias == 0).all()


def fixed_batch(r, L, seed=3):
    r.generator.manual_seed(seed)
    return r.sample(32, L)


def test_encoder_and_value_losses_decrease_on_a_fixed_batch():
    agent, r = make(enc_lr=1e-3), replay()  # 10x the default lr keeps the test short
    b = fixed_batch(r, 5)
    first = agent.update_encoder(b)
    for _ in range(80):
        last = agent.update_encoder(b)
    assert last["repr_loss"] < 0.7 * first["repr_loss"]
    assert last["consistency_loss"] < 0.7 * first["consistency_loss"]
    assert last["reward_loss"] < 0.9 * first["reward_loss"]
    b3 = fixed_batch(r, 3)
    agent.reward_scale, agent.target_reward_scale = 1.0, 0.0  # fixed targets y = R
    first = agent.update_rl(b3)[1]["q_loss"].item()
    for _ in range(60):
        last = agent.update_rl(b3)[1]["q_loss"].item()
    assert last < 0.5 * first


def test_encoder_and_rl_steps_are_separate():
    agent, r = make(), replay()
    enc, val, pol = params(agent.encoder), params(agent.value), params(agent.policy)
    agent.update_rl(
        fixed_batch(r, 3)
    )  # RL: value and policy change, the encoder neither changes nor gets grads
    assert same(agent.encoder, enc) and all(p.grad is None for p in agent.encoder.parameters())
    assert not same(agent.value, val) and not same(agent.policy, pol)
    assert all(p.requires_grad for p in agent.encoder.parameters())
    val, pol = params(agent.value), params(agent.policy)
    agent.value.zero_grad(set_to_none=True)
    agent.policy.zero_grad(set_to_none=True)
    agent.update_encoder(fixed_batch(r, 5))  # encoder: value and policy untouched
    assert same(agent.value, val) and same(agent.policy, pol)
    assert all(p.grad is None for m in (agent.value, agent.policy) for p in m.parameters())
    assert not same(agent.encoder, enc)
    for m in ("encoder_target", "value_target", "policy_target"):
        assert all(p.grad is None and not p.requires_grad for p in getattr(agent, m).parameters())


def test_policy_step_leaves_the_value_unchanged():
    agent, r = make(), replay()
    b = fixed_batch(r, 3)
    value_step = agent.value_opt.step
    seen = {}
    agent.value_opt.step = lambda: (value_step(), seen.update(value=params(agent.value)))
    agent.update_rl(b)
    assert same(agent.value, seen["value"])


def test_td_target_scales_rewards():
    agent, r = make(), replay()
    b = fixed_batch(r, 3)
    ret, discount, boot = nstep_targets(b.reward, b.terminal, b.valid, 0.99, 3)
    assert torch.allclose(discount, torch.full((32,), 0.99**3)) and (boot == 3).all()
    assert torch.allclose(agent.td_target(b, 0.0, 2.0, **agent.target_draws(32)), ret / 2.0)
    state = agent.generator.get_state()
    y = agent.td_target(b, 0.5, 4.0, **agent.target_draws(32))
    agent.generator.set_state(state)
    with torch.no_grad():  # replay the target-policy noise draw by hand
        zs = agent.encoder_target.zs(b.obs[:, 3])
        a = torch.tanh(agent.policy_target(zs))
        a = (a + (torch.randn(a.shape, generator=agent.generator) * 0.2).clamp(-0.3, 0.3)).clamp(-1, 1)
        q = agent.value_target(agent.encoder_target.zsa(zs, a)).squeeze(-1).amin(0)
    assert torch.allclose(y, (ret + 0.99**3 * 0.5 * q) / 4.0, atol=1e-6)


def test_schedule_bursts_targets_reward_scale_and_priorities():
    agent, r = make(target_update_every=3), replay()
    calls, writes = [], []
    sample, write = r.sample, r.update_priorities
    r.sample = lambda n, L, prioritized=False: (calls.append((L, prioritized)), sample(n, L, prioritized))[1]
    r.update_priorities = lambda i, p: (writes.append(p), write(i, p))
    snapshot = {}
    for k in range(1, 6):
        before = {"encoder": params(agent.encoder), "value": params(agent.value)}
        agent.update(r, 0)
        if k == 4:  # the sync of step 4 copies the online networks as they were after step 3
            assert same(agent.encoder_target, before["encoder"]) and same(agent.value_target, before["value"])
        snapshot[k] = params(agent.encoder)
    # RL steps 1 and 4: 3 prioritised encoder batches (H = 5), then the RL batch (H = 3); only RL writes back
    assert calls == [(5, True)] * 3 + [(3, True)] * 3 + [(5, True)] * 3 + [(3, True)] * 2
    assert len(writes) == 5
    assert same(agent.encoder, snapshot[4]) and torch.equal(snapshot[2][0], snapshot[3][0])
    assert (
        agent.reward_scale == pytest.approx(r.reward_abs_mean())
        and agent.target_reward_scale == agent.reward_scale
    )


def test_rl_priorities_follow_the_lap_formula():
    agent, r = make(), replay()
    b = fixed_batch(r, 3)
    state = agent.generator.get_state()
    y = agent.td_target(b, agent.target_reward_scale, agent.reward_scale, **agent.target_draws(32))
    with torch.no_grad():
        q = agent.value(agent.encoder.zsa(agent.encoder.zs(b.obs[:, 0]), b.action[:, 0])).squeeze(-1)
    agent.generator.set_state(state)
    td, _ = agent.update_rl(b)
    assert torch.allclose(td, (q - y).abs().T, atol=1e-6)  # TD error of the value step, [B, 2]


def test_rl_priorities_official_quirk_use_the_policy_action():
    """Q-M2: |Q_j(s, pi(s)) - y| [B, 2], with pi the policy before its step and Q the value net after its step
    (the order of the code's train_rl: value step, then the policy loss whose Q it reuses)."""
    agent, r = make(official_priority_from_policy_q=True), replay()
    b = fixed_batch(r, 3)
    policy_before = copy.deepcopy(agent.policy)
    state = agent.generator.get_state()
    y = agent.td_target(b, agent.target_reward_scale, agent.reward_scale, **agent.target_draws(32))
    agent.generator.set_state(state)
    td, _ = agent.update_rl(b)
    with torch.no_grad():
        zs = agent.encoder.zs(b.obs[:, 0])
        q_pi = agent.value(agent.encoder.zsa(zs, torch.tanh(policy_before(zs)))).squeeze(-1)
        q_sampled = agent.value(agent.encoder.zsa(zs, b.action[:, 0])).squeeze(-1)
    assert torch.allclose(td, (q_pi - y).abs().T, atol=1e-6)
    assert not torch.allclose(td, (q_sampled - y).abs().T, atol=1e-3)  # not the sampled action's error


def test_done_loss_only_after_a_terminal():
    agent, r = make(target_update_every=5), replay()
    assert not r.has_terminal
    m = agent.encoder_burst(r)
    assert m["done_loss"] == 0
    rt = replay(terminal=True)
    assert rt.has_terminal and agent.encoder_burst(rt)["done_loss"] > 0


def test_state_dict_round_trip_continues_identically():
    a, r = make(target_update_every=2), replay()
    for _ in range(3):
        a.update(r, 0)
    b = make(target_update_every=2)
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    r2 = SequenceReplay(OBS, ACT, seq_len=5)
    r2.load_state_dict(r.state_dict())
    assert_same_continuation(a, b, r, r2, torch.randn(3, OBS).numpy())  # step 4: a burst and an RL step


def test_config_validation_names_the_key():
    with pytest.raises(ConfigError, match="agent.q_horizon"):
        build_config(["agent=mrq", "agent.q_horizon=0"])
    assert build_config(["agent=mrq", "task=walker-walk"]).agent == MRQConfig()


def test_official_terminal_reward_quirk_leaves_the_terminal_reward_out_of_the_return():
    """MRQ-1: the code's n-step return sum_k gamma^k r_k (1 - term_k) drops the reward of the terminal step;
    ours keeps it. Windows of rewards 1, 2, 3 terminating at step 1: 1 + 0.99 * 2 against 1 (discount 0)."""
    reward, terminal = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    valid = torch.tensor([[1.0, 1.0, 0.0]])
    ret, discount, boot = nstep_targets(reward, terminal, valid, 0.99, 3)
    dropped, discount_d, boot_d = nstep_targets(reward, terminal, valid, 0.99, 3, drop_terminal_reward=True)
    assert ret.item() == pytest.approx(1 + 0.99 * 2) and dropped.item() == pytest.approx(1.0)
    assert discount.item() == discount_d.item() == 0.0 and boot.item() == boot_d.item() == 2
    # no terminal in the window: the switch changes nothing
    alive = nstep_targets(reward, torch.zeros(1, 3), torch.ones(1, 3), 0.99, 3, drop_terminal_reward=True)
    assert alive[0].item() == pytest.approx(1 + 0.99 * 2 + 0.99**2 * 3)

    b = fixed_batch(replay(n_episodes=6, length=4, terminal=True), 3)  # short episodes: windows with a fall
    agents = make(), make(official_drop_terminal_reward=True)
    y, y_quirk = (a.td_target(b, 0.0, 1.0, **a.target_draws(32)) for a in agents)  # s_bar = 0: R alone
    powers = 0.99 ** torch.arange(3.0)
    lost = (b.reward[:, :3] * b.terminal[:, :3] * b.valid[:, :3] * powers).sum(1)
    assert (lost != 0).any() and torch.allclose(y - y_quirk, lost, atol=1e-6)


# ---------------------------------------------------------------------------------- discrete actions
N_ACT = 4


def make_discrete(**kw):
    from iqrl.core.spaces import ActionSpec

    torch.manual_seed(0)
    cfg = MRQConfig(
        zs_dim=8, za_dim=4, zsa_dim=8, enc_mlp_dims=[16, 16], mlp_dims=[16, 16], batch_size=32, **kw
    )
    return MRQ(cfg, OBS, N_ACT, torch.device("cpu"), seed=0, action_spec=ActionSpec.discrete(N_ACT))


def discrete_replay(n_episodes=3, length=40, seed=0):
    from iqrl.core.spaces import ActionSpec

    g = torch.Generator().manual_seed(seed)
    r = SequenceReplay(OBS, ActionSpec.discrete(N_ACT), seq_len=5, seed=seed)
    for _ in range(n_episodes):
        r.start_episode(torch.randn(OBS, generator=g))
        for t in range(length):
            a = torch.randint(N_ACT, (), generator=g).numpy()
            r.add(
                a, float(torch.rand((), generator=g)), torch.randn(OBS, generator=g), False, t == length - 1
            )
    return r


def test_discrete_windows_reach_the_encoder_as_one_hot_actions():
    agent, r = make_discrete(), discrete_replay()
    r.generator.manual_seed(3)
    index = r.sample(32, 5, prioritized=True).action
    r.generator.manual_seed(3)
    b = agent.sample(r, 5)
    assert b.action.shape == (32, 5, N_ACT) and torch.equal(b.action.argmax(-1), index)
    assert torch.equal(b.action.sum(-1), torch.ones(32, 5))
    assert agent.encoder.za.in_features == N_ACT and agent.policy.layers[-1].out_features == N_ACT


def test_discrete_target_action_is_the_one_hot_argmax_of_the_smoothed_gumbel_softmax():
    """a' = onehot(argmax(softmax((u' + g) / tau) + clip(0.2 eps, -0.3, 0.3))) (the code's realign), u' the
    target policy's logits; y as in a box with that action."""
    agent, r = make_discrete(), discrete_replay()
    b = fixed_discrete_batch(agent, r)
    ret, discount, _ = nstep_targets(b.reward, b.terminal, b.valid, 0.99, 3)
    state = agent.generator.get_state()
    draws = agent.target_draws(32)
    assert list(draws) == ["gumbel", "noise"] and draws["gumbel"].shape == (32, N_ACT)
    y = agent.td_target(b, 0.5, 4.0, **draws)
    agent.generator.set_state(state)
    with torch.no_grad():  # the draws in their order: Gumbel noise -log(-log U), then the Gaussian
        u_rand = torch.rand(32, N_ACT, generator=agent.generator)
        gumbel = -(-u_rand.clamp_min(torch.finfo(torch.float32).tiny).log()).log()
        eps = torch.randn(32, N_ACT, generator=agent.generator)
        zs = agent.encoder_target.zs(b.obs[:, 3])
        soft = torch.softmax((agent.policy_target(zs) + gumbel) / 10.0, -1)
        a = torch.nn.functional.one_hot((soft + (0.2 * eps).clamp(-0.3, 0.3)).argmax(-1), N_ACT).float()
        q = agent.value_target(agent.encoder_target.zsa(zs, a)).squeeze(-1).amin(0)
    assert torch.allclose(y, (ret + discount * 0.5 * q) / 4.0, atol=1e-6)


def fixed_discrete_batch(agent, r, L=3, seed=3):
    r.generator.manual_seed(seed)
    return agent.sample(r, L)


def test_gumbel_softmax_actor_gradient_is_the_chain_rule_through_the_relaxed_action():
    """dJ/du = J_soft^T dJ/da + 2 w u / numel, J_soft = (diag(y) - y y^T) / tau at y = softmax((u + g) / tau),
    dJ/da = -d mean Q(z_sa(z_s, a)) / da: the actor's gradient reaches its logits only through the relaxed
    one-hot action (and the pre-activation penalty)."""
    agent, r = make_discrete(pre_activ_weight=0.1), discrete_replay()
    b = fixed_discrete_batch(agent, r)
    zs = agent.encoder.zs(b.obs[:, 0]).detach()
    gumbel = agent.gumbel_draws(32)["gumbel"]
    u = agent.policy(zs)
    u_leaf = u.detach().requires_grad_()
    y = torch.softmax((u_leaf + gumbel) / 10.0, -1)
    a = y.detach().requires_grad_()
    q = agent.value(agent.encoder.zsa(zs, a)).squeeze(-1)
    (dq_da,) = torch.autograd.grad(-q.mean(), a)
    yd = y.detach()
    jac = (torch.diag_embed(yd) - yd[:, :, None] * yd[:, None, :]) / 10.0  # [B, n, n], symmetric
    expected = torch.einsum("bij,bj->bi", jac, dq_da) + 2 * 0.1 * u_leaf.detach() / u.numel()
    agent.policy = lambda _: u_leaf  # the loss reads the logits through the policy
    loss, _ = agent.policy_loss(zs, gumbel=gumbel)
    (got,) = torch.autograd.grad(loss, u_leaf)
    assert torch.allclose(got, expected, atol=1e-7)
    assert not torch.allclose(got, 2 * 0.1 * u.detach() / u.numel(), atol=1e-6)  # Q's part is not zero


def test_discrete_acting_explores_by_noisy_gumbel_samples_and_evaluates_greedily():
    agent = make_discrete(expl_noise=0.1)
    obs = torch.randn(64, OBS).numpy()
    with torch.no_grad():
        u = agent.policy(agent.encoder.zs(torch.as_tensor(obs)))
    greedy = agent.act(obs, explore=False)
    assert greedy.dtype == np.int64 and greedy.shape == (64,) and np.array_equal(greedy, u.argmax(-1).numpy())
    assert agent.act(obs[0], explore=False).shape == ()
    state = agent.generator.get_state()
    explored = agent.act(obs, explore=True)
    agent.generator.set_state(state)
    gumbel = -(-torch.rand(64, N_ACT, generator=agent.generator).log()).log()
    eps = torch.randn(64, N_ACT, generator=agent.generator)
    by_hand = (torch.softmax((u + gumbel) / 10.0, -1) + 0.1 * eps).argmax(-1)
    assert np.array_equal(explored, by_hand.numpy()) and not np.array_equal(explored, greedy)
    # MRQ-3: the code evaluates by the argmax of a Gumbel-softmax sample, i.e. samples softmax(u)
    quirk = make_discrete(official_gumbel_eval=True)
    many = np.stack([quirk.act(obs[:1], explore=False)[0] for _ in range(4000)])
    probs = torch.softmax(u[0], -1).numpy()
    assert np.allclose(np.bincount(many, minlength=N_ACT) / 4000, probs, atol=0.03)


def test_discrete_update_trains_and_resumes_identically():
    agent, r = make_discrete(target_update_every=2), discrete_replay()
    for _ in range(3):
        metrics = agent.update(r, 0)
    assert np.isfinite(float(metrics["q_loss"])) and np.isfinite(float(metrics["actor_loss"]))
    twin = make_discrete(target_update_every=2)
    twin.load_state_dict(copy.deepcopy(agent.state_dict()))
    r2 = copy.deepcopy(r)
    for _ in range(3):
        agent.update(r, 0), twin.update(r2, 0)
    assert same(agent.policy, params(twin.policy)) and same(agent.encoder, params(twin.encoder))
