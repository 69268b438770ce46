"""iQRL's config, composed (`compose`, iqrl/core/interface.py) of the latent model's keys, the
representation's (`IQRLRepresentationConfig`) and the TD3 learner's (`IQRLConfig`: iqrl, iqrl-official,
iqrl-ae) or the SAC learner's (`IQRLSACConfig`: iqrl-sac). Defaults: the paper and the iQRL code; each quirk
of the official code is a switch documented in docs/faithfulness.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from iqrl.core.checks import require
from iqrl.core.interface import AgentConfig, compose
from iqrl.learners.latent_model import LatentModelConfig
from iqrl.learners.multitask import TaskConditioningConfig
from iqrl.learners.sac import SACLearnerConfig
from iqrl.learners.td3 import TD3LearnerConfig
from iqrl.nn.quantizers import QUANTIZERS
from iqrl.nn.trunks import residual_widths_check


@dataclass
class IQRLRepresentationConfig:
    """iQRL's representation keys beside the latent model's (defaults: the paper and the iQRL code)."""

    use_fsq: bool = True  # the old spelling of the quantizer switch: false = quantizer none
    quantizer: str = "fsq"  # fsq | vq | simnorm | l2 | none (iqrl/nn/quantizers.py, docs/fsq.md)
    quant_group_dim: int = 8  # simnorm / l2: channels per group (TD-MPC2's SimNorm uses 8)
    vq_codebook_size: int = 512  # vq: entries K of the codebook shared by the groups
    vq_dim: int = 8  # vq: channels per group (the dimension of a codebook entry)
    vq_beta: float = 0.25  # vq: commitment weight (VQ-VAE, arXiv 1711.00937)
    vq_decay: float = 0.99  # vq: EMA decay of the codebook statistics (VQ-VAE's appendix)
    consistency_loss: str = "cos"  # cos | mse
    tc_loss_sign: int = -1  # cos only: -1 maximises cosine similarity (paper intent); +1 = official (IQ-1)
    use_delta: bool = True  # residual dynamics: z' = FSQ(z + d(z, a))
    use_target_encoder: bool = True  # False: consistency targets from the online encoder (stop-grad)
    use_projection: bool = False  # projection head (and its EMA copy) before the consistency loss
    projection_dim: int = 0  # 0 = D / 16
    use_rew_loss: bool = False  # reward head on (z_h, a_h), rho-weighted MSE
    enc_tau: float = 0.005  # EMA rate of the target encoder (and target projection)
    cumulative_mask: bool = True  # False: the official per-step mask (IQ-6)
    reward_head_shifted_latent: bool = False  # True: official reward head on (z_{h+1}, a_h) (IQ-4)
    official_nofsq_half_width: bool = False  # True: use_fsq=false gives width latent_dim (IQ-13)
    use_tc_loss: bool = True  # the multi-step latent consistency loss (False: reconstruction-only encoder)
    use_rec_loss: bool = False  # decoder mlp(D, mlp_dims, obs_dim) + reconstruction loss (iqrl-ae)
    # obs=pixels only: random-shift augmentation of every frame stack in the update, by up to image_pad
    # pixels each way (DrQ's 4; the iQRL code defines this shift with pad 4 but never calls it; 0 = off).
    image_pad: int = 4

    def validate(self) -> None:
        checks = [
            (
                self.consistency_loss in ("cos", "mse"),
                f"agent.consistency_loss must be cos or mse, got {self.consistency_loss!r}",
            ),
            (self.tc_loss_sign in (-1, 1), f"agent.tc_loss_sign must be -1 or 1, got {self.tc_loss_sign}"),
            (
                self.quantizer in QUANTIZERS,
                f"agent.quantizer must be one of {', '.join(QUANTIZERS)}, got {self.quantizer!r}",
            ),
            (
                self.use_fsq or self.quantizer in ("fsq", "none"),
                f"agent.use_fsq=false means agent.quantizer=none; it contradicts quantizer={self.quantizer}",
            ),
            (
                self.vq_beta >= 0 and 0.0 <= self.vq_decay < 1.0,
                f"agent.vq_beta must be >= 0 and agent.vq_decay in [0, 1), got {self.vq_beta} and "
                f"{self.vq_decay}",
            ),
            (0.0 < self.enc_tau <= 1.0, f"agent.enc_tau must be in (0, 1], got {self.enc_tau}"),
            (self.image_pad >= 0, f"agent.image_pad must be >= 0, got {self.image_pad}"),
            (self.projection_dim >= 0, f"agent.projection_dim must be >= 0, got {self.projection_dim}"),
            (
                self.use_tc_loss or self.use_rec_loss or self.use_rew_loss,
                "agent.use_tc_loss=false needs use_rec_loss=true or use_rew_loss=true (nothing would train "
                "the encoder)",
            ),
        ]
        require(checks)


class IQRLAgentConfig(AgentConfig):
    """What iQRL's configs share whichever learner they compose: the checks and properties that combine the
    latent model's keys with the representation's, and `rl_algo` with the learner."""

    # The code's seed phase, 10 episodes before the first update (aidanscannell/iqrl@ed8073d train.py:22,
    # 195), is the harness's 10,000 env steps on DMC, the one suite it runs: SEED_PHASE stays unset (10 times
    # Atari's or MiniGrid's cap on an episode, 108,000 and 10,000 env steps, is no seed phase of theirs)

    RL_ALGO: ClassVar[str]  # the learner this config composes, what `rl_algo` must say

    def validate(self) -> None:
        super().validate()
        if self.quantized:
            self.latent.validate_fsq()
        checks = [
            (
                self.quantizer_kind not in ("simnorm", "l2")
                or (self.quant_group_dim >= 1 and self.latent_width % self.quant_group_dim == 0),
                f"agent.quant_group_dim={self.quant_group_dim} must divide the latent width "
                f"{self.latent_width} (latent_dim x len(fsq_levels))",
            ),
            (
                self.quantizer_kind != "vq"
                or (self.vq_dim >= 1 and self.latent_width % self.vq_dim == 0 and self.vq_codebook_size >= 2),
                f"agent.vq_dim={self.vq_dim} must divide the latent width {self.latent_width} "
                f"(latent_dim x len(fsq_levels)) and agent.vq_codebook_size={self.vq_codebook_size} be >= 2",
            ),
            (
                self.rl_algo == self.RL_ALGO,
                f"agent.rl_algo must be {self.RL_ALGO} for agent={self.name} "
                f"(the SAC learner on iQRL's latent is agent=iqrl-sac), got {self.rl_algo!r}",
            ),
        ]
        if self.network != "mlp":  # the state encoder is a residual network of that kind too
            checks.append(residual_widths_check("enc_mlp_dims", self.enc_mlp_dims))
        require(checks)

    def validate_pixels(self, image_size: int) -> None:
        """The checks of obs=pixels (run by the run config, and by the agent built for pixels)."""
        require(
            [(not self.use_rec_loss, "agent.use_rec_loss (iqrl-ae) has no image decoder: obs=state only")]
        )

    @property
    def quantizer_kind(self) -> str:
        """The quantizer in use: `quantizer`, or none when the old spelling use_fsq=false says so."""
        return self.quantizer if self.use_fsq else "none"

    @property
    def quantized(self) -> bool:
        """Whether the latent goes through FSQ (what the level-2 check of the FSQ bound concerns)."""
        return self.quantizer_kind == "fsq"

    @property
    def latent_width(self) -> int:
        """D, the width of the latent vector fed to dynamics, actor and critic: latent_dim x len(fsq_levels)
        for every quantizer (the width of the FSQ arm, so that the arms compare at equal width)."""
        if self.quantizer_kind == "none" and self.official_nofsq_half_width:
            return self.latent_dim
        return self.latent.latent_width


@compose(
    learner=TD3LearnerConfig,
    latent=LatentModelConfig,
    representation=IQRLRepresentationConfig,
    multitask=TaskConditioningConfig,
)
class IQRLConfig(IQRLAgentConfig):
    """iQRL with its TD3 learner: `iqrl`, `iqrl-official`, `iqrl-ae`."""

    RL_ALGO = "td3"
    name: str = "iqrl"
    rl_algo: str = "td3"  # the learner on the latent: td3 (IQRLConfig) | sac (IQRLSACConfig, `iqrl-sac`)
    gumbel_tau: float = (
        10.0  # discrete actions: temperature of MR.Q's Gumbel-softmax actor (docs/discrete.md)
    )

    def validate(self) -> None:
        super().validate()
        require([(self.gumbel_tau > 0, f"agent.gumbel_tau must be > 0, got {self.gumbel_tau}")])


@compose(
    learner=SACLearnerConfig(actor_update_freq=1),  # actor and temperature every critic step, as `sac`
    latent=LatentModelConfig,
    representation=IQRLRepresentationConfig,
    multitask=TaskConditioningConfig,
)
class IQRLSACConfig(IQRLAgentConfig):
    """iQRL's representation under the SAC learner: `iqrl-sac` (no TD3 exploration-noise keys)."""

    RL_ALGO = "sac"
    name: str = "iqrl-sac"
    rl_algo: str = "sac"  # the learner on the latent: sac here (IQRLConfig: td3)
