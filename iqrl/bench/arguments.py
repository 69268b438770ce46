"""`make bench`'s arguments checked before anything is measured: each problem is one line, and the bench
exits 2 with nothing written."""

from __future__ import annotations

import contextlib
from pathlib import Path

from iqrl.runfolder.errors import os_error_line

#: Most updates a row times (`--updates`): more is no truer a rate, only a longer wait with nothing printed.
MAX_TIMED_UPDATES = 100_000
#: The comma-separated flags whose values each name a row (a value given twice would measure it twice).
LISTS = ("agents", "tasks", "dtypes", "compile", "seeds", "obs", "backends")


def bad_arguments(args) -> str | None:
    """What is wrong with the command's numbers, its lists and its --out (one line); None when nothing is."""
    if args.end_to_end is not None and args.end_to_end < 1:
        return f"--end-to-end takes a positive number of env steps, got {args.end_to_end}"
    if args.end_to_end is None and not args.collect:  # (those time no update)
        if args.updates < 1:
            return f"--updates takes a positive number of timed updates, got {args.updates}"
        if args.updates > MAX_TIMED_UPDATES:
            return (
                f"--updates takes at most {MAX_TIMED_UPDATES:,} timed updates per row, got {args.updates:,}"
            )
    if args.collect_s <= 0:
        return f"--collect-s takes a positive number of seconds, got {args.collect_s}"
    for flag in LISTS:
        values = [v for v in (getattr(args, flag) or "").split(",") if v]
        if twice := sorted({v for v in values if values.count(v) > 1}):
            return (
                f"--{flag} names {', '.join(twice)} more than once (measured again each time); give each once"
            )
    return None if args.matmul_split else unwritable(Path(args.out))


def unwritable(out: Path) -> str | None:
    """Why the rows cannot be written to `out`, found by making the file they are first written to (beside
    `out`, as write_rows does) and removing it again: a folder's mode bits do not tell /proc, a read-only
    file system or a full disk. None when they can."""
    folder = out.resolve().parent
    if not folder.is_dir():
        return f"--out {out}: its folder {folder} does not exist"
    if out.is_dir():
        return f"--out {out} is a folder; give a file name such as {out / 'bench.json'}"
    probe = staging(out)
    try:
        with open(probe, "x") as f:
            f.write("\n")
    except FileExistsError:  # a rows file half written before: write_rows replaces it anyway
        return None
    except OSError as e:
        return f"--out {out} cannot be written: {os_error_line(e, probe)}"
    with contextlib.suppress(OSError):
        probe.unlink()
    return None


def staging(out: Path) -> Path:
    """The file the rows are written to before it replaces `out` (write_rows)."""
    return out.with_suffix(".json.tmp")


def unlisted(flag: str, given: str, allowed) -> str | None:
    """The error line of a comma-separated `flag` listing no value or one outside `allowed`; None if none."""
    values = [v for v in given.split(",") if v]
    if values and not set(values) - set(allowed):
        return None
    return f"error: {flag} must list values among {', '.join(allowed)}, got {given!r}"


def seed_counts(text: str) -> list[int] | None:
    """`--seeds` as a list of ints >= 1; None where it is not one."""
    try:
        seeds = [int(k) for k in text.split(",") if k]
    except ValueError:
        return None
    return seeds if seeds and min(seeds) >= 1 else None
