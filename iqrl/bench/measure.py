"""The measurements of one `make bench` row: an agent built by the trainer at its paper configuration,
its updates, acting and data collection timed (iqrl/bench/cli.py runs each row in its own process).

It imports torch, the core (the trainer, the run's parts, the config) and the K-seed mode's SeedGroup.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import resource
import shutil
import tempfile
import threading
import time
import weakref
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from iqrl.bench.plain import PlainIQRL
from iqrl.config.build import build_config, layered
from iqrl.config.run import RunConfig, perturbations
from iqrl.envs.batch import EnvBatch
from iqrl.envs.tasks import suite_of
from iqrl.loop.memory import agent_tensors
from iqrl.loop.parts import build_parts, run_env
from iqrl.loop.trainer import Trainer
from iqrl.multiseed.envs import steps_together
from iqrl.multiseed.group import SeedGroup
from iqrl.multiseed.runs import workers_help


class NotTimed(RuntimeError):
    """A row whose timed updates did not all run: it is an error with this cause, never a rate."""


def fingerprint(agent) -> torch.Tensor:
    """Per trainable tensor of the agent's networks its sum and sum of squares (float64): equal before and
    after a stretch of updates only if no step changed any of them."""
    trainable = [t for t in agent_tensors(agent) if t.requires_grad]
    with torch.no_grad():
        return torch.stack([v for t in trainable for v in (t.double().sum(), t.double().square().sum())])


def check_timed(agents: list, before: list[torch.Tensor], done: list[int], n: int) -> None:
    """After timing n updates of each agent: every one ran all n (`done`) and changed its parameters
    (`before`: their `fingerprint` before); NotTimed naming the first that did not."""
    for k, (agent, fp, count) in enumerate(zip(agents, before, done)):
        if count != n:
            raise NotTimed(f"seed {k} ran {count} of the {n} timed updates")
        if torch.equal(fingerprint(agent), fp):
            raise NotTimed(f"seed {k}'s parameters did not change over its {n} timed updates")


def memory_floor_mb(agents: list, group: SeedGroup | None = None) -> float:
    """What a completed update must have held at once: every agent's networks and its optimizers' two Adam
    moments per trainable parameter; in a group the agents' own networks, the stacks (one slice per slot)
    and the group optimizers' moments instead. A row whose peak is below it did not complete an update."""
    tensors = [agent_tensors(a) for a in agents]
    weights = sum(t.numel() * t.element_size() for ts in tensors for t in ts)
    trainable = sum(t.numel() * t.element_size() for t in tensors[0] if t.requires_grad)
    per_slot = sum(t.numel() * t.element_size() for t in tensors[0])
    extra = 2 * trainable * len(agents) if group is None else group.slots * (per_slot + 2 * trainable)
    return (weights + extra) / 2**20


def floor_fields(peak_mb: float, floor_mb: float) -> dict:
    """The row's memory floor, and a `flag` when its peak is below it (on a GPU: the allocator's peak)."""
    row = {"mem_floor_mb": round(floor_mb, 1)}
    if peak_mb < floor_mb:
        row["flag"] = (
            f"peak memory {peak_mb:.0f} MB below the {floor_mb:.0f} MB its networks, stacks and optimizer "
            "state need: no update completed"
        )
    return row


FIELDS = [
    "agent",
    "task",
    "obs",
    "device",
    "dtype",
    "compile",
    "seeds",
    "updates_per_s",
    "ops_per_update",
    "env_steps_per_s",
    "group_env_steps_per_s",
    "group_env_steps_per_s_threads",
    "collect_vs_one",
    "act_ms",
    "render_ms",
    "compile_s",
    "hours_per_1m",
    "peak_mem_mb",
    "mem_floor_mb",
    "timed_updates",
    "torch",
    "hardware",
]
#: `--compile` values: the run keys each one sets.
COMPILE_MODES = {"false": [], "true": ["compile=true"], "cudagraphs": ["compile=true", "cudagraphs=true"]}
#: Fewest updates (a K-seed row: rounds) timed on CUDA (asynchronous: a short window measures the queue, not
#: the GPU), unless they would take longer than CUDA_MIN_SECONDS.
CUDA_MIN_UPDATES = 500
CUDA_MIN_SECONDS = 60.0
#: The bench's runs, beside the paper configuration: seed 0; episodes of 20 env steps (a run's are 1000), so
#: that one episode of the slowest agent fits in COLLECT_BUDGET_S (DC-MPC plans at every step: about 2.5 s
#: per action on 2 CPU cores); and 2000 env steps of seed episodes in the replay before anything is timed (as
#: much data as two of a run's episodes; every agent's windows are shorter than an episode's 10 transitions).
BENCH_RUN = ["seed=0", "episode_length=20", "seed_steps=2000"]
#: Seconds of data collection timed per row: whole episodes until they have passed (at least one).
COLLECT_BUDGET_S = 20.0


