"""The latent's quantizer family (`agent.quantizer`): is it FSQ that keeps iQRL's latent from collapsing, or
any bounded or normalised latent? Every quantizer maps the encoder's output y [..., D] to the latent z
[..., D] of the same width, acting on contiguous groups of channels:

* `fsq`: finite scalar quantization (`FSQ` below; Mentzer et al. 2023, arXiv 2309.15505), groups of
  len(fsq_levels) channels, implicit codebook prod(levels), straight-through gradient. iQRL's own choice.
* `vq`: vector quantization (van den Oord et al. 2017, arXiv 1711.00937): groups of `vq_dim` channels each
  replaced by the nearest (L2) entry of one learned codebook of `vq_codebook_size` entries shared by the
  groups, straight-through z = y + sg(e - y). The encoder gets the commitment term beta ||y - sg(e)||^2;
  the codebook follows the exponential moving averages of the paper's appendix (decay `vq_decay`), returned
  to the updater as the statistics of iqrl/nn/stats.py are.
* `simnorm`: TD-MPC2's simplicial normalisation (Hansen et al. 2024, arXiv 2310.16828): a softmax over each
  group of `quant_group_dim` channels. Bounded and normalised, not discrete.
* `l2`: each group of `quant_group_dim` channels divided by its L2 norm (on the unit sphere). Not discrete.
* `none`: the identity (the paper's "no FSQ" ablation).

The discrete ones (`fsq`, `vq`) give code indices [..., G] and a codebook size for the active-codebook
diagnostic; the others give None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iqrl.nn.kernels import compiling_over_seeds
from iqrl.nn.stats import StatLayer, write

# --------------------------------------------------------------------------------------------------
# Finite Scalar Quantization (Mentzer et al. 2023), as used by iQRL (arXiv 2406.02696), and the symmetric
# bound of
# Parker et al. 2024 (arXiv 2411.19842); docs/fsq.md compares the two.
# --------------------------------------------------------------------------------------------------


class _BoundRound(torch.autograd.Function):
    """q = (round(tanh(y + s) h - o) - r) / w with the straight-through gradient dq/dy = (1 - tanh^2) h / w.

    The same values and gradients as `x + (x.round() - x).detach()` on x = tanh(y + s) h - o, less r, divided
    by w, in 5 elementwise passes instead of 8 forward and 4 backward, with no graph of intermediates: on CPU
    the FSQ of an iQRL update (3.4M latents) costs about 2.5x less. s, h, o, w, r are floats (all levels
    equal) or [c] tensors; r is None for the standard bound (no pass). Forward returns (q, tanh) so that the
    gradient can be taken under torch.func (the K-seed mode's vmap(grad)).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(y, shift, half_l, offset, half_width, recentre):
        t = torch.tanh(y + shift)
        q = (t * half_l).sub_(offset).round_()
        if recentre is not None:
            q = q.sub_(recentre)
        # the output out of place: torch 2.11's compile of a Function whose output an in-place op wrote
        # returns a zero gradient (the first GPU report, docs/performance.md; not so in torch 2.13)
        return q / half_width, t

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output[1])
        ctx.mark_non_differentiable(output[1])
        ctx.scale = inputs[2] / inputs[4]

    @staticmethod
    def backward(ctx, grad_q, _grad_t):
        (t,) = ctx.saved_tensors
        return grad_q * (1.0 - t * t).mul_(ctx.scale), None, None, None, None, None


def _bound_round_plain(y, shift, half_l, offset, half_width, recentre):
    """`_BoundRound` in plain operators: the same codes (the rounded values themselves, not x + (round(x) -
    x)) and straight-through gradient, where the Function cannot run (`compiling_over_seeds`)."""
    x = torch.tanh(y + shift) * half_l - offset
    q = x.detach().round() + (x - x.detach())
    if recentre is not None:
        q = q - recentre
    return q / half_width, None


