"""`make bench`: throughput and memory of every agent at its paper configuration.

    python -m iqrl.bench [--agents iqrl,td3] [--tasks walker-walk,dog-run] [--dtypes fp32,bf16]
                         [--compile false,true] [--device cpu] [--updates 20] [--out bench.json]
                         [--obs state,pixels] [--image-size 84]
    python -m iqrl.bench --compare old.json new.json      # speed ratios between two bench files
    python -m iqrl.bench --matmul-split --agents iqrl --tasks walker-walk  # matrix-product share of an update
    python -m iqrl.bench --plain --tasks walker-walk --compile false,true  # against a plain implementation

Each row is measured in a fresh subprocess (so peak memory is that row's own): build the agent from
`build_config(agent=..., task=...)` exactly as a run would, fill its replay with real environment
data, then time `updates` gradient updates after 3 warm-up updates (updates_per_s; on CUDA at least 500,
timed with CUDA events), count the operators one update runs (ops_per_update: kernel launches on an
eager GPU, see `count_ops`), time data collection with the agent acting (env_steps_per_s, env steps =
physics steps), and time deterministic acting (act_ms). `--compile true` measures the run key
compile=true (`cudagraphs`: compile=true cudagraphs=true, CUDA only); compile_s is the warm-up's extra
time over 3 timed updates and 2 actions, i.e. what compiling costs once per process. hours_per_1m is the
wall time of 1M env steps at these rates (collection plus the agent's updates per env step; evaluation
left out). `--obs pixels` measures the agents built for pixels (Agent.PIXELS) on rendered frame stacks:
collection then includes rendering, and render_ms is the time of one frame alone.
Rows: agent, task, obs, device, dtype, compile, seeds, updates_per_s, ops_per_update, env_steps_per_s,
act_ms, render_ms, compile_s, hours_per_1m, peak_mem_mb, torch, hardware.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

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
    "act_ms",
    "render_ms",
    "compile_s",
    "hours_per_1m",
    "peak_mem_mb",
    "torch",
    "hardware",
]
DEFAULT_TASKS = ["walker-walk", "dog-run"]


def hardware(device) -> str:
    import torch

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


def count_ops(fn) -> int:
    """Operator calls (aten, forward and backward, views and aliases not counted) that fn() makes: each one
    is a kernel launch on an eager GPU, so ops / (a few microseconds per launch) bounds the eager rate."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Counter(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.n += not func.is_view
            return func(*args, **(kwargs or {}))

    with Counter() as counter:
        fn()
    return counter.n


def whole_periods(n: int, period: int) -> int:
    """At least n updates, a whole number of the agent's update periods (AgentSpec.update_period): MR.Q's
    encoder burst every 250 updates then costs each timed update its share, wherever the burst falls."""
    return math.ceil(n / period) * period


#: `--compile` values: the run keys each one sets.
COMPILE_MODES = {"false": [], "true": ["compile=true"], "cudagraphs": ["compile=true", "cudagraphs=true"]}
#: Fewest updates timed on CUDA (asynchronous: a short window measures the queue, not the GPU).
CUDA_MIN_UPDATES = 500


