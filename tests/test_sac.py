"""SAC learner (iqrl/learners/sac.py) and the `sac` / `iqrl-sac` agents: policy maths, targets, temperature,
gradients."""

import copy
import math

import pytest
import torch
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from baselines.sac import SAC, SACAgentConfig
from iqrl.agent.config import IQRLSACConfig
from iqrl.agent.iqrl import IQRL
from iqrl.config.build import build_config
from iqrl.core.replay import SequenceBatch
from iqrl.core.update import Updater
from iqrl.learners.sac import SACLearner, SACLearnerConfig

IN, ACT = 6, 3


def learner(**kw):
    torch.manual_seed(0)
    cfg = SACLearnerConfig(
        **{
            "mlp_dims": [32, 32],
            "num_critics": 2,
            "q_subsample": 2,
            "actor_q_reduce": "min",
            "actor_update_freq": 1,
            **kw,
        }
    )
    return SACLearner(cfg, IN, ACT, torch.Generator().manual_seed(0))


def data(B=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(B, IN, generator=g),
        torch.rand(B, ACT, generator=g) * 2 - 1,
        torch.rand(B, generator=g),
        torch.full((B,), 0.99),
        torch.randn(B, IN, generator=g),
    )


def test_actions_bounded_mean_deterministic_sample_stochastic():
    ac = learner()
    x = torch.randn(64, IN) * 10
    assert ac.act_draws((64,), explore=False) == {}
    a_mean, a_mean2 = ac.act(x), ac.act(x)
    a1, a2 = (ac.act(x, **ac.act_draws((64,), explore=True)) for _ in range(2))
    assert a_mean.shape == a1.shape == (64, ACT)
    assert torch.equal(a_mean, a_mean2) and not torch.equal(a1, a2)
    assert a1.abs().max() <= 1 and a_mean.abs().max() <= 1
    mu, _ = ac.gaussian(x)
    assert torch.allclose(a_mean, torch.tanh(mu))


def test_log_std_is_softly_bounded():
    ac = learner(log_std_min=-3.0, log_std_max=1.0)
    with torch.no_grad():
        ac.actor[-1].bias.fill_(0.0)
        ac.actor[-1].bias[ACT:] = 100.0  # s -> +inf
    _, log_std = ac.gaussian(torch.randn(4, IN))
    assert torch.allclose(log_std, torch.full_like(log_std, 1.0))
    with torch.no_grad():
        ac.actor[-1].bias[ACT:] = -100.0
    assert torch.allclose(ac.gaussian(torch.randn(4, IN))[1], torch.full((4, ACT), -3.0))


def test_log_prob_matches_tanh_transformed_gaussian():
    ac = learner()
    x = torch.randn(32, IN)
    mu, log_std = ac.gaussian(x)
    eps = torch.randn(mu.shape, generator=ac.generator)
    a, log_prob = ac.sample(x, eps)
    u = mu + log_std.exp() * eps
    dist = TransformedDistribution(Normal(mu, log_std.exp()), [TanhTransform(cache_size=1)])
    assert torch.allclose(a, torch.tanh(u))
    # (torch inverts tanh with atanh in float32, hence the tolerance)
    assert torch.allclose(log_prob, dist.log_prob(torch.tanh(u)).sum(-1), atol=1e-3)
    # the tanh correction matters: without it the log-prob would be the Gaussian's
    assert not torch.allclose(log_prob, Normal(mu, log_std.exp()).log_prob(u).sum(-1), atol=1e-2)


@pytest.mark.parametrize("n, k", [(2, 2), (5, 2)])
def test_td_target_is_min_over_subset_minus_entropy_term(n, k):
    ac = learner(num_critics=n, q_subsample=k, init_temperature=0.5)
    _, _, r, d, x_next = data()
    state = ac.generator.get_state()
    y = ac.td_target(r, d, x_next, **ac.target_draws(len(r)))
    ac.generator.set_state(state)  # replay the draws by hand: action sample, then the critic subset
    with torch.no_grad():
        a, log_prob = ac.sample(x_next, torch.randn(len(r), ACT, generator=ac.generator))
        members = torch.arange(n) if k == n else torch.randperm(n, generator=ac.generator)[:k]
        q_all = ac.critic_target(torch.cat([x_next, a], -1)).squeeze(-1)
    assert len(members) == k
    assert torch.allclose(y, r + d * (q_all[members].amin(0) - 0.5 * log_prob), atol=1e-5)


def test_no_target_actor_and_target_critic_ema():
    ac = learner(tau=0.25)
    assert not hasattr(ac, "actor_target")
    old = [p.clone() for p in ac.critic_target.parameters()]
    ac.update(Updater(), *data())
    for t_old, t_new, online in zip(old, ac.critic_target.parameters(), ac.critic.parameters()):
        assert torch.allclose(t_new, 0.75 * t_old + 0.25 * online, atol=1e-6)


def test_critic_loss_decreases_on_a_fixed_batch():
    ac = learner()
    b = data()
    losses = [float(ac.update(Updater(), *b)["q_loss"]) for _ in range(60)]
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])


def test_actor_step_moves_only_actor_and_temperature_step_only_alpha():
    ac = learner(actor_update_freq=2)
    x, a, r, d, xn = data()
    actor0, alpha0 = copy.deepcopy(ac.actor.state_dict()), ac.log_alpha.item()
    m = ac.update(Updater(), x, a, r, d, xn)  # critic step only
    assert "actor_loss" not in m and ac.log_alpha.item() == alpha0
    assert all(torch.equal(v, ac.actor.state_dict()[k]) for k, v in actor0.items())
    critic1 = copy.deepcopy(ac.critic.state_dict())
    actor1 = copy.deepcopy(ac.actor.state_dict())
    ac.update_actor(Updater(), x)
    assert all(
        torch.equal(v, ac.critic.state_dict()[k]) for k, v in critic1.items()
    )  # actor step: critic fixed
    assert any(not torch.equal(v, ac.actor.state_dict()[k]) for k, v in actor1.items())
    assert ac.log_alpha.item() != alpha0


