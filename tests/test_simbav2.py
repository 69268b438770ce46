"""SimbaV2 (baselines/simbav2.py) against its code (dojeon-ai/SimbaV2 at 14fafb2): the categorical target,
the weights on the sphere after every step, the update's order, the observation and reward normalisers, the
learning-rate decay, the suites' settings, acting. Networks are read through the agent's own modules where a
formula needs their outputs; the code's normalisers and TD loss are written out again in NumPy here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from iqrl.config.build import build_config
from iqrl.core.registry import make_agent
from iqrl.core.replay import nstep_transition
from iqrl.nn.maths import tanh_gaussian
from iqrl.nn.trunks import HyperLinear

from agent_helpers import FixedReplay, agent_and_replay, assert_squashed_gaussian_acting, params
from conftest import TINY_AGENT, TINY_RUN


def simbav2(*extra: str, **overrides):
    """The tiny agent of the conformance tests and its replay; `extra` overrides build another config."""
    agent, replay, _ = agent_and_replay("simbav2")
    if extra:
        cfg = build_config(["agent=simbav2", *TINY_RUN, *TINY_AGENT["simbav2"], *extra])
        torch.manual_seed(0)
        agent = make_agent(cfg.agent, 5, 2, torch.device("cpu"), 0)
    for k, v in overrides.items():
        setattr(agent.cfg, k, v)
    return agent, replay


def on_sphere(module) -> bool:
    return all(
        torch.allclose(m.weight.norm(dim=-2), torch.ones(()), atol=1e-5)
        for m in module.modules()
        if isinstance(m, HyperLinear)
    )


def categorical_td_target_np(target_log_probs, reward, done, actor_entropy, gamma, num_bins, lo, hi):
    """simbaV2_update.py categorical_td_loss's target_probs, as the code computes them."""
    bins = np.linspace(lo, hi, num_bins)[None]
    z = np.clip(reward[:, None] + gamma * (bins - actor_entropy[:, None]) * (1.0 - done[:, None]), lo, hi)
    b = (z - lo) / ((hi - lo) / (num_bins - 1))
    lower, upper = np.floor(b).astype(int), np.ceil(b).astype(int)
    p = np.exp(target_log_probs)
    out = np.zeros_like(p)
    for r in range(len(p)):
        for j in range(num_bins):
            out[r, lower[r, j]] += p[r, j] * (upper[r, j] + (lower[r, j] == upper[r, j]) - b[r, j])
            out[r, upper[r, j]] += p[r, j] * (b[r, j] - lower[r, j])
    return out


@pytest.mark.parametrize("num_critics", [1, 2])
def test_target_distribution_is_the_codes_categorical_td_target(num_critics):
    """One critic (DMC) or two (Gym: the distribution of the critic whose expected value is lower, per
    sample), with a terminal transition."""
    agent, replay = simbav2(f"agent.num_critics={num_critics}")
    obs, action, r, discount, next_obs = nstep_transition(replay.sample(16), agent.cfg.gamma, 1)
    discount = discount.clone()
    discount[3] = 0.0  # a terminal transition: only the reward remains
    r = 3 * r  # some atoms beyond the support: clipped
    eps = torch.randn(16, 2)
    with torch.no_grad():
        agent.temperature.log_alpha.fill_(math.log(0.2))
        y = agent.target_distribution(r, discount, next_obs, eps=eps)
        a, log_prob = tanh_gaussian(*agent.actor(next_obs), eps)
        logits = agent.critic_target(torch.cat([next_obs, a], -1))
        q = (F.softmax(logits, -1) * torch.linspace(-5, 5, 11)).sum(-1)
        chosen = logits[q.argmin(0), torch.arange(16)]
    done = (discount == 0).float()
    want = categorical_td_target_np(
        F.log_softmax(chosen, -1).double().numpy(),
        r.double().numpy(),
        done.double().numpy(),
        (0.2 * log_prob).double().numpy(),
        agent.cfg.gamma,
        11,
        -5.0,
        5.0,
    )
    torch.testing.assert_close(y, torch.from_numpy(want).float(), atol=1e-5, rtol=1e-5)
    loss, _ = agent.critic_loss(nstep_transition(replay.sample(16), agent.cfg.gamma, 1)[0], action, y)
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_every_step_puts_the_weights_back_on_the_sphere_and_the_target_is_their_ema():
    agent, replay = simbav2()
    target, critic = params(agent.critic_target), params(agent.critic)
    with torch.no_grad():  # move every weight off the sphere first: the projection must bring it back
        for m in [*agent.actor.modules(), *agent.critic.modules()]:
            if isinstance(m, HyperLinear):
                m.weight.mul_(3.0)
    agent.update(FixedReplay(replay.sample(16), size=300), 0)
    assert on_sphere(agent.actor) and on_sphere(agent.critic)
    tau = agent.cfg.tau
    for t, t0, c in zip(agent.critic_target.parameters(), target, agent.critic.parameters()):
        torch.testing.assert_close(t, (1 - tau) * t0 + tau * c)
    assert not all(torch.equal(a, b) for a, b in zip(critic, agent.critic.parameters()))


