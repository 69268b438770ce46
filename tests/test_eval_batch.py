"""Batched evaluation (run key eval_batched, train.eval_batch): the episodes side by side, one `act` per step.

Each batched episode starts where the sequential loop's episode of the same index starts, and the evaluation
env ends with the random stream the sequential loop leaves it with, so the two modes differ only by the
rounding of batched kernels (MPPI, which samples while evaluating, draws other numbers: left out here).
"""

from __future__ import annotations

import copy
from dataclasses import fields

import numpy as np
import pytest
import torch
from test_eval_beside import assert_equal_states

from iqrl.config.build import build_config
from iqrl.core.interface import Agent
from iqrl.core.registry import config_class, make_agent
from iqrl.core.spaces import ActionSpec
from iqrl.envs.dmc import DMCEnv
from iqrl.envs.make import Observation, make_env
from iqrl.loop.evaluation import eval_batch, eval_episode, outcome_row
from iqrl.runfolder.exits import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK
from iqrl.train import main

from conftest import (
    TINY_DISCRETE_TASK,
    acts_in_boxes,
    agent_observations,
    pixels_only,
    render_for,
    stop_after_steps,
    tiny_argv,
    tiny_keys,
)
from test_train import eval_numbers


def sampling_off(agent: str) -> list[str]:
    """A planner samples while it evaluates, and draws other numbers batched: an agent with an `mpc` key
    (dcwm, tdmpc2) is compared on its policy alone."""
    return ["agent.mpc=false"] if "mpc" in {f.name for f in fields(config_class(agent))} else []


def _agent(name: str, extra=(), env=None):
    """The agent's tiny model for DMC's cartpole, or for `env`'s observations and actions."""
    cfg = build_config(tiny_keys(name, extra))
    torch.manual_seed(0)
    if env is None:
        return make_agent(cfg.agent, agent_observations(name).dim, 1, torch.device("cpu"), 0)
    return make_agent(cfg.agent, env.obs_dim, env.action_spec, torch.device("cpu"), 0)


