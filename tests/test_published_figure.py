"""The README's figure is published data drawn by the harness's own figure code, and figures of the synthetic
results folder say inside them that their data are made up."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.figures import make as figures
from analysis.figures import plots, published_figure
from analysis.reference.table import DEFAULT_REFERENCE, load_reference
from analysis.runs import synthetic as synthetic_module
from analysis.stats import metrics
from analysis.stats.estimators import iqm

from analysis_helpers import write_hand_results


@pytest.fixture(scope="module")
def runs():
    return published_figure.published_runs(load_reference(DEFAULT_REFERENCE))


def test_the_published_runs_are_the_iqrl_drafts_seven_tasks_seed_by_seed(runs):
    tasks = ["acrobot-swingup", "cheetah-run", "dog-walk", "fish-swim", "humanoid-walk", "quadruped-walk"]
    assert sorted(runs["task"].unique()) == sorted([*tasks, "walker-walk"])
    per_method = runs.groupby("method")["task"].nunique()
    assert per_method.to_dict() == {f"{a} [{s}]": 7 for s, a in published_figure.METHODS}
    assert runs["env_step"].max() == published_figure.MAX_STEP
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    assert len(published_figure.METHODS) == 7 and "per-seed curves of seven methods" in readme
    assert "the iQRL draft's seven DMC tasks" in readme
    assert runs.groupby("method")["run"].nunique()["TD-MPC2 [tdmpc2-results]"] == 21  # 3 seeds x 7 tasks


def test_a_curve_point_is_the_iqm_of_the_runs_at_that_step(runs):
    td = runs[runs["method"] == "TD-MPC2 [tdmpc2-results]"]
    curves = metrics.sample_efficiency(td, reps=20)
    point = curves[(curves["group"] == "all") & (curves["env_step"] == 500_000)]
    at = td[td["env_step"] == 500_000]
    assert len(at) == 21 and point["n_runs"].item() == 21
    assert point["iqm"].item() == pytest.approx(iqm(at["episode_return"].to_numpy() / 1000) * 1000)


def test_figures_saved_under_a_watermark_carry_it_and_others_do_not(tmp_path):
    def texts(fig):
        return [t.get_text() for t in fig.texts]

    fig = plots.plt.figure()
    with plots.watermark("SYNTHETIC DATA"):
        plots.save_figure(fig, tmp_path, "a")
    assert texts(fig) == ["SYNTHETIC DATA"]
    fig = plots.plt.figure()
    plots.save_figure(fig, tmp_path, "b")
    assert texts(fig) == []


def test_make_figures_marks_every_figure_of_a_synthetic_folder(tmp_path, monkeypatch):
    results = write_hand_results(tmp_path / "r")
    (results / synthetic_module.MARKER).write_text(synthetic_module.MARKER_TEXT)
    marks, save = [], plots.save_figure

    def record(fig, out_dir, name):
        paths = save(fig, out_dir, name)
        marks.append([t.get_text() for t in fig.texts if t.get_text() == "SYNTHETIC DATA"])
        return paths

    monkeypatch.setattr(plots, "save_figure", record)
    argv = [
        "--results",
        str(results),
        "--out",
        str(tmp_path / "o"),
        "--reps-curve",
        "20",
        "--reps-final",
        "20",
    ]
    assert figures.main(argv) == 0  # its notes printed as warning: lines
    assert marks and all(m == ["SYNTHETIC DATA"] for m in marks)


def test_the_synthetic_folder_says_what_it_is(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic_module, "_write_run", lambda *a, **k: None)
    synthetic_module.make_synthetic_results(tmp_path / "s")
    assert (tmp_path / "s" / synthetic_module.MARKER).read_text() == synthetic_module.MARKER_TEXT
