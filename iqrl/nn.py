"""Shared network building blocks: MLP, FSQ, vectorised ensembles, EMA, schedules.

Every agent builds from these, so an ablation that switches a block changes the same object in every
agent that uses it (STYLE.md, principle 2). Nothing here holds training state.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# --------------------------------------------------------------------------------------------------
# MLP block (TD-MPC2 style): hidden layers Linear -> LayerNorm -> Mish, final plain Linear.
# --------------------------------------------------------------------------------------------------


def init_linear_(module: nn.Module, init: str) -> None:
    """Initialise every nn.Linear in `module`: 'default' (PyTorch) or 'orthogonal' (gain 1, zero bias)."""
    if init == "default":
        return
    if init != "orthogonal":
        raise ValueError(f"unknown init {init!r}; valid: default, orthogonal")
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight)
            nn.init.zeros_(m.bias)


class ScalarHead(nn.Linear):
    """A Linear with a single output (a Q-value, value or reward head), computed in float32 even under bf16
    autocast (`precision=bf16`). A bf16 output would round Q ~ 200 to whole units (bf16 spacing is 1.0 on
    [128, 256]), as large as one step's reward on DMC, and the TD targets and errors with it. Costs nothing:
    one output column."""

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return F.linear(x.float(), self.weight, self.bias)


def out_linear(in_dim: int, out_dim: int) -> nn.Linear:
    """The output layer of an MLP: a float32 `ScalarHead` for one output, else a plain Linear."""
    return ScalarHead(in_dim, 1) if out_dim == 1 else nn.Linear(in_dim, out_dim)


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, init: str = "default") -> nn.Sequential:
    """NormedMLP(in, hidden, out): per hidden width Linear -> LayerNorm -> Mish, then a plain Linear."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [nn.Linear(d, h), nn.LayerNorm(h), nn.Mish()]
        d = h
    layers.append(out_linear(d, out_dim))
    net = nn.Sequential(*layers)
    init_linear_(net, init)
    return net


