"""TD3 on raw observations, as the iQRL code runs it.

TD3: Fujimoto et al., "Addressing Function Approximation Error in Actor-Critic Methods" (arXiv 1802.09477).
The update is `TD3Learner` (iqrl/learners/td3.py), shared with iQRL, which runs the same learner on its
latent; this module gives it raw observations and the TD3 defaults.

Differences from the original TD3, all taken from the iQRL code: LayerNorm + Mish MLPs [512, 512] with
orthogonal init, n-step returns (n = 3 on some tasks), target-smoothing clip 0.3, actor objective
-min(Q1, Q2), critic EMA every critic step and actor EMA after each actor step, exploration std decaying
linearly 1.0 -> 0.1 over training episodes.
Harness deviation: 0.5 updates per env step (1 per stored transition, the same as iQRL) instead of the
iQRL code's TD3 with 1 per env step (docs/agents.md); `updates_per_step=1.0` reproduces it.

Pixels (obs=pixels): a convolutional encoder trained by the critic loss, the actor on its detached features
(DrQ-v2's form; baselines/raw_observations.py, keys feature_dim, num_filters, conv_layers, image_pad).
"""

from __future__ import annotations

from torch import nn

from baselines.raw_observations import RawObservationAgent
from iqrl.core.interface import AgentConfig, compose
from iqrl.learners.encoders import PixelEncoderConfig
from iqrl.learners.td3 import TD3Learner, TD3LearnerConfig


@compose(
    learner=TD3LearnerConfig(
        num_critics=2,
        q_subsample=2,  # both critics: min(Q1, Q2)
        actor_q_reduce="min",
        critic_loss_reduce="sum",  # MSE(Q1, y) + MSE(Q2, y)
        init="orthogonal",
    ),
    encoder=PixelEncoderConfig,
)
class TD3Config(AgentConfig):
    # The iQRL code's seed phase, 10 episodes (aidanscannell/iqrl@ed8073d train.py:22, 195), is the harness's
    # 10,000 env steps on DMC and Gym: SEED_PHASE stays the harness's (td3-classic: its registry entry's)
    name: str = "td3"


class TD3(RawObservationAgent):
    learner_cls = TD3Learner


class ClassicTD3Learner(TD3Learner):
    """TD3's own networks (arXiv 1802.09477, §6.1; sfujim/TD3): ReLU MLPs, no LayerNorm."""

    mlp_act = nn.ReLU
    mlp_norm = False


class ClassicTD3(TD3):
    """`td3-classic`: TD3 as TD7 and MR.Q report it as a baseline (registry preset: [256, 256], constant
    exploration std 0.1, target-noise clip 0.5, one-step targets, PyTorch's default init)."""

    learner_cls = ClassicTD3Learner
    PIXELS = False  # a state baseline of the Gym papers (td3 has the pixel encoder)
