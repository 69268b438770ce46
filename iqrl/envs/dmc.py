"""DeepMind Control Suite wrapper: the environments every agent trains and is evaluated in.

Protocol (shared by every agent): flattened float32 state observations in the suite's key order,
actions rescaled to [-1, 1], action repeat 2 with summed rewards, episodes of 1000 env (physics)
steps that end by time-limit *truncation* (bootstrap through, never terminal), and separate seeds for
the training and evaluation environments.

With `obs=pixels` (`PixelEnv`) the observation is instead the stack of the last `frame_stack` RGB frames,
uint8 [3 * frame_stack, size, size] (newest last), rendered after each agent step from the camera the
pixel benchmarks of SAC+AE, DrQ and TACO use (`pixel_camera`); action repeat, rewards and time limit are
unchanged (docs/pixels.md).
"""

from __future__ import annotations

import difflib

import numpy as np
from dm_control import suite
from dm_control.suite.wrappers import action_scale

from iqrl.core.spaces import ActionSpec
from iqrl.envs.render import Renderer
from iqrl.envs.step import Step, check_episode_length
from iqrl.envs.tasks import suite_list

SEED_LIMIT = 2**32  # numpy and dm_control take seeds in [0, 2**32)


def all_tasks() -> list[str]:
    """Every `domain-task` name dm_control's suite knows (dog and quadruped tasks included)."""
    return sorted(f"{d}-{t}" for d, t in suite.ALL_TASKS)


def parse_task(task: str) -> tuple[str, str]:
    """'ball_in_cup-catch' -> ('ball_in_cup', 'catch'); raises ValueError naming valid choices."""
    domain, sep, name = task.partition("-")
    valid = all_tasks()
    if not sep or task not in valid:
        close = difflib.get_close_matches(task, valid, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(
            f"unknown task {task!r}{hint}; a task is {suite_list()}; valid tasks: {', '.join(valid)}"
        )
    return domain, name


class DMCEnv:
    """One dm_control task with action repeat, flattening, [-1, 1] actions and a time limit.

    has_success: False (no DMC task defines success; eval.csv has no success column).

    `episode_length` is in env steps (<= 1000, the suite's own limit) and must be a multiple of the
    action repeat. get_state()/set_state() capture the task's random state; they are meant to be used
    between episodes (reset() re-samples the physics from that state).
    """

    def __init__(self, task: str, seed: int, action_repeat: int = 2, episode_length: int = 1000):
        domain, name = parse_task(task)
        check_episode_length(episode_length, action_repeat)
        self.task = task
        self.action_repeat = action_repeat
        self.episode_length = episode_length
        self.has_success = False
        env = suite.load(domain, name, task_kwargs={"random": seed})
        self._env = action_scale.Wrapper(env, minimum=-1.0, maximum=1.0)
        self.obs_dim = int(sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values()))
        self.obs_shape: tuple[int, ...] = (self.obs_dim,)
        self.act_dim = int(self._env.action_spec().shape[0])
        self.action_spec = ActionSpec.box(self.act_dim)
        self._t = 0

    @staticmethod
    def _flatten(observation) -> np.ndarray:
        return np.concatenate([np.asarray(v, np.float32).ravel() for v in observation.values()])

    def reset(self) -> np.ndarray:
        self._t = 0
        return self._flatten(self._env.reset().observation)

    def step(self, action: np.ndarray) -> Step:
        reward, terminated, truncated = 0.0, False, False
        ts = None
        for _ in range(self.action_repeat):
            ts = self._env.step(action)
            reward += float(ts.reward or 0.0)
            self._t += 1
            if ts.last():
                terminated = ts.discount is not None and float(ts.discount) == 0.0
                truncated = not terminated
                break
        if self._t >= self.episode_length:
            truncated = not terminated
        return Step(self._flatten(ts.observation), reward, terminated, truncated)

    @property
    def physics(self):
        """The dm_control physics (for rendering: iqrl.envs.render)."""
        return self._env.physics

    @property
    def control_timestep(self) -> float:
        """Seconds of simulated time per env step."""
        return float(self._env.control_timestep())

    def get_state(self) -> dict:
        return {"random": self._env.task.random.get_state()}

    def set_state(self, state: dict) -> None:
        self._env.task.random.set_state(state["random"])

    def reseed(self, seed: int) -> None:
        """The task's random stream as an env built with `seed` holds it: the next reset starts from there
        (an evaluation's episodes drawn from (seed, env step): iqrl.loop.parts.RunParts.seed_evaluation)."""
        self._env.task.random.seed(seed)


def pixel_camera(task: str) -> int:
    """The camera of a domain's pixel observations: 2 for quadruped (its tracking camera from behind), 0
    (each domain's default tracking camera) otherwise, as in the SAC+AE, DrQ(-v2) and TACO code."""
    return 2 if task.startswith("quadruped-") else 0


class PixelEnv:
    """A DMCEnv or PerturbedEnv seen through a camera: observations are the last `frame_stack` RGB frames,
    uint8 [3 * frame_stack, size, size], oldest first. A reset fills the stack with copies of the first
    frame (as the frame-stack wrappers of SAC+AE, DrQ and TACO do), so a stack never reaches into the
    previous episode. Rendering (iqrl.envs.render.Renderer: EGL, else OSMesa) leaves the physics and every
    random stream alone, so the task's dynamics, rewards and seeds are those of the state env."""

    def __init__(self, env, size: int, frame_stack: int):
        self._env, self.frame_stack = env, frame_stack
        self._renderer = Renderer(env.physics, size, pixel_camera(env.task))
        self.obs_shape = (3 * frame_stack, size, size)
        self.obs_dim = self.obs_shape
        self.act_dim = env.act_dim
        self._frames: list[np.ndarray] = []

    def __getattr__(
        self, name
    ):  # task, action_repeat, episode_length, action_spec, physics, control_timestep
        return getattr(self._env, name)

    def frame(self) -> np.ndarray:
        """The camera's picture of the physics now, [3, size, size]."""
        return np.ascontiguousarray(self._renderer.render().transpose(2, 0, 1))  # [3, size, size]

    def _observe(self) -> np.ndarray:
        return np.concatenate(self._frames, 0)

    def reset(self) -> np.ndarray:
        self._env.reset()
        self._frames = [self.frame()] * self.frame_stack
        return self._observe()

    def step(self, action: np.ndarray) -> Step:
        step = self._env.step(action)
        self._frames = self._frames[1:] + [self.frame()]
        return Step(self._observe(), step.reward, step.terminated, step.truncated)

    def get_state(self) -> dict:
        return self._env.get_state()

    def set_state(self, state: dict) -> None:
        self._env.set_state(state)

    def reseed(self, seed: int) -> None:
        self._env.reseed(seed)

    def close(self) -> None:
        self._renderer.close()
