"""Cluster profiles: where and how runs execute (``slurm/profiles/<name>.yaml``, or a path to a YAML file)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from slurm.yamlfile import read_yaml

PROFILE_DIR = Path(__file__).parent / "profiles"


class ProfileError(ValueError):
    pass


@dataclass(frozen=True)
class Profile:
    name: str
    executor: str  # slurm | local
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: float = 60  # per attempt (whole minutes for Slurm; the local executor takes fractions)
    cpus: int = 1
    mem_gb: float | None = None
    gpus: int = 0
    constraint: str | None = None
    array_parallelism: int = 64
    max_array_size: int | None = None  # None: MaxArraySize from scontrol
    signal_delay_s: int = 120
    max_num_timeout: int = 3
    device: str = "cpu"  # passed to the trainer as device=
    setup: tuple[str, ...] = ()
    sbatch: dict[str, Any] = field(default_factory=dict)
    parallelism: int | str = "auto"  # local executor only

    def local_parallelism(self) -> int:
        if self.parallelism == "auto":
            return max(1, len(os.sched_getaffinity(0)) // max(1, self.cpus))
        return int(self.parallelism)

    def slurm_parameters(self, job_name: str) -> dict[str, Any]:
        """Parameters for ``submitit.SlurmExecutor.update_parameters`` (raw sbatch names)."""
        params: dict[str, Any] = dict(job_name=job_name, time=self.time_min, cpus_per_task=self.cpus,
                                      signal_delay_s=self.signal_delay_s, array_parallelism=self.array_parallelism)
        if self.mem_gb:
            params["mem"] = f"{int(self.mem_gb)}GB" if float(self.mem_gb).is_integer() else f"{int(self.mem_gb * 1024)}MB"
        if self.gpus:
            params["gpus_per_node"] = self.gpus
        for key in ("partition", "account", "qos", "constraint"):
            if getattr(self, key):
                params[key] = getattr(self, key)
        if self.setup:
            params["setup"] = list(self.setup)
        if self.sbatch:
            params["additional_parameters"] = dict(self.sbatch)
        return params


def available() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name_or_path: str) -> Profile:
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        path = PROFILE_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise ProfileError(f"unknown cluster profile {name_or_path!r} (available: {', '.join(available())}, "
                               "or a path to a profile .yaml)")
    data = read_yaml(path, "cluster profile", ProfileError) or {}
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a mapping")
    known = {f.name for f in fields(Profile)} - {"name"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ProfileError(f"{path}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(known))})")
    if data.get("executor") not in ("slurm", "local"):
        raise ProfileError(f"{path}: executor must be slurm or local, got {data.get('executor')!r}")
    data = {k: v for k, v in data.items() if v is not None}
    data["setup"] = tuple(data.get("setup") or ())
    data["sbatch"] = dict(data.get("sbatch") or {})
    for key in ("cpus", "gpus", "array_parallelism", "signal_delay_s", "max_num_timeout"):
        if key in data and (not isinstance(data[key], int) or isinstance(data[key], bool) or data[key] < 0):
            raise ProfileError(f"{path}: {key} must be a non-negative integer, got {data[key]!r}")
    t = data.get("time_min", 1)
    whole = isinstance(t, int) and not isinstance(t, bool) and t >= 1
    if not (whole or (data["executor"] == "local" and isinstance(t, float) and t > 0)):
        raise ProfileError(f"{path}: time_min must be a whole number of minutes >= 1 (local profiles: > 0), got {t!r}")
    return Profile(name=path.stem, **data)
