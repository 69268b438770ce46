"""Layers whose buffers carry statistics (running mean and variance, counters), and how those buffers change:
never in place inside an update's pieces, but returned by the piece and written by the updater.

A layer computes the new value of one of its tensors and hands it to `write(self, name, value)`; it reads the
tensor with `read(self, name)`, which sees a value written earlier in the same piece (a layer called twice in
one loss computes as if the first call had written in place). What `write` does depends on where it runs:

* inside a piece of an update (`Updater.call` / `step`, iqrl/core/update.py), which runs the piece through
  `returning_writes`: the value is recorded and comes out of the piece beside its result; the updater then
  writes it into the tensor: eagerly after the call, after the compiled function (nothing in place inside
  it), or into the stacks of the K-seed mode (out of `vmap`, one value per seed);
* anywhere else (acting, a test calling a network): in place, at once, as nn.BatchNorm1d does.

So an agent built from these layers runs in every mode with no code of its own for its statistics. The K-seed
mode accepts a network's persistent buffers only in a `StatLayer` (anything else is refused when the group
is built, iqrl/multiseed/group.py), and reads a stat layer's buffers from each seed before each piece, so a
statistic an agent updates while acting (an observation normaliser) reaches the stacked copies too.

The layers: `BatchNorm` (nn.BatchNorm1d's maths over the last dimension), `BatchRenorm` (batch
renormalisation as CrossQ's code runs it) and `RunningNorm` (a running mean/variance observation normaliser,
SimbaV2's RSNorm). iqrl/nn/quantizers.py's VQ codebook EMA writes its statistics the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn


class _Local(threading.local):
    """Each thread's stack of open pieces: a dict per piece, (module, tensor name) -> the value written there.
    Every thread has the attribute from its first access: a compiled piece whose first call created it was
    guarded on its absence and compiled a second time on the next call (pieces.append in a piece)."""

    def __init__(self) -> None:
        self.pieces: list[dict] = []


_LOCAL = _Local()


def _pieces() -> list[dict]:
    return _LOCAL.pieces


def write(module: nn.Module, name: str, value: Tensor) -> None:
    """The new value of `module`'s tensor `name` (a buffer, or a parameter re-mapped after a step): recorded
    for the updater inside a piece, written in place at once outside one. Always detached."""
    pieces = _pieces()
    if pieces:
        pieces[-1][module, name] = value.detach()
    else:
        with torch.no_grad():
            getattr(module, name).copy_(value)


def read(module: nn.Module, name: str) -> Tensor:
    """`module`'s tensor `name` as the current piece has it: the value written last in this piece, else the
    tensor itself."""
    pieces = _pieces()
    if pieces and (module, name) in pieces[-1]:
        return pieces[-1][module, name]
    return getattr(module, name)


Writes = dict[tuple[nn.Module, str], Tensor]


def returning_writes(fn: Callable) -> Callable[..., tuple[Any, Writes]]:
    """fn as a piece: fn(*args, **kwargs) -> (its result, the tensors its layers wrote, by (module, name)).
    Nothing is written in place while it runs; the caller writes the values (`assign_writes` or the K-seed
    stacks)."""

    def piece(*args, **kwargs):
        writes: Writes = {}
        _pieces().append(writes)
        try:
            out = fn(*args, **kwargs)
        finally:
            _pieces().pop()
        return out, writes

    return piece


def assign_writes(writes: Writes, keep: Callable[[Tensor], bool] = lambda t: True) -> None:
    """Write the values a piece returned into their tensors (those for which `keep` holds)."""
    with torch.no_grad():
        for (module, name), value in writes.items():
            tensor = getattr(module, name)
            if keep(tensor):
                tensor.copy_(value)


class StatLayer(nn.Module):
    """A module whose persistent buffers change only through `write` (in a piece, or in place outside one).
    The K-seed mode runs the networks that hold their statistics in these."""


def _batch_moments(x: Tensor) -> tuple[Tensor, Tensor, int]:
    """Mean and biased variance over every dimension but the last (the features), and the number of rows."""
    dims = tuple(range(x.dim() - 1))
    n = x.numel() // x.shape[-1]
    return x.mean(dims), x.var(dims, correction=0), n


class _Normalisation(StatLayer):
    """What BatchNorm and BatchRenorm share: weight and bias, running mean and variance and a counter of
    training calls (`counter`), evaluation by the running statistics; `training_forward` is each one's own."""

    def __init__(self, num_features: int, eps: float, affine: bool, counter: str):
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer(counter, torch.zeros((), dtype=torch.long))

    def _normalise(self, x: Tensor, mean: Tensor, var: Tensor) -> Tensor:
        """(x - mean) * (weight / sqrt(var + eps)) + bias: Flax's `_normalize`, which CrossQ's layers run."""
        scale = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight
        y = (x - mean) * scale
        return y + self.bias if self.bias is not None else y

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return self._normalise(x, self.running_mean, self.running_var)
        return self.training_forward(x)

    def training_forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError


