"""status.json: its writer (atomic) and its one reader, which the trainer, slurm/ and analysis/ share."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from iqrl.runfolder.atomic import atomic_write_text


def write_status(
    run_dir: Path,
    state: str,
    env_step: int,
    steps: int,
    error: str | None = None,
    time_split: dict[str, float] | None = None,
    updates: int | None = None,
) -> None:
    """status.json; `time_split` (the trainer's seconds per phase so far, iqrl/loop/timing.py) and `updates`
    (the agent's so far) kept from the status before when not given, as a failure's status is written."""
    status = {
        "state": state,
        "env_step": int(env_step),
        "steps": int(steps),
        "error": error,
        "updated_at": time.time(),
        "pid": os.getpid(),
        "host": os.uname().nodename,
    }
    before = (read_status(run_dir) or {}) if None in (time_split, updates) else {}
    for key, value in (("time_split", time_split), ("updates", updates)):
        if (value := before.get(key) if value is None else value) is not None:
            status[key] = value
    atomic_write_text(Path(run_dir) / "status.json", json.dumps(status, indent=1) + "\n")


def read_status(run_dir: Path) -> dict | None:
    """The run's status.json as a dict; None when it is missing or unreadable (the one reader of the trainer,
    slurm/ and analysis/)."""
    try:
        data = json.loads((Path(run_dir) / "status.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
