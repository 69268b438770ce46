"""The diagnostics' curves over training: the IQM over seeds with the sample-efficiency curves' bootstrap
(analysis.stats.metrics.per_task_iqm_curves), on the synthetic results' known values and on runs chosen so
that the IQM and the mean part."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.stats import metrics


def test_an_iqm_curve_trims_a_quarter_of_the_seeds_from_each_end_and_follows_the_runs_still_logging():
    """Five seeds at step 100 (0, 10, 20, 30, 1000): the IQM drops one from each end, 20, where the mean is
    212; at step 200 the fifth run has ended and four remain (5, 1, 3, 2): IQM 2.5 (the mean of 2 and 3)."""
    rows = [
        {"run": f"s{k}", "task": "walker-walk", "seed": k, "method": "iqrl", "env_step": step, "srank": v}
        for k, (a, b) in enumerate([(0, 5), (10, 1), (20, 3), (30, 2), (1000, None)])
        for step, v in ((100, a), (200, b))
        if v is not None
    ]
    curves = metrics.per_task_iqm_curves(pd.DataFrame(rows), "srank", reps=200)
    assert curves[["env_step", "iqm", "n"]].values.tolist() == [[100, 20.0, 5], [200, 2.5, 4]]
    assert (curves["ci_low"] <= curves["iqm"]).all() and (curves["iqm"] <= curves["ci_high"]).all()
    one = metrics.per_task_iqm_curves(pd.DataFrame(rows[:2]), "srank", reps=200)  # one seed: no interval
    assert one["iqm"].tolist() == [0.0, 5.0] and one["ci_low"].isna().all()


def test_the_diagnostic_figures_draw_the_iqm_of_the_synthetic_seeds(tmp_path, monkeypatch):
    """Synthetic iqrl on walker-walk logs latent_srank = 300 + 40 exp(-s / 100k) + 2 seed for seeds 0, 1, 2:
    at 250k the figure's line is their IQM, which with fewer than 4 seeds trims none: their mean."""
    import warnings

    from analysis.figures import curves, plots
    from analysis.runs.load import load_results
    from analysis.runs.synthetic import make_synthetic_results

    make_synthetic_results(tmp_path / "r")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the synthetic folder's partial runs are warned about
        table, _ = load_results(tmp_path / "r")
    table = table[table["method"] == "iqrl"]
    drawn = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, out, name: drawn.setdefault(name, fig) and [name])
    curves.diagnostic_figures(table, {"iqrl": "C0"}, 0, tmp_path / "f", print)
    expected = np.mean([round(300 + 40 * math.exp(-2.5) + 2 * seed, 3) for seed in range(3)])
    (panel,) = [ax for ax in drawn["latent_srank"].axes if ax.get_title() == "walker-walk"]
    (line,) = panel.get_lines()
    at = dict(zip(line.get_xdata().tolist(), line.get_ydata().tolist()))
    assert at[250_000] == pytest.approx(expected, abs=1e-9)
    assert "IQM over seeds" in drawn["latent_srank"]._suptitle.get_text()
