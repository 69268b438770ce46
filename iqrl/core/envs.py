"""DeepMind Control Suite wrapper: the environments every agent trains and is evaluated in.

Protocol (shared by every agent): flattened float32 state observations in the suite's key order,
actions rescaled to [-1, 1], action repeat 2 with summed rewards, episodes of 1000 env (physics)
steps that end by time-limit *truncation* (bootstrap through, never terminal), and separate seeds for
the training and evaluation environments.

With `obs=pixels` (`PixelEnv`) the observation is instead the stack of the last `frame_stack` RGB frames,
uint8 [3 * frame_stack, size, size] (newest last), rendered after each agent step from the camera the
pixel benchmarks of SAC+AE, DrQ and TACO use (`pixel_camera`); action repeat, rewards and time limit are
unchanged (docs/pixels.md).

The other suites (Gym MuJoCo, Meta-World, MyoSuite: a `suite:` prefix on the task name) are
iqrl/core/suites.py, behind the same interface; `make_env` and `check_task` dispatch on the prefix.

It imports numpy, dm_control, the renderer (iqrl/core/render.py) and the other suites' adapter (whose
packages are imported only when a task of theirs is made); task names, suites, groups and the evaluation seed
are iqrl/core/tasks.py (light, for slurm/ and analysis/); `Step`, what every env's step returns,
iqrl/core/env_step.py.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass

import numpy as np
from dm_control import suite
from dm_control.suite.wrappers import action_scale

from iqrl.core.env_step import Step
from iqrl.core.render import Renderer
from iqrl.core.suites import SuiteEnv
from iqrl.core.suites import check_task as check_suite_task
from iqrl.core.tasks import split_task, suite_list, suite_of

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


def task_spaces(task: str) -> tuple[int, int]:
    """(observation width, action width) of a task's state observations, in any suite."""
    env = make_env(task, seed=0, action_repeat=1, episode_length=suite_of(task).episode_length)
    return env.obs_dim, env.act_dim


def check_task(task: str) -> None:
    """Raise ValueError (one line) unless `task` names a task of a suite whose package is installed."""
    if split_task(task)[0] == "dmc":
        parse_task(task)
    else:
        check_suite_task(task)  # imports the suite's package


class DMCEnv:
    """One dm_control task with action repeat, flattening, [-1, 1] actions and a time limit.

    has_success: False (no DMC task defines success; eval.csv has no success column).

    `episode_length` is in env steps (<= 1000, the suite's own limit) and must be a multiple of the
    action repeat. get_state()/set_state() capture the task's random state; they are meant to be used
    between episodes (reset() re-samples the physics from that state).
    """

    def __init__(self, task: str, seed: int, action_repeat: int = 2, episode_length: int = 1000):
        domain, name = parse_task(task)
        if episode_length % action_repeat:
            raise ValueError(
                f"episode_length {episode_length} is not a multiple of action_repeat {action_repeat}"
            )
        self.task = task
        self.action_repeat = action_repeat
        self.episode_length = episode_length
        self.has_success = False
        env = suite.load(domain, name, task_kwargs={"random": seed})
        self._env = action_scale.Wrapper(env, minimum=-1.0, maximum=1.0)
        self.obs_dim = int(sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values()))
        self.obs_shape: tuple[int, ...] = (self.obs_dim,)
        self.act_dim = int(self._env.action_spec().shape[0])
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
        """The dm_control physics (for rendering: iqrl.core.render)."""
        return self._env.physics

    @property
    def control_timestep(self) -> float:
        """Seconds of simulated time per env step."""
        return float(self._env.control_timestep())

    def get_state(self) -> dict:
        return {"random": self._env.task.random.get_state()}

    def set_state(self, state: dict) -> None:
        self._env.task.random.set_state(state["random"])


DISTRACTORS = ("noise", "signal")


@dataclass(frozen=True)
class Perturbations:
    """Stochastic and distracting variants of a task (the run keys of the same names; all off by default).

    obs_noise: std of Gaussian noise added to every observation entry.
    action_noise: std of Gaussian noise added to the executed action (then clipped to [-1, 1]); the replay
        keeps the action the agent chose, so the noise is part of the environment's transition.
    sticky_actions: probability that the environment executes the previous executed action instead of the
        new one, decided once per agent step (inside an action repeat the action is held anyway), as the
        sticky actions of Machado et al. 2018 (arXiv 1709.06009) for Atari.
    distractor_dims: extra observation entries that carry no information about state, action or reward:
        `noise`, iid N(0, 1) at every step, or `signal`, sinusoids a sin(w t + phi) with amplitude, frequency
        and phase drawn per episode.
    """

    obs_noise: float = 0.0
    action_noise: float = 0.0
    sticky_actions: float = 0.0
    distractor_dims: int = 0
    distractor: str = "noise"

    @property
    def active(self) -> bool:
        return bool(self.obs_noise or self.action_noise or self.sticky_actions or self.distractor_dims)


