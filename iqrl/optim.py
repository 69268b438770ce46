"""Optimizer helpers: the fused Adam(W) every agent uses, one optimizer step, frozen parameters."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import Tensor, nn


def adam(params, lr: float, weight_decay: float = 0.0, decoupled: bool = False) -> torch.optim.Optimizer:
    """Adam (or AdamW when `decoupled`) with the fused single-kernel implementation.

    Same maths as the default implementation; one fused kernel per step instead of ~10 elementwise
    passes over every parameter tensor (the optimizer was a large share of a CPU update).
    """
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    return cls(params, lr=lr, weight_decay=weight_decay, fused=True)


def optimizer_step(
    opt: torch.optim.Optimizer, loss: Tensor, params=None, max_norm: float = 0.0
) -> Tensor | None:
    """One gradient step on `loss`: zero the gradients, backpropagate, clip the total gradient norm of
    `params` to `max_norm` (when > 0) and step. Returns the gradient norm before clipping, or None."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    norm = nn.utils.clip_grad_norm_(params, max_norm) if max_norm > 0 else None
    opt.step()
    return norm


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
