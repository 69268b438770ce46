"""How the K-seed group runs one piece for every seed at once: an agent's networks under fixed names for
`functional_call`, `vmap` over any nested output, a group optimizer of per-seed slices, one seed's gradient
clipping, and a code object per compiled piece. Knows nothing of agents or of the group's rounds."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import vmap
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

from iqrl.core.update import HostArray


class Networks(nn.Module):
    """An agent's networks under fixed names; forward(fn, ...) calls fn, so that
    `functional_call(holder, stacked, (fn, ...))` runs the agent's own function on the stacked tensors."""

    def __init__(self, modules: dict[str, nn.Module]):
        super().__init__()
        self.parts = nn.ModuleDict(modules)

    def forward(self, fn, *args, **kwargs):
        return fn(*args, **kwargs)

    def ties(self) -> bool:
        """Whether a tensor is held under two names (tied weights; a group stacks it once, under its first).
        Only then need `functional_call` tie them: its search for such tensors walks every module at every
        call and, compiled, is traced again in every piece (no registered agent ties weights)."""
        every = [*self.named_parameters(remove_duplicate=False), *self.named_buffers(remove_duplicate=False)]
        return len(every) > len([*self.named_parameters(), *self.named_buffers()])


class GroupOptimizer(NamedTuple):
    """A group optimizer: one parameter per seed's slice of each stacked tensor (a view), each with its own
    state, so that seeds whose update counts differ (their checkpoints at one env step after episodes of
    different lengths) each step with their own Adam step count; one fused step for all of them."""

    opt: torch.optim.Optimizer  # over `slices`
    names: list[str]  # the stacked tensors it steps
    slices: list[list[Tensor]]  # per name, the view of each slot
    own: dict[int, torch.optim.Optimizer]  # each seed's own optimizer (its checkpoints hold its slice)


def clip_per_seed(grads: dict[str, Tensor], max_norm: float) -> tuple[dict[str, Tensor], Tensor]:
    """clip_grad_norm_ of one seed: total 2-norm over all gradients, scaled down to max_norm."""
    norms = torch.stack([torch.linalg.vector_norm(g) for g in grads.values()])
    total = torch.linalg.vector_norm(norms)
    # max_norm / (total + 1e-6) as eager Python computes it (Tensor.__rtruediv__: the reciprocal times the
    # float, rounded to float32), written out with max_norm a tensor: compiled, a float that differs between
    # pieces (mrq's encoder and critic) becomes symbolic, and a traced product with it fails
    coef = torch.clamp((total + 1e-6).reciprocal() * torch.full_like(total, max_norm), max=1.0)
    return {k: g * coef for k, g in grads.items()}, total


def tensors_apart(tree) -> tuple[list[Tensor], Callable[[list[Tensor]], Any]]:
    """The tensors of a nested structure, and how to put the structure back around other tensors in their
    place (its other leaves kept as they are). Nothing but the structure and those leaves is kept: no tensor
    of a vmap's or a trace's leaves inside."""
    leaves, spec = tree_flatten(tree)
    constants = [None if isinstance(v, Tensor) else v for v in leaves]
    is_tensor = [isinstance(v, Tensor) for v in leaves]

    def rebuild(tensors: list[Tensor]) -> Any:
        it = iter(tensors)
        return tree_unflatten([next(it) if t else c for t, c in zip(is_tensor, constants)], spec)

    return [v for v in leaves if isinstance(v, Tensor)], rebuild


def form_of(tree) -> tuple:
    """The structure of a nested structure and each leaf's shape and dtype (tensors), type (floats: a scale
    that differs between seeds is stacked, `stack_slots`) or value (anything else): what the arguments of
    pieces that run as one must share."""
    leaves, spec = tree_flatten(tree)
    return str(spec), tuple(_leaf_form(v) for v in leaves)


def _leaf_form(v) -> Any:
    if isinstance(v, Tensor):
        return v.shape, v.dtype
    return float if isinstance(v, float) else repr(v)


def stack_slots(slots: list, device: torch.device) -> Any:
    """The arguments of every slot (a tree each) stacked: tensors along a new first dimension; observations
    still on the host (`HostArray`) stacked there and moved to the device once; numbers that differ between
    slots (MR.Q's reward scales) as a tensor on `device`; any other leaf must be the same for every slot."""

    def stack(first, *rest):
        if isinstance(first, Tensor):
            return torch.stack([first, *rest])
        if isinstance(first, HostArray):
            return HostArray(np.stack([first.array, *(r.array for r in rest)]), first.device).moved()
        if all(r == first for r in rest):
            return first
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (first, *rest)):
            return torch.tensor([first, *rest], device=device)
        raise RuntimeError(f"seeds passed different values ({first!r}, ...) where one is shared")

    return tree_map(stack, *slots)


def vmap_tree(fn: Callable, *args):
    """vmap(fn) over dimension 0 of every tensor in args (other leaves are passed as they are), for an fn
    whose output may hold non-tensors (None, numbers): those come back as one seed computed them. vmap sees
    the tensors alone, as a flat list: it flattens its inputs and matches each with its in_dims in Python,
    which torch.compile traces step by step, for every parameter of every network of a group's piece."""
    tensors, rebuild_args = tensors_apart(args)
    static = {}

    def tensors_only(*flat):
        out, static["rebuild"] = tensors_apart(fn(*rebuild_args(list(flat))))
        return out

    out = vmap(tensors_only)(*tensors)
    return static["rebuild"](out)


def own_code(fn: Callable) -> Callable:
    """fn with a code object of its own. Dynamo keeps its compiled graphs, and counts recompilations against
    its limit (8), per code object: the group's vectorised pieces are closures of one `def` each, so each
    piece compiled gets a copy of its code."""
    return types.FunctionType(
        fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__
    )
