"""TCRL agent: shapes and bounds, losses, gradient isolation, targets, sigma schedule, run folder, resume."""

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.tcrl import TCRL, TCRLConfig
from iqrl.config.build import build_config
from iqrl.core.replay import SequenceBatch
from iqrl.nn.maths import truncated_normal_sample
from iqrl.runfolder.exits import EXIT_OK
from iqrl.train import main

from agent_helpers import FixedReplay
from conftest import tiny_argv
from test_train import read_csv

OBS, ACT = 7, 3


def make(**kw):
    torch.manual_seed(0)
    cfg = TCRLConfig(**{"latent_dim": 6, "mlp_dims": [16, 16], "enc_mlp_dims": [16], "batch_size": 8, **kw})
    return TCRL(cfg, OBS, ACT, torch.device("cpu"), seed=0)


def batch(B=8, L=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return SequenceBatch(
        obs=torch.randn(B, L + 1, OBS, generator=g),
        action=torch.rand(B, L, ACT, generator=g) * 2 - 1,
        reward=torch.rand(B, L, generator=g),
        terminal=torch.zeros(B, L, dtype=torch.bool),
        valid=torch.ones(B, L),
        index=torch.arange(B),
    )


def test_architecture_and_defaults():
    cfg = TCRLConfig()
    assert (cfg.latent_dim, cfg.horizon, cfg.rho, cfg.nstep, cfg.batch_size) == (50, 5, 0.9, 3, 512)
    agent = TCRL(cfg, OBS, ACT, torch.device("cpu"), seed=0)
    assert agent.spec.updates_per_step == 0.25 and agent.spec.seq_len == 5  # 0.5 per agent step
    enc = [m for m in agent.encoder if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in enc] == [(OBS, 512), (512, 512), (512, 50)]
    assert isinstance(agent.encoder[1], torch.nn.ELU)
    assert agent.dynamics[0].in_features == 50 + ACT and agent.dynamics[-1].out_features == 50
    assert agent.reward_head[-1].out_features == 1
    actor = agent.learner.actor
    assert isinstance(actor.trunk[1], torch.nn.LayerNorm) and isinstance(actor.trunk[2], torch.nn.Tanh)
    assert [m.out_features for m in actor.head if isinstance(m, torch.nn.Linear)] == [512, ACT]
    critic = agent.learner.critic  # shared trunk, two heads
    assert critic.trunk[0].in_features == 50 + ACT and len(critic.heads) == 2
    assert not hasattr(agent.learner, "actor_target")  # TCRL has no actor target
    w = agent.encoder[0].weight  # orthogonal init, zero bias
    assert torch.allclose(w.T @ w, torch.eye(OBS), atol=1e-4)  # [512, 7]: orthonormal columns
    assert (agent.encoder[0].bias == 0).all()
    assert agent.model_opt.defaults["weight_decay"] == 1e-6 and type(agent.model_opt) is torch.optim.Adam


def test_act_shapes_and_bounds():
    agent = make()
    obs = np.random.default_rng(0).normal(size=(OBS,)).astype(np.float32) * 100
    a = agent.act(obs, explore=True)
    assert a.shape == (ACT,) and np.all(np.abs(a) < 1.0)
    assert agent.act(obs[None].repeat(4, 0), explore=False).shape == (4, ACT)
    # evaluation is the mean action: deterministic
    assert np.array_equal(agent.act(obs, explore=False), agent.act(obs, explore=False))
    assert agent.latent(torch.randn(5, OBS)).shape == (5, 6) and agent.codes(torch.randn(5, OBS)) is None


def test_truncated_normal_straight_through_clamp():
    mu = torch.tensor([0.95, 0.0, -0.95], requires_grad=True)
    g = torch.Generator().manual_seed(0)
    x = truncated_normal_sample(mu, 5.0, g, clip=None)
    assert (x.abs() <= 1 - 1e-6).all()
    x.sum().backward()
    assert torch.equal(mu.grad, torch.ones(3))  # gradient passes as if there were no clamp
    g = torch.Generator().manual_seed(0)
    x = truncated_normal_sample(torch.zeros(10000), 1.0, g, clip=0.3)
    assert x.abs().max() <= 0.3 + 1e-6


def test_model_loss_is_rho_weighted_cosine_and_reward():
    """Compared with the code's own networks on purpose (their outputs can only be read through them);
    the loss that combines them (rho^t, the mean over H, cosine and reward terms) is written out here."""
    agent = make(horizon=3, rho=0.5)
    b = batch()
    loss, m = agent.model_loss(b)
    with torch.no_grad():
        z = agent.encoder(b.obs[:, 0])
        cons, rew = 0, 0
        for t in range(3):
            za = torch.cat([z, b.action[:, t]], -1)
            rew = rew + 0.5**t * (agent.reward_head(za).squeeze(-1) - b.reward[:, t]) ** 2
            z = agent.dynamics(za)
            cons = cons + 0.5**t * (
                2 - 2 * F.cosine_similarity(z, agent.encoder_target(b.obs[:, t + 1]), dim=-1)
            )
    assert m["consistency_loss"].item() == pytest.approx(cons.mean().item(), rel=1e-5)
    assert m["reward_loss"].item() == pytest.approx(rew.mean().item(), rel=1e-5)
    assert loss.item() == pytest.approx((cons + rew).mean().item(), rel=1e-5)
    # per-sample clamp at loss_clamp
    clamped = make(horizon=3, rho=0.5, loss_clamp=0.01)
    _, mc = clamped.model_loss(b)
    assert mc["consistency_loss"].item() == pytest.approx(0.01)


def test_model_loss_decreases_on_a_fixed_batch():
    agent = make(model_lr=3e-3)
    b = batch()
    first = agent.model_loss(b)[0].item()
    for _ in range(60):
        agent.update_model(b)
    assert agent.model_loss(b)[0].item() < 0.5 * first


def test_critic_loss_decreases_on_a_fixed_batch():
    agent = make(lr=1e-3)
    b = batch()
    losses = [agent.update_rl(b)["q_loss"].item() for _ in range(80)]
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])


