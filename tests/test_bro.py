"""BRO (baselines/bro.py) against its code (naumix/BiggerRegularizedOptimistic at 5870a13): the quantile
target, the optimistic actor's objective and KL, the learned scalars' initial values and losses, the update's
order, acting. Networks are read through the agent's own modules where a formula needs their outputs."""

from __future__ import annotations

import math

import pytest
import torch

from baselines.bro import ADJUST_HIGH, ADJUST_LOW, adjustment_parameter
from iqrl.core.replay import nstep_transition
from iqrl.nn.maths import quantile_huber_loss, tanh_gaussian

from agent_helpers import FixedReplay, agent_and_replay, assert_squashed_gaussian_acting, params, same


def bro(**overrides):
    agent, replay, _ = agent_and_replay("bro")
    for k, v in overrides.items():
        setattr(agent.cfg, k, v)
    return agent, replay


def test_scalars_start_at_the_codes_values_through_its_bounded_parameterisation():
    agent, _ = bro()
    s = agent.scalars
    assert s.alpha().item() == pytest.approx(1.0)  # init_temperature
    assert s.optimism().item() == pytest.approx(1.0) and s.kl_weight().item() == pytest.approx(0.25)
    # calculate_init_values: log v = low + (high - low) (tanh(p) + 1) / 2 inverted
    p = adjustment_parameter(0.25)
    assert math.exp(ADJUST_LOW + (ADJUST_HIGH - ADJUST_LOW) * 0.5 * (math.tanh(p) + 1)) == pytest.approx(0.25)
    assert agent.target_entropy == -1.0  # -|A| / 2 with 2 action dims


def test_td_target_is_the_soft_quantile_target_of_the_target_critics_mean():
    agent, replay = bro(pessimism=0.5)
    obs, action, r, discount, next_obs = nstep_transition(replay.sample(16), agent.cfg.gamma, 1)
    with torch.no_grad():
        agent.scalars.log_alpha.fill_(math.log(0.3))
        eps = torch.randn(16, 2)
        y = agent.td_target(r, discount, next_obs, eps=eps)
        a, log_prob = tanh_gaussian(*agent.actor(next_obs), eps)
        z = agent.critic_target(torch.cat([next_obs, a], -1))  # [2, B, N]
        z_next = (z[0] + z[1]) / 2 - 0.5 * (z[0] - z[1]).abs() / 2
        want = r[:, None] + discount[:, None] * (z_next - 0.3 * log_prob[:, None])
    assert y.shape == (16, agent.cfg.num_quantiles)
    torch.testing.assert_close(y, want)


def test_critic_loss_sums_both_critics_quantile_losses_to_the_shared_target():
    agent, replay = bro()
    obs, action, *_ = nstep_transition(replay.sample(16), agent.cfg.gamma, 1)
    y = torch.randn(16, agent.cfg.num_quantiles)
    loss, q = agent.critic_loss(obs, action, y)
    z = agent.critic(torch.cat([obs, action], -1))
    torch.testing.assert_close(
        loss, quantile_huber_loss(z[0], y, agent.taus) + quantile_huber_loss(z[1], y, agent.taus)
    )
    torch.testing.assert_close(q, z.mean(-1))