class FSQ(nn.Module):
    """Implicit FSQ codebook with levels [L_1..L_c], applied to contiguous groups of c channels.

    forward(y [..., D]) -> q [..., D] with D = G*c, straight-through gradient, always in float32. Channel j of
    each group takes the values
      standard (Mentzer et al. 2023, arXiv 2309.15505): round(tanh(y + s_L) h_L - o_L) / floor(L/2), with
        h_L = (L-1)(1+eps)/2, o_L = 1/2 for even L (else 0), s_L = atanh(o_L / h_L): the L values
        (k - floor(L/2)) / floor(L/2), k = 0..L-1, which hold 0 and, for even L, -1 but not +1;
      symmetric (Parker et al. 2024, arXiv 2411.19842): 2 round((L-1)/2 (tanh(y) + 1)) / (L-1) - 1:
        the L values (2k - (L-1)) / (L-1), evenly spaced on [-1, 1] and symmetric about 0.
    For odd L both give the same values and codes (only the standard bound's eps differs). For L = 2 the
    standard shift s_2 = atanh(0.5 / 0.5005) ~ 3.8 sends every input above -3.8 to the code 0 (a constant
    latent at initialisation); the agents' configs refuse it unless `symmetric` (docs/fsq.md).
    Both are code = (k - c_L) / c_L for the digit k, with c_L = floor(L/2) (standard) or (L-1)/2
    (symmetric), which is what `indices` and `codes_from_indices` invert.
    """

    def __init__(self, levels: Sequence[int], eps: float = 1e-3, symmetric: bool = False):
        super().__init__()
        levels = [int(v) for v in levels]
        if not levels or min(levels) < 2:
            raise ValueError(f"FSQ levels must be a non-empty list of ints >= 2, got {levels}")
        lv = torch.tensor(levels, dtype=torch.float64)
        if symmetric:  # round((tanh(y) + 1) c) - c over c, c = (L-1)/2
            centre = (lv - 1) / 2
            half_l, offset, shift, half_width, recentre = (
                centre,
                -centre,
                torch.zeros_like(lv),
                centre,
                centre,
            )
        else:
            half_l = (lv - 1) * (1 + eps) / 2
            offset = torch.where(lv % 2 == 0, 0.5, 0.0).double()
            shift = torch.atanh(offset / half_l)
            half_width, recentre = torch.tensor([v // 2 for v in levels], dtype=torch.float64), None
        basis = torch.cumprod(torch.tensor([1] + levels[:-1], dtype=torch.int64), 0)
        self.levels = levels
        self.symmetric = symmetric
        self.register_buffer("_half_l", half_l.float(), persistent=False)
        self.register_buffer("_offset", offset.float(), persistent=False)
        self.register_buffer("_shift", shift.float(), persistent=False)
        self.register_buffer("_half_width", half_width.float(), persistent=False)  # c_L
        self.register_buffer("_recentre", None if recentre is None else recentre.float(), persistent=False)
        self.register_buffer("_basis", basis, persistent=False)
        # all levels equal (iQRL's [8, 8], [2]...): the per-channel constants as Python floats, so that the
        # elementwise passes need no broadcast over a 2-wide last dimension
        same = len(set(levels)) == 1
        constants = (self._shift, self._half_l, self._offset, self._half_width, self._recentre)
        self._scalars = tuple(None if b is None else b[0].item() for b in constants) if same else None

    @property
    def channels(self) -> int:
        return len(self.levels)

    @property
    def codebook_size(self) -> int:
        return int(math.prod(self.levels))

    def forward(self, y: Tensor) -> Tensor:
        """Codes in float32 whatever the input dtype: under bf16 autocast the codes stay exact (thirds of
        L = 6 are not bf16 values) for the losses and the residual dynamics; a following Linear casts them."""
        shape = y.shape
        bound_round = _bound_round_plain if compiling_over_seeds() else _BoundRound.apply
        if self._scalars is not None:
            q = bound_round(y.float(), *self._scalars)[0]
        else:
            g = y.float().reshape(*shape[:-1], -1, self.channels)
            q = bound_round(g, self._shift, self._half_l, self._offset, self._half_width, self._recentre)[0]
        return q.reshape(shape)

    def indices(self, q: Tensor) -> Tensor:
        """Code indices [..., G] in 0..K-1 of quantized values q [..., D] (mixed radix)."""
        g = q.float().reshape(*q.shape[:-1], -1, self.channels)
        digits = torch.round(g * self._half_width + self._half_width).long()
        return (digits * self._basis).sum(-1)

    def codes_from_indices(self, idx: Tensor) -> Tensor:
        """Inverse of `indices`: [..., G] -> [..., G*c]."""
        lv = torch.tensor(self.levels, device=idx.device)
        digits = (idx.unsqueeze(-1) // self._basis) % lv
        q = (digits.float() - self._half_width) / self._half_width
        return q.reshape(*idx.shape[:-1], -1)


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


class VectorQuantizer(StatLayer):
    """VQ with an EMA codebook; buffers (in checkpoints): codebook [K, d], ema_count [K], ema_sum [K, d].

    The EMA statistics start as one observation of each initial entry (count 1, sum = the entry), so every
    entry stays defined and an entry never chosen stays where it started:
        N_k <- decay N_k + (1 - decay) n_k,   m_k <- decay m_k + (1 - decay) sum_{i: k_i = k} y_i,
        e_k = m_k / N_k
    with n_k the number of group vectors of the batch assigned to entry k. `ema_update` returns them through
    `iqrl.nn.stats.write` (run as a piece of the update: the updater writes them, in every mode).
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
        """The EMA statistics and codebook after the batch y [..., D] (written, not changed in place)."""
        g = self._groups(y).reshape(-1, self.dim)
        idx = self.assign(y).reshape(-1)
        # counts by index_add rather than bincount, whose output size vmap cannot know: the same integers
        count = g.new_zeros(self.codebook_size).index_add(0, idx, g.new_ones(idx.shape))
        total = torch.zeros_like(self.ema_sum).index_add(0, idx, g)
        ema_count = torch.add(self.ema_count * self.decay, count, alpha=1 - self.decay)
        ema_sum = torch.add(self.ema_sum * self.decay, total, alpha=1 - self.decay)
        write(self, "ema_count", ema_count)
        write(self, "ema_sum", ema_sum)
        write(self, "codebook", ema_sum / ema_count[:, None])


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