def elu_mlp(in_dim: int, hidden: Sequence[int], out_dim: int, init: str = "orthogonal") -> nn.Sequential:
    """EluMLP(in, hidden, out) (TCRL, baselines spec §1.1): per hidden width Linear -> ELU, then a plain Linear."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ELU()]
        d = h
    layers.append(out_linear(d, out_dim))
    net = nn.Sequential(*layers)
    init_linear_(net, init)
    return net


def truncated_normal_sample(mu: Tensor, std: float, generator: torch.Generator, clip: float | None = None,
                            eps: float = 1e-6) -> Tensor:
    """TCRL's truncated-normal policy sample (baselines spec §1.6): mu + clip(std * N(0, 1), -clip, clip),
    then clamped to [-1 + eps, 1 - eps] with a straight-through gradient (backward as if not clamped).

    clip=None leaves the noise unclipped (TCRL's exploration); std may be 0 (then it returns mu, clamped).
    """
    noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype) * std
    if clip is not None:
        noise = noise.clamp(-clip, clip)
    x = mu + noise
    return x - x.detach() + x.clamp(-1.0 + eps, 1.0 - eps).detach()  # forward: exactly the clamped value


# --------------------------------------------------------------------------------------------------
# Vectorised ensemble of MLPs: E members evaluated with one batched matmul per layer.
# --------------------------------------------------------------------------------------------------


class EnsembleLinear(nn.Module):
    """E independent Linear layers. Input [E, B, in] (or [B, in], shared by all), output [E, B, out].
    With a single output (the critics' Q) it computes in float32 under autocast, as `ScalarHead`."""

    def __init__(self, n: int, in_dim: int, out_dim: int, init: str = "default"):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim))
        bound = 1.0 / math.sqrt(in_dim)  # what nn.Linear's default init gives for weight and bias
        for k in range(n):
            if init == "orthogonal":
                nn.init.orthogonal_(self.weight.data[k].T)
                nn.init.zeros_(self.bias.data[k])
            else:
                nn.init.uniform_(self.weight.data[k], -bound, bound)
                nn.init.uniform_(self.bias.data[k], -bound, bound)

    def forward(self, x: Tensor, members: Tensor | None = None) -> Tensor:
        if self.weight.shape[-1] == 1:
            with torch.autocast(x.device.type, enabled=False):
                return self._forward(x.float(), members)
        return self._forward(x, members)

    def _forward(self, x: Tensor, members: Tensor | None) -> Tensor:
        w, b = (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
        if x.dim() == 2:
            return torch.baddbmm(b, x.unsqueeze(0).expand(w.shape[0], -1, -1), w)
        return torch.baddbmm(b, x, w)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm with a separate affine per ensemble member. Input [E, B, d]."""

    def __init__(self, n: int, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n, 1, dim))
        self.bias = nn.Parameter(torch.zeros(n, 1, dim))
        self.eps = eps

    def forward(self, x: Tensor, members: Tensor | None = None) -> Tensor:
        w, b = (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
        return F.layer_norm(x, x.shape[-1:], eps=self.eps) * w + b


class EnsembleMLP(nn.Module):
    """E independent NormedMLPs evaluated together (e.g. a critic ensemble).

    forward(x [B, in]) -> [E, B, out]; `members` (LongTensor of indices) evaluates only a subset,
    which is how a random pair of target critics is computed without running all of them.
    """

    def __init__(self, n: int, in_dim: int, hidden: Sequence[int], out_dim: int, init: str = "default"):
        super().__init__()
        self.n = n
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        d = in_dim
        for h in hidden:
            self.linears.append(EnsembleLinear(n, d, h, init))
            self.norms.append(EnsembleLayerNorm(n, h))
            d = h
        self.out = EnsembleLinear(n, d, out_dim, init)

    def forward(self, x: Tensor, members: Tensor | None = None) -> Tensor:
        for lin, norm in zip(self.linears, self.norms):
            x = F.mish(norm(lin(x, members), members))
        return self.out(x, members)


# --------------------------------------------------------------------------------------------------
# Finite Scalar Quantization (Mentzer et al. 2023), as used by iQRL (arXiv 2406.02696), and the symmetric bound of
# Parker et al. 2024 (arXiv 2411.19842); docs/fsq.md compares the two.
# --------------------------------------------------------------------------------------------------


class _BoundRound(torch.autograd.Function):
    """q = (round(tanh(y + s) h - o) - r) / w with the straight-through gradient dq/dy = (1 - tanh^2) h / w.

    The same values and gradients as `x + (x.round() - x).detach()` on x = tanh(y + s) h - o, less r, divided by w,
    in 5 elementwise passes instead of 8 forward and 4 backward, with no graph of intermediates: on CPU the FSQ of
    an iQRL update (3.4M latents) costs about 2.5x less. s, h, o, w, r are floats (all levels equal) or [c]
    tensors; r is None for the standard bound (no pass). Forward returns (q, tanh) so that the gradient can be
    taken under torch.func (the K-seed mode's vmap(grad)).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(y, shift, half_l, offset, half_width, recentre):
        t = torch.tanh(y + shift)
        q = (t * half_l).sub_(offset).round_()
        if recentre is not None:
            q = q.sub_(recentre)
        return q.div_(half_width), t

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output[1])
        ctx.mark_non_differentiable(output[1])
        ctx.scale = inputs[2] / inputs[4]

    @staticmethod
    def backward(ctx, grad_q, _grad_t):
        (t,) = ctx.saved_tensors
        return grad_q * (1.0 - t * t).mul_(ctx.scale), None, None, None, None, None


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
            half_l, offset, shift, half_width, recentre = centre, -centre, torch.zeros_like(lv), centre, centre
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
        if self._scalars is not None:
            q = _BoundRound.apply(y.float(), *self._scalars)[0]
        else:
            g = y.float().reshape(*shape[:-1], -1, self.channels)
            q = _BoundRound.apply(g, self._shift, self._half_l, self._offset, self._half_width, self._recentre)[0]
        return q.reshape(shape)

    def indices(self, q: Tensor) -> Tensor:
        """Code indices [..., G] in 0..K-1 of quantized values q [..., D] (mixed radix, spec §4.3)."""
        g = q.float().reshape(*q.shape[:-1], -1, self.channels)
        digits = torch.round(g * self._half_width + self._half_width).long()
        return (digits * self._basis).sum(-1)

    def codes_from_indices(self, idx: Tensor) -> Tensor:
        """Inverse of `indices`: [..., G] -> [..., G*c]."""
        lv = torch.tensor(self.levels, device=idx.device)
        digits = (idx.unsqueeze(-1) // self._basis) % lv
        q = (digits.float() - self._half_width) / self._half_width
        return q.reshape(*idx.shape[:-1], -1)


#: Last-dimension sizes up to this use the transposed layout on CPU (see `softmax_last`).
SHORT_LAST_DIM = 128


def _transposed(x: Tensor) -> bool:
    return x.device.type == "cpu" and x.dim() >= 2 and x.shape[-1] <= SHORT_LAST_DIM


def softmax_last(x: Tensor) -> Tensor:
    """F.softmax(x, -1). On CPU with a short last dimension (DCWM's 15 codes per slot, MR.Q's 65 bins)
    it runs on a class-major copy: PyTorch's CPU kernel vectorises along the innermost dimension only, so
    a softmax over 15 contiguous classes is ~25x slower than the same softmax over a strided dimension
    with a long contiguous inner one. Same maths; the sum may round in another order (~1 ulp)."""
    if _transposed(x):
        return F.softmax(x.transpose(-1, -2).contiguous(), -2).transpose(-1, -2)
    return F.softmax(x, -1)


def log_softmax_last(x: Tensor) -> Tensor:
    """F.log_softmax(x, -1), with the layout of `softmax_last` on CPU (~10x faster for 15 classes)."""
    if _transposed(x):
        return F.log_softmax(x.transpose(-1, -2).contiguous(), -2).transpose(-1, -2)
    return F.log_softmax(x, -1)


def cross_entropy_last(logits: Tensor, target: Tensor) -> Tensor:
    """Per-element cross-entropy [...] of logits [..., K] against class indices [...] (no reduction)."""
    return -log_softmax_last(logits).gather(-1, target.unsqueeze(-1)).squeeze(-1)


def gumbel_noise(like: Tensor, generator: torch.Generator) -> Tensor:
    """Gumbel(0, 1) noise shaped like `like`: -log(-log(U)), U ~ Uniform(0, 1) drawn from `generator`.

    Drawn by inversion from uniforms, which PyTorch's CPU generator makes ~6x faster than `exponential_`
    (F.gumbel_softmax's route). U = 0 (probability 2^-24 per draw) is clamped to the smallest normal
    float, so the noise is always finite (at least -4.47)."""
    g = torch.rand(like.shape, generator=generator, device=like.device, dtype=torch.float32)
    return g.clamp_min_(torch.finfo(torch.float32).tiny).log_().neg_().log_().neg_().to(like.dtype)


def gumbel_softmax_st(logits: Tensor, generator: torch.Generator, tau: float = 1.0) -> Tensor:
    """Straight-through Gumbel-softmax over the last dimension (DCWM, baselines spec §1.6).

    Forward: the one-hot of argmax(logits + g), g ~ Gumbel(0, 1) drawn from `generator`; backward: the
    gradient of softmax((logits + g) / tau). Same maths as F.gumbel_softmax(hard=True), with an explicit
    generator so that runs resume bit for bit.
    """
    noisy = logits + gumbel_noise(logits, generator)
    y_soft = softmax_last(noisy if tau == 1.0 else noisy / tau)
    y_hard = torch.zeros_like(y_soft).scatter_(-1, y_soft.detach().max(-1, keepdim=True).indices, 1.0)
    return y_hard + (y_soft - y_soft.detach())


# --------------------------------------------------------------------------------------------------
# Target networks and schedules
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
def ema_update_(target: Iterable[Tensor], online: Iterable[Tensor], tau: float) -> None:
    """Polyak update in place: target <- (1 - tau) * target + tau * online."""
    t, o = list(target), list(online)
    torch._foreach_lerp_(t, o, tau)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy with gradients switched off (target networks)."""
    import copy

    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target


def adam(params, lr: float, weight_decay: float = 0.0, decoupled: bool = False) -> torch.optim.Optimizer:
    """Adam (or AdamW when `decoupled`) with the fused single-kernel implementation.

    Same maths as the default implementation; one fused kernel per step instead of ~10 elementwise
    passes over every parameter tensor (the optimizer was a large share of a CPU update).
    """
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    return cls(params, lr=lr, weight_decay=weight_decay, fused=True)


def linear_decay(start: float, end: float, duration: float, step: float) -> float:
    """TCRL's `linear(init, final, duration)`: start + (end - start) * clip(step / duration, 0, 1)."""
    mix = min(max(step / duration, 0.0), 1.0)
    return float(start + (end - start) * mix)


def linear_schedule(start: float, end: float, n: int, index: int) -> float:
    """Value `index` of linspace(start, end, n), saturating at the end (iQRL's exploration schedule)."""
    if n <= 1:
        return float(end)
    i = min(max(index, 0), n - 1)
    return float(start + (end - start) * i / (n - 1))


@torch.no_grad()
def hard_update_(target: Iterable[Tensor], online: Iterable[Tensor]) -> None:
    """Hard target update in place: target <- online (TD7 and MR.Q every 250 steps)."""
    torch._foreach_copy_(list(target), list(online))


@contextmanager
def no_param_grad(*modules: nn.Module):
    """Inside the block the modules' parameters get no gradient; the input still does.

    For objectives that differentiate through a network that is not being trained by them (an actor
    loss through the critic and a state-action encoder): no gradient is computed or left on it.
    """
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


# --------------------------------------------------------------------------------------------------
# Small blocks of the baselines (spec §1.1, §1.6)
# --------------------------------------------------------------------------------------------------


def avg_l1_norm(x: Tensor, eps: float = 1e-8) -> Tensor:
    """AvgL1Norm (TD7): x / max(mean_i |x_i|, eps), over the last dimension."""
    return x / x.abs().mean(-1, keepdim=True).clamp(min=eps)


def add_clipped_noise(action: Tensor, std: float, clip: float | None, generator: torch.Generator) -> Tensor:
    """clamp(a + clip(N(0, std^2), -clip, clip), -1, 1); clip=None leaves the noise unclipped.

    Exploration (clip None) and TD3 target-policy smoothing (clip 0.3 or 0.5) of the TD7 and MR.Q agents.
    """
    noise = torch.randn(action.shape, generator=generator, device=action.device, dtype=action.dtype) * std
    if clip is not None:
        noise = noise.clamp(-clip, clip)
    return (action + noise).clamp(-1.0, 1.0)


def symexp(x: Tensor) -> Tensor:
    return torch.sign(x) * (torch.exp(x.abs()) - 1.0)


def two_hot_bins(lower: float = -10.0, upper: float = 10.0, n: int = 65, device=None) -> Tensor:
    """MR.Q reward bins: symexp(linspace(lower, upper, n)) [n]."""
    return symexp(torch.linspace(lower, upper, n, device=device))


def two_hot(y: Tensor, bins: Tensor) -> Tensor:
    """Two-hot encoding [..., n] of scalars y [...] on sorted bins [n].

    y lands in b_k <= y < b_{k+1} and gets weights (1 - w, w) on bins (k, k+1), w = (y - b_k) /
    (b_{k+1} - b_k); values outside [b_0, b_{n-1}] saturate onto the end bin.
    """
    n = bins.shape[0]
    k = (torch.searchsorted(bins, y.contiguous(), right=True) - 1).clamp(0, n - 2)
    lo, hi = bins[k], bins[k + 1]
    w = ((y - lo) / (hi - lo)).clamp(0.0, 1.0)
    out = torch.zeros(*y.shape, n, device=y.device, dtype=bins.dtype)
    out.scatter_(-1, k.unsqueeze(-1), (1.0 - w).unsqueeze(-1))
    out.scatter_add_(-1, (k + 1).unsqueeze(-1), w.unsqueeze(-1))
    return out


def two_hot_decode(logits: Tensor, bins: Tensor) -> Tensor:
    """Expected value sum_j softmax(logits)_j b_j, [..., n] -> [...]."""
    return (softmax_last(logits) * bins).sum(-1)


def two_hot_cross_entropy(logits: Tensor, y: Tensor, bins: Tensor) -> Tensor:
    """Per-sample cross-entropy [...] between two_hot(y) and log_softmax(logits [..., n])."""
    return -(two_hot(y, bins) * log_softmax_last(logits)).sum(-1)
