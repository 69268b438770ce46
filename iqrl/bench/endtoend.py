"""End-to-end rows of `make bench` (`--end-to-end STEPS`): a real training run for a fixed budget of env
steps, one seed (`python -m iqrl.train`) or a K-seed group (`python -m iqrl.multiseed`) at the run's own
configuration (no bench shortcuts: its seed phase, evaluations, diagnostics and checkpoints as configured),
reporting env steps per second per seed and in all and where the time went (the trainer's split: collect,
act, update, evaluate, write; iqrl/loop/timing.py), and training's rate in all without the evaluations
(`train_env_steps_per_s`: in a seed phase, collection alone). `cpu_s`: the CPU seconds of the row's process
and every process under it (its env workers), start-up included: the difference of two rows of different
STEPS is what those env steps cost in CPU, whatever the machine's other load (`tree_cpu_s`).
`diagnostics_share`: the part of a run's wall that the train.csv rows' representation diagnostics take at
the run's `diag_every` (iqrl/loop/latent_probe.py, and the state probe of iqrl/loop/state_probe.py): one
probe timed again on the finished run's agent, replay and state ring (`diagnostics_s`, the median of a
few), k of them (one per seed) over the wall that diag_every env steps take at the row's rate. (The row's
own short run holds one probe at its end, whatever its length.) `q_bias_share`: the same for the evaluations'
Q-bias (iqrl/loop/evaluation.py): one evaluation of the finished run timed with and without its probe, from
the same env states (`q_bias_s`, the difference of their medians), k per eval_every env steps.
`diagnostics_total_share`: the two together.

The rate counts the seeds' time inside their training loops (status.json's `time_split`; a group's seeds
train at once, so the slowest seed's time), not the process's start, imports and building of the envs and
networks. It imports the commands' mains and the run folder's status reader.
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
from pathlib import Path

import torch

from iqrl.bench.measure import COMPILE_MODES, hardware, peak_memory_mb
from iqrl.config.build import build_config, layered
from iqrl.runfolder.layout import TIME_SPLIT_PHASES
from iqrl.runfolder.status import read_status


def run_argv(
    agent: str,
    task: str,
    dtype: str,
    device: str,
    compile_mode: str,
    steps: int,
    obs="state",
    size=84,
    extra=(),
) -> list:
    """A row's run keys: the agent's own configuration on `task` for `steps` env steps; `extra` (`--set`)
    last."""
    keys = [f"agent={agent}", f"task={task}", f"precision={dtype}", f"device={device}", f"steps={steps}"]
    keys += [f"obs={obs}"] + [f"image_size={size}"] * (obs == "pixels")
    return layered(keys + COMPILE_MODES[compile_mode], extra)


def measure_run(
    agent: str,
    task: str,
    dtype: str,
    device: str,
    compile_mode: str,
    k: int,
    steps: int,
    obs: str = "state",
    image_size: int = 84,
    extra=(),
) -> dict:
    """Train the row's run (k seeds: 0..k-1) in a temporary folder, removed after; its row."""
    from iqrl import train
    from iqrl.multiseed import runs as multiseed

    keys = run_argv(agent, task, dtype, device, compile_mode, steps, obs, image_size, extra)
    root = Path(tempfile.mkdtemp(prefix="iqrl-bench-run-"))
    try:
        if k == 1:
            rc = train.main([*keys, "seed=0", f"out={root / 'seed0'}"])
        else:
            rc = multiseed.main([f"seeds={','.join(map(str, range(k)))}", *keys, f"out={root}"])
        if rc != 0:
            raise RuntimeError(f"the run ended with exit code {rc}")
        statuses = [read_status(root / f"seed{s}") for s in range(k)]
        row = run_row(agent, task, dtype, torch.device(device), compile_mode, k, statuses)
        row |= diagnostics_cost([*keys, "seed=0", f"out={root / 'seed0'}"], k, row["env_steps_per_s"])
        cpu = tree_cpu_s()
        return row | {"cpu_s": None if cpu is None else round(cpu, 2)}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def diagnostics_cost(argv: list[str], k: int, env_steps_per_s: float, repeats: int = 5) -> dict:
    """The share of a run's wall that the diagnostics of k seeds take every diag_every env steps, at
    `env_steps_per_s` per seed: the finished run of `argv` (seed 0) loaded from its last checkpoint, its
    probe timed `repeats` times on the same draws."""
    import time

    from iqrl.loop.latent_probe import probe_latent
    from iqrl.loop.state_probe import probe_columns
    from iqrl.loop.trainer import Trainer

    t = Trainer(build_config(argv))
    if not t.cfg.diagnostics or not t.try_resume():
        return {}
    state, seconds = t.diag_generator.get_state(), []
    for _ in range(repeats):
        t.diag_generator.set_state(state)
        start = time.perf_counter()
        if not probe_latent(t.agent, t.replay, t.diag_generator):  # ends in host floats: the device is done
            return {}  # an agent without a latent: no diagnostics
        probe_columns(t.agent, t.state_ring, t.device)  # (floats too)
        seconds.append(time.perf_counter() - start)
    probe_s, every = sorted(seconds)[repeats // 2], t.cfg.diag_every
    q_s, share = q_bias_seconds(t, repeats), k * probe_s * env_steps_per_s / every
    q_share = k * q_s * env_steps_per_s / t.cfg.eval_every
    return {
        "diag_every": every,
        "diagnostics_s": round(probe_s, 6),
        "diagnostics_share": round(share, 5),
        "eval_every": t.cfg.eval_every,
        "q_bias_s": round(q_s, 6),
        "q_bias_share": round(q_share, 5),
        "diagnostics_total_share": round(share + q_share, 5),
    }


def q_bias_seconds(t, repeats: int) -> float:
    """The seconds the Q-bias's probe adds to one evaluation of trainer `t`'s agent: the evaluation run with
    and without it (alternating, `repeats` times each, every time from the eval envs' same states), the
    difference of the medians (0 where it is within their noise below 0)."""
    import time

    from iqrl.loop.evaluation import eval_returns

    envs = t.eval_envs(0)
    states, seconds = [env.get_state() for env in envs], {False: [], True: []}
    for _ in range(repeats):
        for probe in (False, True):
            for env, state in zip(envs, states):
                env.set_state(state)
            start = time.perf_counter()
            eval_returns(envs, t.agent, t.cfg.eval_episodes, t.batched_eval, None, probe)
            seconds[probe].append(time.perf_counter() - start)
    on, off = (sorted(seconds[p])[repeats // 2] for p in (True, False))
    return max(on - off, 0.0)


def tree_cpu_s() -> float | None:
    """CPU seconds (user + system) of this process and every process under it so far: its own, its reaped
    children's, and each live descendant's with the children it reaped (the env workers' forkserver reaps
    them, so a worker that ended is counted there). Linux only (/proc); None elsewhere."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return None
    tick = os.sysconf("SC_CLK_TCK")
    parent, times = {}, {}
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended while read
        pid = int(stat.parent.name)
        parent[pid] = int(fields[1])
        times[pid] = sum(int(v) for v in fields[11:15]) / tick  # utime, stime, cutime, cstime
    under, todo = set(), [os.getpid()]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        under.update(kids)
        todo += kids
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    mine = own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
    return mine + sum(times.get(p, 0.0) for p in under)


def run_row(
    agent: str, task: str, dtype: str, device: torch.device, compile_mode: str, k: int, statuses: list[dict]
) -> dict:
    """The row of k finished seeds' status.json: env steps per second per seed and in all over the slowest
    seed's time in its loop, and the seeds' mean seconds per phase (`time_<phase>_s`) with their shares."""
    steps = statuses[0]["env_step"]
    splits = [s["time_split"] for s in statuses]
    wall = max(sum(split.values()) for split in splits)
    training = max(sum(split.values()) - split["evaluate"] for split in splits)  # the loop but evaluation
    seconds = {p: sum(split[p] for split in splits) / k for p in TIME_SPLIT_PHASES}
    cfg = build_config([f"agent={agent}", f"task={task}"])
    per_seed = steps / wall
    return {
        "kind": "run",
        "agent": agent,
        "task": task,
        "obs": cfg.obs,
        "device": str(device),
        "dtype": dtype,
        "compile": {"false": False, "true": True}.get(compile_mode, compile_mode),
        "seeds": k,
        "env_steps": steps,
        "wall_s": round(wall, 2),
        "env_steps_per_s": round(per_seed, 1),
        "group_env_steps_per_s": round(per_seed * k, 1),
        # training's rate: the same steps over the loop's time less its evaluations (collection when no
        # update runs: a seed phase)
        "train_env_steps_per_s": round(steps * k / training, 1),
        **{f"time_{p}_s": round(v, 2) for p, v in seconds.items()},
        "shares": {p: round(v / sum(seconds.values()), 3) for p, v in seconds.items()},
        "hours_per_1m": round(1e6 / per_seed / 3600, 2),
        "peak_mem_mb": round(peak_memory_mb(device), 1),
        "torch": torch.__version__,
        "hardware": hardware(device),
    }


def split_text(row: dict) -> str:
    """ "collect 41%, act 9%, update 40%, evaluate 8%, write 2%"."""
    return ", ".join(f"{p} {100 * share:.0f}%" for p, share in row["shares"].items())
