"""What one gradient update of a config costs, counted once on the CPU, and its seconds on a device.

Counts (`count`): one update of the config's agent, built as its run builds it (the run's keys, its first
task; iqrl.bench.measure.prepare with a small replay of seed episodes), on the CPU in fp32 eager mode: its
floating-point operations (torch.utils.flop_counter), the bytes its operators read and write and the
operators it dispatches (each one a kernel launch on an eager GPU: iqrl.bench.measure.OpCounter), the mean
of 2 updates (an actor update every other one), and the operators of one deterministic action. The counts
of the shipped sweeps' configs are the table slurm/costs.json (`python -m slurm.cost_report
SWEEP.yaml ...` adds theirs; tests/test_cost.py recounts one); a config missing there is counted
when it is priced (a few seconds each). The table's key is the agent config itself (`config_id`), so a
change of defaults misses it rather than reading a stale count. The counts do not follow the run's precision
or a compiled update's fused kernels: a measured row's mode and precision are priced by scaling that row
(slurm/projection.py).

Seconds (`Fit`): an update's seconds = a * FLOPs + b * bytes + c * launches, the constants non-negative
least squares over measured rows of one device and mode (their seconds per update against their configs'
counts): on a GPU the eager K = 1 rows of docs/gpu-results (launches alone: GPU_FEATURES), on this CPU the
default configs' rows of docs/cpu-results.jsonl (`make bench` on the CPU, fp32 eager). `holdout` predicts
each row from a fit to the others.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TABLE = Path(__file__).with_name("costs.json")
#: This CPU's bench rows (`make bench` fp32 eager on walker-walk; `set`: a variant's run keys), their
#: `updates_per_s` re-timed by `interleaved_rates` (`updates_per_s_bench`: the bench's own).
CPU_RESULTS = Path(__file__).resolve().parents[1] / "docs" / "cpu-results.jsonl"
#: CPU-hours above which a sweep on this machine's own CPU (a local profile) waits for `--yes`.
CPU_HOURS_LIMIT = 24.0
#: The bench's run keys that keep a count cheap: a small replay of short seed episodes, eager, fp32, CPU.
COUNT_KEYS = ["episode_length=20", "seed_steps=1000"]
FEATURES = ("flops", "bytes", "launches")
#: A GPU's eager update at these sizes is bound by its kernel launches, and its three eager rows cannot fix
#: three constants (each held out is predicted from two): its fit takes launches alone.
GPU_FEATURES = ("launches",)


@dataclass(frozen=True)
class Counts:
    """Per update: FLOPs, bytes read and written, operators dispatched; `act_launches`: one action's."""

    flops: float
    bytes: float
    launches: float
    act_launches: float

    def vector(self, features=FEATURES) -> np.ndarray:
        return np.array([getattr(self, f) for f in features], dtype=float)


def config_id(agent: str, cfg) -> str:
    """The table's key of a config's counts: its agent, observations and the agent config's every value."""
    what = f"{cfg.obs} {cfg.image_size} {cfg.frame_stack} {cfg.agent!r}"
    return f"{agent} {cfg.obs} {hashlib.sha1(what.encode()).hexdigest()[:12]}"


def count(agent: str, task: str, obs: str, overrides=()) -> Counts:
    """The counts of one update and one action of `agent` on `task` with the run keys `overrides`."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from iqrl.bench.measure import OpCounter, prepare

    trainer = prepare(agent, task, "fp32", "cpu", "false", obs, extra=[*overrides, *COUNT_KEYS])
    a, replay = trainer.agent, trainer.replay
    a.update(replay, 0)  # lazily built state (optimisers' moments) is not an update's work
    with FlopCounterMode(display=False) as flops, OpCounter() as ops:
        for i in (1, 2):
            a.update(replay, i)
    obs_now = trainer.env.reset()
    a.on_episode_start(training=False)
    with torch.no_grad(), OpCounter() as act:
        a.act(obs_now, explore=False)
    return Counts(flops.get_total_flops() / 2, ops.bytes / 2, ops.n / 2, float(act.n))


@functools.cache
def read_table(path: Path = TABLE) -> dict[str, dict]:
    """The table of counts, read once per process (`main` adds to it as it writes it)."""
    return json.loads(path.read_text()) if path.exists() else {}


_COUNTED: dict[str, Counts] = {}


def counts_of(agent: str, cfg, overrides=(), table: Path = TABLE) -> Counts:
    """A config's counts: from the table, else counted now (once per process)."""
    key = config_id(agent, cfg)
    row = read_table(table).get(key)
    if row is not None:
        return Counts(*(row[f] for f in (*FEATURES, "act_launches")))
    if key not in _COUNTED:
        from iqrl.envs.tasks import task_list

        _COUNTED[key] = count(agent, task_list(cfg.task)[0], cfg.obs, overrides)
    return _COUNTED[key]


