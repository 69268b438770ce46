"""A failed file operation or run in one line: RunFolderError, the causes of a failed write in words, the
failure line of a run's status and its `error:` line, and when a traceback is printed as well.
"""

from __future__ import annotations

import errno
import os
import traceback
from pathlib import Path

from iqrl.envs.workers import EnvWorkerDied


class RunFolderError(OSError):
    """A file of the run folder could not be written; str() is one line naming the file and the cause."""

    def __str__(self) -> str:
        return self.strerror or ""


# Causes of a failed write, as the one error line words them (others: the system's own words).
CAUSES = {
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
    cause = CAUSES.get(e.errno) or (e.strerror or str(e) or type(e).__name__).lower()
    target = path if path is not None else e.filename
    return f"{cause} while writing {target}" if target is not None else cause


def failure_line(e: BaseException) -> str:
    """What a failed run's status and its `error:` line say: a file operation's cause and file in one line
    (os_error_line), anything else as `Type: message`."""
    return os_error_line(e) if isinstance(e, OSError) else f"{type(e).__name__}: {e}"


def print_traceback_for(e: BaseException) -> None:
    """A failure at the run's boundary (an OSError: disk full, read-only, permissions; an env worker process
    that died: killed, out of memory) is its one line only; other failures, and every failure under
    IQRL_DEBUG=1, also print their traceback."""
    if os.environ.get("IQRL_DEBUG") == "1" or not isinstance(e, (OSError, EnvWorkerDied)):
        traceback.print_exception(e)