def test_grad_clip_bounds_the_actor_step_too():
    x = data()[0] * 100  # large inputs: large actor gradients
    norms = {}
    for clip in (0.0, 1e-3):
        ac = learner(grad_clip=clip)
        ac.update_actor(Updater(), x)
        norms[clip] = float(torch.nn.utils.get_total_norm([p.grad for p in ac.actor.parameters()]))
    assert norms[0.0] > 1e-3 and norms[1e-3] == pytest.approx(1e-3, rel=1e-4)


@pytest.mark.parametrize("target_entropy, direction", [(50.0, 1), (-50.0, -1)])
def test_temperature_moves_towards_target_entropy(target_entropy, direction):
    ac = learner(target_entropy=target_entropy, init_temperature=0.1)
    x = data()[0]
    for _ in range(5):
        m = ac.update_actor(Updater(), x)
    # entropy below the target -> alpha grows; above -> alpha shrinks
    assert (float(m["alpha"]) - 0.1) * direction > 0
    assert ac.target_entropy == target_entropy
    assert learner().target_entropy == -ACT  # default -|A|


def test_sac_agent_config_and_shapes():
    cfg = build_config(["agent=sac", "task=cartpole-swingup"]).agent
    assert isinstance(cfg, SACAgentConfig)
    assert (
        cfg.num_critics,
        cfg.q_subsample,
        cfg.actor_q_reduce,
        cfg.critic_loss_reduce,
        cfg.actor_update_freq,
        cfg.init_temperature,
        cfg.lr,
        cfg.alpha_lr,
        cfg.batch_size,
        cfg.tau,
        cfg.nstep,
    ) == (2, 2, "min", "sum", 1, 0.1, 3e-4, 3e-4, 256, 0.005, 1)
    torch.manual_seed(0)
    agent = SAC(SACAgentConfig(mlp_dims=[16, 16]), 5, 2, torch.device("cpu"), seed=0)
    assert agent.act(torch.zeros(5).numpy(), explore=True).shape == (2,)
    assert agent.act(torch.zeros(4, 5).numpy(), explore=False).shape == (4, 2)
    assert agent.learner.actor[-1].out_features == 4  # mean and log-std per action dimension


def iqrl_batch(B=8, L=5, obs=7, act=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return SequenceBatch(
        obs=torch.randn(B, L + 1, obs, generator=g),
        action=torch.rand(B, L, act, generator=g) * 2 - 1,
        reward=torch.rand(B, L, generator=g),
        terminal=torch.zeros(B, L, dtype=torch.bool),
        valid=torch.ones(B, L),
        index=torch.arange(B),
    )


def test_iqrl_sac_uses_sac_on_the_latent_without_encoder_gradient():
    cfg = build_config(["agent=iqrl-sac", "task=cartpole-swingup"]).agent
    assert cfg.rl_algo == "sac" and cfg.actor_update_freq == 1 and cfg.num_critics == 5
    torch.manual_seed(0)
    agent = IQRL(
        IQRLSACConfig(latent_dim=4, mlp_dims=[16, 16], enc_mlp_dims=[16], rl_algo="sac", actor_update_freq=1),
        7,
        3,
        torch.device("cpu"),
        seed=0,
    )
    assert isinstance(agent.learner, SACLearner) and agent.learner.actor[0].in_features == agent.latent_width
    b = iqrl_batch()
    enc = copy.deepcopy(agent.encoder.state_dict())
    metrics = agent.update_rl(b)
    assert {"q_loss", "actor_loss", "alpha", "entropy"} <= set(metrics)
    assert all(p.grad is None for p in agent.encoder.parameters())
    assert all(torch.equal(v, agent.encoder.state_dict()[k]) for k, v in enc.items())
    o = torch.randn(3, 7).numpy()
    assert (agent.act(o, explore=False) == agent.act(o, explore=False)).all()
    assert not (agent.act(o, explore=True) == agent.act(o, explore=True)).all()


@pytest.mark.parametrize(
    "make",
    [
        lambda: SAC(SACAgentConfig(mlp_dims=[16, 16]), 7, 3, torch.device("cpu"), seed=0),
        lambda: IQRL(
            IQRLSACConfig(latent_dim=4, mlp_dims=[16, 16], enc_mlp_dims=[16], rl_algo="sac"),
            7,
            3,
            torch.device("cpu"),
            seed=0,
        ),
    ],
)
def test_state_dict_round_trip(make):
    class FixedReplay:
        def sample(self, n):
            return iqrl_batch()

    torch.manual_seed(0)
    a = make()
    torch.manual_seed(1)
    b = make()
    for _ in range(3):
        a.update(FixedReplay(), 0)
    b.load_state_dict(a.state_dict())
    assert math.isclose(a.learner.log_alpha.item(), b.learner.log_alpha.item())
    obs = torch.randn(3, 7).numpy()
    assert (a.act(obs, explore=True) == b.act(obs, explore=True)).all()
    assert (a.act(obs, explore=False) == b.act(obs, explore=False)).all()
    ma, mb = a.update(FixedReplay(), 3), b.update(FixedReplay(), 3)
    assert float(ma["q_loss"]) == float(mb["q_loss"])