class Timer:
    """Seconds between start() and stop(): CUDA events on a GPU (the stream's own clock), else wall time."""

    def __init__(self, device):
        import torch

        self.cuda = device.type == "cuda"
        if self.cuda:
            self.events = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
        self.device = device

    def start(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.synchronize(self.device)
            self.events[0].record()
        self.t0 = time.perf_counter()

    def stop(self) -> float:
        import torch

        if not self.cuda:
            return time.perf_counter() - self.t0
        self.events[1].record()
        torch.cuda.synchronize(self.device)
        return self.events[0].elapsed_time(self.events[1]) / 1000.0


class Bench(NamedTuple):
    """An agent at its paper configuration with a replay of two random episodes, as a run builds them."""

    cfg: Any
    env: Any
    agent: Any
    replay: Any
    device: Any
    episode: Callable  # episode(policy, budget_s=inf) -> env steps: collect one episode into the replay


def prepare(
    agent: str,
    task: str,
    dtype: str,
    device: str,
    compile_mode: str = "false",
    obs: str = "state",
    image_size: int = 84,
) -> Bench:
    import numpy as np
    import torch

    from iqrl.core.config import build_config, observation
    from iqrl.core.device import resolve_device
    from iqrl.core.envs import make_env
    from iqrl.core.registry import make_agent
    from iqrl.core.replay import SequenceReplay

    keys = [f"agent={agent}", f"task={task}", f"precision={dtype}", f"device={device}", f"obs={obs}"]
    cfg = build_config(keys + [f"image_size={image_size}"] * (obs == "pixels") + COMPILE_MODES[compile_mode])
    dev = resolve_device(cfg.device)
    torch.manual_seed(0)
    env = make_env(task, 0, cfg.action_repeat, cfg.episode_length, None, observation(cfg))
    a = make_agent(cfg.agent, env.obs_dim, env.act_dim, dev, 0)
    if cfg.compile:
        a.compile_losses(cudagraphs=cfg.cudagraphs)
    frame_stack = cfg.frame_stack if cfg.obs == "pixels" else 1
    replay = SequenceReplay(env.obs_dim, env.act_dim, a.spec.seq_len, dev, 0, frame_stack=frame_stack)
    rng = np.random.default_rng(0)

    def episode(policy: bool, budget_s: float = float("inf")) -> int:
        """Collect one episode into the replay (or stop after `budget_s` seconds); env steps done."""
        obs = env.reset()
        a.on_episode_start(training=True)
        replay.start_episode(obs)
        steps, t0 = 0, time.perf_counter()
        while True:
            act = a.act(obs, explore=True) if policy else rng.uniform(-1, 1, env.act_dim).astype(np.float32)
            s = env.step(act)
            replay.add(act, s.reward, s.obs, s.terminated, s.truncated)
            obs, steps = s.obs, steps + cfg.action_repeat
            if s.terminated or s.truncated or time.perf_counter() - t0 > budget_s:
                return steps

    episode(policy=False)
    episode(policy=False)
    return Bench(cfg, env, a, replay, dev, episode)


def measure(
    agent: str,
    task: str,
    dtype: str,
    device: str,
    n_updates: int,
    compile_mode: str = "false",
    obs: str = "state",
    image_size: int = 84,
) -> dict:
    import torch

    from iqrl.core.device import UpdatePrecision

    cfg, env, a, replay, dev, episode = prepare(agent, task, dtype, device, compile_mode, obs, image_size)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    autocast = UpdatePrecision(dtype, dev)
    timer = Timer(dev)

    def updates(n: int) -> float:
        """Seconds that n updates take, up to the last one's results."""
        timer.start()
        for i in range(n):
            with autocast:
                a.update(replay, i)
        return timer.stop()

    warmup_s = updates(3)
    if dev.type == "cuda":
        n_updates = max(n_updates, CUDA_MIN_UPDATES)
    n_updates = whole_periods(n_updates, a.spec.update_period)
    ups = n_updates / updates(n_updates)
    # an actor and a critic-only step where the actor waits one; a compiled step runs kernels of its own
    ops = None if cfg.compile else count_ops(lambda: updates(2)) / 2
    obs, t = env.reset(), time.perf_counter()
    for training in (True, False):  # first actions: with compile=true they compile DC-MPC's planner
        a.on_episode_start(training=training)
        a.act(obs, explore=training)
    first_acts_s = time.perf_counter() - t
    t = time.perf_counter()
    steps = episode(policy=True, budget_s=20.0)  # data collection with the agent acting (time-bounded)
    env_sps = steps / (time.perf_counter() - t)
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
    hours_per_1m = (1e6 / env_sps + 1e6 * a.spec.updates_per_step / ups) / 3600.0
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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
        "act_ms": round(act_ms, 3),
        "render_ms": None if render_ms is None else round(render_ms, 2),
        "compile_s": round(max(warmup_s - 3 / ups, 0.0) + max(first_acts_s - 2 * act_ms / 1000.0, 0.0), 1),
        "hours_per_1m": round(hours_per_1m, 2),
        "peak_mem_mb": round(peak, 1),
        "torch": torch.__version__,
        "hardware": hardware(dev),
    }


