"""MiniGrid (iqrl/envs/minigrid.py, docs/suites.md): symbolic and pixel observations of the agent's view, the
discrete actions, success, truncation by the env's limit and by episode_length, seeding and checkpoints."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from iqrl.config.build import build_config
from iqrl.config.run import ConfigError
from iqrl.envs.atari import area_resize
from iqrl.envs.make import Observation, make_env
from iqrl.envs.tasks import MINIGRID

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("minigrid") is None and not os.environ.get("CI"),
    reason="minigrid is not installed: pip install -e '.[minigrid]'",
)
EMPTY = "minigrid:MiniGrid-Empty-5x5-v0"
FORWARD, RIGHT = 2, 1  # MiniGrid's actions: left 0, right 1, forward 2, pickup, drop, toggle, done


def test_reaching_the_goal_terminates_with_minigrids_reward_and_succeeds():
    env = make_env(EMPTY, 0, 1, 10_000)
    obs = env.reset()
    assert obs.shape == (147,) and obs.dtype == np.float32 and env.action_spec.n == 7
    assert env.has_success and env.action_spec.is_discrete
    # from (1, 1) facing right to the goal at (3, 3): forward, forward, turn right, forward, forward
    steps = [env.step(np.int64(a)) for a in (FORWARD, FORWARD, RIGHT, FORWARD, FORWARD)]
    assert [s.terminated for s in steps] == [False] * 4 + [True] and not any(s.truncated for s in steps)
    assert [s.success for s in steps] == [False] * 4 + [True]
    assert steps[-1].reward == pytest.approx(1 - 0.9 * 5 / 100)  # max_steps = 4 * 5 * 5 on Empty-5x5
    assert all(s.reward == 0 for s in steps[:-1])


def test_the_symbolic_observation_is_minigrids_view_encoding_flattened():
    env = make_env("minigrid:MiniGrid-DoorKey-5x5-v0", 3, 1, 10_000)
    obs = env.reset()
    view = env._env.gen_obs()["image"]  # [7, 7, 3]: object, colour, state per cell
    assert np.array_equal(obs, view.astype(np.float32).ravel())


def test_pixels_render_the_agents_view_stacked_oldest_first():
    env = make_env(EMPTY, 0, 1, 10_000, observation=Observation("pixels", 28, 2))
    obs = env.reset()
    assert obs.shape == (6, 28, 28) and obs.dtype == np.uint8 and env.obs_dim == (6, 28, 28)
    view = env._env.get_pov_render(tile_size=4)  # 7 cells of 4 pixels: 28, no resizing needed
    assert np.array_equal(obs[3:], view.transpose(2, 0, 1)) and np.array_equal(obs[:3], obs[3:])
    after = env.step(RIGHT).obs
    assert np.array_equal(after[:3], obs[3:]) and not np.array_equal(after[3:], obs[3:])
    small = make_env(EMPTY, 0, 1, 10_000, observation=Observation("pixels", 20, 1))
    obs = small.reset()
    view = small._env.get_pov_render(tile_size=3)  # ceil(20 / 7) = 3 pixels a cell: 21, averaged down to 20
    assert obs.shape == (3, 20, 20) and np.array_equal(obs[1], area_resize(view[..., 1], 20))


def test_episodes_end_at_the_envs_limit_or_at_episode_length():
    env = make_env(EMPTY, 0, 1, 10_000)
    env.reset()
    steps = [env.step(0) for _ in range(100)]  # turning left forever
    assert steps[-1].truncated and not any(s.truncated for s in steps[:-1]) and not steps[-1].success
    short = make_env(EMPTY, 0, 1, 10)
    short.reset()
    assert [short.step(0).truncated for _ in range(10)] == [False] * 9 + [True]


def test_seeds_fix_the_layouts_and_checkpoints_carry_them():
    def layouts(env, n=4):
        out = []
        for _ in range(n):
            env.reset()
            out.append(env._env.grid.encode().tobytes() + bytes(env._env.agent_pos))
        return out

    a, b = (make_env("minigrid:MiniGrid-DoorKey-8x8-v0", 5, 1, 10_000) for _ in range(2))
    first = layouts(a)
    assert first == layouts(b) and len(set(first)) > 1  # the same layouts for a seed, new ones per episode
    state = a.get_state()
    more = layouts(a)
    b.set_state(state)
    assert layouts(b) == more
    assert layouts(make_env("minigrid:MiniGrid-DoorKey-8x8-v0", 6, 1, 10_000), 1) != first[:1]


def test_minigrid_run_keys_and_refusals():
    cfg = build_config(["agent=td3", "task=walker-walk"])  # no discrete agent needed for the suite's keys
    assert cfg.obs == "state"
    with pytest.raises(ConfigError, match="agent td3 acts in continuous"):
        build_config(["agent=td3", f"task={MINIGRID[0]}"])
    with pytest.raises(ConfigError, match="unknown minigrid task 'MiniGrid-DoorKey-5x5'"):
        build_config(["agent=td3", "task=minigrid:MiniGrid-DoorKey-5x5"])
    assert all(t.startswith("minigrid:MiniGrid-") for t in MINIGRID) and len(MINIGRID) == 6
