"""The GPU section says at which commit each result was measured: `collect` records the commit beside each
row it adds (the machine row's, from the part's git checkout, else the commit of the checkout that collects),
and the section names them per result file; rows collected before it did name the commits that recorded
them."""

from __future__ import annotations

import json

from apps.gpu_report import results

MACHINE = {"part": 1, "kind": "machine", "date": "2026-11-25", "gpu": "NVIDIA H100 80GB HBM3"}
TEST = {"part": 1, "kind": "test", "test": "tests/test_cuda.py::t", "outcome": "passed", "when": "call"}


def collected(tmp_path, machine: dict, name: str) -> list[dict]:
    src = tmp_path / name
    src.mkdir()
    (src / "part1.jsonl").write_text(json.dumps(machine) + "\n" + json.dumps(TEST) + "\n")
    return results.load_rows(results.collect(src, tmp_path / name / "out").parent)


def line_of(rows: list[dict]) -> str:
    return next(x for x in results.section(rows).splitlines() if x.startswith("Driver"))


def test_collect_records_the_commit_each_row_measured_and_the_section_names_it(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "git_commit", lambda: "fedcba9876543210-dirty")  # the collecting checkout's
    from_git = collected(tmp_path, {**MACHINE, "commit": "abc1234def5678"}, "git")
    assert [r["commit"] for r in from_git] == ["abc1234def5678"] * 2  # the machine row and the test's
    assert line_of(from_git).endswith(" Measured at commit abc1234.")
    copied = collected(tmp_path, {**MACHINE, "commit": "unknown"}, "copy")  # a part run in a copy without git
    assert line_of(copied).endswith(" Measured at commit fedcba9-dirty.")
    older = [{k: v for k, v in r.items() if k != "commit"} | {"recorded_in": "2f63b7e"} for r in from_git]
    older = [
        {k: v for k, v in r.items() if k != "recorded_in"} if r["kind"] == "machine" else r for r in older
    ]
    assert line_of(older).endswith(
        " Recorded in commits 2f63b7e (before the report kept the commit it measured)."
    )