def test_model_gradients_reach_exactly_encoder_dynamics_reward():
    agent = make()
    loss, _ = agent.model_loss(batch())
    loss.backward()
    for m in (agent.encoder, agent.dynamics, agent.reward_head):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
    for m in (agent.encoder_target, agent.learner):
        assert all(p.grad is None for p in m.parameters())


def test_rl_gradients_never_reach_the_encoders_or_model():
    agent = make()
    before = {
        k: copy.deepcopy(m.state_dict())
        for k, m in (
            ("e", agent.encoder),
            ("et", agent.encoder_target),
            ("f", agent.dynamics),
            ("r", agent.reward_head),
        )
    }
    for _ in range(3):
        agent.update_rl(batch())
    for k, m in (
        ("e", agent.encoder),
        ("et", agent.encoder_target),
        ("f", agent.dynamics),
        ("r", agent.reward_head),
    ):
        assert all(p.grad is None for p in m.parameters())
        assert all(torch.equal(v, m.state_dict()[n]) for n, v in before[k].items())
    assert agent.learner.actor.trunk[0].weight.grad is not None


def test_actor_step_leaves_no_gradient_on_the_critic():
    agent = make()
    grads = {}
    # the critic's gradients after the update are exactly those of its own loss: the actor's backward
    # through it (every update) adds nothing to them, and the critic trains again afterwards
    orig_step = agent.learner.critic_opt.step
    agent.learner.critic_opt.step = lambda: (
        grads.update({n: p.grad.clone() for n, p in agent.learner.critic.named_parameters()}),
        orig_step(),
    )
    agent.update_rl(batch())
    assert grads and all(torch.equal(p.grad, grads[n]) for n, p in agent.learner.critic.named_parameters())
    assert all(p.requires_grad for p in agent.learner.critic.parameters())
    assert agent.learner.actor.trunk[0].weight.grad.abs().sum() > 0


def test_full_update_target_encoder_gets_no_gradient_only_ema():
    agent = make(enc_tau=0.1, tau=0.2)
    old_enc = [p.clone() for p in agent.encoder_target.parameters()]
    old_q = [p.clone() for p in agent.learner.critic_target.parameters()]
    agent.update(FixedReplay(batch()), 0)
    assert all(p.grad is None and not p.requires_grad for p in agent.encoder_target.parameters())
    for t_old, t_new, online in zip(old_enc, agent.encoder_target.parameters(), agent.encoder.parameters()):
        assert torch.allclose(t_new, 0.9 * t_old + 0.1 * online, atol=1e-6)
    for t_old, t_new, online in zip(
        old_q, agent.learner.critic_target.parameters(), agent.learner.critic.parameters()
    ):
        assert torch.allclose(t_new, 0.8 * t_old + 0.2 * online, atol=1e-6)


def test_targets_copied_at_init_unless_official_quirk():
    agent = make()
    assert all(
        torch.equal(a, b) for a, b in zip(agent.encoder.parameters(), agent.encoder_target.parameters())
    )
    assert all(
        torch.equal(a, b)
        for a, b in zip(agent.learner.critic.parameters(), agent.learner.critic_target.parameters())
    )
    q = make(official_random_target_init=True)  # TC-1: independent random init
    assert not torch.equal(q.encoder[0].weight, q.encoder_target[0].weight)
    assert not torch.equal(q.learner.critic.trunk[0].weight, q.learner.critic_target.trunk[0].weight)
    assert not any(p.requires_grad for p in q.encoder_target.parameters())