def bench_config(agent: str, task: str = "walker-walk", obs: str = "state", extra=()):
    """The config a bench row of `agent` measured (iqrl.bench.measure.bench_argv, `extra` its `--set` keys;
    fp32 eager on the CPU: what is counted)."""
    from iqrl.bench.measure import bench_argv
    from iqrl.config.build import build_config
    from slurm.spec import built_config

    return built_config(build_config, tuple(bench_argv(agent, task, "fp32", "cpu", "false", obs, 84, extra)))


@dataclass(frozen=True)
class Fit:
    """Seconds per update = coef . the counts' `features`, fit to `rows` (their names)."""

    coef: tuple[float, ...]
    rows: tuple[str, ...]
    features: tuple[str, ...] = FEATURES

    def seconds(self, c: Counts) -> float:
        return float(np.dot(self.coef, c.vector(self.features)))


def fit(rows: list[tuple[str, Counts, float]], features=FEATURES) -> Fit:
    """Non-negative least squares of seconds per update on the counts, each row weighted by 1 / its seconds
    (relative errors: a fast agent's row counts as much as a slow one's)."""
    from scipy.optimize import nnls

    a = np.array([c.vector(features) / s for _, c, s in rows])
    scale = a.max(axis=0) + 1e-30  # FLOPs and launches differ by 10 orders of magnitude
    coef, _ = nnls(a / scale, np.ones(len(rows)))
    return Fit(tuple(float(x) for x in coef / scale), tuple(name for name, _, _ in rows), tuple(features))


def holdout(rows: list[tuple[str, Counts, float]], features=FEATURES) -> list[tuple[str, float, float]]:
    """Each row's measured seconds per update and the relative error of its prediction by a fit to the
    others: (name, seconds, predicted / measured - 1)."""
    out = []
    for i, (name, c, s) in enumerate(rows):
        others = fit(rows[:i] + rows[i + 1 :], features)
        out.append((name, s, others.seconds(c) / s - 1))
    return out


def interleaved_rates(configs: list[tuple[str, list[str]]], rounds: int = 10, block: int = 3) -> list[float]:
    """Updates/s on this CPU of each (agent, `--set` keys) bench config (walker-walk, fp32 eager): every
    config's trainer built in this process (iqrl.bench.measure.prepare), then `rounds` rounds of `block`
    updates of each in turn, each config at its fastest block: on a shared machine the neighbours' load
    slows the configs of one round alike, and the fastest block is the least slowed."""
    import time

    from iqrl.bench.measure import prepare

    trainers = [prepare(agent, "walker-walk", "fp32", "cpu", extra=keys) for agent, keys in configs]
    best = [float("inf")] * len(trainers)
    for r in range(rounds + 1):  # round 0 warms up (lazy state, first-call costs)
        for k, t in enumerate(trainers):
            start = time.perf_counter()
            for i in range(block):
                t.agent.update(t.replay, r * block + i)
            best[k] = best[k] if r == 0 else min(best[k], (time.perf_counter() - start) / block)
    return [1 / s for s in best]


def cpu_rows(path: Path = CPU_RESULTS) -> list[dict]:
    """The CPU's bench rows, each with the `key` and `gpu` ("this CPU": its `hardware` says which) that the
    GPU rows carry."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    key = "{agent} {task} {obs} {dtype} compile=false K=1"
    return [{**r, "key": " ".join([key.format(**r), *r["set"]]), "gpu": "this CPU"} for r in rows]