def measure_seeds(agent: str, task: str, dtype: str, device: str, n_updates: int, k: int) -> dict:
    """Updates/s per seed of the K-seed mode (iqrl/multiseed/): K agents of the paper config updated
    as one vectorised group. The K seeds sample from one shared replay of real data (what the batches
    hold does not change the cost)."""
    import threading

    import numpy as np
    import torch

    from iqrl.core.config import build_config
    from iqrl.core.device import UpdatePrecision, resolve_device
    from iqrl.core.envs import DMCEnv
    from iqrl.core.registry import make_agent
    from iqrl.core.replay import SequenceReplay
    from iqrl.multiseed.group import SeedGroup

    cfg = build_config([f"agent={agent}", f"task={task}", f"precision={dtype}", f"device={device}"])
    dev = resolve_device(cfg.device)
    env = DMCEnv(task, 0, cfg.action_repeat, cfg.episode_length)
    agents = []
    for seed in range(k):
        torch.manual_seed(seed)
        agents.append(make_agent(cfg.agent, env.obs_dim, env.act_dim, dev, seed))
    replay = SequenceReplay(env.obs_dim, env.act_dim, agents[0].spec.seq_len, dev, 0)
    rng = np.random.default_rng(0)
    for _ in range(2):
        obs = env.reset()
        replay.start_episode(obs)
        while True:
            s = env.step(rng.uniform(-1, 1, env.act_dim).astype(np.float32))
            replay.add(
                rng.uniform(-1, 1, env.act_dim).astype(np.float32), s.reward, s.obs, s.terminated, s.truncated
            )
            if s.terminated or s.truncated:
                break
    group = SeedGroup(agents)
    autocast = UpdatePrecision(dtype, dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def rounds(n: int) -> None:
        def seed(i):
            try:
                for j in range(n):
                    m = group.update(i, replay, j)
                [float(v) for v in m.values()]
            finally:  # also after a failed round: the serving loop waits for every seed to leave
                group.leave(i)

        threads = [threading.Thread(target=seed, args=(i,)) for i in range(k)]
        [t.start() for t in threads]
        with autocast:
            group.serve()
        [t.join() for t in threads]
        sync()

    rounds(2)
    group.active = set(range(k))  # the seeds left after the warm-up rounds: let them in again
    n_updates = whole_periods(n_updates, agents[0].spec.update_period)
    t = time.perf_counter()
    rounds(n_updates)
    per_seed = n_updates / (time.perf_counter() - t)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "agent": agent,
        "task": task,
        "obs": "state",
        "device": str(dev),
        "dtype": dtype,
        "compile": False,
        "seeds": k,
        "updates_per_s": round(per_seed, 3),
        "ops_per_update": None,
        "env_steps_per_s": None,
        "act_ms": None,
        "render_ms": None,
        "compile_s": None,
        "hours_per_1m": None,
        "peak_mem_mb": round(peak, 1),
        "torch": torch.__version__,
        "hardware": hardware(dev),
    }


#: Matrix products of a walker-walk iQRL update (critic/dynamics first layer, hidden layer, dynamics output,
#: the critic ensemble's batched product) and a large square one, for `--peak`. The 1024- and 1032-wide
#: products beside the 1030-wide input (1024 latent + 6 action dimensions) show what splitting off the
#: action or padding the input would change.
PEAK_PRODUCTS = [
    ("mm", (256, 1030, 512)),
    ("mm", (256, 1024, 512)),
    ("mm", (256, 1032, 512)),
    ("mm", (256, 512, 512)),
    ("mm", (256, 512, 1024)),
    ("bmm", (5, 256, 1030, 512)),
    ("mm", (2048, 2048, 2048)),
]


