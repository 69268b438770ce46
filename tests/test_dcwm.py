"""DCWM agent: codes and shapes, world-model loss and its gradients, RL isolation, MPPI acting, resume."""

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.dcwm import DCWM, DCWMConfig
from iqrl.config.build import build_config
from iqrl.config.run import ConfigError
from iqrl.core.replay import SequenceBatch
from iqrl.nn.maths import gumbel_noise, gumbel_softmax_st
from iqrl.runfolder.exits import EXIT_OK
from iqrl.train import main

from conftest import tiny_argv
from test_train import read_csv

OBS, ACT = 7, 3
SMALL_PLAN = {"num_samples": 32, "num_pi_trajs": 4, "num_elites": 8, "iterations": 2}


def make(**kw):
    torch.manual_seed(0)
    cfg = DCWMConfig(
        **{"latent_dim": 4, "mlp_dims": [16, 16], "enc_mlp_dims": [16], "batch_size": 8, **SMALL_PLAN, **kw}
    )
    return DCWM(cfg, OBS, ACT, torch.device("cpu"), seed=0)


def batch(B=8, L=5, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(B, L + 1, OBS, generator=g).requires_grad_(requires_grad)
    return SequenceBatch(
        obs=obs,
        action=torch.rand(B, L, ACT, generator=g) * 2 - 1,
        reward=torch.rand(B, L, generator=g) * 2,
        terminal=torch.zeros(B, L, dtype=torch.bool),
        valid=torch.ones(B, L),
        index=torch.arange(B),
    )


def test_latent_codes_and_architecture():
    cfg = DCWMConfig()
    assert (cfg.latent_dim, cfg.fsq_levels, cfg.horizon, cfg.batch_size, cfg.num_critics) == (
        512,
        [5, 3],
        5,
        512,
        5,
    )
    agent = DCWM(DCWMConfig(latent_dim=6, **SMALL_PLAN), OBS, ACT, torch.device("cpu"), seed=0)
    assert agent.spec.updates_per_step == 0.5 and agent.spec.seq_len == 5  # 1 per agent step
    assert agent.codebook_size == 15 and agent.latent_width == 12
    assert agent.codebook.shape == (15, 2)
    assert sorted(set(agent.codebook[:, 0].tolist())) == [-1, -0.5, 0, 0.5, 1]
    assert sorted(set(agent.codebook[:, 1].tolist())) == [-1, 0, 1]
    assert agent.encoder[-1].out_features == 12 and agent.dynamics[-1].out_features == 6 * 15
    assert agent.dynamics[0].in_features == 12 + ACT and agent.learner.critic.n == 5
    obs = torch.randn(9, OBS)
    z, k = agent.latent(obs), agent.codes(obs)
    assert z.shape == (9, 12) and k.shape == (9, 6) and k.min() >= 0 and k.max() < 15
    assert torch.equal(agent.codebook[k].flatten(-2), z)  # the latent is exactly the codes of its indices
    assert type(agent.model_opt) is torch.optim.AdamW and agent.model_opt.defaults["lr"] == 1e-4


@pytest.mark.parametrize("mpc", [True, False])
def test_act_shapes_and_bounds(mpc):
    agent = make(mpc=mpc)
    rng = np.random.default_rng(0)
    obs = (rng.normal(size=(OBS,)) * 100).astype(np.float32)
    for explore in (True, False):
        a = agent.act(obs, explore=explore)
        assert a.shape == (ACT,) and np.all(np.abs(a) <= 1.0)
        a = agent.act(rng.normal(size=(4, OBS)).astype(np.float32), explore=explore)
        assert a.shape == (4, ACT) and np.all(np.abs(a) <= 1.0)


def test_gumbel_straight_through():
    logits = torch.randn(64, 15, requires_grad=True)
    y = gumbel_softmax_st(logits, gumbel_noise(logits.shape, torch.Generator().manual_seed(0)))
    assert torch.equal(y.sum(-1), torch.ones(64)) and set(y.unique().tolist()) <= {0.0, 1.0}
    (y * torch.arange(15.0)).sum().backward()
    assert logits.grad.abs().sum() > 0  # gradient through the soft relaxation
    # samples follow softmax(logits)
    p = torch.tensor([0.7, 0.2, 0.1])
    draws = gumbel_softmax_st(
        p.log().expand(20000, 3), gumbel_noise((20000, 3), torch.Generator().manual_seed(1))
    )
    draws = draws.mean(0)
    assert torch.allclose(draws, p, atol=0.02)


def model_loss(agent, b):
    """The world-model loss with the rollout noise drawn as `update_world_model` draws it."""
    return agent.world_model_loss(b, noise=agent.training_rollout_noise(b))


def test_world_model_loss_is_rho_weighted_ce_and_reward():
    """Compared with the code's own pieces (encoder, dynamics logits, reward head, codebook) on purpose:
    the networks' outputs can only be read through them. What is written out by hand is the loss that
    combines them: rho^t weights, the mean over H, cross-entropy against the next codes, tanh + 1 rewards."""
    agent = make(horizon=3, rho=0.5, train_propagation="mode")  # deterministic rollout for a hand check
    b = batch()
    loss, m = model_loss(agent, b)
    with torch.no_grad():
        z = agent.encode(b.obs[:, 0])
        ce, rew = 0, 0
        for t in range(3):
            r_hat = (
                torch.tanh(agent.reward_head(torch.cat([z, b.action[:, t]], -1)).squeeze(-1)) + 1.0
            )  # [0, 2]
            rew = rew + 0.5**t * ((r_hat - b.reward[:, t]) ** 2).mean()
            logits = agent.next_logits(z, b.action[:, t])
            k = agent.codes(b.obs[:, t + 1])
            ce = ce + 0.5**t * F.cross_entropy(logits.flatten(0, 1), k.flatten())
            z = agent.codebook[logits.argmax(-1)].flatten(-2)
    assert m["consistency_loss"].item() == pytest.approx(ce.item() / 3, rel=1e-5)
    assert m["reward_loss"].item() == pytest.approx(rew.item() / 3, rel=1e-5)
    assert loss.item() == pytest.approx((ce + rew).item() / 3, rel=1e-5)


def test_world_model_loss_decreases_on_a_fixed_batch():
    agent = make(enc_lr=1e-3)
    b = batch()
    noise = agent.generator.get_state()

    def evaluate():  # the same Gumbel draws each time
        agent.generator.set_state(noise)
        return model_loss(agent, b)[1]

    first = evaluate()
    for _ in range(100):
        agent.update_world_model(b)
    last = evaluate()
    # CE cannot reach 0 here: the Gumbel-sampled rollout and the moving online targets keep it up
    assert last["repr_loss"] < 0.75 * first["repr_loss"]
    assert last["consistency_loss"] < 0.8 * first["consistency_loss"]
    assert last["reward_loss"] < 0.7 * first["reward_loss"]


@pytest.mark.parametrize("consistency", ["cross_entropy", "mse", "cosine"])
def test_consistency_targets_are_stop_gradient(consistency):
    """The encoder gets gradient only through z_0 and the rollout: o_1..o_H (the targets) get none."""
    agent = make(consistency_loss=consistency)
    b = batch(requires_grad=True)
    model_loss(agent, b)[0].backward()
    assert b.obs.grad[:, 1:].abs().sum() == 0
    assert b.obs.grad[:, 0].abs().sum() > 0
    # the consistency term alone trains the encoder (through z_0 and the Gumbel rollout) and the dynamics
    agent = make(consistency_loss=consistency, reward_coef=0.0)
    model_loss(agent, batch())[0].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.encoder.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.dynamics.parameters())


