"""TD-MPC2 (baselines/tdmpc2.py, baselines/tdmpc2_config.py): SimNorm, two-hot regression in symlog
space, the model loss's weights over the horizon, the discount heuristic, the drawn pair of Q-functions and
the dropout masks, the policy's entropy and RunningScale, model sizes, and the planner's use of the policy
prior. Expected values are the reference code's formulas (github.com/nicklashansen/tdmpc2 at e9f5932)
written out by hand; where a test reads the agent's networks to build its expectation it says so."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.tdmpc2 import TDMPC2, RunningScale
from baselines.tdmpc2_config import MODEL_SIZES, TDMPC2Config, heuristic_discount
from iqrl.core.schedule import Credit, PerStepSeedBurst
from iqrl.nn.maths import symexp, symlog, two_hot, two_hot_cross_entropy, two_hot_decode

OBS, ACT = 7, 3
H, B = 3, 8


def make(**kw) -> TDMPC2:
    torch.manual_seed(0)
    cfg = TDMPC2Config(**{**TDMPC2Config.TINY, "batch_size": B, **kw})
    cfg.validate()
    return TDMPC2(cfg, OBS, ACT, torch.device("cpu"), seed=0)


def window(seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(H + 1, B, OBS, generator=g)
    action = torch.rand(H, B, ACT, generator=g) * 2 - 1
    reward = torch.rand(H, B, generator=g) * 3
    return obs, action, reward


def test_simnorm_latent_is_a_softmax_over_groups_of_simnorm_dim():
    """Encoder and dynamics end Linear -> LayerNorm -> SimNorm (layers.py:74-91): each group of 8 channels
    is softmax(LN(y)) of that group (reads the encoder's own Linear and LayerNorm)."""
    agent = make()
    obs = torch.randn(5, OBS)
    z = agent.encode(obs)
    assert z.shape == (5, 16) and agent.cfg.simnorm_dim == 8
    groups = z.view(5, 2, 8)
    torch.testing.assert_close(groups.sum(-1), torch.ones(5, 2))
    y = agent.encoder[1](agent.encoder[0](obs))  # the MLP's Linear output, then LayerNorm
    torch.testing.assert_close(z, F.softmax(y.view(5, 2, 8), -1).view(5, 16))
    nxt = agent.next(z, torch.zeros(5, ACT)).view(5, 2, 8)
    torch.testing.assert_close(nxt.sum(-1), torch.ones(5, 2))
    with pytest.raises(ValueError, match="multiple of agent.simnorm_dim"):
        TDMPC2Config(latent_dim=20).validate()


def test_two_hot_targets_are_on_linear_bins_in_symlog_space():
    """math.py:58-83: 101 bins of [-10, 10] (spacing 0.2); x -> symlog(x) clamped, weight 1 - offset on the
    bin below and offset on the one above; decoding is symexp of the expectation over the bins."""
    assert TDMPC2Config().num_bins == 101
    agent = make(num_bins=101)
    cfg = agent.cfg
    assert (cfg.num_bins, cfg.vmin, cfg.vmax) == (101, -10.0, 10.0)
    x = torch.tensor([math.exp(1.05) - 1, -(math.exp(0.3) - 1), 1e9])
    target = two_hot(symlog(x), agent.bins)
    want = torch.zeros(3, 101)
    want[0, 55], want[0, 56] = 0.75, 0.25  # symlog = 1.05: between bins 1.0 (55) and 1.2 (56)
    want[1, 48], want[1, 49] = 0.5, 0.5  # -0.3: halfway between -0.4 (48) and -0.2 (49)
    want[2, 100] = 1.0  # symlog(1e9) = 20.7 clamps to vmax
    torch.testing.assert_close(target, want, atol=1e-5, rtol=0)
    logits = torch.randn(3, 101)
    ce = two_hot_cross_entropy(logits, symlog(x), agent.bins)
    torch.testing.assert_close(ce, -(want * F.log_softmax(logits, -1)).sum(-1), atol=1e-5, rtol=1e-5)
    one_bin = torch.full((101,), -1e4)
    one_bin[60] = 0.0  # all mass on bin 60 = 2.0
    torch.testing.assert_close(symexp(two_hot_decode(one_bin, agent.bins)), torch.tensor(math.exp(2.0) - 1))


def test_discount_heuristic_from_the_episode_length():
    """tdmpc2.py:57-70: clip((T/5 - 1) / (T/5), 0.95, 0.995)."""
    assert heuristic_discount(500, 5, 0.95, 0.995) == pytest.approx(0.99)
    assert heuristic_discount(1000, 5, 0.95, 0.995) == pytest.approx(0.995)
    assert heuristic_discount(2000, 5, 0.95, 0.995) == 0.995  # clipped above
    assert heuristic_discount(100, 5, 0.95, 0.995) == 0.95  # 0.95 exactly
    assert heuristic_discount(50, 5, 0.95, 0.995) == 0.95  # 0.9 clipped below
    cfg = TDMPC2Config(discount_episode_length=250, discount_denom=10, discount_min=0.5, discount_max=1.0)
    assert cfg.gamma is None and cfg.discount() == pytest.approx(24 / 25)
    assert TDMPC2Config(gamma=0.9).discount() == 0.9 and make(gamma=0.9).mppi_cfg.discount == 0.9
    assert make().gamma == pytest.approx(0.99) and make().mppi_cfg.discount == pytest.approx(0.99)


def test_td_target_is_the_min_of_the_drawn_pair_of_target_q_functions_without_dropout():
    """tdmpc2.py:241-257, world_model.py:186-216: q = r + gamma min(Q-_i, Q-_j)(z', a') for a pair (i, j)
    drawn at random, z' from the online encoder, a' a policy sample (reads the agent's networks)."""
    agent = make(num_q=5)
    obs, _, reward = window()
    draws = agent.target_draws(H, B)
    members = draws["members"]
    assert members.shape == (2,) and members[0] != members[1] and members.max() < 5
    with torch.no_grad():  # targets differ per member: perturb the zero-initialised output layer
        agent.critic_target.out.weight.normal_(0, 0.5)
    next_z, td = agent.td_targets(obs[1:], reward, torch.zeros(H, B), None, **draws)
    torch.testing.assert_close(next_z, agent.encode(obs[1:]))
    a, _, _ = agent.pi(next_z, draws["eps"])
    x = torch.cat([next_z, a], -1).flatten(0, 1)
    logits = agent.critic_target(x)  # all five, no masks
    q = symexp(two_hot_decode(logits, agent.bins)).view(5, H, B)
    torch.testing.assert_close(td, reward + 0.99 * torch.minimum(q[members[0]], q[members[1]]))
    assert (q.amin(0) < torch.minimum(q[members[0]], q[members[1]])).any()  # not the min over all five


def test_q_dropout_masks_cover_the_first_hidden_layer_only():
    """layers.py:121-133: dropout * (i == 0), a rate of 0.01, one mask per Q-function and input."""
    agent = make(num_q=5)
    masks = agent.model_draws(H, B)["masks"]
    assert agent.cfg.dropout == 0.01 and len(masks) == 1 and masks[0].shape == (5, H * B, 32)
    x = torch.randn(H * B, 16 + ACT)
    drop = [torch.zeros(5, H * B, 32)]  # drop every unit of the first layer
    h = agent.critic.linears[0](x)
    h = agent.critic.act(agent.critic.norms[0](h * 0.0))
    h = agent.critic.act(agent.critic.norms[1](agent.critic.linears[1](h)))
    torch.testing.assert_close(agent.critic(x, masks=drop), agent.critic.out(h))
    assert make(dropout=0.0).model_draws(H, B)["masks"] is None


def test_model_loss_weights_each_rollout_step_by_rho_and_averages_over_horizon_and_q_functions():
    """tdmpc2.py:268-304 written out: (1/H) sum_t rho^t [20 mse + 0.1 CE_r + 0.1 (1/num_q) sum_k CE_q]
    (reads the agent's networks for the rollout and the logits)."""
    agent = make(num_q=4, dropout=0.0)
    obs, action, reward = window()
    with torch.no_grad():
        agent.critic.out.weight.normal_(0, 0.5)
        agent.reward_head[-1].weight.normal_(0, 0.5)
    next_z = agent.encode(obs[1:]).detach()
    td = torch.rand(H, B) * 5
    total, (zs, metrics) = agent.model_loss(
        obs[0], action, reward, next_z, td, torch.ones(H, B), None, masks=None
    )
    z = agent.encode(obs[0])
    cons = rew = val = 0.0
    for t in range(H):
        x = torch.cat([z, action[t]], -1)
        rew = rew + 0.5**t * two_hot_cross_entropy(agent.reward_head(x), symlog(reward[t]), agent.bins).mean()
        q = agent.critic(x)
        for k in range(4):
            val = val + 0.5**t * two_hot_cross_entropy(q[k], symlog(td[t]), agent.bins).mean()
        z = agent.next(z, action[t])
        cons = cons + 0.5**t * F.mse_loss(z, next_z[t])
    cons, rew, val = cons / H, rew / H, val / (H * 4)
    torch.testing.assert_close(metrics["consistency_loss"], cons)
    torch.testing.assert_close(metrics["reward_loss"], rew)
    torch.testing.assert_close(metrics["q_loss"], val)
    torch.testing.assert_close(total, 20 * cons + 0.1 * rew + 0.1 * val)
    assert zs.shape == (H + 1, B, 16)
    c2 = make(num_q=4, dropout=0.0, consistency_coef=1.0, reward_coef=2.0, value_coef=3.0)
    c2.load_state_dict(agent.state_dict())
    total2, _ = c2.model_loss(obs[0], action, reward, next_z, td, torch.ones(H, B), None, masks=None)
    torch.testing.assert_close(total2, cons + 2 * rew + 3 * val)


def test_entropy_is_scaled_by_action_dims_and_the_code_quirk_cancels_the_tanh_correction():
    """world_model.py:144-184: log sigma in [-10, 2] through tanh; our entropy term is -A log pi(a) of the
    squashed Gaussian; TDMPC2-1 (`tdmpc2_presquash_entropy`) gives the code's ratio, -A log N(u)."""
    agent = make()
    z = agent.encode(torch.randn(6, OBS))
    eps = torch.randn(6, ACT)
    a, mean, ent = agent.pi(z, eps)
    mu, s = agent.actor(z).chunk(2, -1)
    log_std = -10 + 0.5 * 12 * (torch.tanh(s) + 1)
    u = mu + eps * log_std.exp()
    gauss = (-0.5 * eps**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    log_pi = gauss - torch.log(1 - torch.tanh(u) ** 2).sum(-1)
    torch.testing.assert_close(a, torch.tanh(u))
    torch.testing.assert_close(mean, torch.tanh(mu))
    torch.testing.assert_close(ent, -ACT * log_pi, rtol=1e-4, atol=1e-4)
    quirk = make(tdmpc2_presquash_entropy=True)
    quirk.load_state_dict(agent.state_dict())
    _, _, ent_q = quirk.pi(z, eps)
    torch.testing.assert_close(ent_q, -ACT * gauss, rtol=1e-4, atol=1e-4)


def test_running_scale_is_the_lerped_5_95_percentile_range_at_least_one():
    """scale.py:21-47: linear-interpolated percentiles (numpy's default), clamp(P95 - P5, min=1), lerp by
    tau."""
    scale = RunningScale(tau=0.01)
    x = torch.randn(37) * 10
    p5, p95 = np.percentile(x.numpy(), [5, 95])
    new = scale.update(x)
    assert float(new) == pytest.approx(1 + 0.01 * (max(p95 - p5, 1) - 1), rel=1e-5)
    assert float(scale.value) == pytest.approx(float(new))
    scale.update(torch.zeros(10))  # range 0 -> 1
    assert float(scale.value) == pytest.approx(float(new) + 0.01 * (1 - float(new)), rel=1e-6)


def test_policy_loss_is_the_rho_weighted_scaled_q_and_entropy(monkeypatch):
    """tdmpc2.py:208-230: mean_t rho^t mean_b -(alpha entropy + Q_avg / S), S updated first from Q at z_0
    (reads the agent's networks)."""
    agent = make(num_q=3)
    with torch.no_grad():
        agent.critic.out.weight.normal_(0, 2.0)
    zs = agent.encode(torch.randn(H + 1, B, OBS))
    draws = agent.pi_draws(H + 1, B)
    loss, aux = agent.pi_loss(zs, torch.ones(H, B), None, **draws)
    a, _, ent = agent.pi(zs, draws["eps"])
    q = agent.q_values(agent.critic, zs, a, draws["members"], draws["masks"]).mean(0)
    s = RunningScale(0.01).update(q[0])
    rho = 0.5 ** torch.arange(H + 1.0)
    want = ((-(1e-4 * ent + q / s)).mean(1) * rho).mean()
    torch.testing.assert_close(loss, want)
    assert float(aux["pi_scale"]) == pytest.approx(float(s)) and float(s) > 1.0


def test_optimizers_encoder_learning_rate_scale_and_policy_eps():
    """tdmpc2.py:22-31: Adam with the encoder at lr * 0.3; the policy's Adam with eps 1e-5."""
    agent = make(lr=1e-3, enc_lr_scale=0.5)
    assert [g["lr"] for g in agent.enc_optim.param_groups] == [5e-4]
    assert [g["lr"] for g in agent.optim.param_groups] == [1e-3]
    ids = lambda params: {id(p) for p in params}  # noqa: E731
    assert ids(agent.enc_optim.param_groups[0]["params"]) == ids(agent.encoder.parameters())
    rest = [p for m in (agent.dynamics, agent.reward_head, agent.critic) for p in m.parameters()]
    assert ids(agent.optim.param_groups[0]["params"]) == ids(rest)
    assert agent.pi_optim.param_groups[0]["eps"] == 1e-5
    assert TDMPC2Config().enc_lr_scale == 0.3 and TDMPC2Config().lr == 3e-4


def test_model_sizes_follow_the_codes_table_and_keys_override_them():
    """common/__init__.py:1-24: model_size sets enc_dim, mlp_dim, latent_dim, num_enc_layers, num_q; a key
    given replaces its value. The 5M default at DMC's walker sizes (obs 24, act 6) has ~5M parameters."""
    assert TDMPC2Config().arch == {
        "enc_dim": 256,
        "mlp_dim": 512,
        "latent_dim": 512,
        "num_enc_layers": 2,
        "num_q": 5,
    }
    assert TDMPC2Config(model_size=317).arch == {**MODEL_SIZES[317], "num_q": 8}
    assert TDMPC2Config(model_size=1).arch["num_q"] == 2
    assert TDMPC2Config(model_size=19, mlp_dim=64).arch == {**MODEL_SIZES[19], "mlp_dim": 64}
    with pytest.raises(ValueError, match="agent.model_size must be one of"):
        TDMPC2Config(model_size=7).validate()
    torch.manual_seed(0)
    agent = TDMPC2(TDMPC2Config(num_samples=32, num_pi_trajs=4, num_elites=8), 24, 6, torch.device("cpu"), 0)
    trained = [agent.encoder, agent.dynamics, agent.reward_head, agent.actor, agent.critic]
    n = sum(p.numel() for m in trained for p in m.parameters())
    assert 4.5e6 < n < 5.5e6, n
    assert agent.encoder[0][0].weight.shape == (256, 24) and agent.critic.n == 5
    small = make(num_enc_layers=3, enc_dim=8)
    assert [m.weight.shape[0] for m in small.encoder[0] if isinstance(m, torch.nn.Linear)] == [8, 8, 16]


def test_init_truncated_normal_and_zero_output_layers_of_reward_and_q():
    """init.py:4-17, world_model.py:30-32: weights ~ trunc normal std 0.02, biases 0, R's and the Qs' last
    weights 0 (so both predict the middle bin's 0 at first)."""
    agent = TDMPC2(TDMPC2Config(num_samples=32, num_pi_trajs=4, num_elites=8), 24, 6, torch.device("cpu"), 0)
    w = agent.dynamics[0][0].weight.detach()  # trunc_normal_'s bounds are +-2 (absolute): no cut at std 0.02
    assert abs(float(w.std()) - 0.02) < 0.002 and float(w.abs().max()) < 0.2
    assert float(agent.dynamics[0][0].bias.abs().max()) == 0.0
    assert float(agent.reward_head[-1].weight.abs().max()) == 0.0
    assert float(agent.critic.out.weight.abs().max()) == 0.0
    z = agent.encode(torch.randn(4, 24))
    assert float(agent.reward(z, torch.zeros(4, 6)).abs().max()) == 0.0


def test_planner_chooses_among_the_policy_prior_trajectories(monkeypatch):
    """tdmpc2.py:152-170: the num_pi_trajs policy sequences are candidates beside the Gaussian samples; with
    a reward peaked at the policy's action, the plan's first action is the policy's, exactly (evaluation
    adds no noise)."""
    agent = make(num_samples=16, num_pi_trajs=4, num_elites=2, iterations=1)
    prior = torch.tensor([0.7, -0.3, 0.1])
    calls = []

    def policy_sample(z, generator):
        calls.append(z.shape)
        return prior.expand(*z.shape[:-1], ACT)

    monkeypatch.setattr(agent, "policy_sample", policy_sample)
    monkeypatch.setattr(agent, "plan_reward", lambda z, a, task: -((a - prior) ** 2).sum(-1) * 100)
    monkeypatch.setattr(agent, "plan_value", lambda z, g: torch.zeros(z.shape[:-1]))
    a = agent.act(np.zeros(OBS, np.float32), explore=False)
    np.testing.assert_allclose(a, prior.numpy(), atol=1e-6)
    assert calls[:H] == [(1, 4, 16)] * H  # the prior rolled out over the horizon, 4 sequences
    assert agent.plan_mean[False].shape == (1, H, ACT)  # the warm start of the next call
    agent.on_episode_start(training=False)
    assert agent.plan_mean[False] is None


def test_mpc_false_acts_with_the_policy_and_large_actions_plan_longer():
    """tdmpc2.py:116-120: mpc=false -> tanh(mean) in evaluation, a sample in training; tdmpc2.py:34: +2
    iterations for >= 20 action dims."""
    agent = make(mpc=False)
    obs = np.random.default_rng(0).normal(size=(2, OBS)).astype(np.float32)
    _, mean, _ = agent.pi(agent.encode(torch.as_tensor(obs)), torch.zeros(2, ACT))
    np.testing.assert_allclose(agent.act(obs, explore=False), mean.detach().numpy(), atol=1e-6)
    assert not np.allclose(agent.act(obs, explore=True), mean.detach().numpy())
    cfg = TDMPC2Config()
    assert cfg.mppi(6).iterations == 6 and cfg.mppi(21).iterations == 8
    assert TDMPC2Config(extra_iterations_large_action=0).mppi(38).iterations == 6


def test_updates_run_per_step_and_once_per_seed_step_when_seeding_ends():
    """trainer/online_trainer.py:114-123: seed_steps updates when seeding ends, then one per agent step."""
    schedule, credit = PerStepSeedBurst(), Credit(rate=0.5)
    assert schedule.after_seeding(credit, 5000) == 2500
    assert schedule.after_step(credit, 2) == 1
    assert make().spec.updates_per_step == 0.5 and make().spec.seq_len == H


def test_update_runs_and_is_deterministic():
    from iqrl.core.replay import SequenceBatch

    class Replay:
        def sample(self, n):
            obs, action, reward = window()
            return SequenceBatch(
                obs=obs.transpose(0, 1),
                action=action.transpose(0, 1),
                reward=reward.transpose(0, 1),
                terminal=torch.zeros(B, H, dtype=torch.bool),
                valid=torch.ones(B, H),
                index=torch.arange(B),
            )

    runs = []
    for _ in range(2):
        agent = make()
        runs.append([{k: float(v) for k, v in agent.update(Replay(), i).items()} for i in range(3)])
    assert runs[0] == runs[1]
    assert all(np.isfinite(v) for m in runs[0] for v in m.values())
    assert runs[0][-1]["consistency_loss"] < runs[0][0]["consistency_loss"]


def test_multi_task_every_network_reads_the_task_embedding_which_the_model_loss_trains():
    """world_model.py:20-21, 88-101: the task's embedding (norm <= 1) concatenated to the input of the
    encoder, dynamics, reward, policy and Q-functions; tdmpc2.py:22-31: the model's optimizer holds it, the
    policy's does not (and here the policy loss does not differentiate into it: TDMPC2-6)."""
    torch.manual_seed(0)
    cfg = TDMPC2Config(**{**TDMPC2Config.TINY, "batch_size": B, "task_dim": 4})
    agent = TDMPC2(cfg, OBS, ACT, torch.device("cpu"), seed=0, num_tasks=2)
    assert agent.encoder[0][0].weight.shape[1] == OBS + 4
    assert agent.dynamics[0][0].weight.shape[1] == 16 + 4 + ACT
    assert (
        agent.actor[0].weight.shape[1] == 16 + 4 and agent.critic.linears[0].weight.shape[1] == 16 + 4 + ACT
    )
    with torch.no_grad():
        agent.task_emb.weight.copy_(torch.tensor([[3.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.1, 0.0]]))
    x = agent.cond(torch.zeros(2, 5), torch.tensor([0, 1]))
    torch.testing.assert_close(x[:, 5:], torch.tensor([[0.6, 0.8, 0.0, 0.0], [0.0, 0.0, 0.1, 0.0]]))
    obs = torch.randn(1, OBS)
    assert not torch.allclose(agent.encode(obs, 0), agent.encode(obs, 1))
    ids = lambda opt: {id(p) for g in opt.param_groups for p in g["params"]}  # noqa: E731
    assert id(agent.task_emb.weight) in ids(agent.optim) and id(agent.task_emb.weight) not in ids(
        agent.pi_optim
    )
    agent.task = 1
    assert agent.act(np.zeros(OBS, np.float32), explore=True).shape == (ACT,)


def test_a_multi_task_run_trains_and_evaluates_every_task(tmp_path):
    """A task list trains one TD-MPC2 on both tasks (docs/transfer.md): eval.csv has a row per task."""
    import csv

    from iqrl.runfolder.exits import EXIT_OK
    from iqrl.train import main

    from conftest import tiny_argv

    extra = ["task=[cartpole-balance,cartpole-swingup]", "agent.task_dim=4"]
    assert main(tiny_argv("tdmpc2", tmp_path, steps=800, extra=extra)) == EXIT_OK
    with open(tmp_path / "eval.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["env_step"], r["task"]) for r in rows] == [
        (str(step), task) for step in (0, 400, 800) for task in ("cartpole-balance", "cartpole-swingup")
    ]


def test_compiled_planner_pieces_compute_the_eager_ones():
    """compile=true compiles the planner's model pieces (TDMPC2.compile_acting); each computes its eager
    function to rounding, at two batch layouts. (Whole plans are not compared: with values this close,
    rounding re-ranks MPPI's elites, which moves the chosen action.)"""
    eager = make(num_q=3)
    with torch.no_grad():
        eager.critic.out.weight.normal_(0, 0.5)
        eager.reward_head[-1].weight.normal_(0, 0.5)
    compiled = make(num_q=3)
    compiled.load_state_dict(eager.state_dict())
    compiled.compile_acting()
    members = torch.tensor([2, 0])
    for lead in ((1, 32), (3, 4)):
        z = eager.encode(torch.randn(*lead, OBS))
        a, eps = torch.rand(*lead, ACT) * 2 - 1, torch.randn(*lead, ACT)
        with torch.no_grad():
            for name, args in (
                ("plan_next", (z, a, None)),
                ("plan_reward", (z, a, None)),
                ("prior_action", (z, eps, None)),
                ("plan_q", (z, a, members, None)),
            ):
                got, want = getattr(compiled, name)(*args), getattr(eager, name)(*args)
                torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)  # Q ~ 100s: relative rounding
    a = compiled.act(np.zeros((2, OBS), np.float32), explore=True)
    assert a.shape == (2, ACT) and np.abs(a).max() <= 1
