"""`make_env`: a task name and the run's observation and perturbation settings -> the env of its suite (DMC,
Gym MuJoCo, Meta-World, MyoSuite, Atari, MiniGrid), each behind the same interface (reset, step -> Step,
get_state/set_state, action_spec); `check_task` and `task_spaces` answer without a run.

Task names, suites, groups and the evaluation seed are iqrl/envs/tasks.py (light, for slurm/ and analysis/);
`Step`, what every env's step returns, iqrl/envs/step.py."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from iqrl.core.spaces import ActionSpec
from iqrl.envs.dmc import DMCEnv, PixelEnv, parse_task
from iqrl.envs.perturb import Perturbations, PerturbedEnv
from iqrl.envs.suites import SuiteEnv
from iqrl.envs.suites import check_task as check_suite_task
from iqrl.envs.tasks import SUITES, AtariProtocol, split_task, suite_of

SEED_LIMIT = 2**32  # numpy and dm_control take seeds in [0, 2**32)


SEED_LIMIT = 2**32  # numpy and dm_control take seeds in [0, 2**32)


@functools.cache
def task_spaces(task: str) -> tuple[int, ActionSpec]:
    """(observation width, action spec) of a task's state observations, in any suite (built once a
    process: the config's checks and the memory estimate ask before every run)."""
    env = make_env(task, seed=0, action_repeat=1, episode_length=suite_of(task).episode_length)
    return env.obs_dim, env.action_spec


def check_task(task: str) -> None:
    """Raise ValueError (one line) unless `task` names a task of a suite whose package is installed."""
    if split_task(task)[0] == "dmc":
        parse_task(task)
    else:
        check_suite_task(task)  # imports the suite's package


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
    protocol: str | AtariProtocol | None = None,
    evaluation: bool = False,
) -> DMCEnv | PerturbedEnv | PixelEnv:
    """The task's env (DMCEnv; iqrl.envs.suites.SuiteEnv for Gym, Meta-World, MyoSuite; iqrl.envs.atari.
    AtariEnv; iqrl.envs.minigrid.MiniGridEnv), wrapped in its perturbations when any is on (else exactly the
    plain env). With `observation.kind == "pixels"` a DMC task is seen through a camera (PixelEnv), a MiniGrid
    task as renders of its agent's view; an Atari game is always seen as its screens (`observation` gives
    their size and history; None: 84 and 4). `protocol` names the
    suite's protocol (None: its default), or is an Atari protocol's settings changed (iqrl.envs.tasks.
    atari_protocol: the run key protocol_changes); `evaluation` makes the evaluation env where the protocol's
    differs (Atari: evaluation epsilon, no life-loss terminations)."""
    suite = split_task(task)[0]
    if suite == "dmc":
        env = DMCEnv(task, seed, action_repeat, episode_length)
    elif suite == "atari":
        from iqrl.envs.atari import AtariEnv

        see = observation if observation is not None and observation.kind == "pixels" else None
        size, stack = (see.image_size, see.frame_stack) if see else (84, SUITES["atari"].frame_stack)
        name = protocol if protocol not in (None, "default") else SUITES["atari"].protocols[0]
        env = AtariEnv(task, seed, action_repeat, episode_length, size, stack, name, evaluation)
    elif suite == "minigrid":
        from iqrl.envs.minigrid import MiniGridEnv

        see = observation if observation is not None and observation.kind == "pixels" else None
        size, stack = (see.image_size, see.frame_stack) if see else (None, 1)
        env = MiniGridEnv(task, seed, action_repeat, episode_length, size, stack)
    else:
        env = SuiteEnv(task, seed, action_repeat, episode_length)  # imports the suite's package
    if perturb is not None and perturb.active:
        env = PerturbedEnv(env, perturb, seed)
    if suite == "dmc" and observation is not None and observation.kind == "pixels":
        env = PixelEnv(env, observation.image_size, observation.frame_stack)
    return env
