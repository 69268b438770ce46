"""The local executor's jobs, as `make sweep` watches them: how a finished job ended, and how a Ctrl-C stops
the running ones after their current agent step."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slurm.spec import RunSpec


def stop_local_jobs(active: Mapping[Any, list[RunSpec]], results: Path) -> None:
    """SIGINT to each running job's trainer (the process holding its run lock), repeated until every job
    has ended: a terminal's Ctrl-C reached them already, a SIGINT sent to `make sweep` alone did not, and a
    job still starting takes its lock (and Run its handler) a moment later. Run treats repeated SIGINTs as
    one request. A second Ctrl-C stops waiting; the jobs still stop after their current agent step."""
    import os
    import signal
    import socket

    from slurm.claim import RunLock

    host = socket.gethostname()
    try:
        while not all(job.done() for job in active):
            for job, group in active.items():
                for r in group:
                    lock = RunLock(r.run_dir(results))
                    holder = lock.holder() if not job.done() and lock.held_elsewhere() else {}
                    if holder.get("host") == host and holder.get("pid"):
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(int(holder["pid"]), signal.SIGINT)
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass


def local_outcome(job: Any) -> tuple[bool, str]:
    if not job.paths.result_pickle.exists():
        return False, f"job ended without a result (killed?); log: {job.paths.stderr}"
    try:
        return True, str(job.result())
    except (
        Exception
    ) as e:  # FailedJobError carries the remote traceback; the error is its last "Type: message"
        lines = [
            ln for ln in str(e).splitlines() if ln[:1].strip() and ": " in ln
        ]  # not indented source lines
        return False, f"{lines[-1] if lines else type(e).__name__} (log: {job.paths.stderr})"