def test_rollout_gradient_flows_through_the_gumbel_samples():
    agent = make(
        reward_coef=1.0, consistency_coef=0.0
    )  # reward of z_1.. depends on the dynamics only via the rollout
    model_loss(agent, batch())[0].backward()
    assert agent.dynamics[0].weight.grad.abs().sum() > 0
    agent = make(reward_coef=1.0, consistency_coef=0.0, train_propagation="sample_no_grad")
    model_loss(agent, batch())[0].backward()
    assert agent.dynamics[0].weight.grad is None or agent.dynamics[0].weight.grad.abs().sum() == 0


def test_world_model_gradients_reach_exactly_the_world_model():
    agent = make()
    model_loss(agent, batch())[0].backward()
    for m in (agent.encoder, agent.dynamics, agent.reward_head):
        assert any(p.grad is not None for p in m.parameters())
    assert all(p.grad is None for p in agent.learner.parameters())


def test_rl_gradients_never_reach_the_world_model():
    agent = make()
    before = {n: copy.deepcopy(m.state_dict()) for n, m in agent.networks().items() if n != "ac"}
    for _ in range(4):  # includes actor steps
        metrics = agent.update_rl(batch())
    for n, m in agent.networks().items():
        if n != "ac":
            assert all(p.grad is None for p in m.parameters())
            assert all(torch.equal(v, m.state_dict()[k]) for k, v in before[n].items())
    assert agent.learner.actor[0].weight.grad is not None and "actor_loss" in metrics


