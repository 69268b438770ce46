"""Run folder files, all written atomically (write to a temporary file in the same folder, then rename).

Layout: config.yaml, eval.csv, train.csv, status.json, checkpoint/ckpt.pt (see README).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
from pathlib import Path

import yaml

EVAL_COLUMNS = ["env_step", "episode_return", "episode_return_std", "n_episodes", "wall_time_s"]
CHECKPOINT = Path("checkpoint") / "ckpt.pt"
_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic_write(path: Path, write) -> None:
    """Call write(binary_file) on a temporary file beside `path`, fsync, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> None:
    """Rows -> CSV; columns default to the union of keys in first-seen order (missing cells empty)."""
    if columns is None:
        columns = []
        for r in rows:
            columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _fmt(r.get(k)) for k in columns})
    atomic_write_text(path, buf.getvalue())


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)  # shortest exact float repr: identical runs give identical files
    return v


def write_status(run_dir: Path, state: str, env_step: int, steps: int, error: str | None = None) -> None:
    status = {"state": state, "env_step": int(env_step), "steps": int(steps), "error": error,
              "updated_at": time.time(), "pid": os.getpid(), "host": os.uname().nodename}
    atomic_write_text(Path(run_dir) / "status.json", json.dumps(status, indent=1) + "\n")


def read_status(run_dir: Path) -> dict | None:
    p = Path(run_dir) / "status.json"
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def write_yaml(path: Path, data: dict) -> None:
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, default_flow_style=None))


def read_yaml(path: Path) -> dict | None:
    p = Path(path)
    return yaml.safe_load(p.read_text()) if p.exists() else None



def atomic_torch_save(path: Path, obj) -> None:
    import torch

    _atomic_write(path, lambda f: torch.save(obj, f))