def bench_argv(
    agent: str, task: str, dtype: str, device: str, compile_mode: str, obs: str, size: int, extra=()
) -> list:
    """The run keys of a row (its config is `build_config` of them, as a run's); `extra` keys come last, so
    they override the paper configuration and BENCH_RUN (`--set`: e.g. tiny sizes for a smoke run)."""
    keys = [f"agent={agent}", f"task={task}", f"precision={dtype}", f"device={device}", f"obs={obs}"]
    keys += [f"image_size={size}"] * (obs == "pixels")
    return layered(keys + COMPILE_MODES[compile_mode] + BENCH_RUN, extra)


def hardware(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        model = cpu_model(Path("/proc/cpuinfo").read_text())
    except OSError:
        model = platform.processor() or "cpu"
    return f"{model} ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def cpu_model(cpuinfo: str) -> str:
    """The first CPU of /proc/cpuinfo as "<model name>, family F model M, <vector ISA>". Virtual machines
    often report a bare "AMD EPYC": the family and model tell the generations apart (AMD 25 is Zen 3/4, 26
    Zen 5), and the ISA says which kernels the float32 products can use, which moves every CPU figure."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the end of the first processor's block
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    isa = next((name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2")) if flag in flags), None)
    parts = [fields.get("model name", platform.processor() or "cpu")]
    if "cpu family" in fields and "model" in fields:
        parts.append(f"family {fields['cpu family']} model {fields['model']}")
    return ", ".join(parts + [isa] * (isa is not None))


class OpCounter(TorchDispatchMode):
    """Operator calls (aten, forward and backward, views and aliases not counted: `n`) and the bytes of the
    tensors each reads and writes (`bytes`: its tensor arguments and results, an upper bound on its memory
    traffic where an argument is read in part)."""

    def __init__(self):
        super().__init__()
        self.n = 0
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func.is_view:
            self.n += 1
            tensors = tree_leaves((args, kwargs, out))
            self.bytes += sum(t.nbytes for t in tensors if isinstance(t, torch.Tensor))
        return out


def count_ops(fn) -> int:
    """Operator calls (aten, forward and backward, views and aliases not counted) that fn() makes: each one
    is a kernel launch on an eager GPU, so ops / (a few microseconds per launch) bounds the eager rate."""
    with OpCounter() as counter:
        fn()
    return counter.n


def whole_periods(n: int, period: int) -> int:
    """At least n updates, a whole number of the agent's update periods (UpdateSchedule.cycle): MR.Q's
    encoder burst every 250 updates then costs each timed update its share, wherever the burst falls."""
    return math.ceil(n / period) * period


def peak_memory_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timer:
    """Seconds between start() and stop(): CUDA events on a GPU (the stream's own clock), else wall time."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"
        if self.cuda:
            self.events = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
        self.device = device

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            self.events[0].record()
        self.t0 = time.perf_counter()

    def stop(self) -> float:
        if not self.cuda:
            return time.perf_counter() - self.t0
        self.events[1].record()
        torch.cuda.synchronize(self.device)
        return self.events[0].elapsed_time(self.events[1]) / 1000.0


def prepare(
    agent: str,
    task: str,
    dtype: str,
    device: str,
    compile_mode: str = "false",
    obs: str = "state",
    image_size: int = 84,
    extra=(),
) -> Trainer:
    """The trainer of a row's run (BENCH_RUN), its replay filled by its own seed episodes. Its run folder is
    a temporary folder, removed with the trainer; it stays empty (only `Trainer.run` writes there)."""
    folder = tempfile.mkdtemp(prefix="iqrl-bench-")
    argv = bench_argv(agent, task, dtype, device, compile_mode, obs, image_size, extra)
    trainer = Trainer(build_config([*argv, f"out={folder}"]))
    weakref.finalize(trainer, shutil.rmtree, folder, ignore_errors=True)
    while trainer.env_step < trainer.cfg.seed_steps:
        trainer.collect_episode()
    return trainer


def collection_rate(trainer: Trainer, budget_s: float) -> float:
    """Env steps per second of the trainer's own data collection with the agent acting (`collect_episode`
    after the seed episodes): whole episodes until `budget_s` seconds have passed. Its window counts the
    env time apart from the updates that per-step agents (MR.Q) run between actions."""
    steps, seconds, t = trainer.row_totals["env_steps"], trainer.row_totals["env_time"], time.perf_counter()
    while True:
        trainer.collect_episode()
        if time.perf_counter() - t > budget_s:
            break
    return (trainer.row_totals["env_steps"] - steps) / (trainer.row_totals["env_time"] - seconds)


def measure(
    agent: str,
    task: str,
    dtype: str,
    device: str,
    n_updates: int,
    compile_mode: str = "false",
    obs: str = "state",
    image_size: int = 84,
    extra=(),
    collect_s: float = COLLECT_BUDGET_S,
) -> dict:
    trainer = prepare(agent, task, dtype, device, compile_mode, obs, image_size, extra)
    cfg, env, a, replay, dev = trainer.cfg, trainer.env, trainer.agent, trainer.replay, trainer.device
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    timer = Timer(dev)

    done = [0]

    def updates(n: int) -> float:
        """Seconds that n updates take, up to the last one's results."""
        timer.start()
        for i in range(n):
            with trainer.autocast:
                a.update(replay, i)
            done[0] += 1
        return timer.stop()

    warmup_s = updates(3)
    if dev.type == "cuda":
        n_updates = max(n_updates, CUDA_MIN_UPDATES)
    n_updates = whole_periods(n_updates, a.schedule.cycle)
    before, done[0] = [fingerprint(a)], 0
    ups = n_updates / updates(n_updates)
    check_timed([a], before, done, n_updates)
    # an actor and a critic-only step where the actor waits one; a compiled step runs kernels of its own
    ops = None if cfg.compile else count_ops(lambda: updates(2)) / 2
    obs, t = env.reset(), time.perf_counter()
    for training in (True, False):  # first actions: with compile=true they compile DC-MPC's planner
        a.on_episode_start(training=training)
        a.act(obs, explore=training)
    first_acts_s = time.perf_counter() - t
    env_sps = collection_rate(trainer, collect_s)
    obs = env.reset()
    a.on_episode_start(training=False)
    n_act, t = 0, time.perf_counter()
    while n_act < 100 and (n_act < 3 or time.perf_counter() - t < 10.0):
        a.act(obs, explore=False)
        n_act += 1
    sync()
    act_ms = (time.perf_counter() - t) * 1000.0 / n_act
    render_ms = None
    if cfg.obs == "pixels":
        t = time.perf_counter()
        for _ in range(20):
            env.frame()
        render_ms = (time.perf_counter() - t) * 1000.0 / 20
    hours_per_1m = (1e6 / env_sps + 1e6 * a.spec.rate(cfg.action_repeat) / ups) / 3600.0
    return {
        "agent": agent,
        "task": task,
        "obs": cfg.obs,
        "device": str(dev),
        "dtype": dtype,
        "compile": {"false": False, "true": True}.get(compile_mode, compile_mode),
        "seeds": 1,
        "updates_per_s": round(ups, 3),
        "ops_per_update": None if ops is None else round(ops, 1),
        "env_steps_per_s": round(env_sps, 1),
        **dict.fromkeys(GROUP_COLLECTION),
        "act_ms": round(act_ms, 3),
        "render_ms": None if render_ms is None else round(render_ms, 2),
        "compile_s": round(max(warmup_s - 3 / ups, 0.0) + max(first_acts_s - 2 * act_ms / 1000.0, 0.0), 1),
        "hours_per_1m": round(hours_per_1m, 2),
        "peak_mem_mb": round(peak_memory_mb(dev), 1),
        **floor_fields(peak_memory_mb(dev), memory_floor_mb([a])),
        "timed_updates": n_updates,
        "torch": torch.__version__,
        "hardware": hardware(dev),
    }


GROUP_COLLECTION = ("group_env_steps_per_s", "group_env_steps_per_s_threads", "collect_vs_one")


def stepping_rate(cfg: RunConfig, k: int, workers: bool, seconds: float) -> float:
    """Env steps per second of k envs of the run `cfg` (seeds 0..k-1, the suite's episode length) stepped
    at once with uniform random actions as a K-seed group steps them: in worker processes (env_workers=true),
    each in a thread of its own, or in this process: together in one thread (`EnvBatch`, as the group's rounds
    step DMC envs: iqrl/multiseed/envs.py), else each in a thread. The count of all k envs over `seconds`,
    resets included."""
    cfg = dataclasses.replace(cfg, episode_length=suite_of(cfg.task).episode_length, env_workers=workers)
    envs = [run_env(dataclasses.replace(cfg, seed=s), cfg.task, s, perturbations(cfg)) for s in range(k)]
    counts, stop = [0] * k, threading.Event()
    rngs = [np.random.default_rng(i) for i in range(k)]

    def collect(i: int) -> None:
        env = envs[i]
        env.reset()
        start.wait()
        while not stop.is_set():
            step = env.step(env.action_spec.sample(rngs[i]))
            counts[i] += cfg.action_repeat
            if step.terminated or step.truncated:
                env.reset()

    def together() -> None:  # every env's agent step in one EnvBatch.step
        batch = EnvBatch(envs)
        for env in envs:
            env.reset()
        start.wait()
        while not stop.is_set():
            steps = batch.step([(i, env.action_spec.sample(rngs[i])) for i, env in enumerate(envs)])
            for i, step in enumerate(steps):
                counts[i] += cfg.action_repeat
                if step.terminated or step.truncated:
                    envs[i].reset()

    one_thread = not workers and steps_together(cfg)
    threads = [threading.Thread(target=together, daemon=True)] if one_thread else []
    threads = threads or [threading.Thread(target=collect, args=(i,), daemon=True) for i in range(k)]
    start = threading.Barrier(len(threads) + 1)  # the collecting threads and this one
    try:
        [t.start() for t in threads]
        start.wait()
        t0 = time.perf_counter()
        time.sleep(seconds)
        stop.set()
        [t.join() for t in threads]
        return sum(counts) / (time.perf_counter() - t0)
    finally:
        for env in envs:
            if workers:
                env.close()


def group_collection(cfg: RunConfig, k: int, seconds: float) -> dict:
    """A K-seed row's collection: its K envs stepping at once (`stepping_rate`) as the group's runs step
    them by default (group_env_steps_per_s, all K envs together: in worker processes where there are two
    cores, `workers_help`) and in this process (..._threads: DMC's together, the others' each in a thread),
    and the first against one env alone (collect_vs_one); `seconds` in all."""
    one = stepping_rate(cfg, 1, False, seconds / 3)
    here = stepping_rate(cfg, k, False, seconds / 3)
    usual = stepping_rate(cfg, k, True, seconds / 3) if workers_help(k) else here
    return dict(zip(GROUP_COLLECTION, (round(usual, 1), round(here, 1), round(usual / one, 2))))


def measure_seeds(
    agent: str,
    task: str,
    dtype: str,
    device: str,
    n_updates: int,
    k: int,
    extra=(),
    compile_mode: str = "false",
    collect_s=COLLECT_BUDGET_S,
) -> dict:
    """Updates/s per seed of the K-seed mode (iqrl/multiseed/): K agents of the paper config updated
    as one vectorised group, compiled or captured as `compile_mode` says (the group's vectorised pieces).
    The K seeds sample from the first one's replay (what the batches hold does not change the cost).
    compile_s: the warm-up rounds' time beyond that of as many timed rounds, as `measure`'s. Beside it the
    group's collection (`group_collection`, `collect_s` seconds)."""
    first = prepare(agent, task, dtype, device, compile_mode, extra=extra)
    dev, replay = first.device, first.replay
    others = [build_parts(dataclasses.replace(first.cfg, seed=s), dev).agent for s in range(1, k)]
    agents = [first.agent, *others]
    group = SeedGroup(agents)
    done = [0] * k  # each seed's updates completed in the last call of `rounds`
    t = time.perf_counter()
    group_rounds(group, replay, first.autocast, 3, done)
    warmup_s = time.perf_counter() - t
    n_updates = whole_periods(n_updates, agents[0].schedule.cycle)
    if dev.type == "cuda":  # at least 500 rounds, or 60 s of them
        t = time.perf_counter()
        group_rounds(group, replay, first.autocast, 10, done)
        in_60s = math.ceil(10 * CUDA_MIN_SECONDS / (time.perf_counter() - t))
        n_updates = whole_periods(max(n_updates, min(CUDA_MIN_UPDATES, in_60s)), agents[0].schedule.cycle)
    before = [fingerprint(a) for a in agents]
    t = time.perf_counter()
    group_rounds(group, replay, first.autocast, n_updates, done)
    per_seed = n_updates / (time.perf_counter() - t)
    check_timed(agents, before, done, n_updates)
    collection = group_collection(first.cfg, k, collect_s)
    return {
        "agent": agent,
        "task": task,
        "obs": "state",
        "device": str(dev),
        "dtype": dtype,
        "compile": {"false": False, "true": True}.get(compile_mode, compile_mode),
        "seeds": k,
        "updates_per_s": round(per_seed, 3),
        "ops_per_update": None,
        "env_steps_per_s": None,
        **collection,
        "act_ms": None,
        "render_ms": None,
        "compile_s": round(max(warmup_s - 3 / per_seed, 0.0), 1),
        "hours_per_1m": None,
        "peak_mem_mb": round(peak_memory_mb(dev), 1),
        **floor_fields(peak_memory_mb(dev), memory_floor_mb(agents, group)),
        "timed_updates": n_updates,
        "torch": torch.__version__,
        "hardware": hardware(dev),
    }


def group_rounds(group: SeedGroup, replay, autocast, n: int, done: list[int]) -> None:
    """n updates of every seed of `group`, each seed's own `update` in its own thread, their rounds served by
    this thread from the first on (the seeds start once it serves: a round never runs in a seed's thread);
    done[k]: seed k's updates completed. A seed that raised raises here: it must not time as a fast one."""
    errors: list[BaseException] = []
    done[:] = [0] * len(done)
    group.active = set(range(group.K))  # the seeds that left after the last call take part again

    def seed(i: int) -> None:
        try:
            for j in range(n):
                m = group.agents[i].update(replay, j)
                done[i] += 1
            [float(v) for v in m.values()]  # the last update's results, on the host
        except BaseException as e:
            errors.append(e)
        finally:  # also after a failed round: the serving loop waits for every seed to leave
            group.leave(i)

    threads = [threading.Thread(target=seed, args=(i,)) for i in range(group.K)]
    with autocast:
        group.serve(start=lambda: [t.start() for t in threads])
    [t.join() for t in threads]
    if errors:
        raise errors[0]
    if replay.device.type == "cuda":
        torch.cuda.synchronize(replay.device)


def plain_comparison(task: str, modes: list[str], n_updates: int, rounds: int = 3) -> list[dict]:
    """iqrl's update (CPU, fp32, paper config) against a plain PyTorch implementation of the same update
    (iqrl/bench/plain.py, from the same initial weights and replay): one row per compile mode with its
    updates_per_s, the plain update's and their ratio vs_plain. All are timed in one process in `rounds`
    alternating blocks of `n_updates` (after 3 warm-up updates each), so a busy host slows them alike."""
    benches = {m: prepare("iqrl", task, "fp32", "cpu", m) for m in modes}
    first = next(iter(benches.values()))
    plain = PlainIQRL(first.agent, torch.Generator().manual_seed(0))
    batch_size = first.agent.spec.batch_size
    runs = {"plain": lambda i: plain.update(first.replay.sample(batch_size))}
    for m, b in benches.items():
        runs[m] = partial(lambda b, i: b.agent.update(b.replay, i), b)

    def block(run, k: int) -> float:
        t = time.perf_counter()
        for i in range(k):
            run(i)
        return time.perf_counter() - t

    for run in runs.values():
        block(run, 3)  # warm-up (compiling, with compile=true)
    seconds = dict.fromkeys(runs, 0.0)
    for _ in range(rounds):
        for name, run in runs.items():
            seconds[name] += block(run, n_updates)
    ups = {name: rounds * n_updates / s for name, s in seconds.items()}
    return [
        {
            "agent": "iqrl",
            "task": task,
            "obs": "state",
            "device": "cpu",
            "dtype": "fp32",
            "compile": {"false": False, "true": True}[m],
            "seeds": 1,
            "updates_per_s": round(ups[m], 3),
            "plain_updates_per_s": round(ups["plain"], 3),
            "vs_plain": round(ups[m] / ups["plain"], 3),
            "updates": rounds * n_updates,
            "torch": torch.__version__,
            "hardware": hardware(first.device),
        }
        for m in modes
    ]
