"""Who owns a run: claims (taken by `make sweep`), the run lock (held by the job running it), the sweep lock.

Three files keep a run from being started twice:

* ``<run>/.claim`` — JSON ``{job_id, backend, host, pid, time, sweep}``, created atomically (hard link of a
  finished temp file: fails if it exists) by the sweep that submits the run, and given the job id once the
  job is submitted. It says "a job for this run is queued or running". A claim is *stale* when its job can
  no longer run: a Slurm job id that squeue no longer lists (finished, scancelled, node failure, OOM), a
  local job whose process is gone, or a claim that never got a job id (its sweep died mid-submit).
* ``<run>/.lock`` — an ``flock`` held by the process that runs the trainer, for as long as it runs
  (``iqrl.runfolder.lock.RunLock``: the trainer takes it itself, so a run started by hand is seen too). The
  kernel drops it when that process dies in any way (SIGKILL included), so a held lock always means "a
  live process is training this run right now"; a second job for the same run sees it and exits.
* ``RESULTS/.submitit/<sweep>/sweep.lock`` — an ``flock`` serialising the claim phase of concurrent
  ``make sweep`` invocations, so that two of them never both judge a claim stale and replace it.
  Invariant: claims are created and given their job id while this lock is held, so a claim without a job
  id seen under the lock belongs to a dead sweep.

``flock`` works on local filesystems and on NFS (Linux emulates it with POSIX locks there), and on Lustre
mounted with ``flock``; with ``localflock`` (Lustre) or ``nolock`` / ``local_lock=flock`` (NFS) locks are
node-local and exclude nothing across nodes (docs/sweeps.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

# the run lock lives with the run folder: the trainer takes it too
from iqrl.runfolder.lock import RunLock  # noqa: F401

CLAIM = ".claim"

# squeue states in which a job may still run (or is still running) this run. Not PREEMPTED: Slurm counts it
# among the finished states (base state after SUSPENDED); a job preempted with PreemptMode=REQUEUE is shown
# as REQUEUED / PENDING again, one preempted with PreemptMode=CANCEL never runs again.
LIVE_SLURM_STATES = {
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SUSPENDED",
    "STOPPED",
    "SIGNALING",
    "STAGE_OUT",
    "RESV_DEL_HOLD",
    "SPECIAL_EXIT",
}


@dataclass(frozen=True)
class Claim:
    job_id: str | None
    backend: str  # "slurm" | "local"
    host: str
    pid: int  # the claiming sweep's pid
    time: float
    sweep: str

    @classmethod
    def new(cls, backend: str, sweep: str, job_id: str | None = None) -> Claim:
        return cls(job_id, backend, socket.gethostname(), os.getpid(), time.time(), sweep)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp.{socket.gethostname()}.{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_claim(run_dir: Path) -> Claim | None:
    try:
        data = json.loads((Path(run_dir) / CLAIM).read_text())
        return Claim(**{k: data.get(k) for k in Claim.__dataclass_fields__})
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        # Unreadable claim: treat as a claim of a dead sweep (no job id), so it is replaced.
        return Claim(None, "unknown", "", 0, 0.0, "")


def try_claim(run_dir: Path, claim: Claim) -> bool:
    """Create ``run_dir/.claim`` atomically; False if a claim exists already."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f"{CLAIM}.new.{socket.gethostname()}.{os.getpid()}"
    tmp.write_text(json.dumps(asdict(claim)))
    try:
        os.link(tmp, run_dir / CLAIM)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def set_claim_job(run_dir: Path, job_id: str) -> None:
    claim = read_claim(run_dir)
    if claim is not None:
        _atomic_write(Path(run_dir) / CLAIM, json.dumps({**asdict(claim), "job_id": str(job_id)}))


def release_claim(run_dir: Path, job_id: str | None = None) -> None:
    """Remove the claim; with ``job_id``, only if the claim belongs to that job."""
    path = Path(run_dir) / CLAIM
    if job_id is not None:
        claim = read_claim(run_dir)
        if claim is None or claim.job_id != str(job_id):
            return
    path.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_alive(claim: Claim, queue: Mapping[str, tuple[str, str]] | None) -> tuple[bool, str, str]:
    """(alive, state, description) of the claim's job. ``queue`` is ``job_id -> (state, reason)`` from
    squeue, or None when Slurm cannot be asked: Slurm claims then count as alive (never start a run twice).
    ``state`` is the Slurm state, ``LOCAL`` for a live local job, or "" when unknown or gone."""
    if claim.job_id is None:
        return False, "", "claim without a job id (its sweep stopped before submitting)"
    if claim.backend == "slurm":
        if queue is None:
            return True, "", f"job {claim.job_id} (Slurm unreachable: assumed alive)"
        state, reason = queue.get(claim.job_id, ("", ""))
        if state in LIVE_SLURM_STATES:
            why = f" ({reason})" if reason and reason != "None" else ""
            return True, state, f"job {claim.job_id} {state}{why}"
        return False, "", f"job {claim.job_id} {state or 'gone'}: no longer queued or running"
    if claim.backend == "local":
        if claim.host != socket.gethostname():
            return (
                True,
                "",
                f"local job {claim.job_id} on {claim.host} (cannot check from here: assumed alive)",
            )
        if pid_alive(int(claim.job_id)):
            return True, "LOCAL", f"local job {claim.job_id} on {claim.host}"
        return False, "", f"local job {claim.job_id} has exited"
    return False, "", f"unknown claim backend {claim.backend!r}"


@contextlib.contextmanager
def sweep_lock(path: Path) -> Iterator[None]:
    """Exclusive lock serialising concurrent sweeps' claim phases (blocks until free)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