def test_critic_loss_decreases_on_a_fixed_batch_and_grads_are_clipped():
    agent = make(lr=1e-3, grad_clip=0.5)
    b = batch()
    losses, clipped = [], 0
    for _ in range(80):
        m = agent.update_rl(b)
        losses.append(m["q_loss"].item())
        assert "q_grad_norm" in m
        if "actor_loss" not in m:  # (an actor step leaves its own gradients on the critic)
            post_clip = torch.nn.utils.get_total_norm([p.grad for p in agent.learner.critic.parameters()])
            assert float(post_clip) == pytest.approx(min(float(m["q_grad_norm"]), 0.5), rel=1e-4)
            clipped += float(m["q_grad_norm"]) > 0.5
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])
    assert clipped > 0  # the clip was active on some steps


@pytest.mark.parametrize("legacy, expected", [(False, 0.99), (True, 1.0)])
def test_bootstrap_discount_gamma_n_or_legacy_unit_for_n1(legacy, expected):
    agent = make(nstep=1, dcwm_legacy_unit_discount=legacy)
    _, _, _, disc, z_boot = agent.rl_inputs(b1 := batch())
    # the bootstrap latent is the code of o_{t+1} (boot index 1)
    assert torch.allclose(disc, torch.full((8,), expected)) and torch.equal(
        z_boot, agent.encode(b1.obs[:, 1])
    )
    agent3 = make(nstep=3, dcwm_legacy_unit_discount=legacy)  # n > 1: gamma^n either way
    _, _, ret, disc3, z_boot3 = agent3.rl_inputs(b := batch())
    assert torch.allclose(disc3, torch.full((8,), 0.99**3)) and torch.equal(
        z_boot3, agent3.encode(b.obs[:, 3])
    )
    assert torch.allclose(ret, b.reward[:, 0] + 0.99 * b.reward[:, 1] + 0.99**2 * b.reward[:, 2])


def test_planner_warm_start_reset_at_episode_start_and_checkpointed():
    agent = make()
    obs = np.zeros(OBS, np.float32)
    agent.on_episode_start(training=True)
    assert agent.plan_mean[True] is None
    agent.act(obs, explore=True)
    assert agent.plan_mean[True].shape == (1, 3, ACT) and agent.plan_mean[False] is None
    clone = make()
    clone.load_state_dict(agent.state_dict())
    assert torch.equal(clone.plan_mean[True], agent.plan_mean[True])
    assert np.array_equal(
        clone.act(obs, explore=True), agent.act(obs, explore=True)
    )  # same warm start, same RNG
    agent.on_episode_start(training=True)
    assert agent.plan_mean[True] is None


def test_mpc_action_changes_with_the_warm_start():
    agent = make()
    obs = np.zeros(OBS, np.float32)
    agent.act(obs, explore=False)
    state = agent.state_dict()
    warm = agent.act(obs, explore=False)
    agent.load_state_dict(state)
    agent.on_episode_start(training=False)  # same generator state, no warm start
    cold = agent.act(obs, explore=False)
    assert not np.array_equal(warm, cold)