def test_optimistic_objective_its_kl_and_what_it_trains():
    """With the shift's output layer at zero the optimistic mean is the actor's: KL 0 and the objective
    -Q_ub; a shift d gives KL = sum d^2 / (2 sigma_c^2) (sigma_o / 0.75 = sigma_c); only the optimistic
    actor gets gradients."""
    agent, replay = bro()
    obs = nstep_transition(replay.sample(16), agent.cfg.gamma, 1)[0]
    eps = torch.randn(16, 2)
    with torch.no_grad():
        agent.optimistic.shift.weight.zero_()
    loss, kl = agent.optimistic_loss(obs, eps=eps)
    mu_c, log_std_c = agent.actor(obs)
    a, _ = tanh_gaussian(mu_c, log_std_c + math.log(0.75), eps)
    z = agent.critic(torch.cat([obs, a], -1))
    q_ub = ((z[0] + z[1]) / 2 + 1.0 * (z[0] - z[1]).abs() / 2).mean(-1)  # optimism starts at 1
    torch.testing.assert_close(kl, torch.tensor(0.0), atol=1e-6, rtol=0)
    torch.testing.assert_close(loss, -q_ub.mean(), rtol=1e-5, atol=1e-6)
    d = torch.tensor([0.1, -0.2])
    sigma_c = log_std_c.exp().detach()
    want_kl = ((d**2) / (2 * sigma_c**2)).sum(-1).mean() / 2  # per action dimension
    agent.optimistic.forward = lambda o, m: m + d  # the shift network replaced by a constant shift
    torch.testing.assert_close(agent.optimistic_loss(obs, eps=eps)[1], want_kl, rtol=1e-5, atol=0)
    del agent.optimistic.forward
    actor, critic = params(agent.actor), params(agent.critic)
    for p in (*agent.actor.parameters(), *agent.critic.parameters(), *agent.optimistic.parameters()):
        p.grad = None
    with torch.no_grad():
        agent.optimistic.shift.weight.normal_()
    agent.updater.step(
        agent.optimistic_loss, obs, opt=agent.optimistic_opt, frozen=(agent.critic, agent.actor), eps=eps
    )
    assert same(agent.actor, actor) and same(agent.critic, critic)
    assert all(p.grad is None for p in (*agent.actor.parameters(), *agent.critic.parameters()))


def test_temperature_and_adjustment_losses_move_the_scalars_the_codes_way():
    agent, _ = bro()
    s = agent.scalars
    # entropy below its target -> the loss falls as alpha grows; its gradient is alpha (H - H_target)
    loss = agent.temperature_loss(torch.tensor(-3.0))
    loss.backward()
    torch.testing.assert_close(s.log_alpha.grad, torch.tensor(1.0 * (-3.0 + 1.0)))
    # KL per dimension above the target: optimism down, KL weight up
    loss = agent.adjustment_loss(torch.tensor(0.15))
    loss.backward()
    assert s.optimism_p.grad > 0 and s.kl_weight_p.grad < 0
    g = (1 - math.tanh(s.optimism_p.item()) ** 2) * 0.5 * (ADJUST_HIGH - ADJUST_LOW)  # d log beta / dp
    torch.testing.assert_close(s.optimism_p.grad, torch.tensor(1.0 * g * 0.1), rtol=1e-5, atol=0)


def test_update_runs_critic_target_actor_optimistic_temperature_adjustments_in_order():
    """Against a twin agent stepped by hand: the actor's loss is taken on the critic after its step (not the
    one before), the target critics are the EMA of the stepped critics, the temperature's loss uses the
    actor step's entropy and the temperature before its own step. Draws: target, actor, optimistic."""
    agent, replay = bro()
    twin, _ = bro()
    batch = replay.sample(16)
    metrics = agent.update(FixedReplay(batch), 0)
    obs, action, r, discount, next_obs = nstep_transition(batch, twin.cfg.gamma, 1)
    eps_target, eps_actor = (torch.randn(16, 2, generator=twin.generator) for _ in range(2))
    before = twin.actor_loss(obs, eps=eps_actor)[0].detach()
    y = twin.td_target(r, discount, next_obs, eps=eps_target)
    twin.updater.step(twin.critic_loss, obs, action, y, opt=twin.critic_opt)
    twin.updater.ema(twin.critic_target, twin.critic, twin.cfg.tau)
    after, entropy = twin.actor_loss(obs, eps=eps_actor)
    torch.testing.assert_close(metrics["actor_loss"], after.detach())
    assert not torch.allclose(metrics["actor_loss"], before)
    for t, c in zip(agent.critic_target.parameters(), twin.critic_target.parameters()):
        torch.testing.assert_close(t, c)
    torch.testing.assert_close(metrics["entropy"], entropy.detach())
    torch.testing.assert_close(metrics["alpha_loss"], 1.0 * (entropy.detach() - twin.target_entropy))
    assert metrics["alpha"] != 1.0 and metrics["optimism"] != 1.0  # both scalars stepped


