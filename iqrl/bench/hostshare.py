"""The host's share of a K-seed group's step, counted on any machine: operators dispatched, host-device syncs
and moves of host data to the device, per agent step (acting) and per update of iqrl at its paper
configuration, for groups of K seeds (iqrl/multiseed: the group's act and update rounds).

On an eager GPU every operator is a kernel launch (about 5-10 µs of host time each), every sync stalls the
host until the queue drains, and every move of host data is a copy of its own; so these counts bound how
much of an agent step's and an update's wall time the host spends, whatever the GPU. Counted, on the CPU:
- ops: the aten operators dispatched (views and aliases not counted: `OpCounter`);
- syncs: what makes a GPU's host wait for the device: a scalar read (`.item()`, `float(t)`, `bool(t)`:
  aten._local_scalar_dense), an operator whose output size depends on the data (nonzero, masked_select,
  unique), and a read of a device tensor into host memory (`.cpu()`, `.to("cpu")`, `.tolist()`, `.numpy()`;
  the `.numpy()` of what a counted `.cpu()` returned is not counted again);
- moves: host data made into a tensor on the agent's device (`torch.as_tensor`/`torch.tensor` given that
  device, `Tensor.to` it): each one a host-to-device copy.
On a CPU every tensor is on the device, so a `.cpu()` of a tensor that would stay on the host of a GPU run
is counted too (none in iqrl's acting and update: tests/test_bench_host.py pins the counts).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from iqrl.bench.measure import OpCounter, hardware, prepare
from iqrl.envs.tasks import eval_seed, suite_of
from iqrl.loop.evaluation import eval_returns
from iqrl.loop.parts import build_parts, eval_env_copy
from iqrl.multiseed.group import SeedGroup

aten = torch.ops.aten
#: Operators whose result the host needs before it can go on: a scalar read, or an output whose size depends
#: on the data (and `multinomial`'s argument checks).
SYNCING = {aten._local_scalar_dense.default, aten.nonzero.default, aten.is_nonzero.default}
SYNCING_PACKETS = {aten.masked_select, aten.multinomial, aten.nonzero, aten.unique_consecutive, aten._unique2}


def synchronises(func, args) -> bool:
    """Whether the operator `func` on `args` makes a GPU's host wait for the device (`SYNCING`, and x[mask] or
    x[mask] = v: the result's size is the mask's count, which the host must read)."""
    if func in SYNCING or func.overloadpacket in SYNCING_PACKETS:
        return True
    if func.overloadpacket not in (aten.index, aten.index_put, aten.index_put_):
        return False
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1] if i is not None)


#: Tensor methods that read a tensor's values into host memory (besides `.cpu()` and `.to` the CPU).
HOST_READS = {torch.Tensor.tolist, torch.Tensor.numpy}
#: Functions that make a tensor of host data on the device they are given.
CREATE = {torch.as_tensor, torch.tensor}


class _SyncCounter(OpCounter):
    """Operators (`OpCounter`) and, among them, those that synchronise (`synchronises`)."""

    def __init__(self):
        super().__init__()
        self.syncs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.syncs += synchronises(func, args)
        return super().__torch_dispatch__(func, types, args, kwargs)


class _HostCounter(TorchFunctionMode):
    """Reads of tensors into host memory (`HOST_READS`, `.to` the CPU) and moves of host data to `device`."""

    def __init__(self, device: torch.device, on_host: dict[int, torch.Tensor]):
        super().__init__()
        self.device, self.reads, self.moves = device, 0, 0
        self.on_host = on_host  # the storages that a counted read returned (read again: no sync)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        to = _device_of(args[1:], kwargs) if func is torch.Tensor.to else None
        if func is torch.Tensor.cpu or to == "cpu" or (func in HOST_READS and not self.read(args[0])):
            self.reads += 1
            if isinstance(out, torch.Tensor):  # kept while counting: its memory is not reused by another
                self.on_host[out.untyped_storage().data_ptr()] = out
        elif to == self.device.type or (func in CREATE and _device_of((), kwargs) == self.device.type):
            self.moves += 1
        return out

    def read(self, t: torch.Tensor) -> bool:
        """Whether t's values are those of a counted read (already in host memory)."""
        return t.untyped_storage().data_ptr() in self.on_host