class PerturbedEnv:
    """A DMCEnv with Perturbations, drawing from its own generator (seeded from the env's seed), so that the
    task's own random stream is untouched. get_state()/set_state() add that generator's state; as the inner
    env's, they are used between episodes (the sticky action and the signal's draws restart each episode)."""

    def __init__(self, env: DMCEnv, perturb: Perturbations, seed: int):
        self._env, self.p = env, perturb
        self.rng = np.random.default_rng([seed, 0x57C])  # its own stream, apart from the task's
        self.obs_dim = env.obs_dim + perturb.distractor_dims
        self.obs_shape = (self.obs_dim,)
        self.act_dim = env.act_dim
        self._prev_action: np.ndarray | None = None
        self._t = 0
        self._signal = None

    def __getattr__(self, name):  # task, action_repeat, episode_length, has_success, physics, ...
        return getattr(self._env, name)

    def reset(self) -> np.ndarray:
        self._prev_action, self._t = None, 0
        if self.p.distractor == "signal" and self.p.distractor_dims:
            n = self.p.distractor_dims
            # amplitude, angular frequency (periods of 10 to 100 agent steps), phase
            self._signal = (
                self.rng.uniform(0.5, 1.5, n),
                2 * np.pi / self.rng.uniform(10.0, 100.0, n),
                self.rng.uniform(0.0, 2 * np.pi, n),
            )
        return self._observe(self._env.reset())

    def step(self, action: np.ndarray) -> Step:
        if (
            self.p.sticky_actions
            and self._prev_action is not None
            and self.rng.random() < self.p.sticky_actions
        ):
            action = self._prev_action
        self._prev_action = np.array(action, copy=True)
        if self.p.action_noise:
            noise = self.rng.normal(0.0, self.p.action_noise, np.shape(action))
            action = np.clip(action + noise, -1.0, 1.0).astype(np.float32)
        step = self._env.step(action)
        self._t += 1
        return dataclasses.replace(step, obs=self._observe(step.obs))

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        if self.p.obs_noise:
            obs = obs + self.rng.normal(0.0, self.p.obs_noise, obs.shape).astype(np.float32)
        if self.p.distractor_dims:
            if self.p.distractor == "signal":
                a, w, phi = self._signal
                extra = a * np.sin(w * self._t + phi)
            else:
                extra = self.rng.standard_normal(self.p.distractor_dims)
            obs = np.concatenate([obs, extra.astype(np.float32)])
        return obs.astype(np.float32, copy=False)

    def get_state(self) -> dict:
        return {**self._env.get_state(), "perturbations": self.rng.bit_generator.state}

    def set_state(self, state: dict) -> None:
        self._env.set_state(state)
        if "perturbations" in state:
            self.rng.bit_generator.state = state["perturbations"]


def pixel_camera(task: str) -> int:
    """The camera of a domain's pixel observations: 2 for quadruped (its tracking camera from behind), 0
    (each domain's default tracking camera) otherwise, as in the SAC+AE, DrQ(-v2) and TACO code."""
    return 2 if task.startswith("quadruped-") else 0


class PixelEnv:
    """A DMCEnv or PerturbedEnv seen through a camera: observations are the last `frame_stack` RGB frames,
    uint8 [3 * frame_stack, size, size], oldest first. A reset fills the stack with copies of the first
    frame (as the frame-stack wrappers of SAC+AE, DrQ and TACO do), so a stack never reaches into the
    previous episode. Rendering (iqrl.core.render.Renderer: EGL, else OSMesa) leaves the physics and every
    random stream alone, so the task's dynamics, rewards and seeds are those of the state env."""

    def __init__(self, env, size: int, frame_stack: int):
        self._env, self.frame_stack = env, frame_stack
        self._renderer = Renderer(env.physics, size, pixel_camera(env.task))
        self.obs_shape = (3 * frame_stack, size, size)
        self.obs_dim = self.obs_shape
        self.act_dim = env.act_dim
        self._frames: list[np.ndarray] = []

    def __getattr__(self, name):  # task, action_repeat, episode_length, physics, control_timestep
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

    def close(self) -> None:
        self._renderer.close()


OBSERVATIONS = ("state", "pixels")


@dataclass(frozen=True)
class Observation:
    """What the agent sees (the run keys obs, image_size, frame_stack): `state` vectors or `pixels`."""

    kind: str = "state"
    image_size: int = 84
    frame_stack: int = 3


def make_env(
    task: str,
    seed: int,
    action_repeat: int,
    episode_length: int,
    perturb: Perturbations | None = None,
    observation: Observation | None = None,
) -> DMCEnv | PerturbedEnv | PixelEnv:
    """The task's env (DMCEnv, or iqrl.core.suites.SuiteEnv for a task of another suite), wrapped in its
    perturbations when any is on (else exactly the plain env), seen through a camera with
    `observation.kind == "pixels"` (DMC only: the run config refuses pixels elsewhere)."""
    if split_task(task)[0] == "dmc":
        env = DMCEnv(task, seed, action_repeat, episode_length)
    else:
        env = SuiteEnv(task, seed, action_repeat, episode_length)  # imports the suite's package
    if perturb is not None and perturb.active:
        env = PerturbedEnv(env, perturb, seed)
    if observation is not None and observation.kind == "pixels":
        env = PixelEnv(env, observation.image_size, observation.frame_stack)
    return env
