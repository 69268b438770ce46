"""A figure that draws released curves made otherwise than our runs says so (analysis.reference.released.
PROTOCOL_NOTES): DreamerV3's Atari 100k curves come from the full action set and no no-op starts
(danijar/dreamerv3 at 2411f7d, `actions: all, noops: 0`), which the per-task Atari figure notes where it draws
them, and only there."""

from __future__ import annotations

from pathlib import Path

from test_discrete_analysis import MRQ_ATARI, _atari_runs

from analysis.figures.curves import split_suites, task_curve_figure
from analysis.reference.released import PROTOCOL_NOTES, read_mrq_results
from analysis.reference.table import load_reference
from analysis.runs.load import eval_rows, load_results

SHIPPED = Path(__file__).resolve().parents[1] / "analysis" / "reference" / "data"


def test_the_atari_figure_says_how_dreamerv3s_released_curves_were_made_where_it_draws_them(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(
        "analysis.figures.plots.save_figure", lambda figure, out, name: [out / name]
    )  # drawn, not saved
    _atari_runs(tmp_path / "r")
    table, _ = load_results(tmp_path / "r")
    atari = split_suites(eval_rows(table))[1]["atari"]
    said = PROTOCOL_NOTES["dreamerv3-repo", "atari"]
    assert "actions: all, noops: 0" in said and "2411f7d" in said
    (mrq := tmp_path / "atari_results.txt").write_text(MRQ_ATARI)
    for reference, drawn in ((load_reference(SHIPPED / "dreamerv3.csv.gz"), 1), (read_mrq_results(mrq), 0)):
        notes = []
        assert task_curve_figure(atari, "atari", reference, tmp_path, {"mrq": "C0"}, 0, notes.append, "p")
        assert notes.count(said) == drawn  # MR.Q's curves: nothing to say
