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


class LaProp(torch.optim.Optimizer):
    """DreamerV3's optimizer (dreamerv3/agent.py `Agent._make_opt` and embodied/jax/opt.py at
    danijar/dreamerv3@e3f0224), per parameter tensor p with gradient g at its step t = 1, 2, ...:

    1. adaptive gradient clipping (`clip_by_agc`): g <- g / max(1, ||g|| / (agc max(pmin, ||p||)));
    2. LaProp (Ziyin et al. 2020, arXiv 2002.04839; `scale_by_rms`, `scale_by_momentum`): the second moment
       v <- beta2 v + (1 - beta2) g^2, u = g / (sqrt(v / (1 - beta2^t)) + eps), then the momentum of the
       normalised gradient m <- beta1 m + (1 - beta1) u;
    3. p <- p - lr_t m / (1 - beta1^t), the learning rate ramped linearly from 0 over `warmup` steps, lr_t =
       lr min(t - 1, warmup) / warmup (optax's schedule reads the step count before its increment: the first
       step's rate is 0), lr from then on (warmup 0: lr from the first step).

    Elementwise but for the two norms of step 1, which are each tensor's own: the K-seed mode steps each
    seed's slices of a stacked tensor as that seed's tensors (`for_group`)."""

    HYPER = ("lr", "betas", "eps", "agc", "pmin", "warmup")

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps=1e-20, agc=0.3, pmin=1e-3, warmup=1000):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, agc=agc, pmin=pmin, warmup=warmup))

    @classmethod
    def for_group(cls, params, group: dict) -> LaProp:
        """An optimizer over `params` with the settings of another's param group (the K-seed mode's group
        optimizer over the seeds' slices)."""
        return cls(params, **{k: group[k] for k in cls.HYPER})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g, state = p.grad, self.state[p]
                if not state:
                    state["step"] = torch.zeros((), device=p.device)
                    state["nu"] = torch.zeros_like(p)
                    state["mu"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                if group["agc"]:
                    upper = group["agc"] * torch.linalg.vector_norm(p).clamp(min=group["pmin"])
                    g = g / (torch.linalg.vector_norm(g) / upper).clamp(min=1.0)
                state["nu"].mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
                u = g / ((state["nu"] / (1.0 - beta2**t)).sqrt() + group["eps"])
                state["mu"].mul_(beta1).add_(u, alpha=1.0 - beta1)
                rate = group["lr"] * (
                    (t - 1).clamp(max=group["warmup"]) / group["warmup"] if group["warmup"] else 1.0
                )
                p.sub_(state["mu"] / (1.0 - beta1**t) * rate)
