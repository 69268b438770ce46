"""MiniGrid navigation tasks (the maintained `minigrid` package, the `minigrid` extra): `minigrid:<Env-id>`.

`MiniGridEnv` gives a MiniGrid env the harness's env interface (reset, step -> Step, obs_shape, action_spec,
success, get_state/set_state between episodes):

* observations: the agent's egocentric, partial view (7 x 7 cells on most envs). `obs=state` is its symbolic
  encoding, MiniGrid's `image` (object, colour and state index per cell, [7, 7, 3]) flattened to float32;
  `obs=pixels` renders that view (MiniGrid's `get_pov_render`) at `image_size` square, uint8 [3 k, size, size]
  with the last k = `frame_stack` views (1 by default), oldest first, a reset filling the stack with copies;
* actions: MiniGrid's 7 discrete actions (left, right, forward, pickup, drop, toggle, done);
* episodes: the env's own step limit (`max_steps`, e.g. 250 on DoorKey-5x5) truncates; reaching the goal (or
  the task's object) terminates with reward 1 - 0.9 t / max_steps; `success` is a termination with a positive
  reward; `episode_length` caps the episode besides;
* action repeat 1: an env step is an agent step.

The first reset seeds the env's generator with `seed`; get_state()/set_state() carry it between episodes.
"""

from __future__ import annotations

import numpy as np

from iqrl.core.spaces import ActionSpec
from iqrl.envs.atari import area_resize
from iqrl.envs.step import SeededAtFirstReset, Step, check_episode_length
from iqrl.envs.tasks import split_task

VIDEO_TILE = 16  # pixels per cell of the whole grid in videos


def task_names() -> list[str]:
    """Every env id the minigrid package registers with Gymnasium (MiniGrid-* and BabyAI-*)."""
    import gymnasium
    import minigrid  # noqa: F401 (registers its envs)

    return sorted(k for k, v in gymnasium.envs.registry.items() if "minigrid" in str(v.entry_point))


class MiniGridEnv(SeededAtFirstReset):
    """One MiniGrid env behind the env interface (the module's docstring). `image_size` None: symbolic
    observations; else pixels of that size, `frame_stack` views per observation."""

    def __init__(
        self,
        task: str,
        seed: int,
        action_repeat: int,
        episode_length: int,
        image_size: int | None = None,
        frame_stack: int = 1,
    ):
        import gymnasium
        import minigrid  # noqa: F401 (registers its envs)

        check_episode_length(episode_length, action_repeat)
        self.task, self.action_repeat, self.episode_length = task, action_repeat, episode_length
        self.has_success = True
        self._env = gymnasium.make(split_task(task)[1], disable_env_checker=True).unwrapped
        self.action_spec = ActionSpec.discrete(int(self._env.action_space.n))
        self.act_dim = self.action_spec.n
        view = self._env.agent_view_size
        self.image_size, self.frame_stack = image_size, frame_stack
        if image_size is None:
            self.obs_dim = view * view * 3
            self.obs_shape: tuple[int, ...] = (self.obs_dim,)
        else:
            self._tile = -(-image_size // view)  # cells rendered at least image_size / view pixels wide
            self.obs_shape = (3 * frame_stack, image_size, image_size)
            self.obs_dim = self.obs_shape
        self.control_timestep = 0.2  # seconds per step in videos (5 steps per second)
        self._seed, self._seeded = seed, False
        self._t = 0
        self._frames: list[np.ndarray] = []

    def _observe(self, obs: dict, reset: bool) -> np.ndarray:
        if self.image_size is None:
            return np.asarray(obs["image"], np.float32).ravel()
        view = self._env.get_pov_render(tile_size=self._tile)  # [view tile, view tile, 3]
        frame = np.stack([area_resize(view[..., c], self.image_size) for c in range(3)])
        self._frames = [frame] * self.frame_stack if reset else self._frames[1:] + [frame]
        return np.concatenate(self._frames, 0)

    def reset(self) -> np.ndarray:
        obs, _ = self._env.reset(seed=None if self._seeded else self._seed)
        self._seeded, self._t = True, 0
        return self._observe(obs, reset=True)

    def step(self, action) -> Step:
        reward, terminated, truncated = 0.0, False, False
        for _ in range(self.action_repeat):
            obs, r, terminated, truncated, _ = self._env.step(int(action))
            reward += float(r)
            self._t += 1
            if terminated or truncated:
                break
        truncated = not terminated and (truncated or self._t >= self.episode_length)
        success = terminated and reward > 0  # MiniGrid rewards only reaching the goal (its object)
        return Step(self._observe(obs, reset=False), reward, terminated, truncated, success)

    def true_state(self) -> np.ndarray:
        """The agent's cell (column, row) and its direction one-hot (right, down, left, up), float32 [6]."""
        direction = np.zeros(4, np.float32)
        direction[self._env.agent_dir] = 1.0
        return np.concatenate([np.asarray(self._env.agent_pos, np.float32), direction])

    def video_frame(self) -> np.ndarray:
        """The whole grid with the agent's view highlighted, RGB (videos)."""
        return self._env.get_frame(highlight=True, tile_size=VIDEO_TILE)
