"""SAC on raw observations (Haarnoja et al. 2018, arXiv 1801.01290 and 1812.05905).

The update is `SACLearner` (iqrl/learners/sac.py, shared with `iqrl-sac`): squashed-Gaussian actor, twin
critics with min, automatic temperature with target entropy -|A|, EMA target critics, no target actor;
its hyper-parameters and their sources are listed there. This module gives it raw observations.

Adaptations to the harness's DMC protocol, shared with `td3`: LayerNorm + Mish MLPs [512, 512] (the SAC
paper: ReLU [256, 256]); n-step returns available (`agent.nstep`, default 1 as in SAC); updates after each
episode at 0.5 updates per env step (= 1 per agent step, SAC's ratio, run in per-episode bursts); 10k
env steps of uniform random actions before learning (the harness's `seed_steps`).

Pixels (obs=pixels): a convolutional encoder trained by the critic loss, the actor on its detached features
(DrQ-v2's form; baselines/raw_observations.py, keys feature_dim, num_filters, conv_layers, image_pad).
"""

from __future__ import annotations

from torch import nn

from baselines.raw_observations import RawObservationAgent
from iqrl.core.interface import AgentConfig, compose
from iqrl.learners.encoders import PixelEncoderConfig
from iqrl.learners.sac import SACLearner, SACLearnerConfig


@compose(
    learner=SACLearnerConfig(
        num_critics=2,
        q_subsample=2,  # both critics: min(Q1, Q2)
        actor_q_reduce="min",
        critic_loss_reduce="sum",  # MSE(Q1, y) + MSE(Q2, y)
        actor_update_freq=1,  # actor and temperature every critic step
    ),
    encoder=PixelEncoderConfig,
)
class SACAgentConfig(AgentConfig):
    name: str = "sac"


class SAC(RawObservationAgent):
    learner_cls = SACLearner


class ClassicSACLearner(SACLearner):
    """SAC's own networks (arXiv 1812.05905, Table 1): ReLU MLPs, no LayerNorm."""

    mlp_act = nn.ReLU
    mlp_norm = False


class ClassicSAC(SAC):
    """`sac-classic`: SAC as TD7 reports it as a baseline (registry preset: [256, 256], initial temperature
    1, one-step targets, PyTorch's default init)."""

    learner_cls = ClassicSACLearner
    PIXELS = False  # a state baseline of the Gym papers (sac has the pixel encoder)
