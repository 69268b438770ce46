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
from collections.abc import Callable, Generator

import dm_env
import numpy as np
from dm_control import suite
from dm_control.rl import control
from dm_control.suite.wrappers import action_scale

from iqrl.core.spaces import ActionSpec
from iqrl.envs.render import Renderer
from iqrl.envs.step import PhasedStep, Step, check_episode_length, mujoco_state, phased
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
        self._hand_in: Callable[[np.ndarray], Step] | None = None  # step_through

    @staticmethod
    def _flatten(observation) -> np.ndarray:
        return np.concatenate([np.asarray(v, np.float32).ravel() for v in observation.values()])

    def reset(self) -> np.ndarray:
        self._t = 0
        return self._flatten(self._env.reset().observation)

    def step(self, action: np.ndarray) -> Step:
        if self._hand_in is not None:
            return self._hand_in(action)
        return stepped_alone(self.phased_step(action))

    def step_through(self, hand_in: Callable[[np.ndarray], Step]) -> DMCEnv:
        """Hand each later step to `hand_in(action) -> Step`: to whoever steps this env together with others
        (iqrl/envs/batch.py `stepped_by`), by running its `phased_step`. Returns this env."""
        self._hand_in = hand_in
        return self

    def phased_step(self, action: np.ndarray) -> PhasedStep:
        """One agent step as a generator that hands out each of its physics steps, `(physics, n)` for n
        MuJoCo steps, for its caller to take (`stepped_alone`: dm_control's `Physics.step`; a batch of envs:
        iqrl/envs/batch.py, side by side on threads), and returns the Step."""
        reward, terminated, truncated = 0.0, False, False
        ts = None
        for _ in range(self.action_repeat):
            ts = yield from control_step(self._env, action)
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

    def true_state(self) -> np.ndarray:
        """The physics' state now, float32 [nq + nv + na]: joint positions, velocities and actuator
        activations (dm_control's `Physics.get_state` order)."""
        return mujoco_state(self._env.physics.data)

    def get_state(self) -> dict:
        return {"random": self._env.task.random.get_state()}

    def set_state(self, state: dict) -> None:
        self._env.task.random.set_state(state["random"])

    def reseed(self, seed: int) -> None:
        """The task's random stream as an env built with `seed` holds it: the next reset starts from there
        (an evaluation's episodes drawn from (seed, env step): iqrl.loop.parts.RunParts.seed_evaluation)."""
        self._env.task.random.seed(seed)


def control_step(env: action_scale.Wrapper, action: np.ndarray) -> Generator[tuple, None, dm_env.TimeStep]:
    """dm_control's `control.Environment.step` behind the suite's [-1, 1] action wrapper, line for line
    (dm-control 1.0.50: `suite/wrappers/action_scale.py` `Wrapper.step`, `rl/control.py:99-127`), with its
    physics step handed out to the caller, who takes it as `Physics.step` would: so its rewards, observations
    and terminations are dm_control's own, bit for bit (tests/test_env_batch.py holds it to the library's
    step on every task of the suite)."""
    inner, action = env._env, env._transform(action)
    if inner._reset_next_step:
        return inner.reset()
    physics, task = inner._physics, inner._task
    task.before_step(action, physics)
    yield physics, inner._n_sub_steps
    task.after_step(physics)
    reward = task.get_reward(physics)
    observation = task.get_observation(physics)
    if inner._flat_observation:
        observation = control.flatten_observation(observation)
    inner._step_count += 1
    if inner._step_count >= inner._step_limit:
        discount = 1.0
    else:
        discount = task.get_termination(physics)
    if discount is not None:
        inner._reset_next_step = True
        return dm_env.TimeStep(dm_env.StepType.LAST, reward, discount, observation)
    return dm_env.TimeStep(dm_env.StepType.MID, reward, 1.0, observation)


def stepped_alone(step: PhasedStep) -> Step:
    """A phased step run to its end, each physics step taken by dm_control's own `Physics.step`."""
    try:
        physics, n = next(step)
        while True:
            physics.step(n)
            physics, n = step.send(None)
    except StopIteration as done:
        return done.value


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
        return self._seen(self._env.step(action))

    def phased_step(self, action: np.ndarray) -> PhasedStep:
        """`step` with the physics steps handed out (DMCEnv.phased_step); the frame rendered after them."""
        return self._seen((yield from phased(self._env, action)))

    def _seen(self, step: Step) -> Step:
        """The state env's step seen through the camera: its frame pushed onto the stack."""
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
