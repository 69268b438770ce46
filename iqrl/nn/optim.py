"""Optimizer helpers: the fused Adam(W) every agent uses, one optimizer step, frozen parameters."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call


def adam(
    params,
    lr: float,
    weight_decay: float = 0.0,
    decoupled: bool = False,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.Optimizer:
    """Adam (or AdamW when `decoupled`) with the fused single-kernel implementation; `weight_decay` without
    `decoupled` is Adam's L2 term (added to the gradient), `betas` and `eps` PyTorch's defaults unless given.

    Same maths as the default implementation; one fused kernel per step instead of ~10 elementwise
    passes over every parameter tensor (the optimizer was a large share of a CPU update).
    """
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    return cls(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=True)


def optimizer_step(
    opt: torch.optim.Optimizer | tuple[torch.optim.Optimizer, ...],
    loss: Tensor,
    params=None,
    max_norm: float = 0.0,
) -> Tensor | None:
    """One gradient step on `loss`: zero the gradients, backpropagate, clip the total gradient norm of
    `params` to `max_norm` (when > 0) and step. Returns the gradient norm before clipping, or None.
    `opt` may be a tuple of optimizers that one loss steps together, in that order (DrQ-v2's and TACO's
    critic loss steps the critic's and the encoder's)."""
    opts = opt if isinstance(opt, tuple) else (opt,)
    for o in opts:
        o.zero_grad(set_to_none=True)
    loss.backward()
    norm = nn.utils.clip_grad_norm_(params, max_norm) if max_norm > 0 else None
    for o in opts:
        o.step()
    return norm


class _Holder(nn.Module):
    """The modules whose weights `detached_weights` swaps, around the function it calls."""

    def __init__(self, fn, modules):
        super().__init__()
        self.fn, self.held = fn, nn.ModuleList(modules)

    def forward(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


def detached_weights(fn, *modules: nn.Module):
    """fn, evaluated with the modules' parameters replaced by detached views of themselves.

    For objectives that differentiate through a network they do not train (an actor loss through the
    critic and a state-action encoder): the input still gets its gradient, the modules' weights none, and
    no `requires_grad` flag is flipped (a flag flipped inside the step would be part of a compiled or
    captured graph's guards). `torch.func.functional_call` swaps the weights for the call only.
    """
    holder = _Holder(fn, modules)
    params = {name: p.detach() for name, p in holder.named_parameters()}
    return lambda *args, **kwargs: functional_call(holder, params, args, kwargs, strict=False)
