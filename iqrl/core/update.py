"""How an agent's update runs its pieces: the one seam between an update's definition and the mode running it.

An agent writes its update once, in the paper's order, as calls on an `Updater` (`agent.updater`):

    y = u.call(self.td_target, ret, discount, x_next, **self.target_draws(len(x)))   # a pure function
    (loss, q), norm = u.step(self.critic_loss, x, action, y, opt=self.critic_opt)   # one gradient step
    u.ema(self.critic_target, self.critic, tau)                                      # a target update
    u.reset(self.critic, self.build_critic, self.critic_opt, seed=draw_seed(g))     # a re-initialisation

Each function handed to `call` or `step` is pure: a function of the networks' parameters and buffers, its
tensor arguments and its random draws, which the agent makes beforehand from its own generator with a function
declared beside the one that consumes them and passes in by name (keyword arguments). What else a piece
changes, the statistics of its layers (running mean and variance, counters, a codebook's EMA), it returns
rather than writes: its layers hand the new values to `iqrl.nn.stats.write`, the piece runs through
`returning_writes`, and the updater writes them after it. Everything else (sampling, counters, schedules,
writing priorities back) is plain code around these calls.

The modes are implementations of this class:
* `Updater` (here): runs each piece as written; with `compile=true` through `torch.compile` (inductor's CUDA
  graphs with `cudagraphs=true`), the optimizer steps, target updates and draws staying eager around them;
* `iqrl.multiseed`: the K-seed mode's updater, which runs the same calls of K agents as one call vectorised
  over parameters stacked per seed.

CUDA graphs (`cudagraphs=true`, torch.compile's mode "reduce-overhead", "CUDAGraph Trees" in PyTorch's docs):
a captured piece returns tensors of the graphs' memory pool, which the replays of a later step of the graph
tree overwrite; reading one then raises "accessing tensor output of CUDAGraphs that has been overwritten by a
subsequent run". The tree begins a new step at every call of a compiled function with no backward pending, or,
once `torch.compiler.cudagraph_mark_step_begin()` has been called, at the first call after each mark only.
So `Agent.compile` marks the beginning of every update (`graph_step`: one update is one step of the tree,
whoever calls it: the trainer, the bench, the tests), and the updater clones what a captured piece returns
(its result and its statistics) as it returns, so that nothing the update goes on using (the target y that
a critic step reads, metrics summed over updates, anything stored on the agent) lives in the pool. The
gradients the backward graph leaves on the parameters are read by the optimizer step right after it and set
to None, unread, by the next step of the same optimizer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_map

from iqrl.nn.layers import build_seeded, module_tensors
from iqrl.nn.maths import ema_update_, hard_update_
from iqrl.nn.optim import detached_weights, optimizer_step
from iqrl.nn.stats import assign_writes, returning_writes

Optimizers = torch.optim.Optimizer | tuple[torch.optim.Optimizer, ...]
Parameters = nn.Module | Iterable[Tensor]
Modules = nn.Module | Sequence[nn.Module]


class StepResult(NamedTuple):
    loss: Tensor  # the loss, detached
    aux: Any  # what the loss function returned besides the loss, detached
    grad_norm: Tensor | None  # the total gradient norm before clipping (steps with max_norm > 0)


def params_of(opt: Optimizers) -> list[Tensor]:
    """The parameters an optimizer (or a tuple of them) steps, in order."""
    return [
        p for o in (opt if isinstance(opt, tuple) else (opt,)) for g in o.param_groups for p in g["params"]
    ]


def parameters(x: Parameters) -> list[Tensor]:
    return list(x.parameters()) if isinstance(x, nn.Module) else list(x)


def reset_pairs(modules: Modules, fresh: Modules) -> list[tuple[Tensor, Tensor]]:
    """(tensor of `modules`, its value in `fresh`) for every parameter and buffer; `fresh` must have the same
    names and shapes (the networks `build` makes for a reset)."""
    own, new = module_tensors(modules), module_tensors(fresh)
    if own.keys() != new.keys() or any(own[n].shape != new[n].shape for n in own):
        raise ValueError("a reset's build() must return networks of the structure and shapes it replaces")
    return [(own[n], new[n]) for n in own]


def drop_optimizer_state(opt: Optimizers | None, tensors: list[Tensor]) -> None:
    """Forget `opt`'s state (Adam's moments and step count) for `tensors`: it starts again at their next
    step."""
    for o in () if opt is None else opt if isinstance(opt, tuple) else (opt,):
        for t in tensors:
            o.state.pop(t, None)


def detach(tree: Any) -> Any:
    """Every tensor of a nested structure detached (what a step returns besides its loss)."""
    return tree_map(lambda v: v.detach() if isinstance(v, Tensor) else v, tree)


def cloned(tree: Any) -> Any:
    """Every tensor of a nested structure cloned (differentiably: a loss's clone backpropagates into it)."""
    return tree_map(lambda v: v.clone() if isinstance(v, Tensor) else v, tree)


def outside_the_graph_pool(piece: Callable) -> Callable:
    """A captured piece whose result and statistics are clones, outside the CUDA graphs' memory pool, which
    the next replay overwrites (module docstring)."""

    @functools.wraps(piece)
    def kept(*args, **kwargs):
        return cloned(piece(*args, **kwargs))

    return kept


def graph_step(update: Callable) -> Callable:
    """An agent's `update` that first marks the beginning of a step of the CUDA-graph tree
    (torch.compiler.cudagraph_mark_step_begin): the outputs of the pieces captured in the update before stay
    valid until the next update (module docstring)."""

    @functools.wraps(update)
    def one_step(*args, **kwargs):
        torch.compiler.cudagraph_mark_step_begin()
        return update(*args, **kwargs)

    return one_step


def to_tensor(obs: np.ndarray, device) -> Tensor:
    """Observations as a tensor on `device`, what every `act` starts with: state vectors (any float dtype) as
    float32, pixel frames (uint8) as they are (the encoder scales them; a quarter of the bytes to copy). To a
    GPU through pinned memory without waiting: a copy from pageable memory makes the host wait for every
    kernel queued before it (an update's), and the action it is for is read back anyway."""
    obs = np.asarray(obs)
    obs = obs if obs.dtype == np.uint8 else obs.astype(np.float32, copy=False)
    if torch.device(device).type != "cuda":
        return torch.as_tensor(obs, device=device)
    return torch.as_tensor(obs).pin_memory().to(device, non_blocking=True)


class HostArray:
    """Observations still in host memory, handed to `Updater.act` with the device they go to: one agent moves
    its own (`to_tensor`); a K-seed group stacks every acting seed's on the host and moves them at once
    (iqrl/multiseed/vectorise.py `stack_slots`)."""

    __slots__ = ("array", "device")

    def __init__(self, array: np.ndarray, device):
        self.array, self.device = np.asarray(array), torch.device(device)

    def __repr__(self) -> str:  # what pieces that act as one share (`form_of`): shape and dtype, not values
        return f"HostArray({self.array.shape}, {self.array.dtype}, {self.device})"

    def moved(self) -> Tensor:
        return to_tensor(self.array, self.device)


def moved(tree: Any) -> Any:
    """A nested structure with its `HostArray` leaves moved to their device (`to_tensor`)."""
    return tree_map(lambda v: v.moved() if isinstance(v, HostArray) else v, tree)


class Updater:
    """Runs an update's pieces eagerly, or compiled (`compile`); see the module docstring."""

    def __init__(self, compile: bool = False, cudagraphs: bool = False):
        self.compile = compile
        self.cudagraphs = cudagraphs
        self.options = {"mode": "reduce-overhead" if cudagraphs else None}
        self._compiled: dict[Any, Callable] = {}
        self._frozen: set[int] = set()  # ids of the modules, parameters and buffers `freeze` keeps fixed

    def freeze(self, objs: Iterable[nn.Module | Tensor]) -> None:
        """Keep `objs` (modules, parameters) fixed, a run's `freeze` (iqrl/loop/transfer.py): their
        parameters stop requiring gradients, so no optimizer step moves them (Adam skips a parameter without
        a gradient), no target update (`ema`, `copy`) writes into them, and the statistics their layers return
        are not written (a VQ codebook's EMA). Set once, at the agent's build."""
        for obj in objs:
            self._frozen.add(id(obj))
            for p in parameters(obj) if isinstance(obj, nn.Module) else [obj]:
                p.requires_grad_(False)
                self._frozen.add(id(p))
            if isinstance(obj, nn.Module):
                self._frozen.update(id(b) for b in obj.buffers())

    def is_frozen(self, obj: nn.Module | Tensor) -> bool:
        """Whether `freeze` was given `obj` (or a module holding it)."""
        return id(obj) in self._frozen

    def _moves(self, target: list[Tensor]) -> bool:
        return not any(id(p) in self._frozen for p in target)

    def _run(self, fn: Callable) -> Callable:
        """fn as a piece (`returning_writes`: its result and the statistics its layers wrote), itself or
        torch.compile'd (one per function, compiled on first use): nothing is written in place inside it.
        The compiled function is fn's own, inside the wrapper (one wrapper compiled for every fn would share
        one code object, and so dynamo's recompile limit of 8). Captured as CUDA graphs, what it returns is
        cloned out of the graphs' memory pool (module docstring)."""
        if not self.compile:
            return returning_writes(fn)
        key = getattr(fn, "__func__", fn), getattr(fn, "__self__", None)  # a bound method: one per owner
        return self.compiled(fn, key, returning_writes)

    def compiled(
        self, fn: Callable, key: Any, around: Callable[[Callable], Callable] = lambda f: f
    ) -> Callable:
        """around(torch.compile(fn)) with this updater's options, made once per `key`; captured as CUDA
        graphs, what it returns is cloned out of the graphs' memory pool. The one way every mode compiles a
        piece: `_run` here (fn: the agent's own function), the K-seed group (fn: its function vectorised over
        seeds, iqrl/multiseed/pieces.py)."""
        if key not in self._compiled:
            piece = around(torch.compile(fn, **self.options))
            self._compiled[key] = outside_the_graph_pool(piece) if self.cudagraphs else piece
        return self._compiled[key]

    def _write(self, writes) -> None:
        """The statistics a piece returned into their tensors, but for frozen ones."""
        assign_writes(writes, lambda t: id(t) not in self._frozen)

    def call(self, fn: Callable, *args, **draws) -> Any:
        """fn(*args, **draws): a pure function of the networks and its arguments (targets, encodings); the
        statistics its layers return are written after it."""
        out, writes = self._run(fn)(*args, **draws)
        self._write(writes)
        return out

    def act(self, fn: Callable, *args, **draws) -> Any:
        """An action on the host: fn(*args, **draws) without gradients, a pure function of the acting
        networks and the observation whose random draws (exploration noise) the agent made beforehand, as
        for a piece. Here one forward per call, eager (acting stays out of `compile`: `Agent.compile_acting`
        compiles what pays); the K-seed mode's updater runs every seed's action in one forward and one
        transfer to the host (iqrl/multiseed/pieces.py). Observations handed in as `HostArray` are moved to
        the device here (in the group: every seed's at once)."""
        with torch.no_grad():
            return tree_map(lambda v: v.cpu() if isinstance(v, Tensor) else v, fn(*moved(args), **draws))

    def step(
        self,
        loss_fn: Callable,
        *args,
        opt: Optimizers,
        max_norm: float = 0.0,
        frozen: Sequence[nn.Module] = (),
        after: Callable[[], Any] | None = None,
        **draws,
    ) -> StepResult:
        """One gradient step of `opt` (one optimizer, or a tuple that one loss steps together) on
        loss_fn(*args, **draws) -> loss or (loss, aux): zero the gradients, backpropagate, clip the total
        gradient norm of the optimizers' parameters to `max_norm` when > 0, step; then write the statistics
        the loss's layers returned. `frozen`: networks the loss differentiates through but does not train (an
        actor's objective through the critic): their weights enter the loss detached, so backpropagation
        computes no gradient for them. `after`: a pure function of the networks run after the step as a
        `call`, which re-maps the stepped parameters by writing their new values (`iqrl.nn.stats.write`):
        SimbaV2's projection of its weights onto the unit sphere."""
        result = self._step(loss_fn, args, draws, opt, max_norm, frozen)
        if after is not None:
            self.call(after)
        return result

    def _step(self, loss_fn, args, draws, opt, max_norm, frozen) -> StepResult:
        fn = self._run(loss_fn)
        if frozen:
            fn = detached_weights(fn, *frozen)
        out, writes = fn(*args, **draws)
        loss, aux = out if isinstance(out, tuple) else (out, None)
        if not loss.requires_grad:  # everything the loss trains is frozen: nothing to step
            self._write(writes)
            return StepResult(loss.detach(), detach(aux), loss.new_zeros(()) if max_norm > 0 else None)
        if writes and {id(getattr(m, n)) for m, n in writes} & {id(p) for p in params_of(opt)}:
            raise RuntimeError(
                f"{getattr(loss_fn, '__qualname__', loss_fn)} writes a tensor its optimizer steps"
            )
        norm = optimizer_step(opt, loss, params_of(opt) if max_norm > 0 else None, max_norm)
        self._write(writes)
        return StepResult(loss.detach(), detach(aux), norm)

    def ema(self, target: Parameters, online: Parameters, tau: float) -> None:
        """target <- (1 - tau) target + tau online, parameter by parameter (of modules or parameter lists); a
        frozen target stays as it is."""
        target = parameters(target)
        if self._moves(target):
            ema_update_(target, parameters(online), tau)

    def copy(self, target: Parameters, online: Parameters) -> None:
        """target <- online, parameter by parameter (a hard target update); a frozen target stays as it is."""
        target = parameters(target)
        if self._moves(target):
            hard_update_(target, parameters(online))

    def reset(
        self, modules: Modules, build: Callable[[], Modules], opt: Optimizers | None = None, *, seed: int
    ):
        """Re-initialise `modules` (a network or a sequence of them; BRO's periodic resets): build() makes new
        ones of the same structure, with the global generators that module initialisation draws from seeded
        by `seed` (`iqrl.nn.layers.draw_seed` from the agent's generator, beforehand); their parameters and
        buffers are copied into `modules`, and `opt` (one optimizer or a tuple) forgets its state for them, so
        Adam's moments and step count start again. A network that `freeze` holds stays as it is."""
        pairs = [
            (t, v) for t, v in reset_pairs(modules, build_seeded(build, seed)) if id(t) not in self._frozen
        ]
        with torch.no_grad():
            for t, v in pairs:
                t.copy_(v)
        drop_optimizer_state(opt, [t for t, _ in pairs])
