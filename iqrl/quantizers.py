"""The latent's quantizer family (`agent.quantizer`): is it FSQ that keeps iQRL's latent from collapsing, or
any bounded or normalised latent? Every quantizer maps the encoder's output y [..., D] to the latent z
[..., D] of the same width, acting on contiguous groups of channels:

* `fsq`: finite scalar quantization (iqrl/layers.py FSQ; Mentzer et al. 2023, arXiv 2309.15505), groups of
  len(fsq_levels) channels, implicit codebook prod(levels), straight-through gradient. iQRL's own choice.
* `vq`: vector quantization (van den Oord et al. 2017, arXiv 1711.00937): groups of `vq_dim` channels each
  replaced by the nearest (L2) entry of one learned codebook of `vq_codebook_size` entries shared by the
  groups, straight-through z = y + sg(e - y). The encoder gets the commitment term beta ||y - sg(e)||^2;
  the codebook follows the exponential moving averages of the paper's appendix (decay `vq_decay`).
* `simnorm`: TD-MPC2's simplicial normalisation (Hansen et al. 2024, arXiv 2310.16828): a softmax over each
  group of `quant_group_dim` channels. Bounded and normalised, not discrete.
* `l2`: each group of `quant_group_dim` channels divided by its L2 norm (on the unit sphere). Not discrete.
* `none`: the identity (the paper's "no FSQ" ablation).

The discrete ones (`fsq`, `vq`) give code indices [..., G] and a codebook size for the active-codebook
diagnostic; the others give None.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iqrl.layers import FSQ

QUANTIZERS = ("fsq", "vq", "simnorm", "l2", "none")


class Identity(nn.Module):
    codebook_size = None

    def forward(self, y: Tensor) -> Tensor:
        return y


class GroupNorm(nn.Module):
    """simnorm (softmax) or l2 (unit norm) over contiguous groups of `group_dim` channels."""

    codebook_size = None

    def __init__(self, kind: str, group_dim: int):
        super().__init__()
        self.kind, self.group_dim = kind, group_dim

    def forward(self, y: Tensor) -> Tensor:
        g = y.float().unflatten(-1, (-1, self.group_dim))
        out = F.softmax(g, -1) if self.kind == "simnorm" else F.normalize(g, dim=-1, eps=1e-8)
        return out.flatten(-2)


class VectorQuantizer(nn.Module):
    """VQ with an EMA codebook; buffers (in checkpoints): codebook [K, d], ema_count [K], ema_sum [K, d].

    The EMA statistics start as one observation of each initial entry (count 1, sum = the entry), so every
    entry stays defined and an entry never chosen stays where it started:
        N_k <- decay N_k + (1 - decay) n_k,   m_k <- decay m_k + (1 - decay) sum_{i: k_i = k} y_i,
        e_k = m_k / N_k
    with n_k the number of group vectors of the batch assigned to entry k.
    """

    def __init__(self, codebook_size: int, dim: int, beta: float, decay: float, generator: torch.Generator):
        super().__init__()
        self.dim, self.beta, self.decay = dim, beta, decay
        init = torch.randn(codebook_size, dim, generator=generator, device=generator.device)
        self.register_buffer("codebook", init)
        self.register_buffer("ema_count", torch.ones(codebook_size, device=init.device))
        self.register_buffer("ema_sum", init.clone())

    @property
    def codebook_size(self) -> int:
        return int(self.codebook.shape[0])

    def _groups(self, y: Tensor) -> Tensor:
        return y.float().unflatten(-1, (-1, self.dim))  # [..., G, d]

    def assign(self, y: Tensor) -> Tensor:
        """Index [..., G] of the nearest codebook entry of each group of y [..., D]."""
        g = self._groups(y)
        dist = (g**2).sum(-1, keepdim=True) - 2 * g @ self.codebook.T + (self.codebook**2).sum(-1)
        return dist.argmin(-1)

    def forward(self, y: Tensor) -> Tensor:
        e = self.codebook[self.assign(y)].flatten(-2)
        return y.float() + (e - y.float()).detach()

    def indices(self, z: Tensor) -> Tensor:
        return self.assign(z)

    def commitment(self, y: Tensor) -> Tensor:
        """beta * mean ||y - sg(e)||^2 per channel: pulls the encoder towards its codes."""
        e = self.codebook[self.assign(y)].flatten(-2)
        return self.beta * ((y.float() - e.detach()) ** 2).mean()

    @torch.no_grad()
    def ema_update(self, y: Tensor) -> None:
        g = self._groups(y).reshape(-1, self.dim)
        idx = self.assign(y).reshape(-1)
        count = torch.bincount(idx, minlength=self.codebook_size).to(g.dtype)
        total = torch.zeros_like(self.ema_sum).index_add_(0, idx, g)
        self.ema_count.mul_(self.decay).add_(count, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(total, alpha=1 - self.decay)
        self.codebook.copy_(self.ema_sum / self.ema_count[:, None])


def make_quantizer(cfg, width: int, generator: torch.Generator) -> nn.Module:
    """The quantizer `cfg.quantizer_kind` names, for a latent of `width` channels."""
    kind = cfg.quantizer_kind
    if kind == "fsq":
        return FSQ(cfg.fsq_levels, symmetric=cfg.fsq_symmetric)
    if kind == "vq":
        return VectorQuantizer(cfg.vq_codebook_size, cfg.vq_dim, cfg.vq_beta, cfg.vq_decay, generator)
    if kind in ("simnorm", "l2"):
        return GroupNorm(kind, cfg.quant_group_dim)
    return Identity()
