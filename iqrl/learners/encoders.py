"""The encoder the critic trains: observations -> features for an actor-critic learner (obs=pixels).

SAC+AE (Yarats et al. 2019, arXiv 1910.01741) and DrQ (Kostrikov et al. 2020, arXiv 2004.13649) learn
their pixel encoder through the critic: the critic's input is x = head(trunk(o)) with gradients, so the
critic loss steps the trunk (a `ConvEncoder`) and the head (Linear -> LayerNorm -> `head_act`: tanh, or
nothing after the LayerNorm as in CURL's code) with the critic's optimizer; the actor reads features through
which no gradient reaches the trunk; the target critic reads a target encoder, an EMA of the online one.
`CriticEnsembleLearner` (iqrl/learners/critics.py) takes such an encoder and uses it in every loss; without
one (every state run) its inputs are the features themselves.

Two forms of the actor's input, chosen by `actor_head`:
* False (DrQ-v2, arXiv 2107.09645; the pixel `sac` / `td3`): the critic's own features, detached;
* True (SAC+AE, pytorch_sac_ae `sac_ae.py:Actor` with `encoder.py:copy_conv_weights_from`): the actor has
  its own head on the same trunk (the convolutions are tied: one set of parameters), the trunk's output
  detached (`detach_encoder=True`), so the actor loss steps the actor's head but never the convolutions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from iqrl.core.checks import require
from iqrl.core.update import Updater
from iqrl.nn.layers import ConvEncoder, frozen_copy, init_linear_
from iqrl.nn.maths import random_shift, shift_offsets


@dataclass
class PixelEncoderConfig:
    """Keys of the encoder the critic trains (used with obs=pixels; a state run ignores them), a part of an
    agent config (`compose`, iqrl/core/interface.py)."""

    feature_dim: int = 50  # width of the encoder's head, Linear -> LayerNorm -> head_act (SAC+AE, DrQ: 50)
    # the head's last activation, after its LayerNorm: tanh (SAC+AE, DrQ) | none (the LayerNorm's output:
    # CURL's code, `encoder.py` with output_logits=True)
    head_act: str = "tanh"
    num_filters: int = 32  # channels of every convolution (SAC+AE, DrQ: 32)
    conv_layers: int = 4  # 3x3 convolutions, the first with stride 2 (SAC+AE, DrQ: 4)
    image_pad: int = 0  # random-shift augmentation (DrQ: 4 pixels); 0 = off (SAC+AE does not augment)

    def validate(self) -> None:
        require(
            [
                (self.feature_dim >= 1, f"feature_dim must be >= 1, got {self.feature_dim}"),
                (self.num_filters >= 1, f"num_filters must be >= 1, got {self.num_filters}"),
                (self.conv_layers >= 1, f"conv_layers must be >= 1, got {self.conv_layers}"),
                (self.image_pad >= 0, f"image_pad must be >= 0 (0 = no augmentation), got {self.image_pad}"),
                (
                    self.head_act in HEAD_ACTS,
                    f"head_act must be one of {', '.join(HEAD_ACTS)}, got {self.head_act!r}",
                ),
            ]
        )


# The encoder head's last activation (`head_act`), by name.
HEAD_ACTS = {"tanh": nn.Tanh, "none": nn.Identity}


def feature_head(in_dim: int, feature_dim: int, act: str = "tanh") -> nn.Sequential:
    """Linear -> LayerNorm -> `act` (HEAD_ACTS), the Linear orthogonal with zero bias (SAC+AE
    `encoder.py:PixelEncoder` fc, ln, tanh; initialised by `sac_ae.py:weight_init`; DrQ's encoder head;
    "none": CURL's, which ends at the LayerNorm)."""
    head = nn.Sequential(nn.Linear(in_dim, feature_dim), nn.LayerNorm(feature_dim), HEAD_ACTS[act]())
    init_linear_(head, "orthogonal")
    return head


class CriticEncoder(nn.Module):
    """o -> x = head(trunk(o)) [N, feature_dim], trained by the critic loss; see the module docstring.

    trunk: a `ConvEncoder` for pixel frame stacks [N, C, H, W], or nn.Identity for state vectors [N, d]
    (SAC+AE's state form, docs/faithfulness.md SAE-4); `trunk_dim` its output width; `head_act` the heads'
    last activation (`feature_head`).
    """

    def __init__(
        self,
        trunk: nn.Module,
        trunk_dim: int,
        feature_dim: int,
        actor_head: bool = False,
        head_act: str = "tanh",
    ):
        super().__init__()
        self.trunk = trunk
        self.head = feature_head(trunk_dim, feature_dim, head_act)
        self.actor_head = feature_head(trunk_dim, feature_dim, head_act) if actor_head else None
        self.target_trunk = frozen_copy(trunk)
        self.target_head = frozen_copy(self.head)
        self.feature_dim = feature_dim

    def critic_parameters(self) -> list[nn.Parameter]:
        """What the critic's optimizer steps besides the critics: the trunk and the critic's head."""
        return [*self.trunk.parameters(), *self.head.parameters()]

    def actor_parameters(self) -> list[nn.Parameter]:
        """What the actor's optimizer steps besides the actor: its own head, if it has one."""
        return [] if self.actor_head is None else list(self.actor_head.parameters())

    def online_parameters(self) -> list[nn.Parameter]:
        return [*self.trunk.parameters(), *self.head.parameters()]

    def forward(self, obs: Tensor) -> Tensor:
        """The critic's features, with gradients to the trunk and the head."""
        return self.head(self.trunk(obs))

    @torch.no_grad()
    def target_features(self, obs: Tensor) -> Tensor:
        return self.target_head(self.target_trunk(obs))

    def actor_inputs(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """(x_pi, x_q): the actor's input and the critic's features for the actor's objective. No gradient
        reaches the trunk or the critic's head; x_pi has its own head's gradient when there is one."""
        with torch.no_grad():
            h = self.trunk(obs)
            x_q = self.head(h)
        return (x_q, x_q) if self.actor_head is None else (self.actor_head(h), x_q)

    def actor_features(self, obs: Tensor) -> Tensor:
        """The actor's input alone (acting)."""
        if self.actor_head is None:
            with torch.no_grad():
                return self.forward(obs)
        with torch.no_grad():
            h = self.trunk(obs)
        return self.actor_head(h)

    def update_target(self, u: Updater, tau: float) -> None:
        """EMA of the target trunk and head towards the online ones at rate tau."""
        u.ema(
            [*self.target_trunk.parameters(), *self.target_head.parameters()], self.online_parameters(), tau
        )


def shift_pair(x: Tensor, x_next: Tensor, pad: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """DrQ's augmentation of a transition (arXiv 2004.13649, §3.1): o_t and o_{t+m} [B, C, H, W] each randomly
    shifted by up to `pad` pixels, with their own offsets (2B draws from `generator`, o_t's first)."""
    offsets = shift_offsets(2 * len(x), pad, generator)
    return random_shift(x, pad, offsets[: len(x)]), random_shift(x_next, pad, offsets[len(x) :])


def pixel_encoder(shape: tuple[int, int, int], cfg: PixelEncoderConfig, center: float, actor_head: bool):
    """A `CriticEncoder` on a `ConvEncoder` for frame stacks of `shape` (C, H, W)."""
    channels, size, _ = shape
    trunk = ConvEncoder(channels, size, cfg.conv_layers, cfg.num_filters, center=center)
    return CriticEncoder(trunk, trunk.out_dim, cfg.feature_dim, actor_head, cfg.head_act)
