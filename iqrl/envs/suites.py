"""The suites with a Gymnasium interface behind the harness's env interface: Gym MuJoCo, Meta-World, MyoSuite.

`SuiteEnv` gives each the interface of `iqrl.envs.dmc.DMCEnv` (reset, step -> Step, obs_dim, act_dim,
get_state/set_state between episodes) with the protocol of the papers that report the suite (docs/suites.md):
flat float32 observations, actions in [-1, 1] rescaled to the env's bounds, summed rewards over an action
repeat, the harness's own time limit (a truncation), the env's termination (Gym's falls) kept as a
termination, and `success` where the suite defines it (any success inside the action repeat).

Each suite's package is optional (pyproject extras gym, metaworld, myosuite) and imported only here, when a
task of that suite is made or checked; a missing one is a ValueError naming the extra to install.
"""

from __future__ import annotations

import difflib
import importlib

import numpy as np

from iqrl.core.spaces import ActionSpec
from iqrl.envs.step import SeededAtFirstReset, Step, check_episode_length, mujoco_state
from iqrl.envs.tasks import SUITES, split_task


def _import(suite: str):
    s = SUITES[suite]
    try:
        return importlib.import_module(s.package)
    except ImportError as e:
        raise ValueError(
            f"{suite} tasks need the {s.package} package ({e}): pip install -e '.[{s.extra}]'"
        ) from None


def _patch_metaworld_welds(sawyer_env) -> None:
    """Meta-World 3.0.0 writes 11 numbers into each mocap weld's eq_data; MuJoCo 3.17.0 (the version
    dm_control 1.0.50 needs) has 12 per equality. Meta-World 3.1.1 fixes this but pins mujoco==3.3.0, which
    cannot install beside dm_control 1.0.50. Writing Meta-World's 11 numbers into the first 11 slots (anchor,
    relative pose, torque scale, in MuJoCo's order) leaves the 12th at its compiled value."""
    import mujoco

    def reset_mocap_welds(self) -> None:
        if self.model.nmocap > 0 and self.model.eq_data is not None:
            for i in range(self.model.eq_data.shape[0]):
                if self.model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD:
                    self.model.eq_data[i, :11] = [0, 0, 0, 0, 0, 0, -1, 0, 0, 0, 5]

    sawyer_env.SawyerMocapBase.reset_mocap_welds = reset_mocap_welds


def suite_names(suite: str) -> list[str]:
    """Every task name of a Gymnasium-interface suite (importing its package)."""
    module = _import(suite)
    if suite == "atari":
        from iqrl.envs.atari import game_names

        return game_names()
    if suite == "minigrid":
        from iqrl.envs.minigrid import task_names

        return task_names()
    if suite == "gym":
        # Gymnasium's MuJoCo tasks (the registry also holds classic control, Box2D, ...); v2 and v3 need
        # the retired mujoco-py bindings
        return sorted(
            k
            for k, v in module.envs.registry.items()
            if "mujoco" in str(v.entry_point) and "/" not in k and not k.endswith(("-v2", "-v3"))
        )
    if suite == "metaworld":
        return sorted(
            k.removesuffix("-v3-goal-observable") for k in module.ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE
        )
    import gymnasium  # MyoSuite registers its envs with Gymnasium on import

    return sorted(k for k, v in gymnasium.envs.registry.items() if "myosuite" in str(v.entry_point))


def check_task(task: str) -> None:
    """Raise ValueError (one line: the valid names, or the extra to install) unless the task can be made."""
    suite, name = split_task(task)
    valid = suite_names(suite)
    if name not in valid:
        close = difflib.get_close_matches(name, valid, n=3)
        hint = f" (did you mean {', '.join(f'{suite}:{c}' for c in close)}?)" if close else ""
        raise ValueError(f"unknown {suite} task {name!r}{hint}; valid: {', '.join(valid)}")


def _make(suite: str, name: str, seed: int):
    """The suite's raw env (no time limit, no wrappers): the harness counts steps itself."""
    module = _import(suite)
    if suite == "metaworld":
        from metaworld import sawyer_xyz_env

        _patch_metaworld_welds(sawyer_xyz_env)
        env = module.ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{name}-v3-goal-observable"](seed=seed)
        env._freeze_rand_vec = False  # a new object and goal position every episode, as DC-MPC
        # ... drawn from the env's generator (seeded by the constructor), not numpy's global one
        env.seeded_rand_vec = True
        return env
    import gymnasium

    return gymnasium.make(name, disable_env_checker=True).unwrapped


class SuiteEnv(SeededAtFirstReset):
    """One task of a Gymnasium-interface suite with action repeat, [-1, 1] actions and a time limit.

    `episode_length` is in env steps and a multiple of the action repeat. Termination: the env's own
    (Gym MuJoCo's falls), except on MyoSuite, whose termination DC-MPC's wrapper drops (its episodes always
    run the full 100 steps). Meta-World: after each reset one zero action is stepped and the reset's
    observation returned, as DC-MPC's wrapper does. The first reset seeds the env's generator with `seed`;
    get_state()/set_state() carry that generator between episodes (evaluation copies, checkpoints).
    """

    def __init__(self, task: str, seed: int, action_repeat: int, episode_length: int):
        suite, name = split_task(task)
        check_episode_length(episode_length, action_repeat)
        self.task, self.suite = task, suite
        self.action_repeat, self.episode_length = action_repeat, episode_length
        self.has_success = SUITES[suite].success
        self._env = _make(suite, name, seed)
        self._seed, self._seeded = seed, False
        self.obs_dim = int(np.prod(self._env.observation_space.shape))
        self.obs_shape: tuple[int, ...] = (self.obs_dim,)
        space = self._env.action_space
        self.act_dim = int(space.shape[0])
        self.action_spec = ActionSpec.box(self.act_dim)
        self._mid = ((space.high + space.low) / 2).astype(np.float64)
        self._half = ((space.high - space.low) / 2).astype(np.float64)
        self._t = 0

    def reset(self) -> np.ndarray:
        obs, _ = self._env.reset(seed=None if self._seeded else self._seed)
        self._seeded, self._t = True, 0
        if self.suite == "metaworld":
            self._env.step(np.zeros(self.act_dim))
        return np.asarray(obs, np.float32).ravel()

    def step(self, action: np.ndarray) -> Step:
        a = self._mid + self._half * np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        reward, terminated, success = 0.0, False, False
        for _ in range(self.action_repeat):
            obs, r, term, _, info = self._env.step(a)
            reward += float(r)
            self._t += 1
            success = success or bool(info.get("solved" if self.suite == "myosuite" else "success", False))
            if term and self.suite != "myosuite":
                terminated = True
                break
        truncated = not terminated and self._t >= self.episode_length
        return Step(np.asarray(obs, np.float32).ravel(), reward, terminated, truncated, success)

    def true_state(self) -> np.ndarray:
        """The simulation's qpos, qvel and act (iqrl/envs/step.py `mujoco_state`): the env's MjData (Gym
        MuJoCo, Meta-World), or its simulator's (MyoSuite)."""
        data = getattr(self._env, "data", None)
        return mujoco_state(self._env.sim.data if data is None else data)
