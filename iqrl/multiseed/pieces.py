"""A piece of a seed's update handed to the group (`Piece`), and how the group runs one for every seed at once
(`PieceRuns`): a round's seeds chosen, their arguments stacked per slot, the piece's function vectorised over
the stacks (`call`, `act`), differentiated and stepped (`step`), or applied to the stacks in place (`ema`,
`copy`, `reset`). `SeedGroup` (iqrl/multiseed/group.py) holds the stacks and the rendezvous; the module
docstring there says how the pieces meet.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.func import functional_call, grad
from torch.utils._pytree import tree_map

from iqrl.core.update import StepResult, drop_optimizer_state, parameters, reset_pairs
from iqrl.multiseed.vectorise import (
    GroupOptimizer,
    clip_per_seed,
    form_of,
    own_code,
    stack_slots,
    tensors_apart,
    vmap_tree,
)
from iqrl.nn.kernels import over_seeds
from iqrl.nn.layers import build_seeded
from iqrl.nn.maths import ema_update_, hard_update_
from iqrl.nn.stats import returning_writes


class Piece(NamedTuple):
    """One piece of an update handed to the group: what `Updater.call` / `step` / `ema` / `copy` / `reset` was
    given."""

    kind: str  # call | step | ema | copy | reset | act | host
    fn: Callable | None  # the function (call, step, act; reset: build)
    args: tuple  # its positional arguments (ema, copy: target, online; reset: the modules)
    draws: dict  # its keyword arguments (the random draws; reset: seed)
    options: dict  # step: opt, max_norm; ema: tau; reset: opt

    @property
    def name(self) -> str:
        return f"{self.kind} {getattr(self.fn, '__qualname__', '')}".strip()

    @property
    def form(self) -> tuple:
        """What pieces must share to run as one: the function, and the form of its arguments (host work:
        the function, which takes every seed's arguments as they are)."""
        return (self.name, self.fn) if self.kind == "host" else (self.name, form_of((self.args, self.draws)))


class PieceRuns:
    """`SeedGroup`'s running of a round: the methods that run each kind of piece for every seed, over the
    group's stacks (`stacked`), its seeds' holders and its pending pieces."""

    def _run_round(self) -> None:
        seeds = self._together("act") or self._together("host") or self._updating()
        pieces = [self.pending.pop(k) for k in seeds]
        if len({p.name for p in pieces}) != 1:
            raise RuntimeError(
                "seeds out of lockstep: " + ", ".join(f"seed {k}: {p.name}" for k, p in zip(seeds, pieces))
            )
        kind = pieces[0].kind
        if kind == "host":  # the seeds' host work (their envs' steps: iqrl/multiseed/envs.py), once for all
            results = pieces[0].fn([p.args for p in pieces])
        else:
            self._sync_stats_in() if self._synced_in else self._sync_in()
            self._synced_in = True
            self.moving = self._moving(seeds)
            if kind != "act":  # actions run eager, outside the graph tree
                self._graph_step(self.update_of[seeds[0]])
            results = getattr(self, f"_{kind}")(seeds, pieces)
        for k, r in zip(seeds, results):
            self.results[k] = r

    def _graph_step(self, update: int) -> None:
        """With cudagraphs: the first piece of each group update begins a step of the graph tree."""
        if self.updater.cudagraphs and threading.current_thread() is not threading.main_thread():
            # CUDA-graph trees keep their state in the main thread's (and autograd's) thread-locals: inductor
            # asserts in any other Python thread (pytorch/pytorch#123177: torch 2.11, the GPU image's;
            # pytorch/pytorch#184357 fixes it upstream)
            raise RuntimeError(
                "a cudagraphs=true group must run its rounds in the main thread: call SeedGroup.serve() "
                "there, as the K-seed runner does"
            )
        if self.updater.cudagraphs and update != self._marked:
            torch.compiler.cudagraph_mark_step_begin()
            self._marked = update

    def _together(self, kind: str) -> list[int]:
        """The seeds whose pending piece of `kind` (act, host) has the first such seed's form (function,
        argument shapes): one run for them. The others (a seed evaluating while another still trains: another
        function or batch shape) run in the next round."""
        seeds = sorted(k for k, p in self.pending.items() if p.kind == kind)
        form = [self.pending[k].form for k in seeds]
        return [k for k, f in zip(seeds, form) if f == form[0]]

    def _updating(self) -> list[int]:
        """The pieces of the seeds at the earliest update: a seed further on (resumed at one env step after
        episodes of other lengths, it has run more updates) waits until the others catch up, so that pieces
        pair as in the uninterrupted run, update i of every seed with update i of the others."""
        first = min(self.update_of[k] for k in self.pending)
        return sorted(k for k in self.pending if self.update_of[k] == first)

    def _stack(self, live: list[int], trees: list) -> Any:
        """The seeds' arguments stacked per slot (`stack_slots`; a seed that has left gets a live seed's: its
        slice is computed and thrown away, which keeps the shapes fixed)."""
        by_seed = dict(zip(live, trees))
        device = next(iter(self.stacked.values())).device
        return stack_slots([by_seed.get(k, trees[0]) for k in range(self.slots)], device)

    def _inputs(self, live: list[int], pieces: list[Piece]) -> tuple[Any, Any]:
        """The pieces' arguments and draws, each stacked per slot (`_stack`)."""
        return self._stack(live, [p.args for p in pieces]), self._stack(live, [p.draws for p in pieces])

    def _vectorised(self, live: list[int], pieces: list[Piece]) -> Callable:
        """The function that runs a `call` or `step` piece for every slot at once (`_call_fn`, `_step_fn`),
        made by the first live seed's function; with compile=true compiled once per piece, through the
        updater's compile path (iqrl/core/update.py: `Updater.compiled`, its options, CUDA graphs' outputs
        cloned out of the pool). What is compiled is the group's vectorised function: vmap, grad and the
        gradient clipping inside the graph, the optimizer step eager after it, as in single runs."""
        piece, k = pieces[0], live[0]
        made = getattr(self, f"_{piece.kind}_fn")(k, piece)
        if not self.updater.compile:
            return made
        fn = piece.fn
        # a function (a bound method of seed k's objects: one per seed that leads a round) and its options
        key = piece.kind, getattr(fn, "__func__", fn), k, piece.options.get("max_norm")
        return self.updater.compiled(own_code(made), key)

    def _call_fn(self, k: int, piece: Piece) -> Callable:
        holder, fn = self.holders[k], piece.fn
        run = returning_writes(lambda s, a, d: functional_call(holder, s, (fn, *a), d, tie_weights=self.ties))

        def one(s, a, d):
            out, writes = run(s, a, d)
            return out, self._written(k, writes)

        def call_every_seed(stacked, args, draws):
            return vmap_tree(one, stacked, args, draws)

        return call_every_seed

    def _call(self, live: list[int], pieces: list[Piece]) -> list:
        args, draws = self._inputs(live, pieces)
        with over_seeds():
            out, written = self._vectorised(live, pieces)(self.stacked, args, draws)
        self._assign(written)
        return [tree_map(lambda v, k=k: v[k] if isinstance(v, Tensor) else v, out) for k in live]

    def _act(self, live: list[int], pieces: list[Piece]) -> list:
        """Every acting seed's action in one forward over the stacked networks (eager, without gradients or
        autocast, as a seed acts alone) and one transfer to the host for all of them."""
        args, draws = self._inputs(live, pieces)
        device = next(iter(self.stacked.values())).device
        with torch.no_grad(), torch.autocast(device.type, enabled=False), over_seeds():
            out, written = self._call_fn(live[0], pieces[0])(self.stacked, args, draws)
        if written:
            raise RuntimeError(f"{pieces[0].name} writes {next(iter(written))} while acting")
        out = tree_map(lambda v: v.cpu() if isinstance(v, Tensor) else v, out)
        return [tree_map(lambda v, k=k: v[k] if isinstance(v, Tensor) else v, out) for k in live]

    def _step_fn(self, k: int, piece: Piece) -> Callable:
        holder, fn, max_norm = self.holders[k], piece.fn, piece.options["max_norm"]
        call = partial(functional_call, holder, tie_weights=self.ties)
        run = returning_writes(lambda p, rest, args, draws: call({**rest, **p}, (fn, *args), draws))

        def one(params, rest, args, draws):
            static = {}

            def loss(p):  # grad's aux holds tensors only: the rest of aux is put back below
                out, writes = run(p, rest, args, draws)
                value, aux = out if isinstance(out, tuple) else (out, None)
                tensors, static["rebuild"] = tensors_apart(aux)
                return value, (value.detach(), tensors, self._written(k, writes))

            grads, (value, tensors, written) = grad(loss, has_aux=True)(params)
            aux = static["rebuild"](tensors)
            norm = None
            if max_norm > 0:
                grads, norm = clip_per_seed(grads, max_norm)
            return grads, value, aux, norm, written

        def step_every_seed(stepped, rest, args, draws):
            return vmap_tree(one, stepped, rest, args, draws)

        return step_every_seed

    def _step(self, live: list[int], pieces: list[Piece]) -> list[StepResult]:
        options = pieces[0].options
        opts = options["opt"] if isinstance(options["opt"], tuple) else (options["opt"],)
        groups = [self._optimizer(o, live, pieces) for o in opts]
        stepped = {n: self.stacked[n] for g in groups for n in g.names}
        rest = {n: t for n, t in self.stacked.items() if n not in stepped}
        args, draws = self._inputs(live, pieces)
        with over_seeds():
            grads, value, aux, norm, written = self._vectorised(live, pieces)(stepped, rest, args, draws)
        if clash := sorted(set(written) & set(stepped)):
            raise RuntimeError(f"{pieces[0].name} writes {clash[0]}, which its optimizer steps")
        for g in groups:
            self._optimizer_step(g, live, grads)
        self._sync_out(stepped)
        self._assign(written)
        pick = lambda tree, k: tree_map(lambda v: v[k].detach() if isinstance(v, Tensor) else v, tree)  # noqa: E731
        return [StepResult(value[k], pick(aux, k), None if norm is None else norm[k]) for k in live]

    def _optimizer_step(self, g: GroupOptimizer, live: list[int], grads: dict[str, Tensor]) -> None:
        """One fused step of the moving slots' slices (their gradients set, the others' None: left alone), at
        each seed's learning rate: the rate of a schedule the agent runs on its own optimizer (SimbaV2's
        decay), one step per rate where seeds at different update counts have different ones."""
        rates: dict[float, list[int]] = {}
        for k in self.moving:
            lr = g.own[k if k in live else live[0]].param_groups[0]["lr"]
            rates.setdefault(lr, []).append(k)
        for lr, slots in rates.items():
            for n, per_slot in zip(g.names, g.slices):
                for k in slots:
                    per_slot[k].grad = grads[n][k]
            g.opt.param_groups[0]["lr"] = lr
            g.opt.step()
            for v in g.opt.param_groups[0]["params"]:
                v.grad = None

    def _targets(self, live: list[int], pieces: list[Piece]) -> tuple[list[str], list[str]]:
        target, online = pieces[0].args
        k = live[0]
        return [self.name(k, t) for t in parameters(target)], [self.name(k, t) for t in parameters(online)]

    def _ema(self, live: list[int], pieces: list[Piece]) -> list[None]:
        targets, online = self._targets(live, pieces)
        tau = pieces[0].options["tau"]
        self._apply(lambda t, o: ema_update_(t, o, tau), targets, [self.stacked[n] for n in online])
        self._sync_out(targets)
        return [None] * len(live)

    def _copy(self, live: list[int], pieces: list[Piece]) -> list[None]:
        targets, online = self._targets(live, pieces)
        self._apply(hard_update_, targets, [self.stacked[n] for n in online])
        self._sync_out(targets)
        return [None] * len(live)

    def _reset(self, live: list[int], pieces: list[Piece]) -> list[None]:
        """Each seed's networks built again from its own seed (in this thread, one seed after the other: the
        global generators are forked for each), written into its slices of the stacks and its own tensors;
        the group optimizers and the seeds' own forget their state for them."""
        names = set()
        for k, piece in zip(live, pieces):
            pairs = reset_pairs(piece.args[0], build_seeded(piece.fn, piece.draws["seed"]))
            with torch.no_grad():
                for t, v in pairs:
                    names.add(n := self.name(k, t))
                    self.stacked[n][k].copy_(v)
                    t.copy_(v)
            drop_optimizer_state(piece.options["opt"], [t for t, _ in pairs])
        for g in self.opts.values():
            reset = [per_slot[k] for n, per_slot in zip(g.names, g.slices) if n in names for k in self.moving]
            drop_optimizer_state(g.opt, reset)
        return [None] * len(live)
