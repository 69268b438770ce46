"""Pure tensor functions, each written once: softmax layouts, Gumbel sampling, clipped noise, target
updates, schedules, two-hot encodings. No parameters and no training state (`iqrl/nn/layers.py` has the
blocks with parameters; the n-step targets live with the replay, `iqrl/core/replay.py`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

# --------------------------------------------------------------------------------------------------
# Softmax over a short last dimension, cross-entropy, Gumbel sampling
# --------------------------------------------------------------------------------------------------

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


def gumbel_noise(shape, generator: torch.Generator, device=None, dtype=torch.float32) -> Tensor:
    """Gumbel(0, 1) noise of `shape`: -log(-log(U)), U ~ Uniform(0, 1) drawn (in float32) from `generator`.

    Drawn by inversion from uniforms, which PyTorch's CPU generator makes ~6x faster than `exponential_`
    (F.gumbel_softmax's route). U = 0 (probability 2^-24 per draw) is clamped to the smallest normal
    float, so the noise is always finite (at least -4.47)."""
    g = torch.rand(shape, generator=generator, device=device, dtype=torch.float32)
    return g.clamp_min_(torch.finfo(torch.float32).tiny).log_().neg_().log_().neg_().to(dtype)


def gumbel_softmax(logits: Tensor, noise: Tensor, tau: float = 1.0) -> Tensor:
    """Gumbel-softmax over the last dimension, softmax((logits + g) / tau) with g = `noise` (Gumbel(0, 1),
    `gumbel_noise`, drawn before the call so that the function is pure): F.gumbel_softmax(hard=False) with
    the noise from an explicit generator (MR.Q's discrete actor). Its argmax is a sample of softmax(logits)
    whatever tau (the Gumbel-max trick)."""
    noisy = logits + noise.to(logits.dtype)
    return softmax_last(noisy if tau == 1.0 else noisy / tau)


def gumbel_softmax_st(logits: Tensor, noise: Tensor, tau: float = 1.0) -> Tensor:
    """Straight-through Gumbel-softmax over the last dimension (DC-MPC's dynamics rollout).

    Forward: the one-hot of argmax(logits + g), g = `noise` (Gumbel(0, 1), `gumbel_noise`, drawn before
    the call so that the function is pure); backward: the gradient of `gumbel_softmax`,
    softmax((logits + g) / tau). Same maths as F.gumbel_softmax(hard=True), with the noise from an explicit
    generator so that runs resume bit for bit.
    """
    y_soft = gumbel_softmax(logits, noise, tau)
    y_hard = torch.zeros_like(y_soft).scatter_(-1, y_soft.detach().max(-1, keepdim=True).indices, 1.0)
    return y_hard + (y_soft - y_soft.detach())


# --------------------------------------------------------------------------------------------------
# Noise on actions
# --------------------------------------------------------------------------------------------------


def add_clipped_noise(action: Tensor, std: float, clip: float | None, generator: torch.Generator) -> Tensor:
    """`noisy_action` with N(0, std^2) noise drawn here from `generator`: exploration (clip None) of the TD3,
    TD7, MR.Q and DC-MPC agents."""
    noise = torch.randn(action.shape, generator=generator, device=action.device, dtype=action.dtype) * std
    return noisy_action(action, noise, clip)


def noisy_action(action: Tensor, noise: Tensor, clip: float | None) -> Tensor:
    """clamp(a + clip(noise, -clip, clip), -1, 1); clip=None leaves the noise unclipped. With the noise drawn
    beforehand: TD3's target-policy smoothing (clip 0.3 or 0.5) in an update."""
    if clip is not None:
        noise = noise.clamp(-clip, clip)
    return (action + noise).clamp(-1.0, 1.0)


def one_hot(index: Tensor, n: int, dtype=torch.float32) -> Tensor:
    """[..., n] one-hot vectors of int64 indices [...] (a comparison with arange(n), so that it runs under
    vmap and torch.compile as any elementwise op)."""
    return (index.unsqueeze(-1) == torch.arange(n, device=index.device)).to(dtype)


def gumbel_action(
    logits: Tensor, gumbel: Tensor, tau: float, noise: Tensor | None, clip: float | None
) -> Tensor:
    """MR.Q's discrete action from an actor's logits [..., n] (facebookresearch/MRQ at 8a44a7d, `models.py`
    Policy, `MRQ.py` select_action and realign): int64 indices argmax(gumbel_softmax(logits, g, tau) +
    clip(noise, -clip, clip)) [...]. With N(0, sigma^2) noise (clip None) the behaviour action; with the
    target-policy smoothing noise (clip c) the bootstrap action (one-hot it for the critic); with no noise a
    sample of softmax(logits)."""
    soft = gumbel_softmax(logits, gumbel, tau)
    if noise is not None:
        soft = soft + (noise if clip is None else noise.clamp(-clip, clip))
    return soft.argmax(-1)


def truncated_normal_sample(
    mu: Tensor, std: float, generator: torch.Generator, clip: float | None = None, eps: float = 1e-6
) -> Tensor:
    """TCRL's (and DrQ-v2's) truncated-normal policy sample: `clipped_sample` of mu with the noise
    std * N(0, 1) [*mu.shape] drawn here from `generator`; clip=None leaves the noise unclipped (TCRL's
    exploration); std may be 0 (then it returns mu, clamped)."""
    normal = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return clipped_sample(mu, normal * std, clip, eps)


def clipped_sample(mu: Tensor, noise: Tensor, clip: float | None = None, eps: float = 1e-6) -> Tensor:
    """mu + clip(noise, -clip, clip), then clamped to [-1 + eps, 1 - eps] with a straight-through gradient
    (backward as if not clamped): the truncated-normal sample of a noise drawn beforehand (an update's
    draws)."""
    if clip is not None:
        noise = noise.clamp(-clip, clip)
    x = mu + noise
    return x - x.detach() + x.clamp(-1.0 + eps, 1.0 - eps).detach()  # forward: exactly the clamped value


# --------------------------------------------------------------------------------------------------
# Target networks and schedules
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
def ema_update_(target: Iterable[Tensor], online: Iterable[Tensor], tau: float) -> None:
    """Polyak update in place: target <- (1 - tau) * target + tau * online."""
    t, o = list(target), list(online)
    torch._foreach_lerp_(t, o, tau)


@torch.no_grad()
def hard_update_(target: Iterable[Tensor], online: Iterable[Tensor]) -> None:
    """Hard target update in place: target <- online (TD7 and MR.Q every 250 steps)."""
    torch._foreach_copy_(list(target), list(online))


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


# --------------------------------------------------------------------------------------------------
# Small blocks of the baselines: AvgL1Norm (TD7), symexp and two-hot (MR.Q)
# --------------------------------------------------------------------------------------------------


def avg_l1_norm(x: Tensor, eps: float = 1e-8) -> Tensor:
    """AvgL1Norm (TD7): x / max(mean_i |x_i|, eps), over the last dimension."""
    return x / x.abs().mean(-1, keepdim=True).clamp(min=eps)


def symlog(x: Tensor) -> Tensor:
    """sign(x) log(1 + |x|) (DreamerV3; DC-MPC's reward scaling on MyoSuite)."""
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: Tensor) -> Tensor:
    """The inverse of symlog: sign(x) (exp(|x|) - 1)."""
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
    out = torch.zeros(*y.shape, n, device=y.device, dtype=bins.dtype)  # out of place: vmap-able (K-seed mode)
    out = out.scatter(-1, k.unsqueeze(-1), (1.0 - w).unsqueeze(-1))
    return out.scatter_add(-1, (k + 1).unsqueeze(-1), w.unsqueeze(-1))


def two_hot_decode(logits: Tensor, bins: Tensor) -> Tensor:
    """Expected value sum_j softmax(logits)_j b_j, [..., n] -> [...]."""
    return (softmax_last(logits) * bins).sum(-1)


def two_hot_cross_entropy(logits: Tensor, y: Tensor, bins: Tensor) -> Tensor:
    """Per-sample cross-entropy [...] between two_hot(y) and log_softmax(logits [..., n])."""
    return -(two_hot(y, bins) * log_softmax_last(logits)).sum(-1)


def two_hot_mean(logits: Tensor, bins: Tensor) -> Tensor:
    """Expected value sum_j softmax(logits)_j b_j [...] of logits [..., n] on bins [n] mirrored about 0,
    summed in mirrored pairs from the middle outward: exactly 0 for uniform probabilities (DreamerV3's
    `TwoHot.pred`, embodied/jax/outs.py at danijar/dreamerv3@e3f0224: with bins up to symexp(20) ~ 5e8 a
    left-to-right sum leaves a rounding error of hundreds where the value is 0)."""
    p = softmax_last(logits) * bins
    m = bins.shape[0] // 2
    lower, upper = p[..., :m].flip(-1), p[..., bins.shape[0] - m :]
    pairs = (lower + upper).sum(-1)
    return pairs + p[..., m] if bins.shape[0] % 2 else pairs


def percentile(sorted_x: Tensor, p: float) -> Tensor:
    """The p-th percentile of a sorted 1-d tensor [N] by linear interpolation between the order statistics
    at positions p (N - 1) / 100 (numpy's and jnp.percentile's default); a fixed-shape gather, so it runs
    under vmap and torch.compile."""
    n = sorted_x.shape[0]
    pos = p * (n - 1) / 100.0
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    return sorted_x[lo] * (1.0 - (pos - lo)) + sorted_x[hi] * (pos - lo)


# --------------------------------------------------------------------------------------------------
# DreamerV3's distributions and returns (github.com/danijar/dreamerv3 at e3f0224)
# --------------------------------------------------------------------------------------------------


def symexp_bins(n: int = 255, limit: float = 20.0, device=None) -> Tensor:
    """DreamerV3's two-hot bins [n] (embodied/jax/heads.py `Head.symexp_twohot`): the negative half
    symexp(linspace(-limit, 0, k)) (k = (n + 1) / 2 for odd n, n / 2 for even n) and its mirror, the middle 0
    not repeated. Evenly spaced in symlog space; the two-hot encoding and the mean are taken in raw space."""
    half = symexp(torch.linspace(-limit, 0.0, (n + 1) // 2 if n % 2 else n // 2, device=device))
    return torch.cat([half, -half[: -1 if n % 2 else None].flip(0)])


def unimix_logits(logits: Tensor, mix: float) -> Tensor:
    """log((1 - mix) softmax(logits) + mix / n) over the last dimension [..., n]: a categorical mixed with
    `mix` of the uniform (DreamerV3's "unimix", `outs.Categorical`); mix 0 leaves the logits as they are."""
    if not mix:
        return logits
    probs = softmax_last(logits)
    return torch.log((1.0 - mix) * probs + mix / logits.shape[-1])


def categorical_index(probs: Tensor, u: Tensor) -> Tensor:
    """A draw [...] (int64) from the categorical probs [..., n] by inverting its distribution function at u
    [...] ~ U[0, 1) (drawn beforehand): the number of cumulative probabilities below u times their total,
    at most n - 1."""
    c = probs.cumsum(-1)
    return (c < u.unsqueeze(-1) * c[..., -1:]).sum(-1).clamp(max=probs.shape[-1] - 1)


def straight_through_one_hot(index: Tensor, probs: Tensor) -> Tensor:
    """The one-hot of `index` [...] as [..., n] with the gradient of `probs` [..., n] (straight-through:
    DreamerV3's `OneHot._onehot_with_grad`)."""
    return one_hot(index, probs.shape[-1], probs.dtype) + (probs - probs.detach())


def categorical_kl(logits_p: Tensor, logits_q: Tensor) -> Tensor:
    """KL(p || q) [...] of two categoricals given by their logits [..., n] (`outs.Categorical.kl`)."""
    log_p, log_q = log_softmax_last(logits_p), log_softmax_last(logits_q)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def categorical_entropy(logits: Tensor) -> Tensor:
    """The entropy [...] of a categorical given by its logits [..., n]."""
    log_p = log_softmax_last(logits)
    return -(log_p.exp() * log_p).sum(-1)


def lambda_return(last: Tensor, term: Tensor, rew: Tensor, boot: Tensor, disc: float, lam: float) -> Tensor:
    """DreamerV3's lambda-returns (dreamerv3/agent.py `lambda_return`), time on dimension 1: inputs [B, T] ->
    R [B, T - 1] with R_{T-1} bootstrapped from boot_{T-1} and, backwards,
      R_t = r_{t+1} + g_{t+1} ((1 - c_{t+1}) boot_{t+1} + c_{t+1} R_{t+1}),
    g = disc (1 - term) the discount into step t+1, c = lam (1 - last). (The code's signature also takes the
    values, unused: what it bootstraps from is `boot`.)"""
    live = (1.0 - term.float())[:, 1:] * disc
    cont = (1.0 - last.float())[:, 1:] * lam
    interm = rew[:, 1:] + (1.0 - cont) * live * boot[:, 1:]
    rets = [boot[:, -1]]
    for t in reversed(range(live.shape[1])):
        rets.append(interm[:, t] + live[:, t] * cont[:, t] * rets[-1])
    return torch.stack(rets[::-1][:-1], 1)


# --------------------------------------------------------------------------------------------------
# The tanh-squashed Gaussian policy of SAC and its descendants (SAC, SAC+AE, BRO, SimbaV2, CrossQ)
# --------------------------------------------------------------------------------------------------

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def soft_bounded(s: Tensor, low: float, high: float) -> Tensor:
    """low + (high - low) (tanh(s) + 1) / 2: a log-std in (low, high), SAC+AE's soft bound (also BRO's and
    SimbaV2's policies)."""
    return low + 0.5 * (high - low) * (torch.tanh(s) + 1.0)


def tanh_log_det(u: Tensor) -> Tensor:
    """log(1 - tanh(u)^2) elementwise, computed stably as 2 (log 2 - u - softplus(-2u))."""
    return 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))


def tanh_gaussian(mu: Tensor, log_std: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
    """a = tanh(u), u = mu + exp(log_std) eps (eps ~ N(0, 1), reparameterised), and log pi(a) [...] summed
    over the last dimension with the change of variables: sum_i log N(u_i; mu_i, sigma_i) - log(1 -
    tanh(u_i)^2)."""
    u = mu + log_std.exp() * eps
    log_prob = (-0.5 * eps**2 - log_std - _LOG_SQRT_2PI - tanh_log_det(u)).sum(-1)
    return torch.tanh(u), log_prob


# --------------------------------------------------------------------------------------------------
# Distributional critics: SimbaV2's categorical TD target, BRO's quantile regression
# --------------------------------------------------------------------------------------------------


def categorical_projection(probs: Tensor, atoms: Tensor, lower: float, upper: float) -> Tensor:
    """C51's projection (Bellemare et al. 2017, arXiv 1707.06887): a distribution with probabilities `probs`
    [..., n] on the atoms `atoms` [..., n] (say r + gamma z_j) -> probabilities [..., n] on the n evenly
    spaced bins z_i of [lower, upper]. Each atom is clipped into [lower, upper] and its mass split between its
    two neighbouring bins in proportion to its distance from each (all of it on a bin it sits on exactly):
    m_i = sum_j p_j max(0, 1 - |b_j - i|), b_j = (clip(z_j) - lower) / spacing. SimbaV2's
    `categorical_td_loss` (dojeon-ai/SimbaV2 at 14fafb2) computes the same split with floor and ceil; here
    out of place, one product, so the K-seed mode can vmap it."""
    n = probs.shape[-1]
    spacing = (upper - lower) / (n - 1)
    b = (atoms.clamp(lower, upper) - lower) / spacing  # [..., n], fractional bin positions
    bins = torch.arange(n, device=atoms.device, dtype=atoms.dtype)
    weight = (1.0 - (b.unsqueeze(-1) - bins).abs()).clamp(min=0.0)  # [..., n, n], the triangular split
    return (probs.unsqueeze(-2) @ weight).squeeze(-2)


def categorical_cross_entropy(log_probs: Tensor, target_probs: Tensor) -> Tensor:
    """-mean_b sum_i q_i log p_i of predicted log-probabilities [B, n] against target probabilities [B, n]
    (held fixed: the target carries no gradient)."""
    return -(target_probs.detach() * log_probs).sum(-1).mean()


def quantile_midpoints(n: int, device=None) -> Tensor:
    """tau_i = (2i + 1) / 2n, i = 0..n-1: the quantile levels a critic with n outputs regresses (QR-DQN,
    Dabney et al. 2018, arXiv 1710.10044; BRO's `quantile_taus`)."""
    return (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n


def quantile_huber_loss(pred: Tensor, target: Tensor, taus: Tensor, kappa: float = 1.0) -> Tensor:
    """QR-DQN's quantile Huber loss as BRO computes it (naumix/BiggerRegularizedOptimistic at 5870a13,
    `calculate_quantile_huber_loss`): predicted quantiles [B, N] at levels taus [N], target samples [B, M]
    (held fixed); u_ij = y_j - theta_i,
    L = mean_{b, j} sum_i |tau_i - 1{u_ij < 0}| Huber_kappa(u_ij) / kappa."""
    u = target.detach().unsqueeze(-2) - pred.unsqueeze(-1)  # [B, N, M]
    huber = torch.where(u.abs() <= kappa, 0.5 * u**2, kappa * (u.abs() - 0.5 * kappa))
    weight = (taus.unsqueeze(-1) - (u < 0).to(u.dtype)).abs()
    return (weight * huber / kappa).sum(-2).mean()


# --------------------------------------------------------------------------------------------------
# Image augmentation
# --------------------------------------------------------------------------------------------------


def shift_offsets(n: int, pad: int, generator: torch.Generator) -> Tensor:
    """n integer (dy, dx) offsets, each uniform in 0..2*pad: the draws of `random_shift`, [n, 2]."""
    return torch.randint(2 * pad + 1, (n, 2), generator=generator, device=generator.device)


def random_shift(images: Tensor, pad: int, offsets: Tensor) -> Tensor:
    """DrQ's random shift (Kostrikov et al. 2020, arXiv 2004.13649; Yarats et al. 2021, arXiv 2107.09645):
    each image [N, C, H, W] padded by `pad` pixels repeating its border, then the H x W window at its
    `offsets` [N, 2] (dy, dx in 0..2 pad, from `shift_offsets`) cut out, so the picture moves by at most
    `pad` pixels each way and every channel (every frame of a stack) moves together. Integer shifts, as
    DrQ's crop; DrQ-v2's bilinear grid sample at integer offsets gives the same pixels. Keeps the dtype."""
    _, _, h, w = images.shape
    padded = F.pad(images.float(), (pad, pad, pad, pad), mode="replicate").to(images.dtype)
    return _windows(padded, h, w, offsets)


def crop_offsets(n: int, size: int, crop: int, generator: torch.Generator) -> Tensor:
    """n integer (top, left) corners, each uniform in 0..size - crop (every crop x crop window of a size x
    size image equally likely): the draws of `random_crop`, [n, 2]."""
    return torch.randint(size - crop + 1, (n, 2), generator=generator, device=generator.device)


def random_crop(images: Tensor, crop: int, offsets: Tensor) -> Tensor:
    """A random crop to a smaller size, CURL's augmentation (Laskin, Srinivas & Abbeel 2020, arXiv
    2004.04136; its code renders 100 x 100 frames and crops 84 x 84): the crop x crop window of each image
    [N, C, H, W] whose top-left corner is its row of `offsets` [N, 2] (from `crop_offsets`), every channel
    (every frame of a stack) cut at the same place. Returns [N, C, crop, crop] in the images' dtype. Unlike
    `random_shift` the picture keeps no border: the encoder sees crop x crop frames."""
    return _windows(images, crop, crop, offsets)


def _windows(images: Tensor, h: int, w: int, offsets: Tensor) -> Tensor:
    """The h x w window of each image [N, C, H, W] whose top-left corner is its row of `offsets` [N, 2]."""
    n = images.shape[0]
    offsets = offsets.to(images.device)
    rows = (torch.arange(h, device=images.device) + offsets[:, :1])[:, None, :, None]  # [N, 1, h, 1]
    cols = (torch.arange(w, device=images.device) + offsets[:, 1:])[:, None, None, :]  # [N, 1, 1, w]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    chans = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return images[batch, chans, rows, cols]


def center_crop(images: Tensor, crop: int) -> Tensor:
    """The central crop x crop window of images [..., H, W], its corner at ((H - crop) // 2, (W - crop) // 2):
    what a policy trained on random crops sees when it acts (CURL's code: `utils.py:center_crop_image`)."""
    h, w = images.shape[-2:]
    top, left = (h - crop) // 2, (w - crop) // 2
    return images[..., top : top + crop, left : left + crop]


# --------------------------------------------------------------------------------------------------
# Contrastive losses
# --------------------------------------------------------------------------------------------------


def info_nce(logits: Tensor, weight: Tensor | None = None) -> Tensor:
    """InfoNCE (van den Oord et al. 2018, arXiv 1807.03748) with the positives on the diagonal: row i of
    logits [B, B] scores query i against every key, key i is its positive and the other B - 1 keys its
    negatives; the loss is the mean over rows of  -log softmax(logits_i)_i = logsumexp_j logits_ij - logits_ii
    (the cross-entropy with labels 0..B-1 of CURL's and TACO's code). `weight` [B] (e.g. a validity mask)
    gives the weighted mean sum_i w_i l_i / max(sum_i w_i, 1) instead."""
    per_row = torch.logsumexp(logits, -1) - torch.diagonal(logits)
    if weight is None:
        return per_row.mean()
    return (per_row * weight).sum() / weight.sum().clamp(min=1.0)