def cartpole(agent: str):
    """DMC's cartpole-balance (seed 7, 100 env steps) as the agent sees it: states, or the tiny frames of a
    pixel-only agent."""
    if not pixels_only(agent):
        return DMCEnv("cartpole-balance", 7, 2, 100)
    shape = agent_observations(agent).dim
    return make_env("cartpole-balance", 7, 2, 100, None, Observation("pixels", shape[-1], shape[0] // 3))


def room(agent: str):
    """MiniGrid's empty room (seed 7, 60 env steps), where an agent without boxes acts: the cell view, or a
    pixel-only agent's tiny renders of it (drawn without GL)."""
    if not pixels_only(agent):
        return make_env(TINY_DISCRETE_TASK, 7, 1, 60)
    shape = agent_observations(agent).dim
    return make_env(TINY_DISCRETE_TASK, 7, 1, 60, None, Observation("pixels", shape[-1], shape[0] // 3))


@pytest.mark.registry
@pytest.mark.computes
def test_batched_returns_equal_the_sequential_loop(agent, request):
    """3 episodes of 100 env steps on DMC's cartpole: returns within 1e-5 relative, and the env's task stream
    after them the same (the next evaluation starts from the same states). An agent that acts in discrete
    spaces only: the MiniGrid test below."""
    if not acts_in_boxes(agent):
        pytest.skip(f"{agent} acts in discrete spaces only: the MiniGrid test of this module")
    render_for(agent, request)
    model = _agent(agent, sampling_off(agent))
    sequential_env = cartpole(agent)
    expected = [eval_episode(sequential_env, model).ret for _ in range(3)]
    envs = [cartpole(agent) for _ in range(3)]
    returns = [o.ret for o in eval_batch(envs, model)]
    np.testing.assert_allclose(returns, expected, rtol=1e-5)
    assert len(set(np.round(expected, 3))) == 3  # three different initial states, not one repeated
    state, expected_state = envs[0].get_state()["random"], sequential_env.get_state()["random"]
    assert state[0] == expected_state[0] and np.array_equal(state[1], expected_state[1])
    assert state[2:] == expected_state[2:]


@pytest.mark.registry
@pytest.mark.computes
def test_probing_q_changes_no_evaluation_and_no_state(agent, request):
    """Batched episodes with the Q probe (run key diagnostics) and without: the same returns bit for bit and
    the same agent state after them (networks, statistics, generators); an agent with a critic records a
    finite Q at every step, one without none. DMC's cartpole (50 steps an episode), or MiniGrid's room (60)
    for an agent without boxes."""
    if acts_in_boxes(agent):
        render_for(agent, request)
        make, steps, model = cartpole, 50, _agent(agent, sampling_off(agent))
    else:
        make, steps, model = room, 60, _agent(agent, sampling_off(agent), env=room(agent))
    before = copy.deepcopy(model.state_dict())
    probed = eval_batch([make(agent) for _ in range(2)], model, probe=True)
    after = copy.deepcopy(model.state_dict())
    model.load_state_dict(before)
    plain = eval_batch([make(agent) for _ in range(2)], model)
    assert [o.ret for o in probed] == [o.ret for o in plain]
    assert_equal_states(after, model.state_dict())
    if type(model).probe_q is Agent.probe_q:
        assert [o.trace for o in probed] == [None, None]
        return
    for o in probed:
        assert np.isfinite(o.trace.q).all()
        assert len(o.trace.q) == len(o.trace.rewards)  # a step each, all of them, or up to the termination
        assert len(o.trace.q) == steps or (o.trace.terminated and 0 < len(o.trace.q) < steps)


def test_on_frame_follows_env_zero_only():
    agent = _agent("td3")
    envs = [DMCEnv("cartpole-balance", 7, 2, 100) for _ in range(2)]
    frames = []
    eval_batch(envs, agent, on_frame=lambda: frames.append(envs[0]._t))
    assert frames == list(range(0, 101, 2))  # after the reset and after each of its 50 steps


def test_an_older_unfinished_run_resumes_only_with_sequential_evaluation(tmp_path, capsys):
    """A folder of a version before the key (config.yaml without eval_batched) keeps its evaluation: the
    default is refused with the value to pass, and eval_batched=false resumes it."""
    import yaml

    run = tmp_path / "run"
    argv = tiny_argv("td3", run, extra=["eval_batched=false"])
    assert main(argv, should_stop=stop_after_steps(337)) == EXIT_INTERRUPTED
    saved = yaml.safe_load((run / "config.yaml").read_text())
    del saved["eval_batched"]
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    assert main(tiny_argv("td3", run)) == EXIT_BAD_INPUT
    assert "resume it with eval_batched=false" in capsys.readouterr().err
    assert main(argv) == EXIT_OK
    reference = tmp_path / "ref"
    assert main(tiny_argv("td3", reference, extra=["eval_batched=false"])) == EXIT_OK
    assert eval_numbers(run) == eval_numbers(reference)


def test_batched_episodes_of_integer_actions_equal_the_sequential_loop():
    """Discrete actions: DQN's int64 actions side by side in MiniGrid (new layouts at every reset): the same
    outcomes as one after another, and the env's stream after them the same."""
    from iqrl.envs.make import make_env

    cfg = build_config(tiny_keys("dqn", ["agent.mlp_dims=[16]"]))
    torch.manual_seed(0)
    agent = make_agent(cfg.agent, 147, ActionSpec.discrete(7), torch.device("cpu"), 0)
    task = "minigrid:MiniGrid-DoorKey-5x5-v0"
    sequential_env = make_env(task, 7, 1, 60)
    expected = [eval_episode(sequential_env, agent, probe=True) for _ in range(3)]
    envs = [make_env(task, 7, 1, 60) for _ in range(3)]
    batched = eval_batch(envs, agent, probe=True)
    assert [o[:2] for o in batched] == [o[:2] for o in expected]
    for a, b in zip(batched, expected):  # Q of the int64 actions taken, the rewards of the episode
        np.testing.assert_allclose(a.trace.q, b.trace.q, rtol=1e-6)
        assert (
            a.trace.rewards.tolist() == b.trace.rewards.tolist() and a.trace.terminated == b.trace.terminated
        )
    assert envs[0].get_state() == sequential_env.get_state()
    layouts = {e._env.grid.encode().tobytes() for e in envs}
    assert len(layouts) == 3  # three different rooms, not one repeated


class ConstantCritic:
    """An agent that acts with zeros and whose two critics say Q = 3 and Q = 4 everywhere, discount 0.5."""

    device = torch.device("cpu")

    def on_episode_start(self, training: bool) -> None:
        pass

    def act(self, obs, explore: bool):
        return np.zeros((*np.shape(obs)[:-1], 1), np.float32)

    def probe_q(self, obs, action):
        return torch.tensor([[3.0], [4.0]]).expand(2, len(obs))

    def value_discount(self) -> float:
        return 0.5

    def value_rewards(self, rewards):
        return rewards


def test_q_bias_of_evaluation_episodes_against_their_rewards():
    """Two cut episodes of 50 agent steps (cartpole, 100 env steps at action repeat 2), sequential and side by
    side: Q = min(3, 4) = 3 at each step, G_t summed by hand from the episodes' rewards, scored at the
    50 - 7 + 1 = 44 steps with >= H = 7 steps left (0.5^7 < 1%); no probe, no QTrace."""
    agent = ConstantCritic()
    sequential_env = DMCEnv("cartpole-balance", 7, 2, 100)
    plain = [eval_episode(sequential_env, agent) for _ in range(2)]
    assert [o.trace for o in plain] == [None, None]
    sequential_env = DMCEnv("cartpole-balance", 7, 2, 100)
    sequential = [eval_episode(sequential_env, agent, probe=True) for _ in range(2)]
    batched = eval_batch([DMCEnv("cartpole-balance", 7, 2, 100) for _ in range(2)], agent, probe=True)
    returns = []
    for a, b, p in zip(sequential, batched, plain):
        assert a.ret == b.ret == p.ret and a.trace.q.tolist() == b.trace.q.tolist() == [3.0] * 50
        assert a.trace.rewards.tolist() == b.trace.rewards.tolist() and not a.trace.terminated
        assert sum(a.trace.rewards) == pytest.approx(a.ret)
        g, following = [], 0.0
        for r in reversed(a.trace.rewards.tolist()):
            following = r + 0.5 * following
            g.insert(0, following)
        returns += g[:44]
    row = outcome_row(batched, 100, 1.0, False)
    assert row["q_bias_steps"] == 88 and row["q_mean"] == 3.0
    assert row["q_return_mean"] == pytest.approx(np.mean(returns))
    assert row["q_bias_mean"] == pytest.approx(3.0 - np.mean(returns))
    assert row["q_bias_std"] == pytest.approx(np.std(returns))
    assert row["q_bias_norm_mean"] == pytest.approx((3.0 - np.mean(returns)) / abs(np.mean(returns)))
    assert "q_bias_mean" not in outcome_row(plain, 100, 1.0, False)