def test_acting_explores_with_the_optimistic_actor_and_evaluates_the_actors_mean():
    agent, _ = bro()
    obs = torch.randn(6, 5)
    mu_c, log_std_c = agent.actor(obs)
    mu_o = agent.optimistic(obs, mu_c)
    assert_squashed_gaussian_acting(agent, obs, mu_c, mu_o, log_std_c + math.log(0.75))


def test_utd_counts_updates_per_stored_transition_at_any_action_repeat():
    from iqrl.config.build import build_config
    from iqrl.core.registry import make_agent

    for name, utd in (("bro", 2.0), ("bro-utd10", 10.0)):
        cfg = build_config([f"agent={name}", "agent.mlp_dims=[8]", "agent.actor_mlp_dims=[8]"])
        spec = make_agent(cfg.agent, 3, 1, torch.device("cpu"), 0).spec
        assert (spec.rate(2), spec.rate(1)) == (utd / 2, utd)  # DMC's action repeat 2, Gym's 1


def test_a_reset_redraws_every_network_and_scalar_forgets_the_optimizers_and_copies_the_target():
    """At `reset_at` stored transitions: before the update's steps, once, from the agent's generator (two
    agents of one seed reset alike; one that does not reset differs)."""
    agent, replay = bro(reset_at=[300, 10_000])
    batch = FixedReplay(replay.sample(16), size=300)
    agent.update(batch, 0)
    twin, _ = bro(reset_at=[10_000])
    twin.update(batch, 0)
    again, _ = bro(reset_at=[300])
    again.update(batch, 0)
    assert agent.resets_done == 1 and twin.resets_done == 0
    assert not same(agent.actor, params(twin.actor)) and not same(agent.critic, params(twin.critic))
    for net in ("actor", "optimistic", "critic", "critic_target", "scalars"):
        assert same(getattr(again, net), params(getattr(agent, net)))
    agent.update(batch, 0)
    assert agent.resets_done == 1  # no second reset below 10 000 transitions


def test_resets_come_at_the_codes_steps_when_the_replay_first_holds_15001_transitions():
    """naumix/BiggerRegularizedOptimistic@5870a13:train_parallel.py stores transition i (from 1), then calls
    `agent.update(..., i)`, which resets first where i is in `reset_list` (jaxrl/bro/bro_learner.py: 15001,
    50001, ..., 2000001; at UTD 2 only 15001): not at 15000 stored transitions, at 15001, before that step's
    updates."""
    from iqrl.config.build import build_config

    assert build_config(["agent=bro"]).agent.reset_at == [15_001]
    assert build_config(["agent=bro-utd10"]).agent.reset_at == [
        15_001, 50_001, 250_001, 500_001, 750_001, 1_000_001, 1_500_001, 2_000_001,
    ]  # fmt: skip
    agent, replay = bro(reset_at=[15_001, 50_001])
    twin, _ = bro(reset_at=[10**9])  # one seed, never reset
    batch = replay.sample(16)
    for size, resets in ((15_000, 0), (15_001, 1), (50_000, 1)):
        for a in (agent, twin):
            a.update(FixedReplay(batch, size=size), 0)
        assert agent.resets_done == resets and same(agent.critic, params(twin.critic)) == (resets == 0), size


def test_reset_state_is_what_a_fresh_agent_has():
    """Right after a reset (no step yet): the scalars at their initial values, the target critics equal to
    the critics, the optimizers without state."""
    agent, replay = bro()
    agent.update(replay, 0)
    agent.reset()
    s = agent.scalars
    assert (s.alpha().item(), s.optimism().item()) == pytest.approx((1.0, 1.0))
    assert s.kl_weight().item() == pytest.approx(0.25)
    for t, c in zip(agent.critic_target.parameters(), agent.critic.parameters()):
        assert torch.equal(t, c)
    for opt in (agent.actor_opt, agent.optimistic_opt, agent.critic_opt, agent.alpha_opt, agent.adjust_opt):
        assert not opt.state
