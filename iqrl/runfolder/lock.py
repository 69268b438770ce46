"""The run lock: ``<run>/.lock``, an ``flock`` held by the process that trains the run (`RunLock`), the check
that a run still holds it and that its folder is where it was (`check_lock`), and the trainer's context
(`training_lock`). Imports neither torch nor dm_control: slurm/ takes the same lock on login nodes."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from iqrl.core.checks import Refused
from iqrl.runfolder.errors import RunFolderError, os_error_line
from iqrl.runfolder.layout import LOCK
from iqrl.runfolder.status import read_status


class RunBusy(Refused):
    """Another live process holds the run's lock."""


class LostLock(RunBusy):
    """The run's `.lock` was deleted while it trained and another process has locked the file made since."""


class RunFolderMoved(Refused):
    """The run folder was moved (or deleted) while its run trained: the run stops without writing more, and
    never makes the folder again at its old path."""


_BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
NO_FLOCK = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP)  # a file system without flock


class RunLock:
    """``<run>/.lock``: an ``flock`` held by the process training the run, for as long as it trains it.

    The kernel drops it when that process dies in any way (SIGKILL included), so a held lock always means
    "a live process is training this run right now". The trainer takes it (so two trainers never write one
    folder: a hand-started run, a sweep job, a validate run), and so does a sweep job before it calls the
    trainer. Re-entrant within a process: a sweep job's trainer finds the lock held by its own process.

    Deleting ``.lock`` cannot hand the run to a second process: the holder also locks the run folder itself
    (where the file system locks folders: local disks, not NFS, which locks only files opened for writing),
    and it checks at each write of the run's files (``check_lock``) that ``.lock`` is still the file it
    locked. When it is not, it locks the file at that path, made again if need be, and trains on; when
    another process holds that file (it started in the meantime, on a file system without folder locks),
    the holder stops in one line (LostLock) and leaves the run to it.
    """

    _held: dict[Path, RunLock] = {}  # locks this process holds: path -> the outermost RunLock
    TAKEOVER_WAIT_S = 5.0  # how long `check` waits for a .lock made again that another process holds

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self._fd: int | None = None  # the locked .lock
        self._dir_fd: int | None = None  # the locked run folder, where folders can be locked
        self._info: bytes = b""
        self._nested = False
        self._warned = False

    def acquire(self, info: Mapping[str, Any], timeout_s: float = 5.0) -> bool:
        """Take the lock (retrying for ``timeout_s``, since probes hold it for an instant) and record
        ``info`` (job id, host, pid) in the lock file. False if another live process holds it. A failure
        to write the record (a full disk) is a RunFolderError naming ``.lock``, with nothing left behind."""
        made = [p for p in (self.path.parent, *self.path.parent.parents) if not p.exists()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key = self.path.resolve()
        if key in RunLock._held:  # this process trains the run already (a sweep job calling the trainer)
            self._nested = True
            return True
        created = False
        try:
            locked = self._lock_file(time.monotonic() + timeout_s)
            if locked is None:
                return False
            fd, created = locked
            if not self._lock_folder():  # held by a process whose .lock was deleted
                os.close(fd)
                return False
            self._fd, self._info = fd, json.dumps(dict(info)).encode()
            self._write_info(fd)
        except OSError as e:
            if e.errno in NO_FLOCK:  # the caller decides (the trainer trains unlocked with a warning)
                raise
            self._close()
            if created:
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
            for p in made:  # deepest first
                with contextlib.suppress(OSError):
                    p.rmdir()
            raise RunFolderError(e.errno, os_error_line(e, self.path)) from e
        RunLock._held[key] = self
        return True

    def _lock_file(self, deadline: float) -> tuple[int, bool] | None:
        """The locked file descriptor of the file now at ``.lock`` and whether this call made it; None if
        another process holds it past ``deadline``."""
        while True:
            try:
                fd, created = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
            except FileExistsError:
                fd, created = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644), False
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno not in _BUSY:
                    raise
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.1)
                continue
            if _same_file(fd, self.path):
                return fd, created
            os.close(fd)  # deleted or replaced between the open and the lock: lock the file there now

    def _lock_folder(self) -> bool:
        """Lock the run folder too (False if another process holds it); True without a folder lock where the
        file system has none for folders (NFS: EBADF)."""
        try:
            fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            return e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN)
        self._dir_fd = fd
        return True

    def _write_info(self, fd: int) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, self._info, 0)

    def _close(self) -> None:
        for fd in (self._fd, self._dir_fd):
            if fd is not None:
                os.close(fd)  # closing drops the lock
        self._fd = self._dir_fd = None

    def check(self) -> None:
        """For the holder, before it writes the run's files: ``.lock`` is still the file it locked, or is made
        so again (one warning line); LostLock if another process holds the file now at that path."""
        if self._fd is None or _same_file(self._fd, self.path):
            return
        folder = self.path.parent
        if not folder.is_dir() or (self._dir_fd is not None and not _same_file(self._dir_fd, folder)):
            now = "another folder is there now" if folder.is_dir() else "nothing is there now"
            raise RunFolderMoved(
                f"{folder} was moved or deleted while this run trained ({now}); it stops without writing "
                f"more: put the folder back at {folder} and run the same command again to resume it"
            )
        locked = self._lock_file(time.monotonic() + self.TAKEOVER_WAIT_S)
        if locked is None:
            if self._dir_fd is not None:  # the folder is ours: a probe holds the new file; retry next time
                return
            holder = self.holder()
            raise LostLock(
                f"{self.path} was deleted while this run trained and another process (pid "
                f"{holder.get('pid', '?')} on {holder.get('host', '?')}) has locked it since: that process "
                "trains the run now, this one stops without writing more"
            )
        old, (self._fd, _) = self._fd, locked
        os.close(old)
        with contextlib.suppress(OSError):  # the lock holds without its record; `make status` shows less
            self._write_info(self._fd)
        if not self._warned:
            self._warned = True
            print(f"warning: {self.path} was deleted while this run trained; made it again", file=sys.stderr)

    def release(self) -> None:
        if self._nested:
            self._nested = False
        elif self._fd is not None:
            RunLock._held.pop(self.path.resolve(), None)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._close()

    def held_elsewhere(self) -> bool:
        """Probe: is a live process holding the lock? (Takes it for an instant when free.)"""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in _BUSY:
                return True
            raise
        finally:
            os.close(fd)  # closing drops a lock we may have taken
        return False

    def holder(self) -> dict[str, Any]:
        """The holder's record in ``.lock``; its pid and host from status.json when ``.lock`` has none (it was
        deleted and made again by a process that could not lock it)."""
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            info = {}
        if not isinstance(info, dict):
            info = {}
        if "pid" not in info:
            status = read_status(self.path.parent) or {}
            info.update({k: status[k] for k in ("pid", "host") if k in status})
        return info


