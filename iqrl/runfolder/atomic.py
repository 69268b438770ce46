"""Atomic writes: write to a temporary file in the same folder, fsync, then rename it over the file, so a
reader sees the old file or the new one, never a part; and the removal of the temporary files a killed
writer left. The trainer writes its checkpoints with `atomic_write`; the CSV, status and YAML writers build
on `atomic_write_text`.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

from iqrl.runfolder.errors import RunFolderError, os_error_line
from iqrl.runfolder.layout import CHECKPOINT

_UMASK = os.umask(0)
os.umask(_UMASK)
# The atomic writer's temporary files: "." + name + "." + mkstemp's 8 random characters + ".tmp"
# (e.g. checkpoint/.ckpt.pt.k3x_9q2a.tmp).
_TMP_PREFIX, _TMP_SUFFIX = ".", ".tmp"
_TMP_NAME = re.compile(re.escape(_TMP_PREFIX) + r".+\.[a-z0-9_]{8}" + re.escape(_TMP_SUFFIX))


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
