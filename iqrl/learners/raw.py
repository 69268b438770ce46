"""An actor-critic learner acting on raw observations: the `td3` and `sac` agents.

There is no representation to train: the learner sees o_t and its n-step bootstrap observation o_{t+m}
directly, one window of n transitions per sample, one learner update per agent update.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from iqrl.agents import Agent, AgentSpec, to_tensor
from iqrl.learners.critics import CriticConfig, CriticEnsembleLearner
from iqrl.replay import SequenceBatch, nstep_transition


class RawObservationAgent(Agent):
    """Raw observations -> `learner_cls` (set by the subclass: TD3Learner or SACLearner)."""

    learner_cls: type[CriticEnsembleLearner]
    STATE_OBJECTS = ("ac", "ac_extra=ac.extra")
    COMPILED = ("ac.td_target", "ac.critic_loss", "ac.actor_loss")

    def __init__(self, cfg: CriticConfig, obs_dim: int, act_dim: int, device: torch.device, seed: int):
        super().__init__(cfg, device, seed)
        self.spec = AgentSpec(
            seq_len=cfg.nstep,
            batch_size=cfg.batch_size,
            updates_per_step=0.5,
            warmup_with_policy=cfg.warmup_with_policy,
        )
        self.ac = self.learner_cls(cfg, obs_dim, act_dim, self.generator).to(self.device)

    @property
    def exploration_sigma(self) -> float | None:
        return self.ac.expl_sigma

    def update(self, replay, step: int) -> dict:
        return self.ac.update(*self.rl_inputs(replay.sample(self.cfg.batch_size)))

    def rl_inputs(self, batch: SequenceBatch) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(o_t, a_t, n-step return, bootstrap discount, o_{t+m}): the learner's inputs."""
        c = self.cfg
        return nstep_transition(
            batch,
            c.gamma,
            c.nstep,
            unit_discount_n1=c.official_nstep1_gamma_bug,
            ignore_terminal=c.official_ignore_terminal,
        )

    def on_episode_end(self) -> None:
        self.ac.episodes_trained += 1

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        return self.ac.act(to_tensor(obs, self.device), explore).cpu().numpy()
