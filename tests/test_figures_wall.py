"""Return curves against wall-clock hours (`make figures X=wall`): each run's returns interpolated on a common
grid of hours between its own evaluations, never past its last, pooled as the step curves (IQM, bootstrap)."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.figures import make as figures
from analysis.figures import plots

from analysis_helpers import undocumented, write_run


def wall_runs(root):
    """iqrl on walker-walk: seed 0 evaluated at 0, 0.5 and 1 hour (returns 0, 100, 200), seed 1, twice as
    slow, at 0, 1 and 2 hours (0, 300, 600); td3's eval.csv has no wall_time_s (an older run folder)."""
    for seed, hours, returns in ((0, [0.0, 0.5, 1.0], [0, 100, 200]), (1, [0.0, 1.0, 2.0], [0, 300, 600])):
        run = write_run(root / "iqrl" / "walker-walk" / f"seed{seed}", list(zip([0, 1000, 2000], returns)))
        pd.read_csv(run / "eval.csv").assign(wall_time_s=[3600 * h for h in hours]).to_csv(
            run / "eval.csv", index=False
        )
    run = write_run(root / "td3" / "walker-walk" / "seed0", [(0, 0.0), (1000, 50.0), (2000, 80.0)])
    pd.read_csv(run / "eval.csv").drop(columns="wall_time_s").to_csv(run / "eval.csv", index=False)


def test_wall_curves_interpolate_each_seed_and_never_extrapolate_past_its_last_evaluation(
    tmp_path, monkeypatch
):
    """On the grid 0, 0.5, 1, 1.5, 2 hours (5 points from the first hour to the last): at 0.5 h seed 0's 100
    and seed 1's 150 (halfway to 300) pool to 125; at 1 h 200 and 300 to 250; past 1 h seed 0 has ended and
    seed 1 alone gives 450 and 600 (seed 0 is not carried on to 300). td3, without wall times, is left out
    with a warning naming it."""
    wall_runs(tmp_path / "r")
    drawn = []
    real = plots.plot_sample_efficiency
    monkeypatch.setattr(
        plots, "plot_sample_efficiency", lambda c, *a, **k: drawn.append(c) or real(c, *a, **k)
    )
    from analysis.stats import metrics

    real_curves = metrics.sample_efficiency
    monkeypatch.setattr(
        metrics, "sample_efficiency", lambda *a, **k: real_curves(*a, **{**k, "max_points": 5})
    )
    with pytest.warns(Warning, match=r"1 run\(s\) without wall_time_s left out .*: td3/walker-walk/seed0"):
        out = figures.make_figures(
            tmp_path / "r", tmp_path / "f", steps=[2000], reps_curve=50, reps_final=50, x="wall"
        )
    assert "sample_efficiency_wall" in {p.stem for p in out["figures"]}
    assert "sample_efficiency" not in {p.stem for p in out["figures"]}
    assert not undocumented({p.stem for p in out["figures"]})  # docs/figures.md lists the wall figure
    (curves,) = drawn
    iqrl = curves[(curves["group"] == "all") & (curves["method"] == "iqrl")]
    assert iqrl["wall_hours"].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert iqrl["iqm"].tolist() == pytest.approx([0.0, 125.0, 250.0, 450.0, 600.0])
    assert iqrl["n_runs"].tolist() == [2, 2, 2, 1, 1] and iqrl["ci_low"].iloc[3:].isna().all()
    assert set(curves["method"]) == {"iqrl"}


def test_an_x_axis_other_than_steps_or_wall_is_one_error_line_and_nothing_is_written(tmp_path, capsys):
    wall_runs(tmp_path / "r")
    assert figures.main(["--results", str(tmp_path / "r"), "--out", str(tmp_path / "o"), "--x", "hours"]) == 2
    err = capsys.readouterr().err
    assert err == "error: X='hours': the curves' x axis is steps (env steps) or wall (wall-clock hours)\n"
    assert not (tmp_path / "o").exists()


def test_run_folders_without_wall_times_still_draw_with_x_wall_saying_why_there_is_no_wall_figure(tmp_path):
    """Older eval.csv files without wall_time_s: no wall figure, a warning saying so, the rest drawn."""
    for seed in range(2):
        run = write_run(
            tmp_path / "r" / "td3" / "walker-walk" / f"seed{seed}", [(0, 0.0), (1000, 50.0 + seed)]
        )
        pd.read_csv(run / "eval.csv").drop(columns="wall_time_s").to_csv(run / "eval.csv", index=False)
    with pytest.warns(
        Warning, match="no run has wall times: the sample-efficiency figure against wall-clock"
    ):
        out = figures.make_figures(
            tmp_path / "r", tmp_path / "f", steps=[1000], reps_curve=20, reps_final=20, x="wall"
        )
    names = {p.stem for p in out["figures"]}
    assert "final_intervals_1k" in names and not {"sample_efficiency", "sample_efficiency_wall"} & names
