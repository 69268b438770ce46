"""Run folder files, all written atomically (write to a temporary file in the same folder, then rename).

Layout: config.yaml, eval.csv, train.csv, status.json, checkpoint/ckpt.pt (docs/run-folder.md). Also what
the trainer, slurm/ and analysis/ share about run folders: the run lock, the status reader, the keys of older
configs and a run's method label. slurm/ imports it at the top on login nodes, so it imports no torch and
nothing of the harness (the trainer writes its checkpoints with `atomic_write`).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import io
import json
import os
import re
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

EVAL_COLUMNS = ["env_step", "episode_return", "episode_return_std", "n_episodes", "wall_time_s"]
# eval.csv's last column on suites that define success (Meta-World, MyoSuite): the fraction of evaluation
# episodes that succeeded; absent on DMC and Gym, and in run folders written before the suites.
SUCCESS_COLUMN = "success"
CHECKPOINT = Path("checkpoint") / "ckpt.pt"
LOCK = ".lock"
_UMASK = os.umask(0)
os.umask(_UMASK)
# The atomic writer's temporary files: "." + name + "." + mkstemp's 8 random characters + ".tmp"
# (e.g. checkpoint/.ckpt.pt.k3x_9q2a.tmp).
_TMP_PREFIX, _TMP_SUFFIX = ".", ".tmp"
_TMP_NAME = re.compile(re.escape(_TMP_PREFIX) + r".+\.[a-z0-9_]{8}" + re.escape(_TMP_SUFFIX))

# Config keys that do not change a run's results: where it lives, what it runs on and may take of its memory,
# how often its state is checkpointed (resume equality makes the results independent of the checkpoint
# cadence), and the trackers and videos it writes beside its CSV files. A run resumes whatever their values;
# analysis compares runs without them.
NOT_RESULT_KEYS = frozenset(
    {"out", "device", "meta", "checkpoint_every", "logger", "video_every", "memory_limit_gb"}
)

# Config keys added after run folders already existed, with the value that reproduces how those older
# versions behaved. The trainer resumes an unfinished older run (its config.yaml lacks the key) when the
# current value is that one and refuses it otherwise (e.g. iqrl-official, whose preset turns the key on);
# analysis reads a missing key as that value when it compares runs' configs.
LEGACY_VALUES = {
    "agent.official_shared_eval_seed": False,
    "agent.fsq_symmetric": False,
    "logger": ["csv"],
    "video_every": 0,
    # the quantizer family (iqrl/nn/quantizers.py): older runs used FSQ (or none, by use_fsq=false)
    "agent.quantizer": "fsq",
    "agent.quant_group_dim": 8,
    "agent.vq_codebook_size": 512,
    "agent.vq_dim": 8,
    "agent.vq_beta": 0.25,
    "agent.vq_decay": 0.99,
    # stochastic and distracting environments (iqrl.core.envs.Perturbations): older runs had none
    "obs_noise": 0.0,
    "action_noise": 0.0,
    "sticky_actions": 0.0,
    "distractor_dims": 0,
    "distractor": "noise",
    "perturb_eval": True,
    # batched evaluation (iqrl.core.evaluation.eval_batch): older runs evaluated their episodes one by one
    "eval_batched": False,
    # compiled updates (Agent.compile): older runs ran eagerly
    "compile": False,
    "cudagraphs": False,
    # pixel observations (iqrl.core.envs.PixelEnv): older runs saw state vectors
    "obs": "state",
    "image_size": 84,
    "frame_stack": 3,
    # transfer (iqrl.core.transfer): older runs started from scratch
    "init_from": "",
    "init_parts": ["representation"],
    "freeze": [],
    # multi-task learners (iqrl/learners/multitask.py): inert in the single-task runs older versions made
    "agent.task_heads": "embedding",
    "agent.task_dim": 96,
}

# Keys that older configs carried although the agent never read them: the SAC learner's keys in the configs
# of TD3-learner agents (iqrl, iqrl-official, iqrl-ae) and the TD3 actor's noise keys in the configs of
# SAC-learner agents (sac, iqrl-sac), before each agent's config was composed of its own learner's keys only.
# An unfinished older run whose config has them resumes without them; analysis ignores them.
INERT_REMOVED_KEYS = frozenset(
    f"agent.{k}"
    for k in (
        "init_temperature",
        "alpha_lr",
        "log_std_min",
        "log_std_max",
        "target_entropy",
        "policy_noise",
        "noise_clip",
        "expl_sigma_start",
        "expl_sigma_end",
        "expl_sigma_episodes",
    )
)


def method_label(agent: str, variant: str) -> str:
    """The method a run folder belongs to: the agent name for variant `default`, `agent/variant` otherwise
    (the figures' legends and the W&B group)."""
    return agent if variant in ("", "default") else f"{agent}/{variant}"


class RunFolderError(OSError):
    """A file of the run folder could not be written; str() is one line naming the file and the cause."""

    def __str__(self) -> str:
        return self.strerror or ""


# Causes of a failed write, as the one error line words them (others: the system's own words).
_CAUSES = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "input/output error",
    errno.ENOTDIR: "a file where a folder is expected",
    errno.EISDIR: "a folder where a file is expected",
}


def os_error_line(e: OSError, path: Path | str | None = None) -> str:
    """One line for a failed file operation: its cause and the file, e.g. `no space left on device while
    writing runs/x/eval.csv` (the cause in the system's words when it is not one of the usual ones)."""
    if isinstance(e, RunFolderError):
        return str(e)
    cause = _CAUSES.get(e.errno) or (e.strerror or str(e) or type(e).__name__).lower()
    target = path if path is not None else e.filename
    return f"{cause} while writing {target}" if target is not None else cause


