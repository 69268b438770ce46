"""When an agent's updates run: one mechanism for every agent, its choice made in its own module.

The trainer collects episodes and asks the agent's `schedule` at three moments how many updates to run
now: after each agent step of an episode the agent collects (`after_step`), after each such episode
(`after_episode`), and once, after the seed episode that ends the seeding phase (`after_seeding`). Every
answer is counted in updates at the run's rate (`updates_per_step` updates per env step, the agent's default
or the run's key) through `Credit`, which carries fractional updates over, so the number of updates follows
the rate whatever the moments; a schedule only chooses when they run.

* `PerEpisode` (the default: the official iQRL, TD3, TCRL and DC-MPC code): after each agent episode, the
  updates its env steps earned.
* `PerStep` (MR.Q, SAC+AE, TACO, TD7 without checkpoints): after every agent step once seeding is over.
* `SeedBurst` (DC-MPC): per episode, and when seeding ends the updates the seed episodes earned, at once
  (10 seed episodes x 500 = 5000 updates before the first agent episode; docs/faithfulness.md DC-6).
* `PerStepSeedBurst` (TD-MPC2): per step, and when seeding ends the updates the seed episodes earned, at once.
* An agent's own subclass: TD7's policy checkpoints (baselines/td7.py) run the earned updates at the end of
  each policy assessment.

Before any of them, the seed phase: episodes of uniform random actions (or the agent's policy:
AgentSpec.warmup_with_policy) until the run key `seed_steps`. Its default is the agent's code's
(`SeedPhase`: AgentConfig.SEED_PHASE, or a registry preset's where its code differs), resolved in env steps
at the run's action repeat and episode length by iqrl.config.build.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SeedPhase:
    """How long an agent's code collects data before it learns: the longest of `agent_steps` agent steps (and
    `env_agent_steps` more per training env: a code whose replay counts an env's data only once that env's
    stream holds a window), `episodes` episodes and `env_steps` env steps (those given; the code's own unit,
    so that it holds at any action repeat), with the lines of the code that say so (`source`)."""

    agent_steps: int = 0
    episodes: int = 0
    env_steps: int = 0
    source: str = ""
    env_agent_steps: int = 0

    def length(self, action_repeat: int, episode_length: int, envs: int = 1) -> int:
        """Its env steps at `action_repeat` env steps per agent step, episodes of `episode_length` env steps
        and `envs` training envs (the run key train_envs): the default of the run key seed_steps."""
        agent_steps = self.agent_steps + envs * self.env_agent_steps
        return max(agent_steps * action_repeat, self.episodes * episode_length, self.env_steps)


#: The harness's seed phase, for agents whose code is the harness's own or was not read for it.
HARNESS_SEED_PHASE = SeedPhase(env_steps=10_000, source="the harness's default")


@dataclass
class Credit:
    """Updates earned by env steps at `rate` updates per env step; the fraction of an update carries over."""

    rate: float
    carried: float = 0.0

    def take(self, env_steps: int) -> int:
        """The whole updates owed after `env_steps` more env steps; the rest stays carried."""
        self.carried += env_steps * self.rate
        n = int(math.floor(self.carried + 1e-9))
        self.carried -= n
        return n


@dataclass(frozen=True)
class EpisodeEnd:
    """What a schedule learns of an episode the agent collected."""

    env_steps: int
    episode_return: float


class UpdateSchedule:
    """The moments the trainer asks at; by default none of them runs an update. The trainer calls
    `agent.on_episode_end()` after the updates of every `after_episode` (and of an `after_seeding` that
    returns a number)."""

    #: Updates after which the work of an update repeats (MR.Q: an encoder burst every 250 RL updates); the
    #: bench times whole cycles, so that a burst is in every measurement once.
    cycle: int = 1

    def after_step(self, credit: Credit, env_steps: int) -> int:
        """After an agent step (`env_steps` env steps) of an episode the agent collects: updates to run
        now."""
        return 0

    def after_episode(self, credit: Credit, episode: EpisodeEnd) -> int:
        """After an episode the agent collected: updates to run now."""
        return 0

    def after_seeding(self, credit: Credit, env_steps: int) -> int | None:
        """After the seed episode that ends the seeding phase (`env_steps` env steps so far): updates to run
        now, or None for none (and no `on_episode_end` either)."""
        return None


class PerEpisode(UpdateSchedule):
    """After each episode the agent collects, the updates its env steps earned."""

    def after_episode(self, credit: Credit, episode: EpisodeEnd) -> int:
        return credit.take(episode.env_steps)


class SeedBurst(PerEpisode):
    """Per episode, and when seeding ends the updates the seed episodes earned, at once (DC-MPC)."""

    def after_seeding(self, credit: Credit, env_steps: int) -> int:
        return credit.take(env_steps)


class PerStep(UpdateSchedule):
    """After every agent step once seeding is over, the updates that step earned."""

    def __init__(self, cycle: int = 1):
        self.cycle = cycle

    def after_step(self, credit: Credit, env_steps: int) -> int:
        return credit.take(env_steps)


class PerStepSeedBurst(PerStep):
    """After every agent step once seeding is over, and when seeding ends the updates the seed episodes
    earned, at once (TD-MPC2: github.com/nicklashansen/tdmpc2@e9f5932, tdmpc2/trainer/online_trainer.py
    lines 114-123)."""

    def after_seeding(self, credit: Credit, env_steps: int) -> int:
        return credit.take(env_steps)
