"""Cluster profiles: where and how runs execute (``slurm/profiles/<name>.yaml``, or a path to a YAML file)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from slurm.yamlfile import is_int, read_yaml

PROFILE_DIR = Path(__file__).parent / "profiles"
# Integer keys and their least value: a run needs a CPU, an array at least one task running at a time.
MIN_INT = {
    "cpus": 1,
    "array_parallelism": 1,
    "max_array_size": 1,
    "gpus": 0,
    "signal_delay_s": 0,
    "max_num_timeout": 0,
    "runs_per_job": 1,
}

PACK_MODES = ("auto", "eager", "compiled", "graphs")


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
    setup: tuple[str, ...] = ()  # shell lines before the job; the YAML value is a list of strings
    sbatch: dict[str, Any] = field(default_factory=dict)
    parallelism: int | str = "auto"  # local executor only: jobs at once, >= 1 or auto
    runs_per_job: int = (
        1  # K runs per job (slurm/pack.py): seeds of one config vectorised, others side by side
    )
    vectorise_seeds: bool = True  # false: the seeds of one config in a packed job run as separate processes
    pack_mode: str = "auto"  # a K-seed group's update mode: auto | eager | compiled | graphs (slurm/pack.py)

    def local_parallelism(self) -> int:
        if self.parallelism == "auto":
            return max(1, len(os.sched_getaffinity(0)) // max(1, self.cpus))
        return int(self.parallelism)

    def slurm_parameters(self, job_name: str) -> dict[str, Any]:
        """Parameters for ``submitit.SlurmExecutor.update_parameters`` (raw sbatch names)."""
        params: dict[str, Any] = dict(
            job_name=job_name,
            time=self.time_min,
            cpus_per_task=self.cpus,
            signal_delay_s=self.signal_delay_s,
            array_parallelism=self.array_parallelism,
        )
        if self.mem_gb:
            params["mem"] = (
                f"{int(self.mem_gb)}GB" if float(self.mem_gb).is_integer() else f"{int(self.mem_gb * 1024)}MB"
            )
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
            raise ProfileError(
                f"unknown cluster profile {name_or_path!r} (available: {', '.join(available())}, "
                "or a path to a profile .yaml)"
            )
    data = read_yaml(path, "cluster profile", ProfileError) or {}
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a mapping")
    known = {f.name for f in fields(Profile)} - {"name"}
    unknown = sorted(set(map(str, data)) - known)
    if unknown:
        raise ProfileError(f"{path}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(known))})")
    if data.get("executor") not in ("slurm", "local"):
        raise ProfileError(f"{path}: executor must be slurm or local, got {data.get('executor')!r}")
    data = {k: v for k, v in data.items() if v is not None}
    setup = data.get("setup", [])
    if not (isinstance(setup, list) and all(isinstance(line, str) for line in setup)):
        raise ProfileError(
            f'{path}: setup must be a list of shell lines, e.g. ["module load cuda"], got {setup!r}'
        )
    data["setup"] = tuple(setup)
    if not isinstance(data.get("sbatch", {}), dict):
        raise ProfileError(
            f"{path}: sbatch must be a mapping of sbatch flags to values, got {data['sbatch']!r}"
        )
    for key, least in MIN_INT.items():
        if key in data and not (is_int(data[key]) and data[key] >= least):
            raise ProfileError(f"{path}: {key} must be an integer >= {least}, got {data[key]!r}")
    if not isinstance(data.get("vectorise_seeds", True), bool):
        raise ProfileError(f"{path}: vectorise_seeds must be true or false, got {data['vectorise_seeds']!r}")
    if data.get("pack_mode", "auto") not in PACK_MODES:
        raise ProfileError(
            f"{path}: pack_mode must be one of {', '.join(PACK_MODES)}, got {data['pack_mode']!r}"
        )
    if data.get("pack_mode") == "graphs" and data.get("device", "cpu") != "cuda":
        raise ProfileError(f"{path}: pack_mode graphs captures CUDA graphs: set device: cuda")
    parallelism = data.get("parallelism", "auto")
    if parallelism != "auto" and not (is_int(parallelism) and parallelism >= 1):
        raise ProfileError(f"{path}: parallelism must be auto or an integer >= 1, got {parallelism!r}")
    mem = data.get("mem_gb", 1)
    if not ((is_int(mem) or isinstance(mem, float)) and mem > 0):
        raise ProfileError(f"{path}: mem_gb must be a positive number of GB, got {mem!r}")
    t = data.get("time_min", 1)
    whole = is_int(t) and t >= 1
    if not (whole or (data["executor"] == "local" and isinstance(t, float) and t > 0)):
        raise ProfileError(
            f"{path}: time_min must be a whole number of minutes >= 1 (local profiles: > 0), got {t!r}"
        )
    return Profile(name=path.stem, **data)


def check_run_devices(runs: Sequence[tuple[str, list[str]]], profile: Profile, where: str) -> None:
    """The runs (key, trainer command line as the profile's job starts it) against what the profile's device
    has: cudagraphs=true and precision=tf32 need CUDA, so a `device: cpu` profile would submit runs that every
    trainer refuses (the trainer's own checks, iqrl.loop.preflight). ProfileError naming the first such
    run."""
    asking = [(k, argv) for k, argv in runs if any(a.startswith(("cudagraphs=", "precision=")) for a in argv)]
    if profile.device.startswith("cuda") or profile.device == "auto" or not asking:
        return
    import torch  # here: the other commands on a login node import no torch

    from iqrl.config.build import build_config
    from iqrl.config.run import ConfigError
    from iqrl.loop.preflight import check_compile, check_precision

    device = torch.device(profile.device or "cpu")
    for key, argv in asking:
        try:
            cfg = build_config(argv)
            check_compile(cfg, device)
            check_precision(cfg, device)
        except ConfigError as e:
            raise ProfileError(
                f"{where}: run {key} on profile {profile.name} (device {device}): {e}"
            ) from None
