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

from iqrl.bench.plain import PlainIQRL
from iqrl.config.build import build_config, layered
from iqrl.config.run import RunConfig, perturbations
from iqrl.envs.tasks import suite_of
from iqrl.loop.parts import build_parts, run_env
from iqrl.loop.trainer import Trainer
from iqrl.multiseed.group import SeedGroup

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
    "torch",
    "hardware",
]
#: `--compile` values: the run keys each one sets.
COMPILE_MODES = {"false": [], "true": ["compile=true"], "cudagraphs": ["compile=true", "cudagraphs=true"]}
#: Fewest updates timed on CUDA (asynchronous: a short window measures the queue, not the GPU).
CUDA_MIN_UPDATES = 500
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


class _OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += not func.is_view
        return func(*args, **(kwargs or {}))


def count_ops(fn) -> int:
    """Operator calls (aten, forward and backward, views and aliases not counted) that fn() makes: each one
    is a kernel launch on an eager GPU, so ops / (a few microseconds per launch) bounds the eager rate."""
    with _OpCounter() as counter:
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

    def updates(n: int) -> float:
        """Seconds that n updates take, up to the last one's results."""
        timer.start()
        for i in range(n):
            with trainer.autocast:
                a.update(replay, i)
        return timer.stop()

    warmup_s = updates(3)
    if dev.type == "cuda":
        n_updates = max(n_updates, CUDA_MIN_UPDATES)
    n_updates = whole_periods(n_updates, a.schedule.cycle)
    ups = n_updates / updates(n_updates)
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
        "torch": torch.__version__,
        "hardware": hardware(dev),
    }


GROUP_COLLECTION = ("group_env_steps_per_s", "group_env_steps_per_s_threads", "collect_vs_one")


def stepping_rate(cfg: RunConfig, k: int, workers: bool, seconds: float) -> float:
    """Env steps per second of k envs of the run `cfg` (seeds 0..k-1, the suite's episode length) stepped
    at once with uniform random actions, each in a thread of its own as the K-seed mode's seeds step theirs:
    in worker processes (env_workers=true) or in this process. The count of all k envs over `seconds`,
    resets included."""
    cfg = dataclasses.replace(cfg, episode_length=suite_of(cfg.task).episode_length, env_workers=workers)
    envs = [run_env(dataclasses.replace(cfg, seed=s), cfg.task, s, perturbations(cfg)) for s in range(k)]
    counts, start, stop = [0] * k, threading.Barrier(k + 1), threading.Event()

    def collect(i: int) -> None:
        env, rng = envs[i], np.random.default_rng(i)
        env.reset()
        start.wait()
        while not stop.is_set():
            step = env.step(env.action_spec.sample(rng))
            counts[i] += cfg.action_repeat
            if step.terminated or step.truncated:
                env.reset()

    threads = [threading.Thread(target=collect, args=(i,), daemon=True) for i in range(k)]
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
    """A K-seed row's collection: its K envs stepping at once (`stepping_rate`) in worker processes
    (group_env_steps_per_s, all K envs together) and in threads of this process (..._threads), and the first
    against one env alone stepped the same way (collect_vs_one); `seconds` in all."""
    one = stepping_rate(cfg, 1, False, seconds / 3)
    threads = stepping_rate(cfg, k, False, seconds / 3)
    workers = stepping_rate(cfg, k, True, seconds / 3)
    return dict(zip(GROUP_COLLECTION, (round(workers, 1), round(threads, 1), round(workers / one, 2))))


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
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def rounds(n: int) -> None:
        errors: list[BaseException] = []

        def seed(i):
            try:
                for j in range(n):
                    m = agents[i].update(replay, j)
                [float(v) for v in m.values()]
            except BaseException as e:  # raised below: a seed that stopped early must not time as a fast one
                errors.append(e)
            finally:  # also after a failed round: the serving loop waits for every seed to leave
                group.leave(i)

        threads = [threading.Thread(target=seed, args=(i,)) for i in range(k)]
        [t.start() for t in threads]
        with first.autocast:
            group.serve()
        [t.join() for t in threads]
        if errors:
            raise errors[0]
        sync()

    t = time.perf_counter()
    rounds(3)
    warmup_s = time.perf_counter() - t
    group.active = set(range(k))  # the seeds left after the warm-up rounds: let them in again
    n_updates = whole_periods(n_updates, agents[0].schedule.cycle)
    t = time.perf_counter()
    rounds(n_updates)
    per_seed = n_updates / (time.perf_counter() - t)
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
        "torch": torch.__version__,
        "hardware": hardware(dev),
    }


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
