"""SAC+AE: SAC with a deterministic autoencoder on pixels (Yarats et al. 2019, "Improving Sample Efficiency in
Model-Free Reinforcement Learning from Images", arXiv 1910.01741), as the authors' code runs it
(denisyarats/pytorch_sac_ae@7fa560e; `train.py` defaults, `sac_ae.py`, `encoder.py`, `decoder.py`).

Networks (the paper's method section and the code): the critic's encoder x = tanh(LN(fc(conv(o / 255)))) [B,
50] (`ConvEncoder` with center 0, 4 layers of 32 filters, then Linear -> LayerNorm -> tanh); the actor has its
own fc -> LN -> tanh on the SAME convolutions (tied: one set of parameters,
`encoder.py:copy_conv_weights_from`) with the conv output detached; twin Q ReLU MLPs [1024, 1024] and a ReLU
actor MLP (no LayerNorm); a target critic with a target encoder; a deconvolutional decoder of the critic's
latent (`ConvDecoder`). The critic-trained encoder is the shared `CriticEncoder` (iqrl/learners/encoders.py,
actor_head=True) and the RL update the shared `SACLearner`.

Per update, on a batch (o, a, r, o'):
1. target  y = r + γ (min_k Q̄_k(x̄', a') − α log π(a'|x'_π)),  a' ~ π(·|x'_π), x̄' the target encoder's
   features, x'_π the actor's (`sac_ae.py:update_critic`);
2. critic step on Q_1, Q_2 (sum of MSEs) through x = enc(o): the critic's Adam steps the critics AND the
   encoder (convs, fc, LN);
3. every `critic_target_update_freq` updates: EMA of the target critics at tau (0.01) and of the target
   encoder at encoder_tau (0.05) (`sac_ae.py:update`);
4. every `actor_update_freq` updates: actor step on α log π(a|x_π) − min_k Q_k(x, a), no gradient into the
   convolutions (`detach_encoder=True`; the actor's own fc/LN are stepped); temperature step on
   α (−log π − H̄) (the code's α-form, not log α; `sac_ae.py:update_actor_and_alpha`);
5. every `decoder_update_freq` updates: L = MSE(dec(h), ô) + λ_z mean(½‖h‖²) with h = enc(o) (critic
   encoder, with gradients), ô = the 5-bit preprocessed frames, uniform dequantisation noise, centred
   (`utils.py:preprocess_obs`); the encoder's own Adam steps the encoder, the decoder's Adam (L2 weight decay
   λ_θ) the decoder (`sac_ae.py:update_decoder`).

"paper": the hyper-parameter table of the paper's appendix and its method section; `train.py`: its argument.

| key | value | source |
|---|---|---|
| batch_size | 128 | paper; `train.py` --batch_size |
| mlp_dims | [1024, 1024], ReLU, no LayerNorm | `train.py` --hidden_dim; `sac_ae.py:QFunction`, `Actor` |
| num_critics, critic loss | 2, MSE(Q1, y) + MSE(Q2, y) | `sac_ae.py:update_critic` |
| gamma | 0.99 | paper; `train.py` --discount |
| lr (actor; critic + encoder) | 1e-3, Adam betas (0.9, 0.999) | paper; `train.py` --*_lr, --*_beta |
| alpha_lr, alpha_beta | 1e-4, Adam betas (0.5, 0.999) | paper; `train.py` --alpha_lr, --alpha_beta |
| init_temperature | 0.1 | paper; `train.py` --init_temperature |
| target_entropy | −\\|A\\| | `sac_ae.py:SacAeAgent` |
| log_std_min, log_std_max | −10, 2 (soft tanh bound) | paper; `train.py` --actor_log_std_* |
| tau, encoder_tau | 0.01, 0.05 | paper; `train.py` --critic_tau, --encoder_tau |
| critic_target_update_freq | 2 | paper; `train.py` |
| actor_update_freq | 2 | paper; `train.py` |
| feature_dim, conv_layers, num_filters | 50, 4, 32 | paper; `train.py` --encoder_feature_dim, --num_* |
| encoder_lr, decoder_lr | 1e-3, 1e-3 (Adam, default betas) | paper; `train.py` |
| decoder_update_freq | 1 | `train.py` --decoder_update_freq |
| decoder_latent_lambda | 1e-6 | paper (λ_z); `train.py` --decoder_latent_lambda |
| decoder_weight_lambda | 1e-7 (Adam L2 weight decay of the decoder) | paper (λ_θ); `train.py` |
| rec_bits | 5: floor(o / 8) / 32 + U[0, 1) / 32 − 0.5 | `utils.py:preprocess_obs` (Glow, arXiv 1807.03039) |
| init | orthogonal Linear, delta-orthogonal (de)convolutions, zero biases | `sac_ae.py:weight_init` |
| nstep | 1 | `sac_ae.py:update_critic` |

Deviations forced by the harness (docs/faithfulness.md SAE-1..SAE-6): see docs/agents.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iqrl.core.checks import require
from iqrl.core.interface import (
    Agent,
    AgentConfig,
    AgentSpec,
    Part,
    compose,
    learner_parts,
    pixel_shape,
    to_tensor,
)
from iqrl.core.replay import nstep_transition
from iqrl.core.schedule import PerStep, SeedPhase
from iqrl.core.update import Updater
from iqrl.learners.encoders import CriticEncoder, PixelEncoderConfig, pixel_encoder, shift_pair
from iqrl.learners.sac import SACLearner, SACLearnerConfig
from iqrl.nn.layers import ConvDecoder, mlp
from iqrl.nn.optim import adam


@dataclass
class SACAELearnerConfig(SACLearnerConfig):
    """SACLearnerConfig plus the keys of SAC as pytorch_sac_ae runs it (`SACAELearner`)."""

    alpha_beta: float = 0.5  # Adam beta1 of the temperature
    critic_target_update_freq: int = 2  # EMA of the target critics and target encoder every this many updates
    encoder_tau: float = 0.05  # target encoder

    def validate(self) -> None:
        super().validate()
        require(
            [
                (0.0 <= self.alpha_beta < 1.0, f"alpha_beta must be in [0, 1), got {self.alpha_beta}"),
                (
                    self.critic_target_update_freq >= 1,
                    f"critic_target_update_freq must be >= 1, got {self.critic_target_update_freq}",
                ),
                (0.0 < self.encoder_tau <= 1.0, f"encoder_tau must be in (0, 1], got {self.encoder_tau}"),
            ]
        )


@compose(
    learner=SACAELearnerConfig(  # train.py defaults
        mlp_dims=[1024, 1024],
        batch_size=128,
        lr=1e-3,  # actor and critic (the critic's encoder included)
        tau=0.01,  # target critics
        num_critics=2,
        q_subsample=2,
        actor_q_reduce="min",
        critic_loss_reduce="sum",
        actor_update_freq=2,
        init="orthogonal",
        init_temperature=0.1,
        alpha_lr=1e-4,
    ),
    encoder=PixelEncoderConfig,
)
class SACAEConfig(AgentConfig):
    # init_steps: 1000 agent steps of uniform actions (its burst at their end: SAE-1, not reproduced)
    SEED_PHASE: ClassVar[SeedPhase] = SeedPhase(
        agent_steps=1000, source="denisyarats/pytorch_sac_ae@7fa560e train.py:33, 216"
    )
    TINY: ClassVar[dict] = {"feature_dim": 8}
    name: str = "sac-ae"
    # Autoencoder
    use_decoder: bool = True  # false: the paper's SAC:pixel baseline (the encoder trained by the critic only)
    encoder_lr: float = 1e-3  # Adam rate of the encoder in its decoder step
    decoder_lr: float = 1e-3  # Adam rate of the decoder (its weight decay: decoder_weight_lambda)
    decoder_update_freq: int = 1  # an autoencoder step every this many updates
    decoder_latent_lambda: float = 1e-6  # lambda_z: L2 penalty on the latent
    decoder_weight_lambda: float = 1e-7  # lambda_theta: the decoder's Adam weight decay
    rec_bits: int = 5  # bit depth of the reconstruction targets

    def validate(self) -> None:
        super().validate()
        require(
            [
                (self.encoder_lr > 0, f"encoder_lr must be > 0, got {self.encoder_lr}"),
                (self.decoder_lr > 0, f"decoder_lr must be > 0, got {self.decoder_lr}"),
                (
                    self.decoder_update_freq >= 1,
                    f"decoder_update_freq must be >= 1, got {self.decoder_update_freq}",
                ),
                (self.decoder_latent_lambda >= 0, "decoder_latent_lambda must be >= 0"),
                (self.decoder_weight_lambda >= 0, "decoder_weight_lambda must be >= 0"),
                (1 <= self.rec_bits <= 8, f"rec_bits must be in 1..8, got {self.rec_bits}"),
            ]
        )


def preprocess_frames(obs: Tensor, bits: int, noise: Tensor) -> Tensor:
    """Reconstruction targets of uint8 frames (Glow's, arXiv 1807.03039; `utils.py:preprocess_obs`): keep
    the top `bits` bits, k = floor(o / 2^(8 - bits)) in 0..2^bits - 1, dequantise with `noise` ~ U[0, 1) and
    centre: (k + noise) / 2^bits - 0.5, in [-0.5, 0.5)."""
    k = torch.floor(obs.float() / 2 ** (8 - bits))
    return (k + noise) / 2**bits - 0.5


class SACAELearner(SACLearner):
    """`SACLearner` as pytorch_sac_ae runs it: ReLU MLPs without LayerNorm, the temperature's Adam with
    beta1 = alpha_beta and its α-form loss, and the target critics and target encoder updated together every
    `critic_target_update_freq` critic steps at their own rates."""

    mlp_act = nn.ReLU
    mlp_norm = False

    def make_alpha_opt(self) -> torch.optim.Optimizer:
        c = self.cfg
        return adam([self.log_alpha], lr=c.alpha_lr, betas=(c.alpha_beta, 0.999))

    def alpha_loss(self, log_prob: Tensor) -> Tensor:
        """α (−log π − H̄), averaged (`sac_ae.py:update_actor_and_alpha`): the gradient on log α is α times
        SAC v2's −(log π + H̄)."""
        return (self.alpha * (-log_prob - self.target_entropy).detach()).mean()

    def update_targets(self, u: Updater) -> None:
        c = self.cfg
        if self.critic_steps % c.critic_target_update_freq == 0:
            u.ema(self.critic_target, self.critic, c.tau)
            self.encoder.update_target(u, c.encoder_tau)


class SACAE(Agent):
    """SAC+AE; see the module docstring."""

    PIXELS = True
    STATE_OBJECTS = ("ac=learner", "ac_extra=learner.extra", "decoder", "encoder_opt", "decoder_opt")
    STATE_VALUES = ("updates",)
    # The learner's encoder (its EMA target and the actor's head included) and the decoder that trains it.
    TRANSFER_PARTS = {"representation": Part(("learner.encoder", "decoder")), **learner_parts()}
    TRANSFER_PARTS["optimizers"] = Part(("encoder_opt", "decoder_opt", *TRANSFER_PARTS["optimizers"].paths))

    def __init__(self, cfg: SACAEConfig, obs_dim, act_dim: int, device: torch.device, seed: int):
        super().__init__(cfg, device, seed)
        self.spec = AgentSpec(
            seq_len=cfg.nstep,
            batch_size=cfg.batch_size,
            updates_per_step=0.5,
            warmup_with_policy=cfg.warmup_with_policy,
        )
        self.schedule = PerStep()  # an update after every agent step, as pytorch_sac_ae's train.py
        self.shape = pixel_shape(obs_dim)
        if self.shape is not None:  # pixels: conv encoder on obs / 255 (center 0), deconv decoder
            encoder = pixel_encoder(self.shape, cfg.encoder, center=0.0, actor_head=True)
            decoder = ConvDecoder(
                cfg.feature_dim, self.shape[0], self.shape[1], cfg.conv_layers, cfg.num_filters
            )
        else:  # states (SAE-4): MLP encoder Linear -> LN -> tanh, MLP decoder of the state
            encoder = CriticEncoder(nn.Identity(), obs_dim, cfg.feature_dim, True, cfg.head_act)
            decoder = mlp(cfg.feature_dim, cfg.mlp_dims, obs_dim, "orthogonal", nn.ReLU, norm=False)
        self.learner = SACAELearner(cfg.learner, obs_dim, act_dim, self.generator, encoder).to(self.device)
        self.decoder = decoder.to(self.device) if cfg.use_decoder else None
        self.encoder_opt = (
            adam(self.learner.encoder.critic_parameters(), lr=cfg.encoder_lr) if cfg.use_decoder else None
        )
        self.decoder_opt = (
            adam(self.decoder.parameters(), lr=cfg.decoder_lr, weight_decay=cfg.decoder_weight_lambda)
            if cfg.use_decoder
            else None
        )
        self.updates = 0
        self.latent_width = cfg.feature_dim

    # ------------------------------------------------------------------ acting
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        x = to_tensor(obs, self.device)
        single = x.dim() == (1 if self.shape is None else 3)
        x = x[None] if single else x
        a = self.updater.act(self.learner.act, x, **self.learner.act_draws(x.shape[:1], explore))
        return (a[0] if single else a).numpy()

    @torch.no_grad()
    def latent(self, obs: Tensor) -> Tensor:
        """The critic encoder's features [n, feature_dim]."""
        return self.learner.encoder(obs.to(self.device))

    @torch.no_grad()
    def probe_q(self, obs: Tensor, action: Tensor) -> Tensor:
        """The online critics' Q [2, n] on the critic encoder's features (the critic step's)."""
        return self.learner.q(self.learner.critic_input(obs.to(self.device)), action.to(self.device))

    @torch.no_grad()
    def probe_actor(self, obs: Tensor) -> Tensor:
        return self.learner.act(obs.to(self.device))

    # ------------------------------------------------------------------ learning
    def update(self, replay, step: int) -> dict:
        c = self.cfg
        batch = replay.sample(c.batch_size)
        obs, action, ret, discount, obs_next = nstep_transition(
            batch,
            c.gamma,
            c.nstep,
            unit_discount_n1=c.official_nstep1_gamma_bug,
            ignore_terminal=c.official_ignore_terminal,
        )
        if self.shape is not None and c.image_pad > 0:  # SAE-6: DrQ's random shift, off by default
            obs, obs_next = shift_pair(obs, obs_next, c.image_pad, self.generator)
        metrics = self.learner.update(self.updater, obs, action, ret, discount, obs_next)  # steps 1-4
        self.updates += 1
        if self.decoder is not None and self.updates % c.decoder_update_freq == 0:
            metrics.update(self.update_decoder(obs))
        return metrics

    def update_decoder(self, obs: Tensor) -> dict:
        """Step 5: one step of the encoder's and the decoder's Adam on the autoencoder loss."""
        noise = None
        if self.shape is not None:  # the dequantisation noise, from the agent's generator
            noise = torch.rand(obs.shape, generator=self.generator, device=obs.device)
        step = self.updater.step(
            self.decoder_loss, obs, opt=(self.encoder_opt, self.decoder_opt), noise=noise
        )
        rec_loss, latent_loss = step.aux
        return {"ae_loss": step.loss, "rec_loss": rec_loss, "latent_loss": latent_loss}

    def decoder_loss(self, obs: Tensor, *, noise: Tensor | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """(L, (reconstruction MSE, mean ½‖h‖²)): L = MSE(dec(h), target) + λ_z mean_b(½‖h_b‖²), h = enc(o)
        the critic encoder's latent with gradients; target = the preprocessed frames (pixels) or o
        (states)."""
        h = self.learner.encoder(obs)
        target = obs if noise is None else preprocess_frames(obs, self.cfg.rec_bits, noise)
        rec_loss = F.mse_loss(self.decoder(h), target)
        latent_loss = (0.5 * h.pow(2).sum(1)).mean()
        return rec_loss + self.cfg.decoder_latent_lambda * latent_loss, (rec_loss, latent_loss)
