"""K agents of one config updated as one: networks stacked over seeds, each piece of their update run once.

An agent's update is written once, as calls on its updater (iqrl/core/update.py: `call`, `step`, `ema`,
`copy`). In a group, seed k's agent gets a `SeedUpdater`: when seed k's update (the agent's own code, in
seed k's thread) reaches a piece, it hands the piece to the group and waits. Once every seed still training
has handed in the same piece, the group runs it once for all of them: the function over the parameters and
buffers stacked per seed ([slots, ...] tensors, `torch.func.functional_call` under `torch.func.vmap`, the
arguments stacked the same way), a gradient step as `vmap(grad)` followed by one fused step of a group
optimizer over the seeds' slices of the stacks (Adam is elementwise: each slice steps as that seed's own
optimizer would, with that seed's own step count), a target update as one in-place update of the stacks.
Each seed gets its slice of the result, and its own networks a copy of the slices that changed, so that
acting, evaluation and checkpoints read a seed's own modules exactly as in a single-seed run. Pieces pair by
update number: seeds resumed at one env step after episodes of different lengths have run different numbers
of updates, and the seeds further on wait while the others run their pieces alone (the waiting seeds' slices
left as they are), as every seed's update i met the others' update i in the uninterrupted run.

Acting meets in the group the same way: an agent that acts through its updater (`Updater.act`) hands each
action in as a piece of kind `act`. Once every seed still training has handed in a piece, the actions of the
seeds acting in one form (function, shapes) run first, as one forward over the stacks with one transfer to the
host, and the update pieces wait for the next round (a seed in its update waits): the seeds step in lockstep.

Everything between the pieces runs in the seed's own thread on its own objects: sampling from its replay,
the random draws (from its own generator, in its own order), counters and schedules, writing priorities back.
The statistics a piece's layers return (iqrl/nn/stats.py: running mean and variance, counters, a codebook's
EMA) come out of `vmap` one value per seed and are written into the stacks and the seeds' own buffers, as the
parameters a step changes are. A stat layer's buffers are read from each seed before each piece: an agent may
update them while acting, in its own thread (an observation normaliser).

So the group has no code of any agent: a new agent whose update runs its networks through its updater trains
here as written. What it cannot run (an update that changes its networks by other means, such as an in-place
statistic of a buffer) is refused: up front where the config says so (`AgentConfig.kseed_refusal`), when the
group is built where a network holds state the updater cannot account for or draws inside its forward
(`in_place_state`: a plain nn.BatchNorm1d, any persistent buffer outside a stat layer, torch's nn.Dropout),
else after the seed's first update, when its own networks no longer match their stacked copies
(`check_in_sync`).

Nothing is reduced across seeds, so seed k's run is the run of `python -m iqrl.train ... seed=k` up to
floating-point rounding: vectorised products and sums group their additions differently from unbatched ones,
so the last bits differ (tests/test_multiseed.py bounds it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from iqrl.core.interface import Agent
from iqrl.core.update import Modules, Parameters, StepResult, Updater, params_of
from iqrl.multiseed.pieces import Piece, PieceRuns
from iqrl.multiseed.refusals import KSeedRefused, in_place_state
from iqrl.multiseed.vectorise import GroupOptimizer, Networks
from iqrl.nn.stats import StatLayer, Writes


class SeedUpdater(Updater):
    """Seed k's updater: every piece of its update goes to the group, which runs it vectorised."""

    def __init__(self, group: SeedGroup, k: int):
        super().__init__()
        self.group, self.k = group, k

    def call(self, fn: Callable, *args, **draws) -> Any:
        return self.group.submit(self.k, Piece("call", fn, args, draws, {}))

    def step(self, loss_fn, *args, opt, max_norm: float = 0.0, frozen=(), after=None, **draws) -> StepResult:
        # `frozen` needs nothing here: a step differentiates only the parameters its optimizers step
        result = self.group.submit(
            self.k, Piece("step", loss_fn, args, draws, {"opt": opt, "max_norm": max_norm})
        )
        if after is not None:
            self.call(after)
        return result

    def ema(self, target: Parameters, online: Parameters, tau: float) -> None:
        self.group.submit(self.k, Piece("ema", None, (target, online), {}, {"tau": tau}))

    def copy(self, target: Parameters, online: Parameters) -> None:
        self.group.submit(self.k, Piece("copy", None, (target, online), {}, {}))

    def reset(self, modules: Modules, build: Callable[[], Modules], opt=None, *, seed: int) -> None:
        self.group.submit(self.k, Piece("reset", build, (modules,), {"seed": seed}, {"opt": opt}))

    def act(self, fn: Callable, *args, **draws) -> Any:
        return self.group.submit(self.k, Piece("act", fn, args, draws, {}))

    def host(self, fn: Callable, *args) -> Any:
        """Host work `fn([each seed's args])` (its env's step: iqrl/multiseed/envs.py), run once for the seeds
        that hand it in together; seed k's result."""
        return self.group.submit(self.k, Piece("host", fn, args, {}, {}))


