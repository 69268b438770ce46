"""A run that collects from several training envs at once (run key train_envs > 1: DreamerV3's 16 on DMC,
its code's `run.envs`, dreamerv3/configs.yaml line 55 at danijar/dreamerv3@e3f0224).

The envs take agent steps in turn, env (env_step / action_repeat) mod E at each: each its own episodes (one
open at a time, kept here while the others step), its own replay (iqrl/core/replay_lanes.py) and the agent's
acting state for it (`Agent.select_train_env`). Every env step of each counts toward the run's `steps`, its
evaluations and checkpoints, and its update rate: the updates an agent step earns run after it, as the code
runs them after each env's transition (`trainfn` on every env's step, its ratio counted over all envs'
steps: embodied/run/train.py). The code acts for its envs at once, on the parameters before the updates of
their transitions; here each env's action sees the updates of the env before it (docs/faithfulness.md,
DV3-12). The seed phase ends at the env step `seed_steps` (not with the episode under way then, as with one
env: the envs' episodes overlap, so every env's first episode would be a seed episode).

A checkpoint holds every env's open episode; a resume takes each up again by replaying its actions, as a run
of one env takes up its one (iqrl/loop/episode.py).
"""

from __future__ import annotations

from iqrl.loop.episode import OpenEpisode


class Lanes:
    """The run's training envs, the episode open in each but the current one (which the trainer holds as its
    `open`), and which is current."""

    def __init__(self, envs: list):
        self.envs = envs
        self.open: list[OpenEpisode | None] = [None] * len(envs)
        self.current = 0

    def __len__(self) -> int:
        return len(self.envs)

    def turn(self, env_step: int, action_repeat: int) -> int:
        """The env that takes the agent step at `env_step`."""
        return env_step // action_repeat % len(self.envs)

    def state_dict(self, current: OpenEpisode | None) -> dict:
        """Every env's open episode (`current`: the current env's, which the trainer holds), and which env is
        current."""
        opened = [current if i == self.current else ep for i, ep in enumerate(self.open)]
        return {"open": [None if ep is None else ep.state_dict() for ep in opened], "current": self.current}
