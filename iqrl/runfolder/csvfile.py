"""eval.csv and train.csv written: rows to CSV, atomically, floats in their shortest exact form."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from iqrl.runfolder.atomic import atomic_write_text


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> None:
    """Rows -> CSV; columns default to the union of keys in first-seen order (missing cells empty)."""
    if columns is None:
        columns = []
        for r in rows:
            columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _fmt(r.get(k)) for k in columns})
    atomic_write_text(path, buf.getvalue())


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)  # shortest exact float repr: identical runs give identical files
    return v
