"""Collection rows of `make bench` (`--collect STEPS`, `make bench COLLECT=STEPS`): what an env step costs a
run, in CPU time of its whole process tree (env workers included) and in wall time, beside MuJoCo's bare
physics measured in the same process.

A row runs the harness for real, each in a process of its own: one seed (`python -m iqrl.train`, K = 1) or a
K-seed group (`python -m iqrl.multiseed`), td3 with small networks in its seed phase (uniform random actions,
no update: collection alone), its envs as the row's `backend` says (`default`: the run's defaults; `workers`:
env_workers=true; `together`: env_workers=false, DMC's stepped together in the group's process). A probe in
the run's stop question (asked after every agent step of every seed) opens a window once every seed has taken
WARM agent steps (the start and the evaluation at step 0 behind it) and closes it STEPS env steps per seed
later, stopping the run. In the window: `cpu_us`, CPU µs per env step in all (`tree_cpu_s`: the process and
every process under it), and `env_steps_per_s`, env steps per second in all (wall). Beside them, measured in
the same process before and after the run (their mean): `bare_us`, CPU µs per env step of MuJoCo's physics
alone (`mujoco.mj_step(model, data, n)`, n the task's MuJoCo steps per env step) and `dm_control_us`, of
dm_control's own `env.step` (its task code and physics; uniform random actions); `vs_bare` = cpu_us / bare_us,
`vs_dm_control` = cpu_us / dm_control_us (Python against Python: the steadier ratio on a loaded machine). A
K-seed row measured after the K = 1 row of its task and observation gets `vs_one_seed`, its env steps/s in all
over that row's: wall time, so it holds only where the machine was as quiet at both (`load`: the 1-minute load
average at the row's end).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mujoco
import numpy as np
from dm_control import suite

from iqrl.bench.endtoend import tree_cpu_s
from iqrl.bench.measure import hardware
from iqrl.config.build import build_config
from iqrl.runfolder.exits import EXIT_INTERRUPTED

#: Agent steps every seed takes before the window opens.
WARM = 100
#: CPU seconds spent on each of the bare physics and dm_control's step, before and after the run.
FLOOR_S = 1.0
BACKENDS = {"default": [], "workers": ["env_workers=true"], "together": ["env_workers=false"]}


def floor_us(task: str, seconds: float | None = None) -> tuple[float, float]:
    """CPU µs per env step of MuJoCo's bare physics and of dm_control's `env.step` on `task` (in this
    process), over `seconds` of CPU each (None: FLOOR_S)."""
    seconds = FLOOR_S if seconds is None else seconds
    domain, name = task.split("-", 1)
    env = suite.load(domain, name, task_kwargs={"random": 0})
    env.reset()
    physics = env.physics
    n = int(round(env.control_timestep() / physics.timestep()))
    model, data = physics.model.ptr, physics.data.ptr
    spec, rng = env.action_spec(), np.random.default_rng(0)

    def bare() -> None:
        mujoco.mj_step(model, data, n)

    def library() -> None:
        if env.step(rng.uniform(spec.minimum, spec.maximum)).last():
            env.reset()

    return per_call_us(bare, seconds), per_call_us(library, seconds)


def per_call_us(fn, seconds: float) -> float:
    """CPU µs per call of fn, over calls for about `seconds` of CPU time."""
    calls, start = 0, time.process_time()
    while (spent := time.process_time() - start) < seconds:
        for _ in range(50):
            fn()
        calls += 50
    return spent / calls * 1e6


def run_keys(task: str, k: int, backend: str, obs: str, steps: int, extra=()) -> list[str]:
    """The row's run keys: td3 in its seed phase for the whole run, evaluated at step 0 only."""
    budget = 4 * (2 * WARM + steps)  # env steps: the window stops the run well before
    return [
        "agent=td3",
        f"task={task}",
        "agent.mlp_dims=[32,32]",
        f"obs={obs}",
        f"steps={budget}",
        f"seed_steps={budget}",
        f"eval_every={budget}",
        "eval_episodes=1",
        "eval_beside=false",  # the evaluation at step 0 ends before the window opens
        f"checkpoint_every={budget}",
        *BACKENDS[backend],
        *extra,
    ]


