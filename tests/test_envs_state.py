"""Each suite's true state (`true_state()`, the linear probe's targets: iqrl/loop/state_probe.py): DMC's and
the MuJoCo suites' qpos, qvel and act, MiniGrid's agent cell and direction, Atari's RAM; wrappers pass it
on."""

from __future__ import annotations

import numpy as np
import pytest
from test_atari import fake_env
from test_minigrid import EMPTY, FORWARD, RIGHT
from test_minigrid import pytestmark as needs_minigrid
from test_suites import needs

from iqrl.envs.make import make_env
from iqrl.envs.perturb import Perturbations


def test_dmc_true_state_is_dm_controls_physics_state_after_each_step():
    """walker-walk (9 joints: qpos 9, qvel 9, no actuator state): dm_control's own `Physics.get_state`
    (qpos, qvel, act), in float32, after the reset and after each step, through the perturbations' wrapper
    (whose noisy observations leave the state alone)."""
    env = make_env("walker-walk", 0, 2, 100, Perturbations(obs_noise=0.5))
    env.reset()
    physics = env.physics
    for action in (None, np.ones(6), -np.ones(6)):
        if action is not None:
            env.step(action)
        state = env.true_state()
        assert state.dtype == np.float32 and state.shape == (18,)
        assert np.array_equal(state, physics.get_state().astype(np.float32))
    assert not np.array_equal(state[9:], np.zeros(9))  # it moved


@needs("gym")
def test_gym_true_state_is_the_simulations_qpos_and_qvel():
    """Hopper-v4: qpos 6 and qvel 6 of the unwrapped env's MjData (no actuator state)."""
    env = make_env("gym:Hopper-v4", 0, 1, 100)
    env.reset()
    env.step(np.ones(3, np.float32))
    data = env._env.data
    assert np.array_equal(env.true_state(), np.concatenate([data.qpos, data.qvel]).astype(np.float32))
    assert env.true_state().shape == (12,)


@pytest.mark.parametrize(
    "task",
    [
        pytest.param(t, marks=needs(t.split(":")[0]))
        for t in ("metaworld:assembly", "myosuite:myoHandKeyTurnFixed-v0")
    ],
)
def test_metaworld_and_myosuite_true_state_is_the_simulations_state(task):
    """Meta-World's and MyoSuite's MjData: qpos, qvel and act (MyoSuite's muscles have activations), of the
    model's sizes, after a step."""
    env = make_env(task, 0, 2, 100)
    env.reset()
    env.step(np.zeros(env.act_dim, np.float32))
    data, model = env._env.data, env._env.model
    assert env.true_state().shape == (model.nq + model.nv + model.na,)
    assert np.array_equal(
        env.true_state(), np.concatenate([data.qpos, data.qvel, data.act]).astype(np.float32)
    )


@needs_minigrid
def test_minigrid_true_state_is_the_agents_cell_and_direction():
    """Empty-5x5: the agent starts at cell (1, 1) facing right; a right turn faces it down, a step forward
    takes it to (1, 2)."""
    env = make_env(EMPTY, 0, 1, 100)
    env.reset()
    assert env.true_state().tolist() == [1, 1, 1, 0, 0, 0]
    env.step(RIGHT)
    assert env.true_state().tolist() == [1, 1, 0, 1, 0, 0]
    env.step(FORWARD)
    assert env.true_state().tolist() == [1, 2, 0, 1, 0, 0]
    assert env.true_state().dtype == np.float32


def test_atari_true_state_is_the_consoles_ram():
    """The fake game's 128 bytes of RAM (frame number, lives, zeros) as float32, after 2 steps of 4 frames."""
    env = fake_env(protocol="mrq", repeat=4)
    env.reset()
    env.step(0), env.step(1)
    state = env.true_state()
    assert state.dtype == np.float32 and state.shape == (128,)
    assert state[:2].tolist() == [env._env.k, 3] and not state[2:].any()