def test_evaluation_acting_does_not_touch_the_training_streams():
    a, b = make(), make()
    obs = np.zeros(OBS, np.float32)
    for _ in range(3):
        a.act(obs, explore=False)
    assert np.array_equal(a.act(obs, explore=True), b.act(obs, explore=True))
    assert torch.equal(a.generator.get_state(), b.generator.get_state())


@pytest.mark.parametrize("shared", [True, False])
def test_prior_noise_shared_across_prior_trajectories_or_not(shared):
    agent = make(plan_shared_prior_noise=shared)
    z = agent.encode(torch.randn(1, OBS)).unsqueeze(1).expand(1, 6, agent.latent_width)
    a = agent.policy_prior(z, torch.Generator().manual_seed(0), noisy=True)
    identical = bool((a == a[:, :1]).all())
    assert identical == shared  # DC-3: one noise vector for all prior trajectories
    clean = agent.policy_prior(z, torch.Generator().manual_seed(0), noisy=False)
    assert torch.equal(clean, agent.learner.policy(z).clamp(-1, 1))


def test_mppi_acts_on_the_models_predicted_reward():
    """With the reward head rigged to prefer action[0] = +1, the planned action points that way."""
    agent = make(mpc=True, num_samples=64, num_elites=8, iterations=4, temperature=5.0)
    agent.reward = lambda z, a: -((a[..., 0] - 1.0) ** 2)
    with torch.no_grad():
        agent.learner.critic.out.weight.zero_()  # no terminal value
        agent.learner.critic.out.bias.zero_()
    a = agent.act(np.zeros((3, OBS), np.float32), explore=False)
    assert (a[:, 0] > 0.5).all()


def test_config_validation_and_task_overrides():
    with pytest.raises(ConfigError, match="agent.num_elites must be in 1..num_samples"):
        build_config(["agent=dcwm", "agent.num_samples=8", "agent.num_pi_trajs=2", "agent.num_elites=9"])
    with pytest.raises(ConfigError, match="agent.plan_horizon must be >= 1"):
        build_config(["agent=dcwm", "agent.plan_horizon=0"])
    with pytest.raises(ConfigError, match="dcwm_legacy_unit_discount"):
        build_config(["agent=dcwm", "agent.official_nstep1_gamma_bug=true"])
    with pytest.raises(ConfigError, match="agent.train_propagation must be one of"):
        build_config(["agent=dcwm", "agent.train_propagation=argmax"])
    walker = build_config(["agent=dcwm", "task=walker-walk"]).agent
    assert (walker.latent_dim, walker.nstep, walker.expl_sigma_episodes, walker.mpc) == (512, 1, 50, True)
    assert (walker.grad_clip, walker.init, walker.plan_shared_prior_noise) == (20.0, "default", True)
    dog = build_config(["agent=dcwm", "task=dog-run"]).agent
    assert (dog.latent_dim, dog.latent_width, dog.nstep, dog.expl_sigma_episodes) == (1024, 2048, 3, 500)
    assert build_config(["agent=dcwm", "task=humanoid-run"]).agent.latent_dim == 1024
    sparse = build_config(["agent=dcwm", "task=cartpole-swingup_sparse"]).agent
    assert (sparse.nstep, sparse.expl_sigma_episodes) == (3, 250)
    assert build_config(["agent=dcwm", "task=finger-turn_hard"]).agent.nstep == 2
    assert build_config(["agent=dcwm", "task=cheetah-run"]).agent.expl_sigma_episodes == 150
    # the other suites as DC-MPC's cfgs/env: an unbounded reward head; Meta-World and MyoSuite decay the noise
    # to 0.05 over 250 episodes, n-step 3 and 1; MyoSuite learns from symlog rewards
    assert (walker.reward_min, walker.reward_max, walker.symlog_reward) == (0.0, 2.0, False)
    hopper = build_config(["agent=dcwm", "task=gym:Hopper-v4"]).agent
    assert (hopper.reward_min, hopper.reward_max, hopper.symlog_reward) == (None, None, False)
    mw = build_config(["agent=dcwm", "task=metaworld:reach"]).agent
    assert (mw.reward_max, mw.nstep, mw.expl_sigma_end, mw.expl_sigma_episodes, mw.symlog_reward) == (
        None, 3, 0.05, 250, False,
    )  # fmt: skip
    myo = build_config(["agent=dcwm", "task=myosuite:myoHandReachFixed-v0"]).agent
    assert (myo.reward_max, myo.nstep, myo.expl_sigma_end, myo.expl_sigma_episodes, myo.symlog_reward) == (
        None, 1, 0.05, 250, True,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="reward_min and agent.reward_max must both be set"):
        build_config(["agent=dcwm", "agent.reward_min=null"])


