"""The unit of work submitted to Slurm or the local executor: one run folder, trained or resumed.

``Run`` holds only strings (picklable, tiny); the trainer is imported inside ``__call__`` so the submitting
machine never needs torch or MuJoCo for it. Time limits and preemption (submitit's protocol, 1.5.4):

1. Slurm sends USR2 ``signal_delay_s`` before the time limit (or on preemption). submitit installed its
   handler before calling us; we keep it and install ours, which only sets a flag.
2. The trainer polls ``should_stop`` after each agent step; once the flag is set it writes a
   checkpoint, sets status ``interrupted`` and returns ``EXIT_INTERRUPTED``.
3. We then call submitit's saved handler ourselves: it calls ``Run.checkpoint()`` (a fresh ``Run``, all
   state lives in the run folder), rewrites the job pickle, runs ``scontrol requeue`` and exits. The
   requeued job resumes from the checkpoint. Past ``max_num_timeout`` requeues it raises instead; the run
   stays resumable and the next ``make sweep`` picks it up.

SIGTERM (scancel, or the time limit passing) and SIGINT (Ctrl-C during a local sweep reaches every job
process) set the same flag: the run checkpoints after its current agent step if it gets the chance, and is
not requeued. Whatever kills the job (SIGKILL, OOM, node failure),
the run lock dies with the process and the run resumes from its last periodic checkpoint next sweep.

Any other exit code (1: the trainer recorded its error; 2: bad input, nothing written) or a trainer that
cannot even be called leaves status ``failed`` with an error (``trainer exit code 2 (see the job log ...)``
when the trainer wrote none), never replacing a ``done`` status; `make status` shows it and the next
``make sweep`` retries the run.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from iqrl.runfolder.exits import EXIT_INTERRUPTED
from iqrl.runfolder.status import read_status, write_status
from slurm.claim import RunLock, release_claim
from slurm.state import is_done


class RunFailed(RuntimeError):
    """The trainer reported a failure (the error is also recorded in the run's status.json)."""


def _job_id() -> str | None:
    """This job's id as submitit names it (``<array>_<k>`` for array tasks), or None outside a job."""
    try:
        import submitit

        return str(submitit.JobEnvironment().job_id)
    except Exception:  # not inside a submitit job
        return None


def _record_failure(run_dir: Path, error: str) -> str:
    """Mark the run ``failed`` with ``error`` unless the trainer recorded its own failure (kept) or finished
    it (a done run is never touched). Without this, a trainer that stops before writing a status (exit 2: bad
    input such as device=cuda on a CPU node) would leave nothing: `make status` would say missing, with no
    error. Returns the error that status.json holds."""
    status = read_status(run_dir) or {}
    if status.get("state") == "done" or (status.get("state") == "failed" and status.get("error")):
        return status.get("error") or error
    write_status(run_dir, "failed", status.get("env_step") or 0, status.get("steps") or 0, error)
    return error


class _StopFlag:
    """Set by USR2 (requeue wanted) or SIGTERM / SIGINT (stop without requeue); read by the trainer."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def handler(self, signum: int, frame: Any) -> None:
        if self.signum is None or signum == signal.SIGUSR2:
            self.signum = signum
        print(
            f"[slurm.run] got {signal.Signals(signum).name}: stopping after the current agent step",
            file=sys.stderr,
            flush=True,
        )

    def __call__(self) -> bool:
        return self.signum is not None


def set_threads(threads: int | None, before_import: bool = False) -> None:
    """Cap torch/OpenMP threads at the job's ``threads``: the environment before torch is imported (unless
    the job's environment sets it already), torch's own setting once it is."""
    if not threads:
        return
    if before_import:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(threads))
    elif (torch := sys.modules.get("torch")) is not None:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class Run:
    """Train or resume ``run_dir`` with ``argv``. ``entry`` is the trainer (``module:function`` with the
    contract of ``iqrl.train.main``); ``threads`` caps torch/OpenMP threads (the job's cpus)."""

    run_dir: str
    argv: tuple[str, ...]
    label: str = ""
    entry: str = "iqrl.train:main"
    threads: int | None = None

    def checkpoint(self, *args: Any, **kwargs: Any):
        """submitit's requeue hook: the state is on disk already, so a fresh Run with the same fields."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(replace(self))

    def __call__(self) -> str:
        run_dir = Path(self.run_dir)
        name = self.label or str(run_dir)
        if is_done(run_dir):
            return f"{name}: already done"
        job_id = _job_id()
        lock = RunLock(run_dir)
        if not lock.acquire(
            {"job_id": job_id, "host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
        ):
            return f"{name}: skipped, another process is running it ({lock.holder()})"
        flag = _StopFlag()
        saved = {s: signal.getsignal(s) for s in (signal.SIGUSR2, signal.SIGTERM, signal.SIGINT)}
        try:
            if is_done(run_dir):  # finished by another job between the first check and the lock
                return f"{name}: already done"
            for s in saved:
                signal.signal(s, flag.handler)
            # A packed job starts its runs with these signals blocked (slurm.pack): let them in now that the
            # handler is ours (a no-op when they were not blocked).
            signal.pthread_sigmask(signal.SIG_UNBLOCK, saved)
            try:
                rc = self._train(flag)
            except Exception as e:  # the trainer could not even start (code changed since submission, ...)
                _record_failure(run_dir, f"{type(e).__name__}: {e}")
                raise
            if rc == 0:
                release_claim(run_dir, job_id)
                return f"{name}: done"
            if rc == EXIT_INTERRUPTED:
                lock.release()  # before the requeue: the requeued job may start on another node at once
                if flag.signum == signal.SIGUSR2 and callable(saved[signal.SIGUSR2]):
                    saved[signal.SIGUSR2](signal.SIGUSR2, None)  # submitit: checkpoint(), requeue, exit
                how = signal.Signals(flag.signum).name if flag.signum else "stop"
                return f"{name}: interrupted ({how}), resumable"
            # The claim stays (its job id points `make status` to the log); it is stale once the job ends.
            log = f"the job log {job_id}" if job_id else "the job log"
            error = _record_failure(run_dir, f"trainer exit code {rc} (see {log})")
            raise RunFailed(f"{name}: {error}")
        finally:
            for s, h in saved.items():
                signal.signal(s, h)
            lock.release()

    def _train(self, should_stop: _StopFlag) -> int:
        module, _, func = self.entry.partition(":")
        set_threads(self.threads, before_import=True)
        main = getattr(importlib.import_module(module), func)
        set_threads(self.threads)
        print(f"[slurm.run] {self.label}: {module} {' '.join(self.argv)}", flush=True)
        return int(main(list(self.argv), should_stop=should_stop))
