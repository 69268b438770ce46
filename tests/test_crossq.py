"""CrossQ (baselines/crossq.py) against its code (adityab/CrossQ at a318a26): the joint critic pass and its
statistics, the target without target networks, which network moves its statistics in which step, the actor's
delay, the optimizers' betas and acting on the running statistics. Networks are read through the agent's own
modules where a formula needs their outputs."""

from __future__ import annotations

import torch

from iqrl.core.replay import nstep_transition
from iqrl.nn.maths import tanh_gaussian
from iqrl.nn.stats import BatchRenorm

from agent_helpers import FixedReplay, agent_and_replay, assert_squashed_gaussian_acting, params, same


def crossq():
    agent, replay, _ = agent_and_replay("crossq")
    return agent, replay


def stats(module) -> list[torch.Tensor]:
    return [b.clone() for m in module.modules() if isinstance(m, BatchRenorm) for b in m.buffers()]


def test_the_critics_see_both_halves_of_the_joint_batch_in_one_pass():
    """Q(s, a) and Q(s', a') come out of one training-mode pass over the joint batch: its first layer's
    running mean moves by the joint input's mean, and Q(s, a) differs from a pass over (s, a) alone."""
    agent, replay = crossq()
    obs, action, r, discount, next_obs = nstep_transition(replay.sample(16), agent.cfg.gamma, 1)
    eps = torch.randn(16, 2)
    agent.critic.train()
    loss, q = agent.critic_loss(obs, action, r, discount, next_obs, eps=eps)  # outside a piece: in place
    with torch.no_grad():
        next_action, log_prob = tanh_gaussian(*agent.actor(next_obs), eps)
        joint = torch.cat([torch.cat([obs, action], -1), torch.cat([next_obs, next_action], -1)])
    first = agent.critic.bodies[0].body[0]
    torch.testing.assert_close(first.running_mean, (1 - 0.99) * joint.mean(0))
    assert first.steps.item() == 1
    alone = agent.critic(torch.cat([obs, action], -1))
    assert not torch.allclose(alone, q)


def test_target_is_the_soft_minimum_of_the_critics_own_joint_pass_and_the_loss_halves_the_sum():
    agent, replay = crossq()
    obs, action, r, discount, next_obs = nstep_transition(replay.sample(16), agent.cfg.gamma, 1)
    eps = torch.randn(16, 2)
    with torch.no_grad():
        agent.temperature.log_alpha.fill_(-1.0)
    agent.critic.train()
    before = {k: v.clone() for k, v in agent.critic.state_dict().items()}
    loss, q = agent.critic_loss(obs, action, r, discount, next_obs, eps=eps)
    agent.critic.load_state_dict(before)  # the same pass again, by hand
    with torch.no_grad():
        next_action, log_prob = tanh_gaussian(*agent.actor(next_obs), eps)
        q_all = agent.critic(
            torch.cat([torch.cat([obs, action], -1), torch.cat([next_obs, next_action], -1)])
        )
        y = r + discount * (q_all[:, 16:].amin(0) - torch.e**-1.0 * log_prob)
    torch.testing.assert_close(q.detach(), q_all[:, :16])
    torch.testing.assert_close(loss, 0.5 * ((y - q_all[:, :16]) ** 2).mean(-1).sum())
    assert not hasattr(agent, "critic_target") and all("target" not in s for s in agent.STATE_OBJECTS)


def test_each_step_moves_only_the_statistics_of_the_network_it_trains_and_the_actor_waits_three():
    agent, replay = crossq()
    fixed = FixedReplay(replay.sample(16), size=300)
    actor_stats, critic_stats, actor = stats(agent.actor), stats(agent.critic), params(agent.actor)
    for _ in (1, 2):
        m = agent.update(fixed, 0)
        assert "actor_loss" not in m and same(agent.actor, actor)
    assert all(torch.equal(a, b) for a, b in zip(stats(agent.actor), actor_stats))  # a' by the eval actor
    moved = stats(agent.critic)
    assert not all(torch.equal(a, b) for a, b in zip(moved, critic_stats))
    m = agent.update(fixed, 0)  # the third: critic, then actor and temperature
    assert "actor_loss" in m and not same(agent.actor, actor)
    assert not all(torch.equal(a, b) for a, b in zip(stats(agent.actor), actor_stats))
    steps = [x for x in stats(agent.critic) if x.dtype == torch.long]
    assert all(s.item() == 3 for s in steps)  # one training pass per critic step, none in the actor step
    assert not agent.actor.training and not agent.critic.training  # acting reads the running statistics


def test_the_actor_loss_reads_the_critics_on_their_running_statistics():
    agent, replay = crossq()
    obs = nstep_transition(replay.sample(16), agent.cfg.gamma, 1)[0]
    eps = torch.randn(16, 2)
    agent.actor.train()
    loss, entropy = agent.actor_loss(obs, eps=eps)
    agent.actor.eval()
    # the actor's pass moved its statistics; recompute with the statistics it used (the batch's)
    assert agent.actor.body.body[0].steps.item() == 1
    agent.actor.train()
    a, log_prob = tanh_gaussian(*agent.actor(obs), eps)
    q = agent.critic(torch.cat([obs, a], -1)).amin(0)  # evaluation mode
    torch.testing.assert_close(loss, (1.0 * log_prob - q).mean())
    torch.testing.assert_close(entropy, -log_prob.mean())


def test_optimizer_betas_temperature_loss_and_log_std_clip():
    agent, _ = crossq()
    assert (
        agent.actor_opt.param_groups[0]["betas"] == (0.5, 0.999) == agent.critic_opt.param_groups[0]["betas"]
    )
    assert agent.alpha_opt.param_groups[0]["betas"] == (0.9, 0.999)
    assert agent.actor_opt.param_groups[0]["lr"] == 1e-3
    loss = agent.temperature_loss(torch.tensor(-5.0))  # target -|A| = -2
    loss.backward()
    torch.testing.assert_close(agent.temperature.log_alpha.grad, torch.tensor(-3.0))
    with torch.no_grad():
        agent.actor.log_std.bias.fill_(100.0)
    assert agent.actor(torch.randn(3, 5))[1].max().item() == 2.0


def test_acting_uses_the_running_statistics_and_samples_the_squashed_gaussian():
    agent, _ = crossq()
    obs = torch.randn(4, 5)
    before = stats(agent.actor)
    mu, log_std = agent.actor(obs)
    assert_squashed_gaussian_acting(agent, obs, mu, mu, log_std)
    assert all(torch.equal(x, y) for x, y in zip(stats(agent.actor), before))
