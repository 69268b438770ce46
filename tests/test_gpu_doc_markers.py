"""`python -m apps.gpu_report doc --check` on a docs/performance.md whose GPU section lost a marker line says
what `doc` says (the marker is missing: one error line, exit 2), not "out of date"."""

from __future__ import annotations

import pytest

from apps.gpu_report import results
from apps.gpu_report.__main__ import main


@pytest.mark.parametrize("marker", ["BEGIN", "END"])
@pytest.mark.parametrize("check", [["--check"], []])
def test_a_missing_marker_is_named_by_doc_and_by_its_check(tmp_path, monkeypatch, capsys, marker, check):
    doc = tmp_path / "performance.md"
    text = results.PERFORMANCE_MD.read_text()
    assert results.BEGIN in text and results.END in text  # both markers are there to delete
    doc.write_text(text.replace(getattr(results, marker) + "\n", ""))
    before = doc.read_text()
    monkeypatch.setattr(results, "PERFORMANCE_MD", doc)
    assert main(["doc", *check]) == 2
    out, err = capsys.readouterr()
    assert "out of date" not in out
    assert err.strip().splitlines() == [
        f"error: {doc} lacks the marker lines of its GPU section ({results.BEGIN} then {results.END}): put "
        "them back around it"
    ]
    assert doc.read_text() == before


def test_the_committed_section_is_up_to_date_by_the_check():
    assert main(["doc", "--check"]) == 0
