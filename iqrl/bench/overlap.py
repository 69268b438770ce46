"""Overlap rows of `make bench` (`--overlap STEPS`, row kind `overlap`): how much of a K-seed group's
collection hides behind its updates when its seeds train in cohorts (run key `cohorts`,
iqrl/multiseed/runs.py: one cohort's envs step while another's update runs).

Three K-seed jobs of iqrl at the demo's sizes (`--set` keys over them) on one task, STEPS env
steps per seed each, in a temporary folder: one all seed phase (collection alone, random actions), and two
alike that update after `SEED_STEPS` env steps, in one group (cohorts=1) and in two cohorts. Their walls are
the slowest seed's time in its loop less its evaluations (status.json's `time_split`, as the end-to-end rows:
iqrl/bench/endtoend.py), per env step of every seed together:
- collect_s: the collection job's wall per env step;
- update_s: the cohorts=1 job's update time (its seeds' mean `update` phase) per updating env step;
- wall_1_s, wall_2_s: each updating job's wall per updating env step, its seed phase (SEED_STEPS env steps
  at collect_s each) taken out;
- hidden: (wall_1_s - wall_2_s) / collect_s, the share of collection the cohorts hid, clipped to [0, 1]
  (`hidden_raw` unclipped, `clipped` whether it was), and the ratios update_s / collect_s and wall_2_s /
  wall_1_s.
The jobs update on `--device` (the CPU by default). On a CPU the update's operators and the envs' physics
share the cores, so the overlap there is bounded by the cores left beside the update; the row records the
cores the process may use.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from iqrl.bench.endtoend import run_argv
from iqrl.bench.measure import hardware
from iqrl.config.build import layered
from iqrl.config.demo_sizes import AGENT_OVERRIDES
from iqrl.multiseed.runs import workers_help
from iqrl.runfolder.status import read_status

#: The updating jobs' seed phase, in env steps (cartpole's 200-step demo episodes: one episode)
SEED_STEPS = 200
#: The jobs' keys beside the demo's agent sizes: episodes of 200 env steps, one evaluation episode only at the
#: ends (left out of the walls), no diagnostics and one checkpoint at the end.
JOB_KEYS = ["episode_length=200", "eval_episodes=1", "diagnostics=false"]


def job_wall(root: Path, k: int) -> tuple[float, float]:
    """A finished job's (wall, update): the slowest seed's seconds in its loop less its evaluations, and its
    seeds' mean seconds of updates."""
    splits = [read_status(root / f"seed{s}")["time_split"] for s in range(k)]
    wall = max(sum(split.values()) - split["evaluate"] for split in splits)
    return wall, sum(split["update"] for split in splits) / k


def run_job(keys: list[str], k: int) -> tuple[float, float]:
    """python -m iqrl.multiseed seeds=0..k-1 with `keys`, in a temporary folder removed after; job_wall's."""
    from iqrl.multiseed import runs as multiseed

    root = Path(tempfile.mkdtemp(prefix="iqrl-bench-overlap-"))
    try:
        if rc := multiseed.main([f"seeds={','.join(map(str, range(k)))}", *keys, f"out={root}"]):
            raise RuntimeError(f"the job ended with exit code {rc}")
        return job_wall(root, k)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def overlap_numbers(steps: int, collect: float, update: float, wall_1: float, wall_2: float) -> dict:
    """The row's figures from the jobs' totals (module docstring): `collect` the collection job's wall over
    `steps` env steps, `update` and `wall_1` the cohorts=1 job's, `wall_2` the cohorts=2 job's, the updating
    jobs' first SEED_STEPS env steps collection only."""
    collect_s, updating = collect / steps, steps - SEED_STEPS
    wall_1_s, wall_2_s = ((w - collect_s * SEED_STEPS) / updating for w in (wall_1, wall_2))
    raw = (wall_1_s - wall_2_s) / collect_s
    return {
        "collect_s": round(collect_s, 6),
        "update_s": round(update / updating, 6),
        "wall_1_s": round(wall_1_s, 6),
        "wall_2_s": round(wall_2_s, 6),
        "hidden": round(min(max(raw, 0.0), 1.0), 3),
        "hidden_raw": round(raw, 3),
        "clipped": not 0.0 <= raw <= 1.0,
        "update_vs_collect": round(update / updating / collect_s, 3),
        "wall_2_vs_1": round(wall_2_s / wall_1_s, 3),
    }


def overlap_refusal(k: int, steps: int) -> str | None:
    """Why an overlap row of k seeds and `steps` env steps cannot be measured (one line), or None: two cohorts
    of at least two seeds (a lone seed computes a spare slot: SeedGroup.slots), and updates after the seed
    phase."""
    if k < 4 or k % 2:
        return f"--overlap measures two cohorts of K / 2 >= 2 seeds: --seeds takes even K >= 4, got {k}"
    if steps <= SEED_STEPS:
        return f"--overlap takes more than the jobs' {SEED_STEPS} seed steps, got {steps}"
    return None


def overlap_row(task: str, k: int, steps: int, extra=(), device: str = "cpu") -> dict:
    """The `overlap` row of a group of k iqrl seeds on `task`, STEPS env steps per job (`overlap_refusal`),
    its updates on `device`."""
    ends = [f"eval_every={steps}", f"checkpoint_every={steps}"]
    keys = run_argv(
        "iqrl",
        task,
        "fp32",
        device,
        "false",
        steps,
        extra=layered(AGENT_OVERRIDES["iqrl"], JOB_KEYS, ends, extra),
    )
    collect, _ = run_job(layered(keys, [f"seed_steps={steps}"]), k)
    (wall_1, update), (wall_2, _) = (
        run_job(layered(keys, [f"seed_steps={SEED_STEPS}", f"cohorts={c}"]), k) for c in (1, 2)
    )
    workers = next((a.partition("=")[2] for a in extra if a.startswith("env_workers=")), None)
    return {
        "kind": "overlap",
        "agent": "iqrl",
        "task": task,
        "seeds": k,
        "cohorts": 2,
        "env_steps": steps,
        "set": list(extra),
        **overlap_numbers(steps, collect, update, wall_1, wall_2),
        "env_workers": workers_help(k) if workers is None else workers == "true",
        "cores": len(os.sched_getaffinity(0)),
        "torch": torch.__version__,
        "device": device,
        "hardware": hardware(torch.device(device)),
    }


def overlap_main(args, seeds: list[int], write_rows: Callable) -> int:
    """`--overlap STEPS`: an `overlap` row per task of `--tasks` and K of `--seeds`, each written to --out as
    it is measured, and printed; a K or STEPS it cannot measure is one error line before anything runs."""
    if args.agents not in ("", "iqrl"):
        print(f"error: --overlap measures iqrl's K-seed jobs, got --agents {args.agents}", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"error: --device {args.device} needs a CUDA GPU, and this machine has none", file=sys.stderr)
        return 2
    if problem := next(filter(None, (overlap_refusal(k, args.overlap) for k in seeds)), None):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    rows = []
    for task in (t for t in args.tasks.split(",") if t):
        for k in seeds:
            rows.append(overlap_row(task, k, args.overlap, args.set, args.device))
            write_rows(rows, args.out)
            print(json.dumps(rows[-1]), flush=True)
    print(f"wrote {args.out}")
    return 0
