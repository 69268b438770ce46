"""Double DQN (baselines/dqn.py): the Double-DQN target, the Huber loss and its gradient, reward clipping in
n-step targets, the epsilon schedule, target copies, the Nature CNN and dueling heads; the K-seed mode's
updates equal each seed's own; kill-and-resume equality of an Atari run and of a MiniGrid pixel run."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import torch
from test_multiseed import assert_group_matches_plain, params
from torch import nn

from baselines.dqn import DQNConfig
from iqrl.config.build import build_config
from iqrl.config.run import ConfigError
from iqrl.core.registry import make_agent
from iqrl.core.replay import SequenceBatch, SequenceReplay
from iqrl.core.spaces import ActionSpec

from agent_helpers import FixedReplay, assert_resume_matches
from conftest import tiny_keys

N = 3  # actions


def dqn(*extra: str, obs_dim=4, seed: int = 0):
    cfg = build_config(tiny_keys("dqn", ["agent.mlp_dims=[8]", *extra])).agent
    torch.manual_seed(seed)
    return make_agent(cfg, obs_dim, ActionSpec.discrete(N), torch.device("cpu"), seed)


class Table(nn.Module):
    """Q(s, .) = a fixed table row: observations are one-hot rows of `values` [states, N]."""

    def __init__(self, values):
        super().__init__()
        self.values = nn.Parameter(torch.tensor(values, dtype=torch.float32))

    def forward(self, obs):
        return obs @ self.values


def test_the_double_dqn_target_values_the_online_choice_with_the_target_network():
    agent = dqn()
    agent.q = Table([[1.0, 5.0, 2.0], [0.0, 0.0, 9.0]])  # online: argmax 1 in state 0, 2 in state 1
    agent.q_target = Table([[10.0, 20.0, 30.0], [4.0, 5.0, 6.0]])
    next_obs = torch.eye(2)
    y = agent.td_target(torch.tensor([1.0, -1.0]), torch.tensor([0.5, 0.0]), next_obs)
    assert y.tolist() == [1.0 + 0.5 * 20.0, -1.0]  # Q_target(s0, 1); a terminal bootstraps nothing
    agent.cfg.double_q = False  # DQN: the target network's own max
    assert agent.td_target(torch.tensor([1.0, -1.0]), torch.tensor([0.5, 1.0]), next_obs).tolist() == [
        16.0,
        5.0,
    ]


def test_the_huber_loss_and_its_gradient_clip_the_td_error_at_one():
    agent = dqn()
    agent.q = Table([[0.0, 0.5, 0.0], [3.0, 0.0, 0.0]])
    obs, action, y = torch.eye(2), torch.tensor([1, 0]), torch.zeros(2)
    loss, q = agent.q_loss(obs, action, y)
    assert q.tolist() == [0.5, 3.0]
    assert float(loss.detach()) == pytest.approx(
        (0.5 * 0.5**2 + (3.0 - 0.5)) / 2
    )  # quadratic below 1, linear above
    loss.backward()
    grad = agent.q.values.grad
    assert grad[0, 1] == pytest.approx(0.5 / 2) and grad[1, 0] == pytest.approx(1.0 / 2)  # clipped at 1
    agent.cfg.loss = "mse"
    assert float(agent.q_loss(obs, action, y)[0].detach()) == pytest.approx((0.25 + 9.0) / 2)


def test_rewards_are_clipped_before_the_n_step_return():
    agent = dqn("agent.nstep=3", "agent.gamma=0.9", "agent.batch_size=1")
    seen = {}
    agent.td_target = lambda ret, discount, boot: seen.update(ret=ret, discount=discount) or ret
    batch = SequenceBatch(
        obs=torch.zeros(1, 4, 4),
        action=torch.zeros(1, 3, dtype=torch.int64),
        reward=torch.tensor([[5.0, -3.0, 0.5]]),
        terminal=torch.zeros(1, 3, dtype=torch.bool),
        valid=torch.ones(1, 3),
        index=torch.zeros(1, dtype=torch.int64),
    )
    agent.update(FixedReplay(batch), 0)
    assert float(seen["ret"]) == pytest.approx(1.0 - 0.9 + 0.81 * 0.5) and float(
        seen["discount"]
    ) == pytest.approx(0.729)
    agent.cfg.reward_clip = 0.0
    agent.update(FixedReplay(batch), 1)
    assert float(seen["ret"]) == pytest.approx(5.0 - 2.7 + 0.405)


def test_epsilon_decays_linearly_over_the_agents_own_steps_and_acts_uniformly_at_random():
    agent = dqn("agent.eps_end=0.1", "agent.eps_decay_steps=100")
    assert agent.epsilon == 1.0
    obs = np.random.default_rng(0).normal(size=(4000, 4)).astype(np.float32)
    greedy = agent.act(obs, explore=False)
    assert agent.acted == 0  # evaluation does not advance the schedule
    explored = agent.act(obs, explore=True)  # epsilon 1: uniform over the 3 actions
    assert agent.acted == 4000 and np.bincount(explored, minlength=N).min() > 1200
    agent.acted = 50
    assert agent.epsilon == pytest.approx(0.55)
    agent.acted = 10**6
    assert agent.epsilon == pytest.approx(0.1)
    share = (agent.act(obs, explore=True) != greedy).mean()  # random with 0.1, of which 1/3 is the greedy one
    assert share == pytest.approx(0.1 * 2 / 3, abs=0.02)
    assert agent.act(obs[0], explore=False).shape == () and agent.act(obs, explore=False).dtype == np.int64


def test_the_target_network_is_copied_every_target_update_every_updates_and_only_then():
    agent = dqn("agent.target_update_every=3", "agent.lr=0.01")
    replay = SequenceReplay(4, ActionSpec.discrete(N), 1, "cpu", 0)
    rng = np.random.default_rng(0)
    replay.start_episode(rng.normal(size=4).astype(np.float32))
    for t in range(50):
        replay.add(np.int64(t % N), 1.0, rng.normal(size=4).astype(np.float32), False, t == 49)
    before = {k: v.clone() for k, v in params(agent).items()}
    for step in range(3):
        agent.update(replay, step)
        q, target = agent.q.state_dict(), agent.q_target.state_dict()
        same = all(torch.equal(q[k], target[k]) for k in q)
        assert same == (step == 2)  # after the third update
        if step < 2:
            assert all(torch.equal(target[k], before[f"q_target.{k}"]) for k in target)


def test_the_nature_cnn_dopamines_settings_and_the_dueling_head():
    cfg = DQNConfig()
    assert (cfg.lr, cfg.adam_eps, cfg.nstep, cfg.batch_size, cfg.target_update_every) == (
        6.25e-5,
        1.5e-4,
        1,
        32,
        2000,
    )
    assert (cfg.eps_end, cfg.eps_decay_steps, cfg.loss, cfg.double_q, cfg.reward_clip) == (
        0.01,
        250_000,
        "huber",
        True,
        1.0,
    )
    agent = make_agent(cfg, (4, 84, 84), ActionSpec.discrete(6), "cpu", 0)
    convs = [m for m in agent.q.torso if isinstance(m, nn.Conv2d)]
    shapes = [(c.out_channels, c.kernel_size, c.stride) for c in convs]
    assert shapes == [(32, (8, 8), (4, 4)), (64, (4, 4), (2, 2)), (64, (3, 3), (1, 1))]
    assert agent.q.hidden[0].in_features == 3136 and agent.q.hidden[0].out_features == 512  # 7 x 7 x 64
    frames = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    assert agent.q(frames).shape == (2, 6)
    duel = dqn("agent.dueling=true")
    x = torch.randn(5, 4)
    out = duel.q.head(duel.q.hidden(x))  # [V, A_1 .. A_n]
    assert torch.allclose(duel.q(x), out[:, :1] + out[:, 1:] - out[:, 1:].mean(-1, keepdim=True))
    drq = build_config(["agent=drq-eps", "task=minigrid:MiniGrid-Empty-5x5-v0"]).agent
    assert (drq.nstep, drq.target_update_every, drq.dueling, drq.image_pad, drq.lr) == (10, 1, True, 4, 1e-4)


def test_k_seed_updates_of_dqn_equal_each_seeds_own():
    seed_count = 3

    def agent_and_replay(seed):
        agent = dqn("agent.target_update_every=2", "agent.nstep=2", seed=seed)
        replay = SequenceReplay(4, ActionSpec.discrete(N), agent.spec.seq_len, "cpu", seed + 1)
        rng = np.random.default_rng(seed)
        replay.start_episode(rng.normal(size=4).astype(np.float32))
        for t in range(80):
            replay.add(
                np.int64(rng.integers(N)),
                float(rng.normal()),
                rng.normal(size=4).astype(np.float32),
                t == 79,
                False,
            )
        return agent, replay

    plain = [agent_and_replay(s) for s in range(seed_count)]
    grouped = [agent_and_replay(s) for s in range(seed_count)]
    group = assert_group_matches_plain(plain, grouped, 4)
    assert group.round > 4  # the pieces ran vectorised


def test_pixel_runs_need_the_nature_cnns_smallest_frames():
    with pytest.raises(ConfigError, match="the Nature CNN needs image_size >= 36, got 32"):
        build_config(["agent=dqn", "task=minigrid:MiniGrid-Empty-5x5-v0", "obs=pixels", "image_size=32"])


TINY_PIXELS = ["image_size=36", "agent.conv_channels=[4,4,4]", "agent.mlp_dims=[16]"]


@pytest.mark.skipif(
    importlib.util.find_spec("ale_py") is None and not os.environ.get("CI"), reason="ale-py is not installed"
)
@pytest.mark.parametrize("protocol", ["mrq", "atari100k"])  # atari100k: no-op starts drawn across the resume
def test_an_atari_run_killed_and_resumed_ends_as_one_never_interrupted(tmp_path, finished_runs, protocol):
    extra = ["task=atari:Pong", *TINY_PIXELS, "updates_per_step=0.25", f"protocol={protocol}"]
    assert_resume_matches("dqn", tmp_path, finished_runs, extra=extra)


def test_a_minigrid_pixel_run_killed_and_resumed_ends_as_one_never_interrupted(tmp_path, finished_runs):
    assert_resume_matches(
        "dqn", tmp_path, finished_runs, extra=["obs=pixels", *TINY_PIXELS, "agent.image_pad=2"]
    )


def test_the_parts_of_a_pixel_dqn_hold_each_parameter_once():
    agent = make_agent(
        DQNConfig(conv_channels=[4, 4, 4], mlp_dims=[8]), (4, 36, 36), ActionSpec.discrete(N), "cpu", 0
    )
    seen: dict[int, str] = {}
    for part in ("representation", "critic"):
        for module in agent.part_objects(part).values():
            for p in module.parameters():
                assert seen.setdefault(id(p), part) == part
    assert {id(p) for m in agent.networks().values() for p in m.parameters()} == set(seen)
