"""A damaged shipped reference table (analysis/reference/data/*.csv.gz cut short, or its compressed bytes
flipped) is one `error:` line naming it from `make figures REFERENCE=...`, before anything is written."""

from __future__ import annotations

import contextlib
import io
import shutil

import pytest

from analysis.figures import make as figures
from analysis.reference.table import SHIPPED

from analysis_helpers import write_hand_results


def damaged(data: bytes, how: str) -> bytes:
    if how == "truncated":
        return data[: len(data) // 2]
    middle = len(data) // 2  # inside the deflate stream: zlib refuses it
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :]


@pytest.mark.parametrize("how", ["truncated", "flipped"])
def test_a_damaged_reference_table_is_one_error_line(tmp_path, how):
    tables = tmp_path / "reference"
    shutil.copytree(SHIPPED, tables)
    table = tables / "published_dmc.csv.gz"
    table.write_bytes(damaged(table.read_bytes(), how))
    write_hand_results(tmp_path / "r")
    out, err = io.StringIO(), io.StringIO()
    argv = ["--results", tmp_path / "r", "--out", tmp_path / "o", "--reference", tables]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = figures.main([str(a) for a in argv])
    lines = err.getvalue().strip().splitlines()
    assert rc == 2 and len(lines) == 1, err.getvalue()
    assert lines[0].startswith(f"error: cannot read reference file {table}: "), lines
    assert not (tmp_path / "o").exists()
