"""Latent diagnostics of the iQRL paper (latent rank, active codebook): pure functions of arrays.

Rank: the numerical rank of Z [n, D] is the number of singular values sigma_i with
sigma_i > max(eps, eps * sigma_max)  (no centring, no normalisation), at eps in {1e-1, 1e-2, 1e-3}.
The paper's figures use eps = 1e-2, reported here as `latent_rank`.
Active codebook: per FSQ group g, 100 * (distinct code indices of g over the n samples) / K.
Collapse: the latent says nothing about the observation when its rank is 0 (every singular value at or
below eps: the latent is ~0) or when every FSQ group takes one code over the n samples (a constant latent,
which the rank alone does not show: a constant nonzero vector has rank 1).
"""

from __future__ import annotations

import torch
from torch import Tensor

RANK_TOLERANCES = (1e-1, 1e-2, 1e-3)
PAPER_TOLERANCE = 1e-2


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
    """latent_rank (eps 1e-2), latent_rank_tol1e-1/1e-2/1e-3, latent_rank_pct (of D), latent_cond."""
    sv = singular_values(z)
    out = {
        f"latent_rank_tol{eps:.0e}".replace("e-0", "e-"): float(numerical_rank(z, eps, sv))
        for eps in RANK_TOLERANCES
    }
    out["latent_rank"] = float(numerical_rank(z, PAPER_TOLERANCE, sv))
    out["latent_rank_pct"] = 100.0 * out["latent_rank"] / z.shape[1]
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
