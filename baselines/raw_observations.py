"""An actor-critic learner acting on raw observations: the `td3` and `sac` agents.

On states there is no representation to train: the learner sees o_t and its n-step bootstrap observation
o_{t+m} directly, one window of n transitions per sample, one learner update per agent update.

On pixels (obs=pixels) the learner gets a `CriticEncoder` (iqrl/learners/encoders.py), DrQ-v2's form
(Yarats et al. 2021, arXiv 2107.09645, §3.1): `ConvEncoder` (frames / 255 - 0.5, `conv_layers` 3x3
convolutions of `num_filters`) -> Linear -> LayerNorm -> tanh (`head_act`) to `feature_dim`, trained by the
critic loss; the actor reads the features detached; the target critics read a target encoder, an EMA at the
critics' tau. With `image_pad` > 0 both observations of every sampled transition are randomly shifted (DrQ,
arXiv 2004.13649, §3.1; each by its own offsets) before the update.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from iqrl.core.interface import Agent, AgentConfig, AgentSpec, Part, learner_parts, pixel_shape, to_tensor
from iqrl.core.replay import SequenceBatch, nstep_transition
from iqrl.learners.critics import CriticEnsembleLearner
from iqrl.learners.encoders import pixel_encoder, shift_pair


class RawObservationAgent(Agent):
    """Raw observations -> `learner_cls` (set by the subclass: TD3Learner or SACLearner). Its config composes
    the learner's part (`learner`) and the pixel encoder's (`encoder`)."""

    learner_cls: type[CriticEnsembleLearner]
    STATE_OBJECTS = ("ac=learner", "ac_extra=learner.extra")
    PIXELS = True
    PIXEL_CENTER = 0.5  # ConvEncoder input: frames / 255 - 0.5 (DrQ-v2)
    # From pixels, the critic's conv encoder is a learned representation; from states there is none.
    TRANSFER_PARTS = {"representation": Part(("learner.encoder",)), **learner_parts()}

    def __init__(self, cfg: AgentConfig, obs_dim, act_dim: int, device: torch.device, seed: int):
        super().__init__(cfg, device, seed)
        self.spec = AgentSpec(
            seq_len=cfg.nstep,
            batch_size=cfg.batch_size,
            updates_per_step=0.5,
            warmup_with_policy=cfg.warmup_with_policy,
        )
        shape = pixel_shape(obs_dim)
        encoder = None
        if shape is not None:
            encoder = pixel_encoder(shape, cfg.encoder, self.PIXEL_CENTER, actor_head=False)
        self.image_pad = 0 if shape is None else cfg.image_pad
        learner = self.learner_cls(cfg.learner, obs_dim, act_dim, self.generator, encoder)
        self.learner = learner.to(self.device)

    @property
    def exploration_sigma(self) -> float | None:
        return self.learner.expl_sigma

    def update(self, replay, step: int) -> dict:
        return self.learner.update(self.updater, *self.rl_inputs(replay.sample(self.cfg.batch_size)))

    def rl_inputs(self, batch: SequenceBatch) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(o_t, a_t, n-step return, bootstrap discount, o_{t+m}): the learner's inputs."""
        c = self.cfg
        x, action, ret, discount, x_next = nstep_transition(
            batch,
            c.gamma,
            c.nstep,
            unit_discount_n1=c.official_nstep1_gamma_bug,
            ignore_terminal=c.official_ignore_terminal,
        )
        if self.image_pad > 0:  # DrQ: o_t and o_{t+m} shifted independently
            x, x_next = shift_pair(x, x_next, self.image_pad, self.generator)
        return x, action, ret, discount, x_next

    def on_episode_end(self) -> None:
        self.learner.episodes_trained += 1

    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        x = to_tensor(obs, self.device)
        pixels = self.learner.encoder is not None
        single = pixels and x.dim() == 3  # one frame stack [C, H, W]: the convolutions need a batch
        x = x[None] if single else x
        draws = self.learner.act_draws(x.shape[:1] if pixels else x.shape[:-1], explore)
        a = self.updater.act(self.learner.act, x, **draws)
        return (a[0] if single else a).numpy()

    @torch.no_grad()
    def probe_q(self, obs: Tensor, action: Tensor) -> Tensor:
        """The critics' Q [E, n] (dropout critics without dropout: each unit at its expected value); the
        target takes the minimum over its critics."""
        return self.learner.probe_q(obs.to(self.device), action.to(self.device))

    def value_discount(self) -> float:
        """gamma; 1 where the official one-step target bootstraps undiscounted (official_nstep1_gamma_bug)."""
        c = self.cfg
        return 1.0 if c.official_nstep1_gamma_bug and c.nstep == 1 else c.gamma