def test_actor_then_temperature_then_critic_with_the_new_actor_and_temperature():
    agent, replay = simbav2()
    twin, _ = simbav2()
    batch = replay.sample(16)
    metrics = agent.update(FixedReplay(batch, size=300), 0)
    obs, action, r, discount, next_obs = nstep_transition(batch, twin.cfg.gamma, 1)
    obs, next_obs, r = twin.normalize(obs), twin.normalize(next_obs), r / twin.reward_scale()
    eps_actor, eps_target = (torch.randn(16, 2, generator=twin.generator) for _ in range(2))
    u = twin.updater
    actor = u.step(
        twin.actor_loss,
        obs,
        opt=twin.actor_opt,
        frozen=(twin.critic,),
        after=twin.actor.project,
        eps=eps_actor,
    )
    u.step(twin.temperature_loss, actor.aux, opt=twin.alpha_opt)
    alpha = twin.temperature().item()
    assert alpha != pytest.approx(0.01)  # stepped before the critic's target
    y = twin.target_distribution(r, discount, next_obs, eps=eps_target)
    loss, _ = twin.critic_loss(obs, action, y)
    torch.testing.assert_close(
        metrics["critic_loss"] if "critic_loss" in metrics else metrics["q_loss"], loss.detach()
    )
    torch.testing.assert_close(metrics["actor_loss"], actor.loss)
    torch.testing.assert_close(
        metrics["alpha_loss"], 0.01 * (actor.aux - twin.target_entropy), rtol=1e-5, atol=1e-7
    )


class RunningMeanStdNp:
    """scale_rl/agents/wrappers/utils.py RunningMeanStd."""

    def __init__(self, shape):
        self.mean, self.var, self.count = np.zeros(shape), np.ones(shape), 1e-4

    def update(self, x):
        bm, bv, n = x.mean(0), x.var(0), x.shape[0]
        delta, tot = bm - self.mean, self.count + n
        self.mean = self.mean + delta * n / tot
        self.var = (self.var * self.count + bv * n + delta**2 * self.count * n / tot) / tot
        self.count = tot