def matmul_peak(device: str, seconds: float = 1.0, products=PEAK_PRODUCTS) -> Iterator[dict]:
    """GFLOP/s of fp32 and bf16 matrix products (`products`, PEAK_PRODUCTS by default; on CPU the fp32 ones
    also through oneDNN, as compiled updates multiply, `kernel`: onednn): the rate an update
    made of nothing but matrix products would reach here, i.e. the ceiling for updates/s (an iQRL walker
    update: ~19.6 GFLOP). Yields a row per product as it is measured: on a CPU without bf16 instructions
    the bf16 products run at about 1 GFLOP/s, and the large square one takes minutes."""
    import torch

    from iqrl.nn.kernels import onednn_matmul

    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    kernels = [("fp32", torch.float32, "torch", torch.matmul)]
    if dev.type == "cpu":  # what compile=true multiplies float32 with on CPU
        kernels.append(("fp32", torch.float32, "onednn", onednn_matmul))
    kernels.append(("bf16", torch.bfloat16, "torch", torch.matmul))
    for dtype, dt, kernel, matmul in kernels:
        for op, dims in products:
            *e, m, k, n = dims
            a = torch.randn(*e, m, k, dtype=dt, device=dev)
            b = torch.randn(*e, k, n, dtype=dt, device=dev)
            for _ in range(3):
                matmul(a, b)
            sync()
            reps, t = 0, time.perf_counter()
            while reps < 3 or time.perf_counter() - t < seconds:
                matmul(a, b)
                sync()
                reps += 1
            rate = 2 * math.prod(dims) * reps / (time.perf_counter() - t) / 1e9
            yield {
                "op": op,
                "shape": "x".join(map(str, dims)),
                "dtype": dtype,
                "kernel": kernel,
                "gflop_per_s": float(f"{rate:.4g}"),  # significant figures: a slow tiny product is not 0.0
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "hardware": hardware(dev),
            }


#: The matrix-product operators (their FLOPs are what the profiler's with_flops counts for an MLP update),
#: and oneDNN's, which compiled updates on CPU call (`iqrl.maths.onednn_matmul`; no FLOP count of its own).
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "mkldnn::_linear_pointwise")


def matmul_flops(event) -> float:
    """FLOPs of one profiler row of MATMUL_OPS (averaged over input shapes: `group_by_input_shape`)."""
    if event.key == "mkldnn::_linear_pointwise":  # x [M, K] times w.T, w [N, K]
        (m, k), (n, _) = event.input_shapes[:2]
        return 2.0 * m * k * n * event.count
    return event.flops


