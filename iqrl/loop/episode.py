"""The training episode under way, and how a checkpoint takes it up again: its env's state before the reset
and the actions since, replayed (every env is deterministic given them; iqrl/loop/trainer.py).

It imports numpy and nothing of the harness.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class OpenEpisode:
    """The training episode under way: what its next step needs, and what a checkpoint needs to take it up
    again (its env's state before the reset and the actions since; `replay_episode`)."""

    task: int  # its task's index (multi-task runs)
    start_state: dict  # its env's get_state() before the reset
    start_step: int  # the env step it started at
    seeding: bool  # started while env_step < seed_steps: seed-phase actions, no updates of its own
    obs: np.ndarray  # the observation the next action answers
    actions: list = field(default_factory=list)
    ret: float = 0.0

    def state_dict(self) -> dict:
        return {
            **{k: getattr(self, k) for k in ("task", "start_state", "start_step", "seeding", "ret")},
            "actions": [np.asarray(a) for a in self.actions],
            "obs": np.asarray(self.obs),
        }


def replay_episode(env, state: dict, actions: list) -> np.ndarray:
    """The env taken from `state` (its state before an episode's reset) through the episode's reset and
    `actions`; the observation it shows after the last one."""
    env.set_state(state)
    obs = env.reset()
    for action in actions:
        obs = env.step(action).obs
    return obs
