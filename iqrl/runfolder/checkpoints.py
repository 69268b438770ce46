"""A run's checkpoint generations: `checkpoint/ckpt.pt` (the latest) and `checkpoint/ckpt.prev.pt` (the one
before), with their sizes and SHA-256 sums in `checkpoint/checksums.json`.

Why two: a checkpoint damaged after it was written (a node crash on a network file system truncates it) would
otherwise end the run. A new checkpoint is written to a temporary file, synced, and its size checked against
the bytes written; only then does the latest become the previous one and the new one the latest.

Every read of a checkpoint (the trainer's resume, the K-seed mode's, `init_from`, `make video`, `--check`)
verifies it first (`verified`): its size and SHA-256 must be those of a generation `checksums.json` records.
A missing or unreadable record vouches for nothing: the file is then checked by the CRC-32 that its zip
archive holds for each member (torch checkpoints are zip archives), with a warning unless the folder is an
older version's (one generation, never a record). A checkpoint of another run (its config differs from the
run folder's config.yaml) is not used either. On resume, a latest that fails is set aside as
`ckpt.pt.damaged-<n>` (renamed, never deleted), the rows of eval.csv and train.csv written after the previous
generation's step are moved to `<file>.after-<step>`, and the run resumes from the previous generation with
one warning line; it then writes the same files as a run never interrupted. With no usable generation, the
run is refused in one line (`NoReadableCheckpoint`) and nothing is touched.

It imports torch and the run folder's writer.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from iqrl.core.checks import Refused
from iqrl.runfolder.atomic import atomic_write, atomic_write_text
from iqrl.runfolder.config_keys import config_diff
from iqrl.runfolder.csvfile import write_csv
from iqrl.runfolder.layout import CHECKPOINT, eval_columns
from iqrl.runfolder.lock import training_lock
from iqrl.runfolder.status import read_status
from iqrl.runfolder.yamlfile import UnreadableConfig, read_config

LATEST = CHECKPOINT
PREVIOUS = CHECKPOINT.with_name("ckpt.prev.pt")
CHECKSUMS = CHECKPOINT.with_name("checksums.json")
CHECKPOINT_FORMAT = 1
_CHUNK = 1 << 22
_SHA256 = re.compile(r"[0-9a-f]{64}")


class NoReadableCheckpoint(Refused):
    """No checkpoint generation of a started run can be used: the run cannot resume (one line, exit 2)."""


class Unreadable(Exception):
    """One checkpoint file cannot be used; the message is its one-line reason."""


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


# The sums of checkpoint files this process wrote or verified, by the file's identity on disk (a rename
# keeps it): the record of a new generation names the one it keeps without reading it again.
_KNOWN: dict[tuple[int, int, int, int], tuple[int, str]] = {}


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _remember(path: Path, sums: tuple[int, str]) -> None:
    if len(_KNOWN) > 64:
        _KNOWN.clear()
    _KNOWN[_identity(os.stat(path))] = sums


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
        finally:
            # torch's C++ writer holds the sink where the garbage collector cannot see: an error left in it
            # would keep its traceback's frames (the trainer, its ALE envs) alive to the interpreter's exit
            sink.error = None
        entry.update(size=sink.size, sha256=sink.sha.hexdigest())

    atomic_write(run_dir / LATEST, write, before_replace=lambda tmp: _rotate(run_dir, tmp, entry))


def _rotate(run_dir: Path, tmp: Path, entry: dict) -> None:
    """Between the synced temporary file and its rename to ckpt.pt: check it is complete, record the sums of
    both generations as they will be, then make the latest the previous."""
    if os.stat(tmp).st_size != entry["size"]:
        raise OSError(
            errno.EIO, f"checkpoint incomplete on disk ({os.stat(tmp).st_size} of {entry['size']} bytes)"
        )
    _remember(tmp, (entry["size"], entry["sha256"]))
    latest = run_dir / LATEST
    kept = latest if latest.exists() else run_dir / PREVIOUS  # (after a fall-back there is no latest)
    atomic_write_text(
        run_dir / CHECKSUMS,
        json.dumps({LATEST.name: entry, PREVIOUS.name: _entry_of(kept) if kept.exists() else None}, indent=1)
        + "\n",
    )
    if latest.exists():
        os.replace(latest, run_dir / PREVIOUS)


def _entry_of(path: Path) -> dict:
    """The record of checkpoint `path` that the new generation keeps: its sums as this process wrote or
    verified it (no second read), else read from it (an older version's checkpoint, which has no record)."""
    sums = _KNOWN.get(_identity(os.stat(path))) or _file_sums(path)
    return {"env_step": read_record(path.parent).step_of(sums), "size": sums[0], "sha256": sums[1]}


# ---------------------------------------------------------------------- reading
@dataclass(frozen=True)
class Record:
    """A checkpoint folder's checksums.json: its entries by file name, or why it vouches for nothing."""

    entries: dict
    problem: str = ""  # "" when the record is usable

    def vouches_for(self, sums: tuple[int, str]) -> bool:
        """Whether these are the bytes of a generation it records: under either name, since a crash between
        writing the record and the renames leaves the latest under the name of its next role."""
        return any((e["size"], e["sha256"]) == sums for e in self.entries.values() if e)

    def step_of(self, sums: tuple[int, str]) -> int | None:
        """The env step it records for these bytes (None: not recorded)."""
        steps = (e.get("env_step") for e in self.entries.values() if e and (e["size"], e["sha256"]) == sums)
        return next(steps, None)


def read_record(folder: Path) -> Record:
    """`folder`/checksums.json (a run's checkpoint folder); a record that is missing, not JSON or not a map of
    file names to sizes and SHA-256 sums vouches for nothing, with its reason."""
    try:
        data = json.loads((Path(folder) / CHECKSUMS.name).read_bytes())
    except FileNotFoundError:
        return Record({}, "checksums.json is missing")
    except OSError as e:
        return Record({}, f"checksums.json cannot be read ({(e.strerror or str(e)).lower()})")
    except ValueError:  # not JSON, or not text
        return Record({}, "checksums.json is not JSON")
    if (
        isinstance(data, dict)
        and any(data.values())
        and all(e is None or _is_entry(e) for e in data.values())
    ):
        return Record(data)
    return Record({}, "checksums.json holds no checksums")


def _is_entry(e) -> bool:
    return (
        isinstance(e, dict)
        and type(e.get("size")) is int
        and e["size"] >= 0
        and isinstance(e.get("sha256"), str)
        and _SHA256.fullmatch(e["sha256"]) is not None
    )


def _file_sums(path: Path) -> tuple[int, str]:
    with open(path, "rb") as f:
        return _sums(f)


def _sums(f) -> tuple[int, str]:
    sha, size = hashlib.sha256(), 0
    while chunk := f.read(_CHUNK):
        sha.update(chunk)
        size += len(chunk)
    return size, sha.hexdigest()


def _verify(f, sums: tuple[int, str], record: Record) -> None:
    """Unreadable unless open checkpoint file `f` holds the bytes of a generation `record` vouches for or,
    with no usable record, is an intact zip archive (each member's CRC-32)."""
    if not record.problem:
        if not record.vouches_for(sums):
            raise Unreadable("its bytes are not those checksums.json records (size or SHA-256 differ)")
        return
    try:
        with zipfile.ZipFile(f) as z:
            bad = z.testzip()
    except Exception as e:  # BadZipFile, or what a damaged header makes zipfile raise
        raise Unreadable(
            f"{record.problem}, and it is not an intact zip archive ({_first_sentence(e)})"
        ) from None
    if bad is not None:
        raise Unreadable(f"{record.problem}, and its zip member {bad} fails its CRC-32")


def verified(path: Path, device, mmap: bool = False) -> dict:
    """The state in checkpoint `path`, read only after it is verified (Unreadable with a one-line reason if it
    cannot be used): its bytes are those its folder's checksums.json records, read after hashing the file so
    that a run writing its next checkpoint meanwhile does not fail it; without a usable record, its zip
    CRC-32s. The bytes verified are the bytes loaded (one open file; by path only with `mmap`, which the
    run's own lock holder and read-only checks use)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            sums = _sums(f)
            _verify(f, sums, read_record(path.parent))
            f.seek(0)
            state = torch.load(path if mmap else f, map_location=device, weights_only=False, mmap=mmap)
    except OSError as e:
        raise Unreadable((e.strerror or str(e)).lower()) from None
    except Unreadable:
        raise
    except Exception as e:  # a truncated zip, a damaged pickle: torch's first line says which
        raise Unreadable(_first_sentence(e)) from None
    if not isinstance(state, dict) or "counters" not in state:
        raise Unreadable("not a checkpoint of this trainer")
    if state.get("format") != CHECKPOINT_FORMAT:
        raise Unreadable(
            f"it has format {state.get('format')}, this version reads format {CHECKPOINT_FORMAT}"
        )
    _remember(path, sums)
    return state


def foreign(state: dict, saved: dict | None) -> str:
    """Why `state` is not a checkpoint of the run whose config.yaml holds `saved` ("" when it is): another
    agent's or another configuration's, whose tensors would not fit or would continue another run."""
    if saved is None or not isinstance(state.get("config"), dict):
        return ""
    diffs = config_diff(saved, state["config"])[0]
    if not diffs:
        return ""
    return f"a checkpoint of another run (its config differs from config.yaml in {', '.join(diffs)})"


def _first_sentence(e: Exception) -> str:
    """torch's reason without its advice paragraph, e.g. `PytorchStreamReader failed reading zip archive:
    failed finding central directory`."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text.split(". ")[0].rstrip(".")


def checkpoint_step(path: Path) -> int | None:
    """The env step of checkpoint `path`; None when it is missing or cannot be read (read lazily and not
    verified, so slurm's grouping of a sweep's runs stays cheap: it uses no state; each use verifies)."""
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
    state: dict | None = None  # loaded, if usable
    reason: str = ""  # why not


def generations(run_dir: Path, device, mmap: bool = False) -> list[Generation]:
    """The generations present, latest first, each verified and loaded (memory-mapped with `mmap`: only the
    counters are read) or with the reason it cannot be used. A record that vouches for nothing is one warning
    line, except in a folder of a version before records (one generation, no checksums.json)."""
    run_dir = Path(run_dir)
    try:
        saved = read_config(run_dir)
    except UnreadableConfig:  # the run-folder checks refuse it; here no config to compare with
        saved = None
    found = []
    for rel in (LATEST, PREVIOUS):
        path = run_dir / rel
        if path.exists():
            try:
                state = verified(path, device, mmap)
                if why := foreign(state, saved):
                    raise Unreadable(why)
                found.append(Generation(path, state))
            except Unreadable as e:
                found.append(Generation(path, reason=str(e)))
    problem = read_record(run_dir / CHECKPOINT.parent).problem
    older_version = problem == "checksums.json is missing" and [g.path.name for g in found] == [LATEST.name]
    if found and problem and not older_version:
        print(
            f"warning: {run_dir / CHECKSUMS} {problem.removeprefix('checksums.json ')}; the checkpoints "
            "were checked by their zip archives' CRC-32s instead (the next checkpoint writes it again)",
            file=sys.stderr,
            flush=True,
        )
    return found


def resume_state(run_dir: Path, device) -> Generation | None:
    """The generation to resume from: the latest usable one, else the previous one (the latest set aside, one
    warning line); None for a fresh run. NoReadableCheckpoint when generations exist but none is usable."""
    found = generations(run_dir, device)
    if not found:
        keep_rows_aside(run_dir)
        return None
    good = [g for g in found if g.state is not None]
    if not good:
        raise NoReadableCheckpoint(no_readable_message(run_dir, found))
    chosen = good[0]
    for bad in found[: found.index(chosen)]:
        fall_back(run_dir, bad, chosen)
    return chosen


def step_of(g: Generation) -> int:
    return int(g.state["counters"]["env_step"])


def no_readable_message(run_dir: Path, found: list[Generation]) -> str:
    why = "; ".join(f"{g.path.name}: {g.reason}" for g in found)
    return (
        f"{run_dir}: no checkpoint generation can be used ({why}), so the run cannot resume; "
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
        f"warning: {bad.path} cannot be used ({bad.reason}); set aside as {aside.name}, resuming {start}, "
        f"{reached - step} env steps back"
        + (f" (rows after it moved to {', '.join(moved)})" if moved else ""),
        file=sys.stderr,
        flush=True,
    )


def keep_rows_aside(run_dir: Path, why: str = "but no checkpoint") -> None:
    """A run that starts from env_step 0 over rows of its own (its checkpoints deleted, or none written yet
    beside them; `why`, in the warning) moves the rows past step 0 aside, as fall_back does for a damaged
    checkpoint, and says so in one line: the trainer then writes eval.csv and train.csv afresh."""
    reached = _last_step(Path(run_dir), 0)
    moved = [p.name for p in (move_rows_after(Path(run_dir) / n, 0) for n in ("eval.csv", "train.csv")) if p]
    if moved:
        print(
            f"warning: {run_dir} holds rows up to env_step {reached} {why}; starting from "
            f"env_step 0 (rows after it moved to {', '.join(moved)})",
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


def misfit(path: Path, e: Exception) -> str:
    """torch's refusal to load verified checkpoint `path` into the run (tensors of other names or sizes) as
    one line."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return f"{path} does not fit this run ({' '.join(lines[:2])[:300] or type(e).__name__})"


# ---------------------------------------------------------------------- a finished run's logs
def restore_logs(run_dir: Path) -> list[str]:
    """A finished run's eval.csv and train.csv, where missing, written again (under the run's lock) from its
    last checkpoint, which holds every row the run wrote (the trainer checkpoints after its last evaluation):
    the bytes the trainer wrote, time columns included. Returns the names written; NoReadableCheckpoint (one
    line, nothing written) when no usable generation holds the finished run's rows."""
    run_dir = Path(run_dir)
    if all((run_dir / name).exists() for name in ("eval.csv", "train.csv")):
        return []
    with training_lock(run_dir):
        return _restore_logs(run_dir)


def _restore_logs(run_dir: Path) -> list[str]:
    missing = [name for name in ("eval.csv", "train.csv") if not (run_dir / name).exists()]
    final = int((read_status(run_dir) or {}).get("env_step") or 0)
    found = generations(run_dir, "cpu", mmap=True)
    chosen = next((g for g in found if g.state is not None and step_of(g) == final), None)
    if chosen is None:
        why = "; ".join(f"{g.path.name}: {g.reason or f'env_step {step_of(g)}'}" for g in found) or "none"
        raise NoReadableCheckpoint(
            f"{run_dir / missing[0]} is missing and cannot be written again: no usable checkpoint holds the "
            f"finished run's rows to env_step {final} ({why}); nothing was changed"
        )
    rows = {"eval.csv": chosen.state["eval_rows"], "train.csv": chosen.state["train_rows"]}
    for name in [n for n in missing if rows[n]]:
        write_csv(run_dir / name, rows[name], eval_columns(rows[name]) if name == "eval.csv" else None)
    return [n for n in missing if rows[n]]