def test_an_unbounded_reward_head_is_the_heads_output():
    agent = make(reward_min=None, reward_max=None)
    z, a = agent.encode(batch().obs[:, 0]), batch().action[:, 0]
    raw = agent.reward_head(torch.cat([z, a], -1)).squeeze(-1)
    assert torch.equal(agent.reward(z, a), raw)
    bounded = make()
    assert torch.equal(bounded.reward(z, a), torch.tanh(raw) + 1.0)  # [0, 2]: same weights (seed 0)


def test_symlog_reward_feeds_both_the_world_model_and_the_critic():
    """symlog(r) = sign(r) log(1 + |r|) reaches both steps of the update; the batch itself is unchanged."""
    from iqrl.nn.maths import symexp, symlog

    e = torch.tensor([np.e - 1.0, -(np.e - 1.0), 0.0, 3.0])
    assert torch.allclose(symlog(e)[:3], torch.tensor([1.0, -1.0, 0.0]))
    assert torch.allclose(symexp(symlog(e)), e)
    b = batch()
    b.reward.mul_(50.0).sub_(40.0)  # rewards in [-40, 60]

    class Replay:
        def sample(self, n):
            return b

    for on in (False, True):
        agent, seen = make(symlog_reward=on), {}

        def record(step, seen=seen):
            return lambda batch: seen.update({step: batch.reward}) or {}

        agent.update_world_model, agent.update_rl = record("model"), record("rl")
        agent.update(Replay(), 0)
        expected = symlog(b.reward) if on else b.reward
        assert torch.equal(seen["model"], expected) and torch.equal(seen["rl"], expected)
    assert b.reward.min() < -1.0  # the batch itself was not changed in place


def test_run_folder_has_codebook_diagnostics_model_free(tmp_path):
    out = tmp_path / "run"  # (test_train runs the default, MPPI acting, end to end)
    assert main(tiny_argv("dcwm", out, steps=800, extra=["agent.mpc=false"])) == EXIT_OK
    tr = read_csv(out / "train.csv")
    assert (
        int(tr[-1]["updates"]) == 400
    )  # 800 env steps x 0.5: the seed burst trains on the 400 seed steps too
    assert 0 < float(tr[-1]["active_codebook_pct_mean"]) <= 100 and 1 <= float(tr[-1]["latent_rank"]) <= 16
    assert tr[-1]["consistency_loss"] != "" and float(tr[-1]["q_grad_norm"]) >= 0
    assert json.loads((out / "status.json").read_text())["state"] == "done"


@pytest.mark.parametrize("burst", [True, False])
def test_seed_burst_trains_on_the_seed_episodes_before_the_first_agent_episode(burst, tmp_path):
    out = tmp_path / "run"
    extra = ["agent.mpc=false", f"agent.seed_burst={str(burst).lower()}", "diag_every=200", "eval_every=1000"]
    assert main(tiny_argv("dcwm", out, steps=800, extra=extra)) == EXIT_OK
    updates = {int(r["env_step"]): int(r["updates"]) for r in read_csv(out / "train.csv")}
    # seed phase: 2 episodes of 200 env steps; the code's first update call trains on both (400 x 0.5)
    assert updates[200] == 0
    assert updates[400] == (200 if burst else 0)
    assert updates[600] == (300 if burst else 100) and updates[800] == (400 if burst else 200)
