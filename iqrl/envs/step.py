"""What one step of any environment returns, and the check of an episode's length: what the DeepMind Control
wrapper (iqrl/envs/dmc.py) and the other suites' adapters (iqrl/envs/suites.py, atari.py, minigrid.py) share,
below them all (envs.py dispatches to the others): the seeding of those over a Gymnasium env among it."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np


@dataclass
class Step:
    obs: np.ndarray
    reward: float
    terminated: bool  # a true environment termination (never happens in the DMC suite)
    truncated: bool  # the time limit was reached
    success: bool = False  # the task's success signal (Meta-World, MyoSuite; always False elsewhere)
    # The reward the learner stores where it is not `reward` (the training env of Atari 100k clips it to
    # [-1, 1], as Dopamine's runner does); None: `reward`. Returns always sum `reward`.
    learner_reward: float | None = None


def check_episode_length(episode_length: int, action_repeat: int) -> None:
    """An env's episode of `episode_length` env steps is a whole number of agent steps (ValueError)."""
    if episode_length % action_repeat:
        raise ValueError(
            f"episode_length {episode_length} is not a multiple of action_repeat {action_repeat}"
        )


#: An env step whose physics steps are handed out: it yields (physics, n MuJoCo steps) for its caller to take
#: and returns the Step (iqrl/envs/dmc.py `DMCEnv.phased_step`; iqrl/envs/batch.py takes many envs' at once).
PhasedStep = Generator[tuple, None, Step]


def phased(env, action) -> PhasedStep:
    """`env`'s step with its physics steps handed out where its class has `phased_step` (DMC envs and the
    wrappers over them), else its step whole (a generator that hands out nothing). The class is asked, not
    the env: a wrapper forwards attributes it lacks to the env inside, which would skip the wrapper."""
    if hasattr(type(env), "phased_step"):
        return (yield from env.phased_step(action))
    return env.step(action)


def mujoco_state(data) -> np.ndarray:
    """The true state of a MuJoCo simulation, float32 [nq + nv + na]: joint positions, velocities and actuator
    activations of its `data` (dm_control's or the mujoco package's MjData; dm_control's `Physics.get_state`
    order)."""
    return np.concatenate([data.qpos, data.qvel, data.act], dtype=np.float32)


class SeededAtFirstReset:
    """The random state of an env over a Gymnasium env `_env` whose first reset seeds its generator with
    `_seed` (`reset(seed=None if self._seeded else self._seed)`): the Gym-interface suites' and MiniGrid's.
    get_state()/set_state() carry that generator between episodes (evaluation copies, checkpoints);
    reseed(seed) makes the next reset the first of an env built with `seed`."""

    _env: object
    _seed: int
    _seeded: bool

    def get_state(self) -> dict:
        return {"random": self._env.np_random.bit_generator.state, "seeded": self._seeded}

    def set_state(self, state: dict) -> None:
        self._env.np_random.bit_generator.state = state["random"]
        self._seeded = state["seeded"]

    def reseed(self, seed: int) -> None:
        self._seed, self._seeded = seed, False
