"""Talking to Slurm from the submitting machine: is it there, its MaxArraySize, the queue."""

from __future__ import annotations

import shutil
import subprocess


def slurm_present() -> bool:
    """Slurm client tools are installed (whether a controller answers is checked by ``queue()``)."""
    return shutil.which("sbatch") is not None and shutil.which("squeue") is not None


def _run(cmd: list[str], timeout: float = 30) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def max_array_size() -> int | None:
    """``MaxArraySize`` from ``scontrol show config`` (array indices must stay below it), or None."""
    out = _run(["scontrol", "show", "config"])
    for line in (out or "").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "MaxArraySize":
            try:
                return int(value.strip())
            except ValueError:
                return None
    return None


def queue() -> dict[str, tuple[str, str]] | None:
    """Every job Slurm still knows: ``job_id -> (state, reason)``, array tasks as ``<array>_<k>``.

    None when Slurm is absent or its controller does not answer (callers then treat Slurm jobs as alive).
    """
    if not slurm_present():
        return None
    out = _run(["squeue", "--array", "--noheader", "--states=all", "--format=%i|%T|%r"])
    if out is None:
        return None
    jobs: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            jobs[parts[0]] = (parts[1], parts[2])
    return jobs


def chunks(items: list, size: int) -> list[list]:
    """Split into consecutive chunks of at most ``size`` (array indices 0..size-1 < MaxArraySize)."""
    if size < 1:
        raise ValueError(f"chunk size must be positive, got {size}")
    return [items[i : i + size] for i in range(0, len(items), size)]
