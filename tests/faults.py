"""Fault injection at the run folder's boundary, for tests/test_faults.py.

`Faults(root, at, kind)` counts the file operations of the run folders under `root`: each file written
(`write`: its first write call), each `fsync` and each rename (`os.replace`, also `Path.replace`). The
operation numbered `at` (from 1) fails: `enospc` and `eio` raise that OSError (a write first writes half of
its data, as a filling disk does), `kill` ends the process with SIGKILL (a write first writes half). In one
process `install()` patches the `os` functions; across processes (a packed job's children) the environment
variable IQRL_FAULTS="<root>:<at>:<kind>:<counter file>" makes `tests/faults_site/sitecustomize.py` install
it in every Python process started with that folder on PYTHONPATH, counting in the shared counter file.
`flip`, `truncate` and `append` damage a checkpoint file after it was written.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import struct
import zipfile
from pathlib import Path

ERRORS = {"enospc": errno.ENOSPC, "eio": errno.EIO, "erofs": errno.EROFS, "eacces": errno.EACCES}


class Faults:
    def __init__(self, root: Path | str, at: int, kind: str, counter: Path | str | None = None):
        self.root, self.at, self.kind = os.path.realpath(root), int(at), kind
        self.counter = counter
        self.count = 0
        self.ops: list[str] = []  # what was counted, in order (this process)
        self._undo: list = []

    # ------------------------------------------------------------------ counting
    def _mine(self, path) -> bool:
        try:
            return os.path.realpath(os.fspath(path)).startswith(self.root + os.sep)
        except (TypeError, ValueError):
            return False

    def _next(self) -> int:
        if self.counter is None:
            self.count += 1
            return self.count
        with open(self.counter, "a+") as f:  # shared between processes: under an flock
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            n = int(f.read() or 0) + 1
            f.seek(0)
            f.truncate()
            f.write(str(n))
            f.flush()
            return n

    def op(self, what: str) -> bool:
        """Count one operation; True if it is the one to fail."""
        n = self._next()
        self.ops.append(what)
        return n == self.at

    def fail(self, what: str) -> None:
        if self.kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        code = ERRORS[self.kind]
        raise OSError(code, os.strerror(code))

    # ------------------------------------------------------------------ patches
    def install(self) -> Faults:
        real_replace, real_fsync, real_fdopen = os.replace, os.fsync, os.fdopen
        faults = self

        def replace(src, dst, *a, **k):
            if faults._mine(dst) and faults.op(f"rename {os.path.basename(dst)}"):
                faults.fail("rename")
            return real_replace(src, dst, *a, **k)

        def fsync(fd):
            path = os.readlink(f"/proc/self/fd/{fd}") if isinstance(fd, int) else ""
            if faults._mine(path) and faults.op(f"fsync {os.path.basename(path)}"):
                faults.fail("fsync")
            return real_fsync(fd)

        def fdopen(fd, *a, **k):
            f = real_fdopen(fd, *a, **k)
            path = os.readlink(f"/proc/self/fd/{fd}")
            mode = a[0] if a else k.get("mode", "r")
            if faults._mine(path) and ("w" in mode or "a" in mode):
                return _FaultyFile(f, faults, os.path.basename(path))
            return f

        os.replace, os.fsync, os.fdopen = replace, fsync, fdopen
        self._undo = [(os, "replace", real_replace), (os, "fsync", real_fsync), (os, "fdopen", real_fdopen)]
        return self

    def uninstall(self) -> None:
        for mod, name, value in self._undo:
            setattr(mod, name, value)
        self._undo = []


def only(faults: Faults, prefix: str) -> Faults:
    """`faults` counting only the operations whose description starts with `prefix` (`write .ckpt`: the first
    write of each checkpoint file)."""
    real = faults.op
    faults.op = lambda what: what.startswith(prefix) and real(what)
    return faults


class _FaultyFile:
    """A file being written: its first write is one counted operation."""

    def __init__(self, f, faults: Faults, name: str):
        self._f, self._faults, self._name, self._counted = f, faults, name, False

    def write(self, data):
        if not self._counted:
            self._counted = True
            if self._faults.op(f"write {self._name}"):
                self._f.write(memoryview(data)[: len(data) // 2])
                self._f.flush()
                self._faults.fail("write")
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()
        return False


# ---------------------------------------------------------------------- tampering with a checkpoint
def flip(p: Path) -> None:
    """One byte flipped in the middle of the archive's largest member (the replay's tensors or the pickle):
    torch loads it without a word. (A byte between members, in a data descriptor, changes nothing read.)"""
    with zipfile.ZipFile(p) as z:
        member = max(z.infolist(), key=lambda i: i.file_size)
    b = bytearray(p.read_bytes())
    name_len, extra_len = struct.unpack("<HH", b[member.header_offset + 26 : member.header_offset + 30])
    b[member.header_offset + 30 + name_len + extra_len + member.file_size // 2] ^= 0xFF
    p.write_bytes(bytes(b))


def truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])  # a node crash on a network file system


def append(p: Path) -> None:
    p.write_bytes(p.read_bytes() + b"\0")


def from_env() -> Faults | None:
    spec = os.environ.get("IQRL_FAULTS")
    if not spec:
        return None
    root, at, kind, counter = spec.rsplit(":", 3)
    return Faults(root, int(at), kind, counter).install()