def check_lock(run_dir: Path) -> None:
    """If this process holds ``run_dir``'s RunLock: ``RunLock.check`` (LostLock: another process took it)."""
    lock = RunLock._held.get((Path(run_dir) / LOCK).resolve())
    if lock is not None:
        lock.check()


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


@contextlib.contextmanager
def training_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s RunLock while training it; RunBusy (nothing written) if another process holds it,
    Refused (one line naming ``.lock``, nothing left behind) if the lock cannot be written.

    On a filesystem without ``flock`` (ENOLCK / ENOSYS / EOPNOTSUPP) it warns and trains unlocked, as before
    the trainer took the lock; sweeps need the lock and fail there (docs/sweeps.md)."""
    lock = RunLock(run_dir)
    info = {"job_id": None, "host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
    made = [p for p in (Path(run_dir), *Path(run_dir).parents) if not p.exists()]  # deepest first
    try:
        acquired = lock.acquire(info)
    except RunFolderError as e:  # a full disk: nothing is left behind
        raise Refused(str(e)) from None
    except OSError as e:
        if e.errno not in NO_FLOCK:
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
        # a run refused as it was built (a network a mode cannot run) leaves no folder it made behind
        with contextlib.suppress(OSError):
            if made and [p.name for p in Path(run_dir).iterdir()] == [lock.path.name]:
                lock.path.unlink()
                for folder in made:
                    folder.rmdir()
