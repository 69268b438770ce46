"""A run that collects from several training envs at once (run key train_envs > 1: DreamerV3's 16 on DMC,
its code's `run.envs`, dreamerv3/configs.yaml line 55 at danijar/dreamerv3@e3f0224).

The envs take agent steps in turn, env (env_step / action_repeat) mod E at each: each its own episodes (one
open at a time, kept here while the others step), its own replay (iqrl/core/replay_lanes.py) and the agent's
acting state for it (`Agent.select_train_env`). A round of turns starts at env 0's: an episode is opened in
every env that has none, and the agent acts for all of them in one call (`Agent.act_train_envs`), on the
parameters before the updates of the round, as the code's driver acts for its envs at once
(embodied/core/driver.py `Driver._step`); each env's turn then steps it with its action. Every env step counts
toward the run's `steps`, its evaluations and checkpoints, and its update rate: the updates an agent step
earns run after it, as the code runs them after each env's transition (`trainfn` on every env's step, its
ratio counted over all envs' steps: embodied/run/train.py). The seed phase ends at the env step `seed_steps`
(not with the episode under way then, as with one env: the envs' episodes overlap, so every env's first
episode would be a seed episode).

A checkpoint holds every env's open episode and the round's actions not yet taken; a resume takes each
episode up again by replaying its actions, as a run of one env takes up its one (iqrl/loop/episode.py).
"""

from __future__ import annotations

import numpy as np

from iqrl.loop.episode import OpenEpisode


class Lanes:
    """The run's training envs, the episode open in each but the current one (which the trainer holds as its
    `open`), and which is current."""

    def __init__(self, envs: list):
        self.envs = envs
        self.open: list[OpenEpisode | None] = [None] * len(envs)
        self.current = 0
        self.actions: list = [None] * len(envs)  # the round's: each env's action for its turn

    def __len__(self) -> int:
        return len(self.envs)

    def turn(self, env_step: int, action_repeat: int) -> int:
        """The env that takes the agent step at `env_step`."""
        return env_step // action_repeat % len(self.envs)

    def start_round(self, trainer) -> None:
        """At env 0's turn: an episode opened in every env that has none (its first agent step at its turn),
        then the agent's actions for all envs in one call."""
        obs = []
        for i in range(len(self.envs)):
            trainer.select_lane(i)
            if trainer.open is None:
                trainer.start_episode()
                trainer.open.start_step += i * trainer.cfg.action_repeat
            obs.append(trainer.open.obs)
        trainer.select_lane(0)
        with trainer.split("act"):
            self.actions = trainer.agent.act_train_envs(obs)

    def take_action(self):
        """The current env's action of the round (None where none was acted for it: one env, or a step
        taken outside the loop's rounds), taken off the round."""
        action, self.actions[self.current] = self.actions[self.current], None
        return action

    def take_up(self, trainer, saved: dict) -> None:
        """The open episodes of `state_dict`, each taken up in its env (`Trainer.take_up`); the current env
        and the round's actions as they were."""
        for i, ep in enumerate(saved["open"]):
            trainer.select_lane(i)
            trainer.open = None if ep is None else trainer.take_up(ep)
        trainer.select_lane(saved["current"])
        self.actions = saved["actions"]

    def state_dict(self, current: OpenEpisode | None) -> dict:
        """Every env's open episode (`current`: the current env's, which the trainer holds), which env is
        current, and the round's actions."""
        opened = [current if i == self.current else ep for i, ep in enumerate(self.open)]
        return {
            "open": [None if ep is None else ep.state_dict() for ep in opened],
            "current": self.current,
            "actions": [None if a is None else np.asarray(a) for a in self.actions],
        }
