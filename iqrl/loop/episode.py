"""The training episode under way, and how a checkpoint takes it up again: its env's state before the reset
and the actions since, replayed (every env is deterministic given them; iqrl/loop/trainer.py); and the
generators a checkpoint holds besides the agent's and the replay's.

It imports numpy, torch and nothing of the harness.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field

import numpy as np
import torch


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


def take_up(env, saved: dict, run_dir) -> OpenEpisode:
    """The open episode a checkpoint saved (`OpenEpisode.state_dict`), `env` brought back to where it stopped
    by replaying its actions from its state before the reset. An env that replays to another observation than
    the one recorded (another machine's physics) is one warning: the run goes on from the replayed state."""
    keys = ("task", "start_state", "start_step", "seeding", "obs")
    ep = OpenEpisode(*(saved[k] for k in keys), list(saved["actions"]), saved["ret"])
    obs = replay_episode(env, ep.start_state, ep.actions)
    if not np.array_equal(obs, ep.obs):
        print(
            f"warning: {run_dir}: the episode open at the checkpoint replayed to another observation than "
            "the one recorded (not this machine's env?); the run goes on from the replayed one, no longer "
            "bit for bit the uninterrupted run",
            file=sys.stderr,
        )
        ep.obs = obs
    return ep


def random_states(seed_actions: np.random.Generator, diag: torch.Generator) -> dict:
    """A checkpoint's generators: the global ones (python, numpy, torch, CUDA's where initialized), whose
    draws an env may take, and the loop's own (`seed_actions`, the diagnostics' `diag`)."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "seed_actions": seed_actions.bit_generator.state,
        "diag": diag.get_state(),
        **({"cuda": torch.cuda.get_rng_state_all()} if torch.cuda.is_initialized() else {}),
    }


def set_random_states(s: dict, seed_actions: np.random.Generator, diag: torch.Generator) -> None:
    """The generators of `random_states` set back (CUDA's on the devices there are; every state from the
    CPU)."""
    random.setstate(s["python"])
    np.random.set_state(s["numpy"])
    torch.set_rng_state(s["torch"].cpu())
    if "cuda" in s and torch.cuda.is_available():
        for i, state in enumerate(s["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state.cpu(), i)
    seed_actions.bit_generator.state = s["seed_actions"]
    diag.set_state(s["diag"].cpu())