def test_normalisers_follow_the_codes_wrappers_through_episode_ends():
    """ObservationNormalizer and RewardNormalizer (normalization.py) on the stream the code's loop feeds them:
    the run's first observation skipped, an episode's final observation never folded (the next episode's
    first is), G reset by `done`; the reward scale max(sqrt(var + 1e-8), max|G| / 5)."""
    agent, _ = simbav2(gamma=0.9)
    rng = np.random.default_rng(0)
    obs_np, ret_np = RunningMeanStdNp((5,)), RunningMeanStdNp((1,))
    g, g_max = 0.0, 0.0
    first = True
    for _ in range(3):
        o = rng.normal(size=5).astype(np.float32)
        agent.observe(o)
        if not first:
            obs_np.update(o[None].astype(np.float64))
        first = False
        for t in range(4):
            o, rew, done = rng.normal(size=5).astype(np.float32), float(rng.normal() * 4), t == 3
            agent.observe(o, rew, done)
            g = 0.9 * (1 - done) * g + rew
            ret_np.update(np.array([[g]]))
            g_max = max(g_max, abs(g))
            if not done:
                obs_np.update(o[None].astype(np.float64))
    torch.testing.assert_close(
        agent.obs_stats.mean, torch.tensor(obs_np.mean, dtype=torch.float32), atol=1e-6, rtol=1e-5
    )
    torch.testing.assert_close(
        agent.obs_stats.var, torch.tensor(obs_np.var, dtype=torch.float32), atol=1e-6, rtol=1e-5
    )
    scale = max(math.sqrt(ret_np.var[0] + 1e-8), g_max / 5.0)
    assert agent.reward_scale() == pytest.approx(scale, rel=1e-5)
    x = torch.randn(3, 5)
    want = (x - torch.tensor(obs_np.mean, dtype=torch.float32)) / torch.sqrt(
        torch.tensor(obs_np.var, dtype=torch.float32) + 1e-8
    )
    torch.testing.assert_close(agent.normalize(x), want, atol=1e-5, rtol=1e-5)
    agent.cfg.normalize_rewards, agent.cfg.normalize_observations = False, False
    assert agent.reward_scale() == 1.0 and torch.equal(agent.normalize(x), x)


def test_learning_rate_decays_linearly_over_the_runs_updates_then_stays():
    agent, replay = simbav2(lr_decay_transitions=2, utd=2.0)  # 4 updates of decay
    fixed = FixedReplay(replay.sample(16), size=300)
    lrs = []
    for _ in range(6):
        agent.update(fixed, 0)
        lrs.append(agent.critic_opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([1e-4, 8.75e-5, 7.5e-5, 6.25e-5, 5e-5, 5e-5])
    assert agent.actor_opt.param_groups[0]["lr"] == agent.alpha_opt.param_groups[0]["lr"] == lrs[-1]


def test_gym_runs_two_critics_at_the_codes_discount():
    from iqrl.config.build import build_config

    gym = build_config(["agent=simbav2", "task=gym:Hopper-v4"]).agent
    dmc = build_config(["agent=simbav2", "task=dog-run"]).agent
    assert (gym.num_critics, gym.gamma, gym.lr_decay_transitions) == (2, 0.995, 1_000_000)
    assert (dmc.num_critics, dmc.gamma, dmc.lr_decay_transitions) == (1, 0.99, 500_000)
    assert build_config(["agent=simbav2-utd8"]).agent.utd == 8.0


def test_acting_reads_normalised_observations():
    agent, _ = simbav2()
    for _ in range(3):
        agent.observe(np.random.default_rng(1).normal(size=5).astype(np.float32) + 4, 0.0, False)
    obs = torch.randn(4, 5) + 4
    mu, log_std = agent.actor(agent.obs_stats(obs))
    assert_squashed_gaussian_acting(agent, obs, mu, mu, log_std)


def test_the_trainer_shows_the_agent_every_collected_observation_seed_episodes_included(tmp_path):
    """Through `observe`: 4 episodes of 100 agent steps, the first two seed episodes (uniform actions): the
    run's first observation and each episode's last are not folded, every other one is (the 3 later resets
    and 4 x 99 step observations); every step's reward enters G."""
    from iqrl.loop.trainer import Trainer

    from conftest import tiny_argv

    t = Trainer(build_config(tiny_argv("simbav2", tmp_path / "run", steps=800)))
    seen = []
    observe = t.agent.observe
    t.agent.observe = lambda obs, reward=None, done=False: (
        seen.append((reward, done)),
        observe(obs, reward, done),
    )
    assert t.run() == 0
    assert len(seen) == 4 * 101 and sum(r is None for r, _ in seen) == 4 and sum(d for _, d in seen) == 4
    assert t.agent.obs_stats.count.item() == pytest.approx(1e-4 + 3 + 4 * 99)
    assert t.agent.return_stats.count.item() == pytest.approx(1e-4 + 4 * 100)
