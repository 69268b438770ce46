"""Representation diagnostics: pure functions of arrays (the iQRL paper's latent rank and active codebook,
and the measures of the papers it is compared with).

Rank: the numerical rank of Z [n, D] is the number of singular values sigma_i with
sigma_i > max(eps, eps * sigma_max)  (no centring, no normalisation), at eps in {1e-1, 1e-2, 1e-3}.
The paper's figures use eps = 1e-2, reported here as `latent_rank`.
Active codebook: per FSQ group g, 100 * (distinct code indices of g over the n samples) / K.
Collapse: the latent says nothing about the observation when its rank is 0 (every singular value at or
below eps: the latent is ~0) or when every FSQ group takes one code over the n samples (a constant latent,
which the rank alone does not show: a constant nonzero vector has rank 1).

Effective rank srank_delta (Kumar et al. 2021, "Implicit Under-Parameterization", eq. 1): with singular
values sigma_1 >= ... >= sigma_D, the smallest k with sum_{i<=k} sigma_i / sum_i sigma_i >= 1 - delta,
delta = 0.01.
Entropy effective rank (Roy and Vetterli 2007): exp(H(p)), p = sigma / ||sigma||_1, H the Shannon entropy
(0 log 0 = 0); D for a flat spectrum, 1 for one nonzero singular value.
tau-dormant units (Sokar et al. 2023, "The Dormant Neuron Phenomenon", def. 3.1): a unit i of a layer with
activations h [n, units] has score s_i = mean_n |h_i| / mean_units mean_n |h|; it is dormant when s_i <= tau
(tau = 0: exactly silent units; tau = 0.1 the paper's default). A layer silent throughout is all dormant.
Linear probe: ridge regression of targets Y [n, m] on features X [n, D] (rows in time order), fit on the
even blocks of PROBE_BLOCK consecutive rows and scored on the odd ones; features and targets standardised by
the fit rows' means and stds (a constant feature is 0), closed form W = (Xs^T Xs + lambda n_fit I)^-1 Xs^T Ys,
lambda = PROBE_RIDGE; R^2 = 1 - SSE / SST per target column (SST about the scored rows' mean), averaged over
the columns that vary on both parts.
Codebook perplexity: per group, exp of the entropy of its code usage over the n samples; K when the K codes
are used equally often, 1 when one code takes every sample.
k-step latent prediction error: for predicted latents and targets [H, n, D], per step k the mean over n of
the cosine distance 1 - cos(pred, target) and the mean squared error over n and D.
Q-bias (Fujimoto et al. 2018, fig. 1; Chen et al. 2021, REDQ, fig. 2): on evaluation episodes, Q(s_t, a_t)
minus the discounted return that followed, G_t = sum_{j >= t} gamma^(j - t) r_j (to the end of the recorded
episode, without bootstrap). An episode cut at its time limit misses the rewards after its end, whose weight
in G_t is gamma^(T - t) of a full continuation: only the steps with at least H = ceil(log 0.01 / log gamma)
steps left are scored (that weight at most 1%; all of them when gamma = 1 leaves none), every step of an
episode that ended by termination. Over the scored steps of all the episodes: the mean and std (population)
of the bias, REDQ's normalised bias (the bias over |mean G_t|: mean and std), the mean Q and G_t, their count.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

RANK_TOLERANCES = (1e-1, 1e-2, 1e-3)
PAPER_TOLERANCE = 1e-2
SRANK_DELTA = 0.01  # Kumar et al. 2021
DORMANT_TAUS = (0.0, 0.1)  # Sokar et al. 2023: exactly silent, and the paper's threshold
#: The largest weight of the rewards after a cut episode's end in a scored step's return (Q-bias).
TAIL_WEIGHT = 0.01
#: The linear probe's ridge, per fit row, on standardised features (each of variance 1): enough to make the
#: normal equations solvable where features are collinear or constant (an FSQ latent's rank is below its
#: width, a dormant unit is a constant column), small enough that a direction of unit variance is shrunk by
#: 1e-4, so an exact linear map still scores R^2 = 1 to within ~1e-8.
PROBE_RIDGE = 1e-4
#: The probe's split, in blocks of consecutive rows: long enough that a scored row's near-copies (the steps
#: beside it) are mostly in its own block, not among the fitted rows; short enough that fitted and scored rows
#: come from the same stretch of time (a first-half/second-half split scores states the fit never saw: a
#: pendulum's angle that has wound on, a walker's distance that has grown).
PROBE_BLOCK = 64
#: A target column varies on a half when its std there exceeds this share of (1 + |its mean|): float noise of
#: a quantity held constant (a fixed joint, a wall's position) is not a dimension to explain.
VARIES = 1e-9


def singular_values(z: Tensor) -> Tensor:
    return torch.linalg.svdvals(z.double())


def numerical_rank(z: Tensor, eps: float = PAPER_TOLERANCE, sv: Tensor | None = None) -> int:
    """Number of singular values of z [n, D] above max(eps, eps * sigma_max)."""
    s = singular_values(z) if sv is None else sv
    if s.numel() == 0:
        return 0
    threshold = max(eps, eps * float(s.max()))
    return int((s > threshold).sum())


def rank_metrics(z: Tensor) -> dict[str, float]:
    """latent_rank (eps 1e-2), latent_rank_tol1e-1/1e-2/1e-3, latent_rank_pct (of D), latent_cond,
    latent_srank (delta 0.01) and latent_erank (the entropy effective rank)."""
    sv = singular_values(z)
    out = {
        f"latent_rank_tol{eps:.0e}".replace("e-0", "e-"): float(numerical_rank(z, eps, sv))
        for eps in RANK_TOLERANCES
    }
    out["latent_rank"] = float(numerical_rank(z, PAPER_TOLERANCE, sv))
    out["latent_rank_pct"] = 100.0 * out["latent_rank"] / z.shape[1]
    out["latent_srank"] = float(srank(sv))
    out["latent_erank"] = entropy_rank(sv)
    smin = float(sv.min()) if sv.numel() else 0.0
    out["latent_cond"] = float(sv.max()) / smin if smin > 0 else float("inf")
    return out


def active_codebook(indices: Tensor, codebook_size: int) -> dict[str, float]:
    """indices [n, G] of integer codes -> active_codebook_pct_mean/min/max over the G groups."""
    if indices.dim() != 2:
        raise ValueError("indices must have shape [n, G]")
    n, g = indices.shape
    # Distinct codes per group: one-hot counts via scatter, no Python loop over groups.
    present = torch.zeros(g, codebook_size, dtype=torch.bool, device=indices.device)
    present[torch.arange(g, device=indices.device).expand(n, g), indices.long()] = True
    pct = 100.0 * present.sum(1).double() / codebook_size
    return {
        "active_codebook_pct_mean": float(pct.mean()),
        "active_codebook_pct_min": float(pct.min()),
        "active_codebook_pct_max": float(pct.max()),
    }


def latent_collapsed(metrics: dict[str, float], codebook_size: int | None) -> bool:
    """True for diagnostics `metrics` (rank_metrics, plus active_codebook for a quantized latent of K =
    codebook_size codes) of a collapsed latent: rank 0, or exactly one code in every group (the most used
    group's share is 1/K)."""
    if metrics.get("latent_rank") == 0:
        return True
    share = metrics.get("active_codebook_pct_max")
    return codebook_size is not None and share is not None and round(share * codebook_size / 100.0) == 1


def srank(sv: Tensor, delta: float = SRANK_DELTA) -> int:
    """srank_delta of the singular values sv (any order): the fewest largest ones holding 1 - delta of
    their sum; 0 when every one is 0."""
    s = sv.double().sort(descending=True).values
    total = float(s.sum())
    if total <= 0:
        return 0
    share = s.cumsum(0) / total
    # 1e-12: a share of exactly 1 - delta, summed in floating point, still reaches it
    return int((share < 1 - delta - 1e-12).sum()) + 1


def entropy_rank(sv: Tensor) -> float:
    """exp(H(sigma / ||sigma||_1)) (Roy and Vetterli 2007); 0 when every singular value is 0."""
    s = sv.double()
    total = float(s.sum())
    if total <= 0:
        return 0.0
    p = s[s > 0] / total
    return float(torch.exp(-(p * p.log()).sum()))


def dormant_fraction(h: Tensor, tau: float) -> float:
    """Share of the units of activations h [n, units] (or [n, ..., units]) that are tau-dormant."""
    a = h.double().abs().flatten(0, -2).mean(0)  # mean_n |h_i| per unit
    layer = float(a.mean())
    if layer == 0:
        return 1.0  # a silent layer: every unit's score is 0 / 0, and every unit is silent
    return float((a / layer <= tau).double().mean())


def standardised(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """x in units of the fit rows' std about their mean; a column constant there (std 0) is 0."""
    return (x - mean) / torch.where(std > 0, std, torch.ones_like(std))


def probe_fit_rows(n: int, device=None) -> Tensor:
    """The probe's fit rows of n (bool [n]): the even blocks of PROBE_BLOCK; the others are scored."""
    return (torch.arange(n, device=device) // PROBE_BLOCK) % 2 == 0


def ridge_r2(x: Tensor, y: Tensor, lam: float = PROBE_RIDGE) -> float:
    """R^2 of the ridge probe of y [n, m] from x [n, ...] (module docstring): fit on `probe_fit_rows`, scored
    on the rest, averaged over the target columns that vary on both; nan when none does."""
    x, y = x.double().flatten(1), y.double().flatten(1)
    rows = probe_fit_rows(x.shape[0], x.device)
    xf, yf, xt, yt = x[rows], y[rows], x[~rows], y[~rows]
    if len(xt) == 0:
        return float("nan")
    mx, sx, my, sy = xf.mean(0), xf.std(0, unbiased=False), yf.mean(0), yf.std(0, unbiased=False)
    xs = standardised(xf, mx, sx)
    fit = len(xf)
    gram = xs.T @ xs + lam * fit * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)  # positive definite
    w = torch.cholesky_solve(xs.T @ standardised(yf, my, sy), torch.linalg.cholesky(gram))
    pred = standardised(xt, mx, sx) @ w
    target = standardised(yt, my, sy)
    sst = ((target - target.mean(0)) ** 2).sum(0)
    varies = (sy > VARIES * (1 + my.abs())) & (yt.std(0, unbiased=False) > VARIES * (1 + my.abs()))
    if not bool(varies.any()):
        return float("nan")
    sse = ((target - pred) ** 2).sum(0)
    return float((1 - sse[varies] / sst[varies]).mean())


def codebook_perplexity(indices: Tensor, codebook_size: int) -> dict[str, float]:
    """indices [n, G] of integer codes -> codebook_perplexity_mean/min over the G groups."""
    n, g = indices.shape
    counts = torch.zeros(g, codebook_size, dtype=torch.float64, device=indices.device)
    counts.scatter_add_(1, indices.long().T, torch.ones(g, n, dtype=torch.float64, device=indices.device))
    p = counts / n
    entropy = -torch.where(p > 0, p * p.log(), torch.zeros_like(p)).sum(1)
    perplexity = entropy.exp()
    return {
        "codebook_perplexity_mean": float(perplexity.mean()),
        "codebook_perplexity_min": float(perplexity.min()),
    }


def prediction_error(pred: Tensor, target: Tensor) -> dict[str, float]:
    """Predicted latents and their targets [H, n, D] -> latent_pred_cos_k{k} (mean cosine distance) and
    latent_pred_mse_k{k} (mean squared error) for k = 1..H."""
    p, t = pred.double(), target.double()
    cos = (p * t).sum(-1) / (p.norm(dim=-1) * t.norm(dim=-1)).clamp_min(1e-12)
    out = {}
    for k in range(p.shape[0]):
        out[f"latent_pred_cos_k{k + 1}"] = float((1 - cos[k]).mean())
        out[f"latent_pred_mse_k{k + 1}"] = float(((p[k] - t[k]) ** 2).mean())
    return out


def discounted_returns(rewards: Tensor, gamma: float) -> Tensor:
    """G_t = r_t + gamma G_{t+1} over one episode's rewards [T], G_T = 0 (no bootstrap)."""
    g = torch.zeros_like(rewards, dtype=torch.float64)
    following = 0.0
    for t in range(rewards.shape[0] - 1, -1, -1):
        following = float(rewards[t]) + gamma * following
        g[t] = following
    return g


def tail_horizon(gamma: float, weight: float = TAIL_WEIGHT) -> float:
    """H = ceil(log(weight) / log(gamma)), the fewest steps with gamma^H <= weight; inf for gamma = 1."""
    if gamma >= 1:
        return math.inf
    return math.ceil(math.log(weight) / math.log(gamma) - 1e-9)  # 1e-9: an exact power is not rounded up


def scored_steps(q: Tensor, rewards: Tensor, gamma: float, terminated: bool) -> tuple[Tensor, Tensor]:
    """(Q_t, G_t) of one episode's scored steps: every step when it ended by termination, else the steps t
    with T - t >= H left (`tail_horizon`)."""
    g = discounted_returns(rewards, gamma)
    keep = len(g) if terminated else int(max(0, len(g) - tail_horizon(gamma) + 1))
    return q.double()[:keep], g[:keep]


def q_bias(q: list[Tensor], rewards: list[Tensor], gamma: float, terminated: list[bool]) -> dict[str, float]:
    """Episodes' Q(s_t, a_t) and rewards ([T_i] each) and whether each ended by termination -> q_bias_mean,
    q_bias_std, q_bias_norm_mean, q_bias_norm_std, q_mean, q_return_mean over their scored steps, and
    q_bias_steps their count (alone when no step is scored)."""
    scored = [scored_steps(qi, ri, gamma, ti) for qi, ri, ti in zip(q, rewards, terminated, strict=True)]
    none = torch.zeros(0, dtype=torch.float64)
    qs, gs = (torch.cat([none, *(s[k] for s in scored)]) for k in (0, 1))
    if len(qs) == 0:
        return {"q_bias_steps": 0}
    bias, scale = qs - gs, float(gs.mean().abs())
    out = {"q_bias_mean": float(bias.mean()), "q_bias_std": float(bias.std(unbiased=False))}
    if scale > 0:
        out |= {"q_bias_norm_mean": out["q_bias_mean"] / scale, "q_bias_norm_std": out["q_bias_std"] / scale}
    return out | {"q_mean": float(qs.mean()), "q_return_mean": float(gs.mean()), "q_bias_steps": len(qs)}