def _device_of(args: tuple, kwargs: dict) -> str | None:
    """The device type a call's `device` argument names (keyword, or `.to`'s first positional one)."""
    device = kwargs.get("device", args[0] if args and isinstance(args[0], (str, torch.device)) else None)
    return None if device is None else torch.device(device).type


class Counts:
    """What the calls counted in every thread that ran them made: ops, syncs, moves (module docstring)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.parts: list[tuple[_SyncCounter, _HostCounter]] = []
        self.on_host: dict[
            int, torch.Tensor
        ] = {}  # shared: a seed reads what the serving thread moved to the host
        self.lock = threading.Lock()

    def counting(self, fn: Callable) -> Callable:
        """fn counted in whichever thread runs it (dispatch and function modes are each thread's own)."""

        def counted(*args, **kwargs):
            ops, host = _SyncCounter(), _HostCounter(self.device, self.on_host)
            with self.lock:
                self.parts.append((ops, host))
            with ops, host:
                return fn(*args, **kwargs)

        return counted

    def totals(self) -> dict[str, int]:
        ops = sum(o.n for o, _ in self.parts)
        syncs = sum(o.syncs + h.reads for o, h in self.parts)
        return {"ops": ops, "syncs": syncs, "moves": sum(h.moves for _, h in self.parts)}


def group_calls(group: SeedGroup, call: Callable[[int], None], counts: Counts | None = None) -> None:
    """call(k) in seed k's thread for every seed of `group`, the rounds served by this thread; with `counts`,
    every thread's calls counted (the seeds' and the server's)."""
    wrap = counts.counting if counts is not None else (lambda fn: fn)
    errors: list[BaseException] = []
    group.active = set(range(group.K))

    def seed(k: int) -> None:
        try:
            call(k)
        except BaseException as e:
            errors.append(e)
        finally:
            group.leave(k)

    threads = [threading.Thread(target=wrap(seed), args=(k,)) for k in range(group.K)]
    wrap(group.serve)(start=lambda: [t.start() for t in threads])
    [t.join() for t in threads]
    if errors:
        raise errors[0]


def group_evaluation(
    group: SeedGroup, envs: list[list], counts: Counts | None = None
) -> tuple[list, int, int]:
    """Every seed's batched evaluation, as its trainer runs it in a K-seed run (`eval_returns` over its
    envs[k], acting from its evaluation stream) in its own thread; (each seed's outcomes, the acting rounds
    the group ran, the evaluation's agent steps: env 0 of seed 0's steps)."""
    rounds, frames, act = [0], [0], group._act

    def counted_act(live, pieces):
        rounds[0] += 1
        return act(live, pieces)

    def evaluate(k: int) -> None:
        agent, frame = group.agents[k], (lambda: frames.__setitem__(0, frames[0] + 1)) if k == 0 else None
        with agent.evaluating():
            outcomes[k] = eval_returns(envs[k], agent, len(envs[k]), True, frame)

    outcomes: list = [None] * group.K
    group._act = counted_act
    try:
        group_calls(group, evaluate, counts)
    finally:
        del group._act  # the class's again
    return outcomes, rounds[0], frames[0] - 1  # on_frame: after the reset and after each step


def build_group(task: str, k: int, extra=(), device: str = "cpu") -> tuple[SeedGroup, object]:
    """K iqrl agents of the paper configuration (seeds 0..K-1) in one group, and the first one's trainer
    (its replay filled by its seed episodes, `prepare`): the K seeds sample from it."""
    first = prepare("iqrl", task, "fp32", device, extra=extra)
    others = [build_parts(dataclasses.replace(first.cfg, seed=s), first.device).agent for s in range(1, k)]
    return SeedGroup([first.agent, *others]), first


def host_share(
    task: str, k: int, steps: int = 4, updates: int = 2, extra=(), timed_steps: int = 200, device: str = "cpu"
) -> dict:
    """A `host_share` row: ops, syncs and moves of the K-seed group per agent step (all K seeds' exploring
    actions, one round) and per group update (all K seeds' update of one index), after a warm-up step and
    update each (the first round copies the seeds' tensors into the stacks); act_ms: the wall time of one
    such agent step, uncounted, over `timed_steps` of them (the seeds' threads, their hand-ins and the round:
    on a CPU, the forward's arithmetic too). Then every seed's evaluation of eval_episodes episodes side by
    side (`group_evaluation`, the bench's episodes of 20 env steps): acting calls (group rounds) per
    evaluation step, its ops, syncs and moves per step, its wall time per step, env steps included, and per
    evaluation (`eval_s`; `eval_s_at_length`: at that rate per step, episodes of the task's own length)."""
    group, trainer = build_group(task, k, extra, device)
    obs = [np.asarray(trainer.env.reset()) for _ in range(k)]
    rng = np.random.default_rng(0)
    obs = [o + rng.normal(size=o.shape).astype(o.dtype) for o in obs]  # every seed its own observation

    def act(n: int) -> Callable[[int], None]:
        return lambda i: [group.agents[i].act(obs[i], explore=True) for _ in range(n)]

    def update(first: int, n: int) -> Callable[[int], None]:
        return lambda i: [group.agents[i].update(trainer.replay, first + j) for j in range(n)]

    row = {"kind": "host_share", "agent": "iqrl", "task": task, "device": str(trainer.device), "seeds": k}
    for name, run, warm in (("act", act(steps), act(1)), ("update", update(1, updates), update(0, 1))):
        group_calls(group, warm)
        counts = Counts(trainer.device)
        group_calls(group, run, counts)
        n = steps if name == "act" else updates
        for what, total in counts.totals().items():
            row[f"{name}_{what}"] = round(total / n, 2)
    t = time.perf_counter()
    group_calls(group, act(timed_steps))
    row["act_ms"] = round((time.perf_counter() - t) * 1000 / timed_steps, 3)
    cfg, episodes = trainer.cfg, trainer.cfg.eval_episodes
    envs = [[eval_env_copy(cfg, task, eval_seed(s)) for _ in range(episodes)] for s in range(k)]
    counts, t = Counts(trainer.device), time.perf_counter()
    _, rounds, steps = group_evaluation(group, envs, counts)
    row |= {"eval_episodes": episodes * k, "eval_act_calls_per_step": round(rounds / steps, 2)}
    row |= {f"eval_{what}": round(total / steps, 2) for what, total in counts.totals().items()}
    seconds = time.perf_counter() - t
    row["eval_ms_per_step"] = round(seconds * 1000 / steps, 3)
    # one evaluation of the group: the bench's, and at the task's own episode length at the same rate per step
    full = suite_of(task).episode_length // cfg.action_repeat
    row |= {"eval_s": round(seconds, 3), "eval_s_at_length": round(seconds / steps * full, 2)}
    row |= {"torch": torch.__version__, "hardware": hardware(trainer.device)}
    return row


def host_share_main(args, seeds: list[int], write_rows: Callable) -> int:
    """`--host-share`: a `host_share` row per task of `--tasks` and K of `--seeds` (iqrl's), each written to
    --out as it is counted, and printed."""
    if args.agents not in ("", "iqrl"):
        print(f"error: --host-share counts iqrl's K-seed groups, got --agents {args.agents}", file=sys.stderr)
        return 2
    rows = []
    for task in (t for t in args.tasks.split(",") if t):
        for k in seeds:
            rows.append(host_share(task, k, extra=args.set, device=args.device))
            write_rows(rows, args.out)
            print(json.dumps(rows[-1]), flush=True)
    print(f"wrote {args.out}")
    return 0
