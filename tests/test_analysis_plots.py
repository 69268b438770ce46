"""Readability of the figures: what each plot draws and labels, checked on the matplotlib objects."""

from __future__ import annotations

import contextlib
import io

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest

from analysis import figures, plots
from analysis.metrics import FINAL_METRICS
from analysis_helpers import write_run


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")) if t.get_text()]


def _legend_texts(fig) -> list[str]:
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    return [t.get_text() for leg in legends for t in leg.get_texts()]


def _estimates(cis: dict[str, tuple[float, float] | None], n_tasks: dict[str, int] | None = None) -> pd.DataFrame:
    rows = []
    for method, ci in cis.items():
        for k, metric in enumerate(FINAL_METRICS):
            value = 500.0 + 10 * k
            low, high = (value - ci[0], value + ci[1]) if ci else (np.nan, np.nan)
            rows.append({"method": method, "env_step": 100, "metric": metric, "value": value, "ci_low": low,
                         "ci_high": high, "n_tasks": (n_tasks or {}).get(method, 2), "n_runs": 4})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------
# 4-5. the interval plot
# ---------------------------------------------------------------------------------------------------
def test_interval_plot_draws_a_method_without_ci_in_its_colour():
    colors = plots.method_colors(["iqrl", "td3"])
    fig = plots.plot_final_intervals(_estimates({"iqrl": (5, 5), "td3": None}), colors, 100)
    for ax in fig.axes:
        marks = [line for line in ax.get_lines() if line.get_marker() not in (None, "None", "")]
        assert len(marks) == 1
        assert mcolors.to_hex(marks[0].get_color()) == mcolors.to_hex(colors["td3"])
    assert "one run per task: no CI" in " ".join(_texts(fig))


@pytest.mark.parametrize("n_methods", [1, 2, 8])
def test_interval_plot_title_clears_the_panel_titles(n_methods):
    methods = [f"m{k}" for k in range(n_methods)]
    fig = plots.plot_final_intervals(_estimates({m: (5, 5) for m in methods}), plots.method_colors(methods), 100)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title = fig._suptitle.get_window_extent(renderer)
    for ax in fig.axes:
        assert not title.overlaps(ax.title.get_window_extent(renderer)), ax.get_title()
        assert ax.title.get_window_extent(renderer).y0 >= ax.get_window_extent(renderer).y1