class BatchNorm(_Normalisation):
    """Batch normalisation over the last dimension (Ioffe & Szegedy 2015, arXiv 1502.03167), the maths of
    nn.BatchNorm1d: training normalises by the batch's mean and biased variance, and the running statistics
    move as r <- (1 - momentum) r + momentum b, with the unbiased batch variance (n / (n - 1) times the
    biased one; `unbiased=False`: the biased one, as Flax's BatchNorm); evaluation normalises by the running
    statistics. `num_batches_tracked` counts the training calls. Inputs [..., num_features]."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        unbiased: bool = True,
    ):
        super().__init__(num_features, eps, affine, "num_batches_tracked")
        self.momentum, self.unbiased = momentum, unbiased

    def training_forward(self, x: Tensor) -> Tensor:
        mean, var, n = _batch_moments(x)
        m = self.momentum
        sample_var = var * (n / (n - 1)) if self.unbiased and n > 1 else var
        write(self, "running_mean", (1 - m) * read(self, "running_mean") + m * mean)
        write(self, "running_var", (1 - m) * read(self, "running_var") + m * sample_var)
        write(self, "num_batches_tracked", read(self, "num_batches_tracked") + 1)
        return self._normalise(x, mean, var)


class BatchRenorm(_Normalisation):
    """Batch renormalisation (Ioffe 2017, arXiv 1702.03275) as CrossQ's code runs it (Bhatt et al., ICLR 2024,
    arXiv 1902.05605; github.com/adityab/CrossQ at a318a26, sbx/sac/policies.py `BatchRenorm`).

    Training, with the batch's mean m_B and biased variance v_B and the running (m, v):
        r = sg(clip(sqrt(v_B + eps) / sqrt(v + eps), 1/r_max, r_max)),
        d = sg(clip((m_B - m) / sqrt(v + eps), -d_max, d_max)),
        y = (x - m') / sqrt(v' + eps) * weight + bias,  m' = m_B - d sqrt(v_B) / r,  v' = v_B / r^2,
    which is the paper's (x - m_B) / sigma_B * r + d up to where eps enters; before `warmup_steps` training
    calls (`steps`), m' = m_B and v' = v_B (plain batch normalisation) while the running statistics build
    up. Then m <- momentum m + (1 - momentum) m_B, v <- momentum v + (1 - momentum) v_B, steps += 1.
    Evaluation normalises by (m, v). CrossQ's defaults: momentum 0.99 (its `bn_momentum`; the layer's own
    default 0.999 is not what it runs), eps 1e-3, r_max 3, d_max 5, warm-up 100,000 training calls. The
    paper's variants that CrossQ does not run (a running std instead of a variance, r_max and d_max relaxed
    gradually instead of a warm-up) are not offered. Inputs [..., num_features]."""

    def __init__(
        self,
        num_features: int,
        momentum: float = 0.99,
        eps: float = 1e-3,
        r_max: float = 3.0,
        d_max: float = 5.0,
        warmup_steps: int = 100_000,
        affine: bool = True,
    ):
        super().__init__(num_features, eps, affine, "steps")
        self.momentum, self.r_max, self.d_max, self.warmup_steps = momentum, r_max, d_max, warmup_steps

    def training_forward(self, x: Tensor) -> Tensor:
        mean, var, _ = _batch_moments(x)
        running_mean, running_var, steps = (read(self, k) for k in ("running_mean", "running_var", "steps"))
        running_std = torch.sqrt(running_var + self.eps)
        r = (torch.sqrt(var + self.eps) / running_std).detach().clamp(1 / self.r_max, self.r_max)
        d = ((mean - running_mean) / running_std).detach().clamp(-self.d_max, self.d_max)
        # a 0/1 weight rather than a branch on `steps`: one graph for compile and vmap, as CrossQ's jit
        warm = (steps >= self.warmup_steps).to(x.dtype)
        renorm_mean, renorm_var = mean - d * torch.sqrt(var) / r, var / r**2
        use_mean = warm * renorm_mean + (1 - warm) * mean
        use_var = warm * renorm_var + (1 - warm) * var
        m = self.momentum
        write(self, "running_mean", m * running_mean + (1 - m) * mean)
        write(self, "running_var", m * running_var + (1 - m) * var)
        write(self, "steps", steps + 1)
        return self._normalise(x, use_mean, use_var)


class RunningNorm(StatLayer):
    """A running mean/variance observation normaliser: SimbaV2's RSNorm (Lee et al. 2025, arXiv 2502.15280,
    section 4.1; github.com/dojeon-ai/SimbaV2 at 14fafb2, scale_rl/agents/wrappers/normalization.py and
    utils.py `RunningMeanStd`).

    forward(x) = (x - mean) / sqrt(var + eps), statistics unchanged (the same in training and evaluation).
    `update(x)` folds a batch x [n, D] (or one observation [D]) into them by the parallel algorithm of Chan
    et al.: with the batch's mean b and biased variance w, delta = b - mean, N' = N + n,
        mean <- mean + delta n / N',  var <- (var N + w n + delta^2 N n / N') / N',  N <- N'.
    Starts at mean 0, var 1 and N = 1e-4 (RunningMeanStd's epsilon), eps 1e-8 as SimbaV2's wrapper. SimbaV2
    updates it with every observation the agent acts on in training (seed steps included), before
    normalising that observation; its update batches are normalised by the statistics of that moment. An
    agent calls `update` where it acts: outside the update's pieces it writes in place (`write`)."""

    def __init__(self, num_features: int, eps: float = 1e-8, initial_count: float = 1e-4):
        super().__init__()
        self.eps = eps
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("var", torch.ones(num_features))
        # float64 as RunningMeanStd's Python float: a float32 count would drop the 1e-4 after ~1000 steps
        self.register_buffer("count", torch.full((), initial_count, dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / torch.sqrt(self.var + self.eps)

    def update(self, x: Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).to(self.mean.dtype)
        batch_mean, batch_var, n = _batch_moments(x)
        mean, var, count = (read(self, k) for k in ("mean", "var", "count"))
        total = count + n
        # the float64 count's factors rounded to float32 before they meet the float32 statistics, as NumPy
        # does with RunningMeanStd's Python floats
        ratio, count32, total32 = ((n / total).float(), count.float(), total.float())
        delta = batch_mean - mean
        m2 = var * count32 + batch_var * n + delta.square() * count32 * ratio
        write(self, "mean", mean + delta * ratio)
        write(self, "var", m2 / total32)
        write(self, "count", total)