class SeedGroup(PieceRuns):
    """K agents (same config, different seeds) updated together; see the module docstring."""

    def __init__(self, agents: list[Agent], slots: list[int] | None = None, width: int | None = None):
        if why := in_place_state(agents[0]):
            raise KSeedRefused(why)
        # agents[i] in slot slots[i] of `width` (default: each its own, in order). A seed's numbers depend on
        # its slot (its slices' offsets select its products' kernel paths: tests/test_kseed_slots.py), so a
        # group resumed with some of its command's seeds done keeps the others where they were, and a seed
        # not here has a stand-in (a copy of the first agent) that never steps: its slot is computed and
        # thrown away, as that of a seed that has left.
        placed = dict(zip(range(len(agents)) if slots is None else slots, agents))
        self.K = max(width or len(agents), max(placed) + 1)
        self.agents = [placed[k] if k in placed else agents[0].snapshot() for k in range(self.K)]
        # Slots of the vectorised dimension: at least 2. Matrix products with a batch of one take other
        # kernels (matrix-vector paths when a dimension is 1) than batches of two or more, which round
        # differently; a lone seed gets a spare slot so that its numbers are those of any larger group.
        self.slots = max(self.K, 2)
        self.holders = [Networks(a.networks()) for a in self.agents]
        # Every parameter and buffer of every seed, by name; stacked over seeds. The seeds' own tensors stay
        # apart and get their slices copied after each piece (`_sync_out`): acting through a view at an odd
        # offset in the stack would take differently aligned kernel paths than a lone seed's tensors.
        self.ties = self.holders[0].ties()  # functional_call's tie_weights (Networks.ties)
        self.names: list[dict[int, str]] = []  # per seed: id(tensor) -> name
        self.own: dict[str, list[Tensor]] = {}
        for h in self.holders:
            tensors = dict([*h.named_parameters(), *h.named_buffers()])
            self.names.append({id(t): n for n, t in tensors.items()})
            for n, t in tensors.items():
                self.own.setdefault(n, []).append(t.data)
        with torch.no_grad():
            self.stacked = {n: torch.stack(self._pad(ts)).contiguous() for n, ts in self.own.items()}
        # Where the statistics a piece writes go: the holder's module -> its name (one dict per seed), and the
        # buffers of stat layers, read from the seeds before every piece.
        self.module_names = [{id(m): n for n, m in h.named_modules()} for h in self.holders]
        self.stat_buffers = [
            f"{n}.{b}"
            for n, m in self.holders[0].named_modules()
            if isinstance(m, StatLayer)
            for b, _ in m.named_buffers(recurse=False)
        ]
        self.opts: dict[tuple[str, ...], GroupOptimizer] = {}
        # How the vectorised pieces run: as the agents' own updaters ran theirs (compile=true compiled them:
        # Agent.compile), through the same compile path; each update one step of the CUDA-graph tree.
        own = agents[0].updater
        self.updater = Updater(compile=own.compile, cudagraphs=own.cudagraphs)
        # static shapes: a batched tensor of vmap cannot carry symbolic sizes ("Cannot call sizes() on tensor
        # with symbolic sizes", torch 2.13), so a piece called at another shape (taco) compiles again instead
        self.updater.options = {**own.options, "dynamic": False}
        self._marked: int | None = None  # the update number of the last step marked (cudagraphs)
        self.moving: list[int] = list(range(self.slots))  # the slots the running piece may change
        self._synced_in = False
        for k in placed:
            self.agents[k].updater = SeedUpdater(self, k)
        # Rendezvous of the seeds' pieces, one lock: the server waits on `cv` for the last hand-in, each seed
        # on its own condition for its result (a notify_all woke every thread at every hand-in)
        self.cv = threading.Condition(lock := threading.RLock())
        self.woken = [threading.Condition(lock) for _ in self.agents]
        self.active = set(placed)
        self.pending: dict[int, Piece] = {}
        self.update_of = dict.fromkeys(range(self.K), 0)  # each seed's update number (`at_update`)
        self.results: dict[int, Any] = {}
        self.round = 0
        self.error: BaseException | None = None
        self.serving = False  # while a thread runs `serve`: rounds then run there, not in a seed's thread

    def _pad(self, per_seed: list) -> list:
        return per_seed + [per_seed[0]] * (self.slots - self.K)

    # ------------------------------------------------------------------ the seeds' own tensors <-> the stacks
    def name(self, k: int, tensor: Tensor) -> str:
        try:
            return self.names[k][id(tensor)]
        except KeyError:
            raise RuntimeError(
                f"{type(self.agents[k]).__name__}'s update runs a tensor of shape {tuple(tensor.shape)} that "
                "is not among its networks (Agent.networks(): the modules of STATE_OBJECTS)"
            ) from None

    def _sync_in(self) -> None:
        """Before the first piece: the seeds' own tensors (checkpointed ones after a resume) into the
        stacks."""
        with torch.no_grad():
            for n, tensors in self.own.items():
                for k, t in enumerate(tensors):
                    self.stacked[n][k].copy_(t)

    def _sync_stats_in(self) -> None:
        """The stat layers' buffers of every seed into the stacks (those an agent updates while acting)."""
        names = self.stat_buffers
        if names:
            with torch.no_grad():
                torch._foreach_copy_(
                    [self.stacked[n][k] for n in names for k in range(self.K)],
                    [self.own[n][k] for n in names for k in range(self.K)],
                )

    def _written(self, k: int, writes: Writes) -> dict[str, Tensor]:
        """A piece's writes (module of seed k's holder, tensor name) by their names in the stacks."""
        return {f"{self.module_names[k][id(m)]}.{name}": v for (m, name), v in writes.items()}

    def _moving(self, seeds: list[int]) -> list[int]:
        """The slots a piece of `seeds` may change: theirs and the spare ones; never the slices of a seed that
        is at another update (`_run_round`) or has left."""
        return [k for k in range(self.slots) if k in seeds or k >= self.K]

    def _apply(self, op, targets: list[str], sources: list) -> None:
        """op(target tensors, source tensors) in place on the moving slots' slices of the stacked tensors
        `targets` (`sources`: stacked tensors or [slots, ...] values beside them). Slice by slice, whoever
        moves: a slice then gets the numbers of the kernel a seed's own tensor gets (a whole stack's vector
        lanes may round its last elements otherwise), the same in a round of every seed or of a few."""
        dst = [self.stacked[n][k] for n in targets for k in self.moving]
        src = [v[k] for v in sources for k in self.moving]
        with torch.no_grad():
            op(dst, src)

    def _assign(self, written: dict[str, Tensor]) -> None:
        """Values [slots, ...] that a piece wrote, by name, into the stacks and the moving seeds' own
        tensors."""
        if written:
            self._apply(torch._foreach_copy_, list(written), list(written.values()))
            self._sync_out(written)

    def _sync_out(self, names) -> None:
        """The moving seeds' slices of the stacked tensors `names` into their own tensors."""
        names, seeds = list(names), [k for k in self.moving if k < self.K]
        dst = [self.own[n][k] for n in names for k in seeds]
        src = [self.stacked[n][k] for n in names for k in seeds]
        with torch.no_grad():
            torch._foreach_copy_(dst, src)

    def check_in_sync(self, k: int) -> None:
        """Seed k's own tensors equal its slices of the stacks: after an update, anything else means the
        update changed its networks by other means than its updater's pieces, which the group cannot
        vectorise."""
        for n, tensors in self.own.items():
            if not torch.equal(tensors[k], self.stacked[n][k]):
                raise RuntimeError(
                    f"agent {self.agents[k].cfg.name} changed {n.removeprefix('parts.')} in its update "
                    "outside its updater's pieces (an in-place update in its own code), which the K-seed "
                    "mode cannot vectorise; train its seeds one by one"
                )

    # ------------------------------------------------------------------ optimizer state <-> seeds
    def _optimizer(self, opt: torch.optim.Optimizer, live: list[int], pieces: list[Piece]) -> GroupOptimizer:
        """The group optimizer over the seeds' slices of `opt`'s stacked parameters (made at its first step,
        from the seeds' own optimizers' settings and state). Adam is elementwise: one fused step over the
        slices steps each as that seed's own optimizer would. An optimizer class with a `for_group`
        constructor makes its own (iqrl.nn.optim.LaProp, whose clipping reads each tensor's norms: each slice
        is a tensor of its own)."""
        (group,) = opt.param_groups
        names = [self.name(live[0], p) for p in group["params"]]
        key = tuple(names)
        if key not in self.opts:
            slices = [[self.stacked[n][k] for k in range(self.slots)] for n in names]
            flat = [v for per_slot in slices for v in per_slot]
            if hasattr(type(opt), "for_group"):  # an optimizer of its own (DreamerV3's LaProp) makes its copy
                stepped = type(opt).for_group(flat, group)
            else:
                hyper = {k: group[k] for k in ("lr", "betas", "eps", "weight_decay", "amsgrad")}
                stepped = type(opt)(flat, **hyper, fused=True)
            self.opts[key] = GroupOptimizer(stepped, names, slices, {})
        g = self.opts[key]
        for k, piece in zip(live, pieces):  # a seed's first step: its own optimizer and its (resumed) state
            if k not in g.own:
                opts = piece.options["opt"]
                g.own[k] = next(
                    o for o in (opts if isinstance(opts, tuple) else (opts,)) if self._names_of(k, o) == key
                )
                self._take_state(g, k)
        return g

    def _names_of(self, k: int, opt: torch.optim.Optimizer) -> tuple[str, ...]:
        return tuple(self.names[k].get(id(p), "") for p in params_of(opt))

    def _take_state(self, g: GroupOptimizer, k: int) -> None:
        """Seed k's own optimizer state (resumed from its checkpoint) into its slices'."""
        state = g.own[k].state_dict()["state"]
        for i, per_slot in enumerate(g.slices):
            if i in state:
                g.opt.state[per_slot[k]] = {s: v.clone() for s, v in state[i].items()}

    def write_optimizer_state(self, k: int) -> None:
        """Seed k's slices of the group optimizers' states into its own optimizers (before its checkpoint)."""
        for g in self.opts.values():
            if k not in g.own:  # it never stepped through this one: its own state is untouched
                continue
            own = g.own[k]
            for per_slot, mine in zip(g.slices, params_of(own)):
                if per_slot[k] in g.opt.state:
                    own.state[mine] = {s: v.clone() for s, v in g.opt.state[per_slot[k]].items()}

    # ------------------------------------------------------------------ rendezvous
    def at_update(self, k: int, index: int) -> None:
        """Seed k's next pieces are of its update number `index` (its trainer's count of updates)."""
        with self.cv:
            self.update_of[k] = index

    def submit(self, k: int, piece: Piece) -> Any:
        """Seed k hands in a piece of its update; returns seed k's result once the group has run it."""
        with self.cv:
            if self.error is not None:
                raise RuntimeError(f"the group update failed: {self.error}") from self.error
            self.pending[k] = piece
            self._maybe_run()
            while k not in self.results and self.error is None:
                self.woken[k].wait()
            if self.error is not None:
                raise RuntimeError(f"the group update failed: {self.error}") from self.error
            return self.results.pop(k)

    def _ready(self) -> bool:
        return bool(self.pending) and set(self.pending) >= self.active

    def serve(self, start: Callable[[], None] | None = None) -> None:
        """Run every round in the calling thread until all seeds have left. All large allocations then
        come from one thread: with rounds in whichever seed thread arrived last, glibc's per-thread malloc
        arenas held about twice the memory and the update ran about 30% slower (K = 4, walker-walk, CPU).
        `start()` starts the seeds' threads once this thread serves: a seed started before would run a round
        in its own thread when it hands in the last piece first (which a captured group cannot)."""
        with self.cv:
            self.serving = True
            try:
                if start is not None:
                    start()
                while self.active:
                    if self._ready():
                        self._run_pending()
                    else:
                        self.cv.wait()
            finally:
                self.serving = False

    def _maybe_run(self) -> None:
        if self.serving:
            if self._ready() or not self.active:  # a round to run, or the server's end
                self.cv.notify()
        else:
            while self._ready():
                self._run_pending()

    def _run_pending(self) -> None:
        try:
            self._run_round()
        except BaseException as e:  # every waiting seed fails with it
            self.error = e
            self.pending.clear()
        self.round += 1
        for k in range(self.K) if self.error is not None else list(self.results):
            self.woken[k].notify()

    def leave(self, k: int) -> None:
        """Seed k is finished (or failed): later rounds no longer wait for it."""
        with self.cv:
            self.active.discard(k)
            self._maybe_run()
