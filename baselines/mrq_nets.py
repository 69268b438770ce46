"""MR.Q's networks (Fujimoto et al., "Towards General-Purpose Model-Free Reinforcement Learning", ICLR 2025,
arXiv 2501.16142; code github.com/facebookresearch/MRQ): the LN-ELU MLP (or the residual network of
`network`), the image trunk and the encoder with its linear model head. The agent (baselines/mrq.py) composes
them; its docstring gives the equations. Every Linear and convolution is Xavier-uniform with the ReLU gain
sqrt(2) and a zero bias.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iqrl.core.interface import pixel_shape
from iqrl.nn.layers import EnsembleLinear, out_linear
from iqrl.nn.trunks import ResidualNet, project_to_sphere, residual_shape

#: The activations of `MrqMLP` by name, as modules (one per layer) so that forward hooks see their units.
ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU}


def xavier_relu_(layer: nn.Module) -> None:
    """Xavier-uniform weights with the ReLU gain sqrt(2), zero bias (nn.Linear or each EnsembleLinear
    member)."""
    gain = nn.init.calculate_gain("relu")
    weights = [layer.weight] if isinstance(layer, (nn.Linear, nn.Conv2d)) else list(layer.weight.data)
    for w in weights:
        nn.init.xavier_uniform_(w.data, gain)
    nn.init.zeros_(layer.bias)


class MrqMLP(nn.Module):
    """Linear -> LN (no affine) -> activation per hidden width, then a plain Linear.

    members=E > 0: E independent copies evaluated together, [B, in] -> [E, B, out]."""

    def __init__(
        self, in_dim: int, hidden: list[int], out_dim: int, activation: str = "elu", members: int = 0
    ):
        super().__init__()
        dims = [in_dim, *hidden, out_dim]
        make = (lambda i, o: EnsembleLinear(members, i, o)) if members else out_linear
        self.layers = nn.ModuleList(make(i, o) for i, o in zip(dims[:-1], dims[1:]))
        self.acts = nn.ModuleList(ACTIVATIONS[activation]() for _ in hidden)
        for layer in self.layers:
            xavier_relu_(layer)

    def forward(self, x: Tensor) -> Tensor:
        for layer, act in zip(self.layers[:-1], self.acts):
            x = layer(x)
            x = act(F.layer_norm(x, x.shape[-1:]))
        return self.layers[-1](x)


def mrq_mlp(in_dim: int, hidden: list[int], out_dim: int, activation: str, members: int, network: str):
    """MR.Q's MLP (`network=mlp`), or the residual network of `network` (iqrl/nn/trunks.py) in its place."""
    if network == "mlp":
        return MrqMLP(in_dim, hidden, out_dim, activation, members)
    return ResidualNet(network, in_dim, *residual_shape(hidden), out_dim, n=members)


class MrqCNN(nn.Module):
    """MR.Q's image trunk of z_s (the code's Encoder.cnn_zs): frame stacks [..., C, H, W] -> [..., zs_dim]
    before the LN-ELU: o / 255 - 0.5, four 3x3 convolutions (32 filters, strides 2, 2, 2, 1) each followed by
    ELU, flattened, one Linear."""

    STRIDES = (2, 2, 2, 1)

    @classmethod
    def feature_size(cls, image_size: int) -> int:
        """Width of the last feature map: unpadded 3x3 convolutions, 84 -> 41 -> 20 -> 9 -> 7."""
        for s in cls.STRIDES:
            image_size = (image_size - 3) // s + 1
        return image_size

    def __init__(self, shape: tuple[int, int, int], out_dim: int, filters: int = 32):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(shape[0] if k == 0 else filters, filters, 3, stride=s)
            for k, s in enumerate(self.STRIDES)
        )
        size = self.feature_size(shape[1])
        if size < 1:
            raise ValueError(f"image size {shape[1]} is too small for MR.Q's image encoder")
        self.acts = nn.ModuleList(nn.ELU() for _ in self.convs)
        self.linear = nn.Linear(filters * size * size, out_dim)
        for layer in [*self.convs, self.linear]:
            xavier_relu_(layer)

    def forward(self, obs: Tensor) -> Tensor:
        lead = obs.shape[:-3]
        x = obs.reshape(-1, *obs.shape[-3:]).float() / 255.0 - 0.5
        for conv, act in zip(self.convs, self.acts):
            x = act(conv(x))
        y = self.linear(x.flatten(1))
        return y.reshape(*lead, y.shape[-1])


class MrqEncoder(nn.Module):
    """State and state-action embeddings and the linear model head; `c` is the agent's MRQConfig."""

    def __init__(self, obs_dim, act_dim: int, c):
        super().__init__()
        self.zs_dim = c.zs_dim
        pixels = pixel_shape(obs_dim)
        if pixels is None:
            self.zs_net = mrq_mlp(obs_dim, c.enc_mlp_dims, c.zs_dim, "elu", 0, c.network)
        else:
            self.zs_net = MrqCNN(pixels, c.zs_dim)
        self.za = nn.Linear(act_dim, c.za_dim)
        self.zs_act, self.za_act = nn.ELU(), nn.ELU()
        self.zsa_net = mrq_mlp(c.zs_dim + c.za_dim, c.enc_mlp_dims, c.zsa_dim, "elu", 0, c.network)
        self.model = nn.Linear(c.zsa_dim, 1 + c.zs_dim + c.num_bins)
        xavier_relu_(self.za)
        xavier_relu_(self.model)

    def project(self) -> None:
        """SimbaV2's projection after the encoder's step, with `network=simbav2`."""
        project_to_sphere(self)

    def zs(self, obs: Tensor) -> Tensor:
        z = self.zs_net(obs)
        return self.zs_act(F.layer_norm(z, z.shape[-1:]))

    def zsa(self, zs: Tensor, action: Tensor) -> Tensor:
        return self.zsa_net(torch.cat([zs, self.za_act(self.za(action))], -1))

    def model_all(self, zs: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(done [B], next z_s [B, zs_dim], reward logits [B, bins]) predicted from (z_s, a)."""
        out = self.model(self.zsa(zs, action))
        return out[..., 0], out[..., 1 : self.zs_dim + 1], out[..., self.zs_dim + 1 :]
