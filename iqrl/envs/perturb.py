"""Stochastic and distracting environments (the run keys obs_noise, action_noise, sticky_actions,
distractor_dims, distractor): a wrapper over any suite's env, seeded from the run's seed, its random state
checkpointed with the env's (docs/configuration.md)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from iqrl.envs.step import PhasedStep, Step, phased

SEED_LIMIT = 2**32  # numpy and dm_control take seeds in [0, 2**32)


DISTRACTORS = ("noise", "signal")
RNG_TAG = 0x57C  # the wrapper's generator is seeded [seed, RNG_TAG]: apart from the task's own stream


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

    def __init__(self, env, perturb: Perturbations, seed: int):
        self._env, self.p = env, perturb
        self.rng = np.random.default_rng([seed, RNG_TAG])  # its own stream, apart from the task's
        # distractors widen state vectors (the config refuses them with pixels, whose shape stays)
        self.obs_dim = env.obs_dim + perturb.distractor_dims if perturb.distractor_dims else env.obs_dim
        self.obs_shape = env.obs_shape if isinstance(self.obs_dim, tuple) else (self.obs_dim,)
        self.act_dim = env.act_dim
        self._prev_action: np.ndarray | None = None
        self._t = 0
        self._signal = None

    def __getattr__(
        self, name
    ):  # task, action_repeat, episode_length, has_success, action_spec, physics, ...
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
        return self._perturbed(self._env.step(self._executed(action)))

    def phased_step(self, action: np.ndarray) -> PhasedStep:
        """`step` with the physics steps of the env inside handed out (iqrl/envs/step.py `phased`)."""
        return self._perturbed((yield from phased(self._env, self._executed(action))))

    def _executed(self, action: np.ndarray) -> np.ndarray:
        """The action the env executes: the previous one when it sticks, with its noise."""
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
        return action

    def _perturbed(self, step: Step) -> Step:
        self._t += 1
        return dataclasses.replace(step, obs=self._observe(step.obs))

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        if not (self.p.obs_noise or self.p.distractor_dims):
            return obs  # (pixels of the suites that see them themselves stay uint8)
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

    def reseed(self, seed: int) -> None:
        """The inner env's streams and this wrapper's as envs built with `seed` hold them."""
        self._env.reseed(seed)
        self.rng = np.random.default_rng([seed, RNG_TAG])
