"""A run's checkpoint generations: `checkpoint/ckpt.pt` (the latest) and `checkpoint/ckpt.prev.pt` (the one
before), with their sizes and SHA-256 sums in `checkpoint/checksums.json`.

Why two: a checkpoint damaged after it was written (a node crash on a network file system truncates it) would
otherwise end the run. A new checkpoint is written to a temporary file, synced, and its size checked against
the bytes written; only then does the latest become the previous one and the new one the latest. On resume, a
latest that cannot be read (its bytes differ from the ones recorded, or torch cannot load it) is set aside as
`ckpt.pt.damaged-<n>` (renamed, never deleted), the rows of eval.csv and train.csv written after the previous
generation's step are moved to `<file>.after-<step>`, and the run resumes from the previous generation with
one warning line; it then writes the same files as a run never interrupted. With no readable generation, the
run is refused in one line (`NoReadableCheckpoint`) and nothing is touched.

Run folders of older versions (one generation, no checksums) resume as before: an unrecorded checkpoint is
verified by loading it. It imports torch and the run folder's writer.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from iqrl.core.runfolder import CHECKPOINT, atomic_write, atomic_write_text, read_status

LATEST = CHECKPOINT
PREVIOUS = CHECKPOINT.with_name("ckpt.prev.pt")
CHECKSUMS = CHECKPOINT.with_name("checksums.json")
CHECKPOINT_FORMAT = 1
_CHUNK = 1 << 22


class NoReadableCheckpoint(RuntimeError):
    """No checkpoint generation of a started run can be read: the run cannot resume (one line, exit 2)."""


class Unreadable(Exception):
    """One checkpoint file cannot be read; the message is its one-line reason."""


class _HashingSink:
    """The file torch.save writes to: counts and hashes the bytes, and keeps the OSError of a failed write
    (torch reports it only as `[enforce fail at inline_container.cc] unexpected pos`)."""

    def __init__(self, f):
        self.f, self.size, self.sha = f, 0, hashlib.sha256()
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            n = self.f.write(data)
        except OSError as e:
            self.error = e
            raise
        self.sha.update(memoryview(data)[:n])
        self.size += n
        return n

    def flush(self) -> None:
        self.f.flush()


# ---------------------------------------------------------------------- writing
def save(run_dir: Path, state: dict) -> None:
    """Write `state` as the latest generation, keeping the one it replaces as the previous."""
    run_dir = Path(run_dir)
    entry: dict = {"env_step": int(state["counters"]["env_step"])}

    def write(f) -> None:
        sink = _HashingSink(f)
        try:
            torch.save(state, sink)
        except RuntimeError:
            if sink.error is not None:  # the real cause (ENOSPC, EIO, ...), not torch's "unexpected pos"
                raise sink.error from None
            raise
        entry.update(size=sink.size, sha256=sink.sha.hexdigest())

    atomic_write(run_dir / LATEST, write, before_replace=lambda tmp: _rotate(run_dir, tmp, entry))


def _rotate(run_dir: Path, tmp: Path, entry: dict) -> None:
    """Between the synced temporary file and its rename to ckpt.pt: check it is complete, record the sums of
    both generations as they will be, then make the latest the previous."""
    if os.stat(tmp).st_size != entry["size"]:
        raise OSError(
            errno.EIO, f"checkpoint incomplete on disk ({os.stat(tmp).st_size} of {entry['size']} bytes)"
        )
    old = read_checksums(run_dir)
    latest = run_dir / LATEST
    kept = old.get(PREVIOUS.name)
    if latest.exists():  # an older run folder's checkpoint has no record yet: record it once
        kept = old.get(LATEST.name) or dict(zip(("size", "sha256"), _file_sums(latest)))
    atomic_write_text(
        run_dir / CHECKSUMS, json.dumps({LATEST.name: entry, PREVIOUS.name: kept}, indent=1) + "\n"
    )
    if latest.exists():
        os.replace(latest, run_dir / PREVIOUS)


def read_checksums(run_dir: Path) -> dict:
    try:
        data = json.loads((Path(run_dir) / CHECKSUMS).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# ---------------------------------------------------------------------- reading
def _file_sums(path: Path) -> tuple[int, str]:
    sha, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest()


def _check_sums(path: Path, recorded: dict) -> None:
    """Unreadable when `path`'s own record (same name) has its size but other bytes (a truncated file is
    caught by loading it); a file no record describes (a crash between writing checksums.json and the
    rename) passes here and is verified by loading."""
    size, sha = _file_sums(path)
    entries = [e for e in recorded.values() if isinstance(e, dict)]
    if any(e.get("size") == size and e.get("sha256") == sha for e in entries):
        return
    own = recorded.get(path.name)
    if isinstance(own, dict) and own.get("size") == size:
        raise Unreadable("its SHA-256 differs from the one recorded in checksums.json")


def load(path: Path, device, recorded: dict | None = None, mmap: bool = False) -> dict:
    """The state in checkpoint `path` (Unreadable with a one-line reason if it cannot be read)."""
    if recorded is not None:
        _check_sums(path, recorded)
    try:
        state = torch.load(path, map_location=device, weights_only=False, mmap=mmap)
    except Exception as e:  # a truncated zip, a damaged pickle: torch's first line says which
        raise Unreadable(_first_sentence(e)) from None
    if not isinstance(state, dict) or "counters" not in state:
        raise Unreadable("not a checkpoint of this trainer")
    if state.get("format") != CHECKPOINT_FORMAT:
        raise RuntimeError(
            f"checkpoint {path} has format {state.get('format')}, expected {CHECKPOINT_FORMAT}"
        )
    return state


def _first_sentence(e: Exception) -> str:
    """torch's reason without its advice paragraph, e.g. `PytorchStreamReader failed reading zip archive:
    failed finding central directory`."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text.split(". ")[0].rstrip(".")


def checkpoint_step(path: Path) -> int | None:
    """The env step of checkpoint `path`; None when it is missing or cannot be read (read lazily, so
    slurm's grouping of a sweep's runs stays cheap)."""
    if not Path(path).exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        return int(state["counters"]["env_step"])
    except Exception:  # a damaged file: the run's own resume sets it aside
        return None


@dataclass
class Generation:
    path: Path
    state: dict | None = None  # loaded, if readable
    reason: str = ""  # why not


def generations(run_dir: Path, device, mmap: bool = False) -> list[Generation]:
    """The generations present, latest first, each loaded (memory-mapped with `mmap`: only the counters are
    read) or with the reason it cannot be."""
    recorded = read_checksums(run_dir)
    found = []
    for rel in (LATEST, PREVIOUS):
        path = Path(run_dir) / rel
        if path.exists():
            try:
                found.append(Generation(path, load(path, device, recorded, mmap)))
            except Unreadable as e:
                found.append(Generation(path, reason=str(e)))
    return found


def resume_state(run_dir: Path, device) -> dict | None:
    """The state to resume from: the latest generation, else the previous one (the latest set aside, one
    warning line); None for a fresh run. NoReadableCheckpoint when generations exist but none reads."""
    found = generations(run_dir, device)
    if not found:
        return None
    good = [g for g in found if g.state is not None]
    if not good:
        raise NoReadableCheckpoint(no_readable_message(run_dir, found))
    chosen = good[0]
    for bad in found[: found.index(chosen)]:
        fall_back(run_dir, bad, chosen)
    return chosen.state


def step_of(g: Generation) -> int:
    return int(g.state["counters"]["env_step"])


def no_readable_message(run_dir: Path, found: list[Generation]) -> str:
    why = "; ".join(f"{g.path.name}: {g.reason}" for g in found)
    return (
        f"{run_dir}: no checkpoint generation can be read ({why}), so the run cannot resume; "
        "nothing was changed: delete the folder to start the run again, or choose another out="
    )


def fall_back(run_dir: Path, bad: Generation, chosen: Generation | None) -> None:
    """Set `bad` aside, move the rows written after `chosen`'s step (None: a restart from step 0) aside, and
    say so in one line."""
    step = step_of(chosen) if chosen is not None else 0
    aside = _free_name(bad.path.with_name(f"{bad.path.name}.damaged"))
    reached = _last_step(Path(run_dir), step)
    os.replace(bad.path, aside)
    moved = [
        p.name for p in (move_rows_after(Path(run_dir) / n, step) for n in ("eval.csv", "train.csv")) if p
    ]
    start = f"from {chosen.path.name} at env_step {step}" if chosen is not None else "from env_step 0"
    print(
        f"warning: {bad.path} cannot be read ({bad.reason}); set aside as {aside.name}, resuming {start}, "
        f"{reached - step} env steps back"
        + (f" (rows after it moved to {', '.join(moved)})" if moved else ""),
        file=sys.stderr,
        flush=True,
    )


def _free_name(base: Path) -> Path:
    n = 1
    while (p := base.with_name(f"{base.name}-{n}")).exists():
        n += 1
    return p


def _rows(path: Path) -> tuple[str, list[str]]:
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    return (lines[0], lines[1:]) if lines else ("", [])


def _step_of(line: str) -> int:
    try:
        return int(float(line.split(",", 1)[0]))
    except ValueError:
        return -1


def _last_step(run_dir: Path, default: int) -> int:
    """How far the run had got: its status's env step or its last evaluation, whichever is later."""
    _, rows = _rows(run_dir / "eval.csv")
    status = read_status(run_dir) or {}
    return max([default, int(status.get("env_step") or 0), *(_step_of(r) for r in rows)])


def move_rows_after(path: Path, step: int) -> Path | None:
    """Copy the rows of CSV `path` whose env_step is past `step` (with the header) to `<path>.after-<step>`
    (the trainer then rewrites `path` from the checkpoint's rows); None if there are none."""
    header, rows = _rows(path)
    after = [r for r in rows if _step_of(r) > step]
    if not after:
        return None
    dest = path.with_name(f"{path.name}.after-{step}")
    if dest.exists():
        dest = _free_name(dest)
    atomic_write_text(dest, header + "".join(after))
    return dest
