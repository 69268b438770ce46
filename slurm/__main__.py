"""Command line behind `make sweep` and `make status`.

python -m slurm sweep  ablations/smoke.yaml [--cluster local-slurm] [--results results] [--dry [--gpu-hours
700]] [--agents iqrl,td3] [--yes]
python -m slurm status ablations/smoke.yaml [--results results] [--agents iqrl]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from slurm import cluster
from slurm.cost import CPU_HOURS_LIMIT
from slurm.profiles import ProfileError
from slurm.spec import SweepError
from slurm.status import collect, render
from slurm.submit import SubmitError, load, run_sweep


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m slurm", description="Sweeps on Slurm or locally, and their status."
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, help_ in (
        ("sweep", "run or resume every run of a sweep that is not done"),
        ("status", "table of run states of a sweep"),
    ):
        s = sub.add_parser(name, help=help_)
        s.add_argument("sweep", help="sweep file, e.g. ablations/smoke.yaml")
        s.add_argument("--results", default="results", help="results root (default: results)")
        s.add_argument("--agents", default="", help="comma-separated subset of the sweep's agents")
        if name == "sweep":
            s.add_argument("--cluster", default="", help="profile name in slurm/profiles or a .yaml path")
            s.add_argument(
                "--dry", action="store_true", help="print runs and sbatch parameters; submit nothing"
            )
            s.add_argument(
                "--gpu-hours",
                type=float,
                default=None,
                help="with --dry: a GPU-hour budget; print the measured mode and K per agent against it",
            )
            s.add_argument(
                "--yes",
                action="store_true",
                help=f"start a local sweep of more than {CPU_HOURS_LIMIT:g} CPU-hours here",
            )
    args = p.parse_args(argv)
    if why := _gpu_hours_refusal(args):
        print(f"error: {why}", file=sys.stderr)
        return 2
    agents = [a for a in args.agents.split(",") if a] or None
    try:
        if args.cmd == "sweep":
            return run_sweep(
                args.sweep,
                args.results,
                args.cluster or None,
                args.dry,
                agents,
                gpu_hours=args.gpu_hours,
                yes=args.yes,
            )
        results = Path(args.results).absolute()
        sweep, runs = load(args.sweep, results, agents, validator=None)
        queue = cluster.queue()
        print(render(collect(runs, results, queue), results, sweep.name, queue is not None))
        return 0
    except (SweepError, ProfileError, SubmitError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1 if isinstance(e, SubmitError) else 2  # 2: bad input; 1: sbatch refused


def entry() -> int:
    """`python -m slurm`: main, its output piped into `head` and the like ending quietly. Here and not in
    main, which a caller may run in its own process: that caller's streams stay as they were."""
    try:
        return main()
    except BrokenPipeError:  # the reader left: stdout to devnull, so the flush at exit raises nothing either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's signal docs, SIGPIPE
        return 0


def _gpu_hours_refusal(args) -> str | None:
    """--gpu-hours is a budget that a dry run's projection is read against: a positive finite number, with
    --dry (without it the sweep would start for real)."""
    hours = getattr(args, "gpu_hours", None)
    if hours is None:
        return None
    if not args.dry:
        return "--gpu-hours is the budget a dry run's projection is read against: add --dry (DRY=1)"
    if not (math.isfinite(hours) and hours > 0):
        return f"--gpu-hours must be a positive number of GPU-hours, got {hours:g}"
    return None


if __name__ == "__main__":
    sys.exit(entry())