def matmul_split(agent: str, task: str, compile_mode: str = "false", n_updates: int = 10) -> dict:
    """Where an update's time goes on the CPU (fp32, paper config): update_ms (wall time, unprofiled),
    matmul_ms (the profiler's time inside the matrix-product operators), their GFLOP and rate, and
    max_speedup = update_ms / matmul_ms, the most any implementation of the same update can gain while
    its matrix products run at this rate (everything else free)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    b = prepare(agent, task, "fp32", "cpu", compile_mode)
    n = whole_periods(n_updates, b.agent.spec.update_period)

    def updates(k: int) -> float:
        t = time.perf_counter()
        for i in range(k):
            b.agent.update(b.replay, i)
        return time.perf_counter() - t

    updates(3)  # warm-up (compiling, with compile=true)
    update_ms = updates(n) * 1000.0 / n
    with profile(activities=[ProfilerActivity.CPU], with_flops=True, record_shapes=True) as prof:
        updates(n)
    mm = [e for e in prof.key_averages(group_by_input_shape=True) if e.key in MATMUL_OPS]
    matmul_ms = sum(e.self_cpu_time_total for e in mm) / 1000.0 / n
    gflop = sum(matmul_flops(e) for e in mm) / 1e9 / n
    return {
        "agent": agent,
        "task": task,
        "compile": compile_mode == "true",
        "update_ms": round(update_ms, 1),
        "matmul_ms": round(matmul_ms, 1),
        "matmul_share": round(matmul_ms / update_ms, 3),
        "matmul_gflop": round(gflop, 2),
        "matmul_gflop_per_s": round(gflop / matmul_ms * 1000.0, 1),
        "max_speedup": round(update_ms / matmul_ms, 2),
        "torch": torch.__version__,
        "hardware": hardware(b.device),
    }


def plain_comparison(task: str, modes: list[str], n_updates: int, rounds: int = 3) -> list[dict]:
    """iqrl's update (CPU, fp32, paper config) against a plain PyTorch implementation of the same update
    (iqrl/bench/plain.py, from the same initial weights and replay): one row per compile mode with its
    updates_per_s, the plain update's and their ratio vs_plain. All are timed in one process in `rounds`
    alternating blocks of `n_updates` (after 3 warm-up updates each), so a busy host slows them alike."""
    import torch

    from iqrl.bench.plain import PlainIQRL

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


def write_rows(rows: list[dict], out: str) -> None:
    """The rows as a JSON list, written atomically."""
    tmp = Path(out).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(rows, indent=1) + "\n")
    tmp.replace(out)


def print_table(rows: list[dict]) -> None:
    cols = FIELDS[:-2]
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols))
    if rows:
        print(f"torch {rows[0]['torch']} on {rows[0]['hardware']}")


def compare(old_path: str, new_path: str) -> int:
    """Print new/old updates/s per row present in both files; rows in only one are named."""

    def key(r: dict) -> tuple:  # rows of bench files from before `obs` are state rows
        return (
            r["agent"],
            r["task"],
            r["device"],
            r["dtype"],
            r["compile"],
            r.get("seeds", 1),
            r.get("obs", "state"),
        )

    try:
        old, new = ({key(r): r for r in json.loads(Path(p).read_text())} for p in (old_path, new_path))
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"error: cannot read bench files {old_path}, {new_path}: {e}", file=sys.stderr)
        return 2
    print(
        f"{'agent':<14} {'task':<12} {'device':<7} {'dtype':<5} {'seeds':>5} {'updates/s old':>14} "
        f"{'new':>8} "
        f"{'ratio':>6}"
    )
    for k, r in new.items():
        if k in old:
            o = old[k]["updates_per_s"]
            ratio = f"{r['updates_per_s'] / o:>5.2f}x" if o else "   n/a"
            print(
                f"{r['agent']:<14} {r['task']:<12} {r['device']:<7} {r['dtype']:<5} {r.get('seeds', 1):>5} "
                f"{o:>14.2f} {r['updates_per_s']:>8.2f} {ratio}"
            )
    for label, only in (("old", old.keys() - new.keys()), ("new", new.keys() - old.keys())):
        if only:
            names = ", ".join(f"{a} {t} {d} {dt} K={k} {o}" for a, t, d, dt, _, k, o in sorted(only, key=str))
            print(f"only in the {label} file ({len(only)}): {names}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agents", default="", help="comma-separated; default: every registered agent")
    p.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    p.add_argument(
        "--dtypes", default=None, help="comma-separated among fp32, bf16, tf32 (default fp32,bf16)"
    )
    p.add_argument(
        "--compile",
        default="false",
        help="comma-separated among false, true, cudagraphs (CUDA): rows with those run keys, in one run",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--updates", type=int, default=20)
    p.add_argument(
        "--seeds",
        default="1",
        help="K-seed mode rows for K in this comma-separated list "
        "(iqrl agents; K = 1 is the plain single-seed row)",
    )
    p.add_argument(
        "--obs",
        default="state",
        help="comma-separated among state, pixels: pixel rows for the agents built for pixels",
    )
    p.add_argument("--image-size", type=int, default=84, help="pixel rows: frame width and height")
    p.add_argument("--out", default="bench.json")
    p.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"))
    p.add_argument(
        "--peak",
        action="store_true",
        help="print the fp32/bf16 matrix-product GFLOP/s of this "
        "machine at the update's shapes (the ceiling of updates/s) and exit",
    )
    p.add_argument(
        "--matmul-split",
        action="store_true",
        help="CPU, fp32: for each agent, task and --compile value, how much of an update is matrix "
        "products (profiled) and the most any implementation could gain; print JSON lines and exit",
    )
    p.add_argument(
        "--plain",
        action="store_true",
        help="CPU, fp32, iqrl: each --compile value's update against a plain PyTorch implementation of it "
        "(iqrl/bench/plain.py), timed in one process; rows with vs_plain to --out",
    )
    p.add_argument("--one", nargs=3, metavar=("AGENT", "TASK", "DTYPE"), help=argparse.SUPPRESS)
    p.add_argument("--group", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--one-compile", default="false", help=argparse.SUPPRESS)
    p.add_argument("--one-obs", default="state", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.dtypes is None:
        args.dtypes = "fp32" if args.plain else "fp32,bf16"
    if args.compare:
        return compare(*args.compare)
    if args.peak:
        for r in matmul_peak(args.device):
            print(
                f"{r['op']:<4} {r['shape']:<16} {r['dtype']:<5} {r['kernel']:<7} "
                f"{r['gflop_per_s']:>8.1f} GFLOP/s "
                f"({r['threads']} threads, {r['hardware']})",
                flush=True,
            )
        return 0
    if args.one:
        if args.group:
            print(json.dumps(measure_seeds(*args.one, args.device, args.updates, args.group)))
        else:
            row = measure(
                *args.one, args.device, args.updates, args.one_compile, args.one_obs, args.image_size
            )
            print(json.dumps(row))
        return 0
    from iqrl.core.config import ConfigError, build_config
    from iqrl.core.registry import agent_class, agent_names

    agents = [a for a in args.agents.split(",") if a] or (["iqrl"] if args.plain else agent_names())
    tasks = [t for t in args.tasks.split(",") if t]
    dtypes = [d for d in args.dtypes.split(",") if d]
    modes = [m for m in args.compile.split(",") if m]
    observations = [o for o in args.obs.split(",") if o]
    if not modes or set(modes) - set(COMPILE_MODES):
        print(
            f"error: --compile must list values among {', '.join(COMPILE_MODES)}, got {args.compile!r}",
            file=sys.stderr,
        )
        return 2
    try:
        seeds = [int(k) for k in args.seeds.split(",") if k]
        if not seeds or min(seeds) < 1:
            raise ValueError
    except ValueError:
        print(
            f"error: --seeds must be a comma-separated list of ints >= 1, got {args.seeds!r}", file=sys.stderr
        )
        return 2
    import torch

    from iqrl.core.preflight import check_compile, check_precision
    from iqrl.multiseed.group import GROUP_AGENTS  # the agents the K-seed mode supports

    groups = [k for k in seeds if k > 1]
    device_type = torch.device("cuda" if args.device.startswith("cuda") else "cpu")
    try:
        for a in agents:
            for t in tasks:
                for d in dtypes:
                    for m, o in ((m, o) for m in modes for o in observations):
                        if o == "pixels" and not agent_class(a).PIXELS:
                            continue  # pixel rows only for the agents built for pixels
                        keys = [
                            f"agent={a}",
                            f"task={t}",
                            f"precision={d}",
                            f"device={args.device}",
                            f"obs={o}",
                        ]
                        cfg = build_config(keys + [f"image_size={args.image_size}"] + COMPILE_MODES[m])
                        check_precision(cfg, device_type)
                        check_compile(cfg, device_type)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.plain:
        return plain_main(args, tasks, modes)
    if args.matmul_split:
        if args.device != "cpu":
            print("error: --matmul-split profiles CPU time; use --device cpu", file=sys.stderr)
            return 2
        for a, t, m in ((a, t, m) for a in agents for t in tasks for m in modes):
            print(json.dumps(matmul_split(a, t, m, args.updates)), flush=True)
        return 0
    plan = [(a, ([1] if 1 in seeds else []) + (groups if a in GROUP_AGENTS else [])) for a in agents]
    if not any(ks for _, ks in plan):
        print(
            f"error: --seeds {args.seeds} asks only for K-seed rows, which only {', '.join(GROUP_AGENTS)} "
            f"have; "
            f"add 1 to --seeds or pick one of them",
            file=sys.stderr,
        )
        return 2
    rows = []
    for a, ks in plan:
        for t in tasks:
            for d, m, k, o in ((d, m, k, o) for d in dtypes for m in modes for k in ks for o in observations):
                if k > 1 and (d != "fp32" or m != "false" or o != "state"):  # K-seed mode: eager fp32 states
                    continue
                if o == "pixels" and not agent_class(a).PIXELS:
                    continue
                cmd = [
                    sys.executable,
                    "-m",
                    "iqrl.bench",
                    "--one",
                    a,
                    t,
                    d,
                    "--device",
                    args.device,
                    "--updates",
                    str(args.updates),
                    "--group",
                    str(k if k > 1 else 0),
                    "--one-compile",
                    m,
                    "--one-obs",
                    o,
                    "--image-size",
                    str(args.image_size),
                ]
                r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode != 0:
                    print(
                        f"error: bench of {a} on {t} ({d}, compile {m}, {k} seeds) failed: "
                        f"{r.stderr.strip().splitlines()[-1:]}",
                        file=sys.stderr,
                    )
                    if rows:
                        write_rows(rows, args.out)
                        print(
                            f"wrote the {len(rows)} row(s) measured before it to {args.out}",
                            file=sys.stderr,
                        )
                    return 1
                rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
                env_sps = rows[-1]["env_steps_per_s"]
                print(
                    f"{a:<14} {t:<12} {o:<6} {d:<5} compile={m:<5} K={k:<3} "
                    f"{rows[-1]['updates_per_s']:>8.2f} updates/s per seed "
                    + (f"{env_sps:>9.1f} env steps/s" if env_sps is not None else ""),
                    flush=True,
                )
    write_rows(rows, args.out)
    print()
    print_table(rows)
    print(f"\nwrote {args.out}")
    return 0


def plain_main(args, tasks: list[str], modes: list[str]) -> int:
    """`--plain`: refuse what the plain implementation does not cover (one error line), then measure."""
    from iqrl.bench.plain import unsupported
    from iqrl.core.config import build_config

    problem = None
    if args.agents.split(",") not in (["iqrl"], [""]):
        problem = f"--plain compares iqrl's update only, got --agents {args.agents}"
    elif args.device != "cpu" or args.dtypes != "fp32" or "cudagraphs" in modes:
        problem = "--plain measures CPU fp32 updates: use --device cpu --dtypes fp32 and no cudagraphs"
    else:
        for t in tasks:
            bad = unsupported(build_config(["agent=iqrl", f"task={t}"]).agent)
            if bad:
                problem = f"the plain iqrl update does not implement {', '.join(bad)} (task {t})"
                break
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    rows = []
    for t in tasks:
        for r in plain_comparison(t, modes, args.updates):
            rows.append(r)
            print(json.dumps(r), flush=True)
    write_rows(rows, args.out)
    print(f"wrote {args.out}")
    return 0