def failure_line(e: BaseException) -> str:
    """What a failed run's status and its `error:` line say: a file operation's cause and file in one line
    (os_error_line), anything else as `Type: message`."""
    return os_error_line(e) if isinstance(e, OSError) else f"{type(e).__name__}: {e}"


def print_traceback_for(e: BaseException) -> None:
    """A failure at the run folder's boundary (an OSError: disk full, read-only, permissions) is its one line
    only; other failures, and every failure under IQRL_DEBUG=1, also print their traceback."""
    if os.environ.get("IQRL_DEBUG") == "1" or not isinstance(e, OSError):
        traceback.print_exception(e)


def atomic_write(path: Path, write, before_replace=None) -> None:
    """Call write(binary_file) on a temporary file beside `path`, fsync, call before_replace(tmp) if given,
    then rename it over `path`. A failure is a RunFolderError naming `path` (not the temporary file)."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{_TMP_PREFIX}{path.name}.", suffix=_TMP_SUFFIX)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual permissions
        if before_replace is not None:
            before_replace(Path(tmp))
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(OSError):  # a failed clean-up must not hide the failure itself
                os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, RunFolderError):
            raise RunFolderError(e.errno, os_error_line(e, path)) from e
        raise


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Delete the temporary files the atomic writer left in `run_dir` and its checkpoint folder when its
    process was killed (SIGKILL, power loss) between creating and renaming them: a checkpoint's is as big
    as the checkpoint. Only names of the writer's own pattern go. Call it only while holding the run's
    lock: another live writer's temporary file would match too. Returns the paths removed."""
    removed = []
    for folder in (Path(run_dir), Path(run_dir) / CHECKPOINT.parent):
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            if _TMP_NAME.fullmatch(p.name) and p.is_file() and not p.is_symlink():
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


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
    status = {
        "state": state,
        "env_step": int(env_step),
        "steps": int(steps),
        "error": error,
        "updated_at": time.time(),
        "pid": os.getpid(),
        "host": os.uname().nodename,
    }
    atomic_write_text(Path(run_dir) / "status.json", json.dumps(status, indent=1) + "\n")


def read_status(run_dir: Path) -> dict | None:
    """The run's status.json as a dict; None when it is missing or unreadable (the one reader of the trainer,
    slurm/ and analysis/)."""
    try:
        data = json.loads((Path(run_dir) / "status.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_yaml(path: Path, data: dict) -> None:
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, default_flow_style=None))


def read_yaml(path: Path) -> dict | None:
    p = Path(path)
    return yaml.safe_load(p.read_text()) if p.exists() else None


class RunLock:
    """``<run>/.lock``: an ``flock`` held by the process training the run, for as long as it trains it.

    The kernel drops it when that process dies in any way (SIGKILL included), so a held lock always means
    "a live process is training this run right now". The trainer takes it (so two trainers never write one
    folder: a hand-started run, a sweep job, a validate run), and so does a sweep job before it calls the
    trainer. Re-entrant within a process: a sweep job's trainer finds the lock held by its own process.
    """

    _held: dict[Path, int] = {}  # locks this process holds: path -> nesting depth

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self._fd: int | None = None
        self._nested = False

    def acquire(self, info: Mapping[str, Any], timeout_s: float = 5.0) -> bool:
        """Take the lock (retrying for ``timeout_s``, since probes hold it for an instant) and record
        ``info`` (job id, host, pid) in the lock file. False if another live process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key = self.path.resolve()
        if key in RunLock._held:  # this process trains the run already (a sweep job calling the trainer)
            RunLock._held[key] += 1
            self._nested = True
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if (
                    e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
                    or time.monotonic() > deadline
                ):
                    os.close(fd)
                    if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        return False
                    raise
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(dict(info)).encode(), 0)
        self._fd = fd
        RunLock._held[key] = 1
        return True

    def release(self) -> None:
        if self._nested:
            RunLock._held[self.path.resolve()] -= 1
            self._nested = False
        elif self._fd is not None:
            RunLock._held.pop(self.path.resolve(), None)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def held_elsewhere(self) -> bool:
        """Probe: is a live process holding the lock? (Takes it for an instant when free.)"""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return True
            raise
        finally:
            os.close(fd)  # closing drops a lock we may have taken
        return False

    def holder(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}


class RunBusy(RuntimeError):
    """Another live process holds the run's lock."""


@contextlib.contextmanager
def training_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s RunLock while training it; RunBusy (nothing written) if another process holds it.

    On a filesystem without ``flock`` (ENOLCK / ENOSYS / EOPNOTSUPP) it warns and trains unlocked, as before
    the trainer took the lock; sweeps need the lock and fail there (docs/sweeps.md)."""
    lock = RunLock(run_dir)
    info = {"job_id": None, "host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
    try:
        acquired = lock.acquire(info)
    except OSError as e:
        if e.errno not in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
        print(
            f"warning: {lock.path}: no flock on this filesystem ({e.strerror}); training without the run "
            f"lock, "
            "so nothing stops a second trainer on this folder",
            file=sys.stderr,
        )
        acquired = None
    if acquired is None:  # outside the except block: the run's own errors are not chained to this one
        yield
        return
    if not acquired:
        h = lock.holder()
        raise RunBusy(
            f"{run_dir} is being trained by another process (pid {h.get('pid', '?')} on "
            f"{h.get('host', '?')}{', job ' + str(h['job_id']) if h.get('job_id') else ''}); "
            "wait for it or stop it first"
        )
    try:
        yield
    finally:
        lock.release()