def test_td_target_uses_online_actor_and_min_of_target_heads():
    """Replays the generator's draws through the code's own networks on purpose (their outputs can only be
    read through them); the target's formula (online actor, truncated noise, min of the target heads) is
    written out here."""
    agent = make(nstep=3, gamma=0.9)
    ac, b = agent.learner, batch()
    ac.sigma = 0.5
    z, z_next = torch.randn(8, 6), torch.randn(8, 6)
    ret, disc = torch.rand(8), torch.full((8,), 0.729)
    state = ac.generator.get_state()
    ac.update(agent.updater, z, b.action[:, 0], ret, disc, z_next)
    ac2 = make(nstep=3, gamma=0.9).learner
    ac2.generator.set_state(state)
    with torch.no_grad():
        noise = (torch.randn(8, ACT, generator=ac2.generator) * 0.5).clamp(-0.3, 0.3)
        a = (ac2.actor(z_next) + noise).clamp(-1 + 1e-6, 1 - 1e-6)
        y = ret + disc * torch.minimum(*ac2.critic_target(z_next, a))
        q = ac2.critic(z, b.action[:, 0])
        expected = ((q - y) ** 2).sum(0).mean()
    ac2.sigma = 0.5
    ac2.generator.set_state(state)
    assert ac2.update(agent.updater, z, b.action[:, 0], ret, disc, z_next)["q_loss"].item() == pytest.approx(
        expected.item(), rel=1e-5
    )


def test_nstep_uses_the_first_n_rewards_and_gamma_n():
    agent = make(nstep=3, gamma=0.5)
    b = batch()
    seen = {}
    agent.learner.update = lambda u, z, a, ret, disc, zn: seen.update(ret=ret, disc=disc, zn=zn) or {}
    agent.update_rl(b)
    assert torch.allclose(seen["ret"], b.reward[:, 0] + 0.5 * b.reward[:, 1] + 0.25 * b.reward[:, 2])
    assert torch.allclose(seen["disc"], torch.full((8,), 0.125))
    assert torch.allclose(seen["zn"], agent.encoder(b.obs[:, 3]))


def test_sigma_follows_the_episode_index_random_episodes_included():
    agent = make(sigma_start=1.0, sigma_end=0.1, sigma_episodes=50)
    assert agent.learner.expl_sigma == 1.0
    for _ in range(10):  # 10 random episodes: no updates, but they count
        agent.on_episode_start(training=True)
    agent.on_episode_start(training=False)  # evaluation episodes do not count
    assert agent.learner.sigma == 1.0  # acting in the first agent episode: the initial value (no update yet)
    agent.on_episode_start(training=True)  # episode index 10
    agent.update(FixedReplay(batch()), 0)
    assert agent.learner.sigma == pytest.approx(1.0 - 0.9 * 10 / 50)
    for _ in range(100):
        agent.on_episode_start(training=True)
    agent.update(FixedReplay(batch()), 0)
    assert agent.learner.sigma == pytest.approx(0.1)


def test_task_overrides():
    walker = build_config(["agent=tcrl", "task=walker-walk"]).agent
    assert (walker.latent_dim, walker.nstep, walker.sigma_end, walker.sigma_episodes) == (50, 3, 0.1, 50)
    cheetah = build_config(["agent=tcrl", "task=cheetah-run"]).agent
    assert (cheetah.latent_dim, cheetah.sigma_episodes) == (50, 150)
    dog = build_config(["agent=tcrl", "task=dog-run"]).agent
    assert (dog.latent_dim, dog.nstep, dog.sigma_end, dog.sigma_episodes) == (100, 3, 0.2, 500)
    hum = build_config(["agent=tcrl", "task=humanoid-walk"]).agent
    assert (hum.latent_dim, hum.nstep) == (100, 1)
    sparse = build_config(["agent=tcrl", "task=cartpole-swingup_sparse"]).agent
    assert (sparse.latent_dim, sparse.sigma_episodes) == (50, 150)
    with pytest.raises(Exception, match="sigma_episodes must be >= 1"):
        build_config(["agent=tcrl", "agent.sigma_episodes=0"])


def test_state_dict_round_trip():
    a, b = make(), make(init="default")
    for _ in range(2):
        a.on_episode_start(True)
        a.update(FixedReplay(batch()), 0)
    b.load_state_dict(a.state_dict())
    obs = np.random.default_rng(1).normal(size=(3, OBS)).astype(np.float32)
    assert np.array_equal(a.act(obs, explore=True), b.act(obs, explore=True))
    assert (a.learner.sigma, a.train_episodes) == (b.learner.sigma, b.train_episodes)


def test_run_folder_logs_sigma_of_the_episode_index(tmp_path):
    out = tmp_path / "run"
    assert main(tiny_argv("tcrl", out, steps=800, extra=["agent.sigma_episodes=10"])) == EXIT_OK
    tr = read_csv(out / "train.csv")
    # 200-step episodes, 2 seed episodes; the row at 800 follows episode index 3 -> sigma 1 - 0.9 * 3 / 10
    assert float(tr[-1]["expl_sigma"]) == pytest.approx(1 - 0.9 * 3 / 10)
    assert int(tr[-1]["updates"]) == 100  # 400 agent env steps x 0.25
    assert float(tr[-1]["consistency_loss"]) >= 0 and tr[-1]["latent_rank"] != ""
    assert json.loads((out / "status.json").read_text())["state"] == "done"