def measure_collection(task: str, k: int, backend: str, obs: str, steps: int, extra=()) -> dict:
    """The row of `task` (its observation `obs`) collected by one seed (k = 1) or a K-seed group (module
    docstring), in a temporary folder removed after."""
    from iqrl import train
    from iqrl.multiseed import runs as multiseed

    before = floor_us(task)
    keys = run_keys(task, k, backend, obs, steps, extra)
    marks: list[tuple[float, float]] = []
    calls = 0
    action_repeat = build_config([*keys, "out=unused"]).action_repeat
    window = k * (steps // action_repeat)  # agent steps in all

    def probe() -> bool:  # asked after every agent step of every seed
        nonlocal calls
        calls += 1
        if calls in (k * WARM, k * WARM + window):
            marks.append((tree_cpu_s() or 0.0, time.perf_counter()))
        return calls >= k * WARM + window

    root = Path(tempfile.mkdtemp(prefix="iqrl-bench-collect-"))
    try:
        if k == 1:
            rc = train.main([*keys, "seed=0", f"out={root / 'seed0'}"], should_stop=probe)
        else:
            rc = multiseed.main([*keys, f"seeds={','.join(map(str, range(k)))}", f"out={root}"], probe)
        if rc != EXIT_INTERRUPTED or len(marks) != 2:  # stopped by the probe, after its window
            raise RuntimeError(f"the run ended with exit code {rc} before its window closed")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    after = floor_us(task)
    bare, library = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
    (cpu0, t0), (cpu1, t1) = marks
    env_steps = window * action_repeat
    cpu = (cpu1 - cpu0) / env_steps * 1e6
    return {
        "kind": "collect",
        "task": task,
        "obs": obs,
        "seeds": k,
        "backend": backend,
        "env_steps": env_steps,
        "cpu_us": round(cpu, 1),
        "bare_us": round(bare, 1),
        "dm_control_us": round(library, 1),
        "vs_bare": round(cpu / bare, 2),
        "vs_dm_control": round(cpu / library, 2),
        "env_steps_per_s": round(env_steps / (t1 - t0), 1),
        "load": round(os.getloadavg()[0], 2),
        "hardware": hardware_name(),
    }


def hardware_name() -> str:
    import torch

    return hardware(torch.device("cpu"))


def collect_main(args, seeds: list[int], write_rows) -> int:
    """`--collect STEPS`: a row per observation, task, K of `--seeds` and backend of `--backends` (K = 1:
    one seed, its env in its process), each measured in a process of its own and written as it is
    measured; a K-seed row gets `vs_one_seed` beside the K = 1 row of its task and observation."""
    tasks = [t for t in args.tasks.split(",") if t]
    observations = [o for o in args.obs.split(",") if o]
    backends = [b for b in args.backends.split(",") if b]
    rows: list[dict] = []
    for obs, task, k in ((o, t, k) for o in observations for t in tasks for k in seeds):
        for backend in ["default"] if k == 1 else backends:
            cmd = [sys.executable, "-m", "iqrl.bench", "--one-collect", task, str(k), backend, obs]
            cmd += ["--collect", str(args.collect), *(f"--set={kv}" for kv in args.set)]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                line = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
                print(
                    f"error: collection of {task} ({obs}, K={k}, {backend}) failed: {line}", file=sys.stderr
                )
                return 1
            row = json.loads(r.stdout.strip().splitlines()[-1])
            one = next((x for x in rows if (x["task"], x["obs"], x["seeds"]) == (task, obs, 1)), None)
            if k > 1 and one is not None:
                row["vs_one_seed"] = round(row["env_steps_per_s"] / one["env_steps_per_s"], 2)
            rows.append(row)
            write_rows(rows, args.out)
            vs = f", {row['vs_one_seed']}x one seed's env steps/s" if "vs_one_seed" in row else ""
            print(
                f"{task:<14} {obs:<6} K={k:<3} {backend:<8} {row['cpu_us']:>7.1f} CPU µs per env step in all "
                f"({row['vs_bare']}x the bare physics, {row['bare_us']} µs; dm_control's step "
                f"{row['dm_control_us']} µs), {row['env_steps_per_s']:.0f} env steps/s in all{vs}; load "
                f"{row['load']}",
                flush=True,
            )
    print(f"wrote {args.out}")
    return 0
