"""Readability of the figures: what each plot draws and labels, checked on the matplotlib objects."""

from __future__ import annotations

import contextlib
import io

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest

from analysis.figures import make as figures
from analysis.figures import plots
from analysis.stats.metrics import FINAL_METRICS

from analysis_helpers import write_run


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")) if t.get_text()]


def _legend_texts(fig) -> list[str]:
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    return [t.get_text() for leg in legends for t in leg.get_texts()]


def _estimates(
    cis: dict[str, tuple[float, float] | None], n_tasks: dict[str, int] | None = None
) -> pd.DataFrame:
    rows = []
    for method, ci in cis.items():
        for k, metric in enumerate(FINAL_METRICS):
            value = 500.0 + 10 * k
            low, high = (value - ci[0], value + ci[1]) if ci else (np.nan, np.nan)
            rows.append(
                {
                    "method": method,
                    "env_step": 100,
                    "metric": metric,
                    "value": value,
                    "ci_low": low,
                    "ci_high": high,
                    "n_tasks": (n_tasks or {}).get(method, 2),
                    "n_runs": 4,
                }
            )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------
# 1. methods on fewer tasks than the others of a figure say so
# ---------------------------------------------------------------------------------------------------
def test_coverage_labels():
    assert plots.coverage_labels({"iqrl": ["a", "b"], "td3": ["b", "a"]}) == {"iqrl": "iqrl", "td3": "td3"}
    assert plots.coverage_labels({"iqrl": "abcde", "iqrl/h=3": "ab", "td3": "abcde"}) == {
        "iqrl": "iqrl",
        "iqrl/h=3": "iqrl/h=3 (2 of 5 tasks)",
        "td3": "td3",
    }
    # same count, different tasks: each covers 2 of the 4 tasks the figure averages
    assert plots.coverage_labels({"x": "ab", "y": "cd"}) == {"x": "x (2 of 4 tasks)", "y": "y (2 of 4 tasks)"}


def _curves():
    rows = []
    for group, method, n in (
        ("all", "iqrl", 5),
        ("all", "iqrl/h=3", 2),
        ("easy", "iqrl", 2),
        ("easy", "iqrl/h=3", 1),
    ):
        for step in (0, 100):
            rows.append(
                {
                    "group": group,
                    "method": method,
                    "env_step": step,
                    "iqm": 100.0 + step,
                    "ci_low": 90.0,
                    "ci_high": 110.0 + step,
                    "n_tasks": n,
                    "n_runs": 2 * n,
                }
            )
    return pd.DataFrame(rows)


def test_sample_efficiency_labels_and_dashes_methods_on_fewer_tasks():
    curves = _curves()
    colors = plots.method_colors(curves["method"])
    task_sets = {
        "all": {"iqrl": set("abcde"), "iqrl/h=3": {"a", "c"}},
        "easy": {"iqrl": {"a", "b"}, "iqrl/h=3": {"a"}},
    }
    for sets in (task_sets, None):  # None: from the n_tasks counts alone
        fig = plots.plot_sample_efficiency(curves, colors, sets)
        texts = _legend_texts(fig)
        assert texts[:2] == ["iqrl", "iqrl/h=3 (2 of 5 tasks)"]
        titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
        assert titles == ["All tasks (5 tasks)", "Easy tasks (2 tasks)"]
        for ax in fig.axes[:2]:
            styles = {mcolors.to_hex(line.get_color()): line.get_linestyle() for line in ax.get_lines()}
            assert styles == {mcolors.to_hex(colors["iqrl"]): "-", mcolors.to_hex(colors["iqrl/h=3"]): "--"}
    same = curves[curves["method"] == "iqrl"]
    assert _legend_texts(plots.plot_sample_efficiency(same, colors)) == ["iqrl"]


def test_final_intervals_profiles_and_improvement_use_the_labels():
    labels = {"iqrl": "iqrl", "iqrl/h=3": "iqrl/h=3 (2 of 5 tasks)"}
    colors = plots.method_colors(labels)
    fig = plots.plot_final_intervals(_estimates({"iqrl": (5, 5), "iqrl/h=3": (5, 5)}), colors, 100, labels)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["iqrl/h=3 (2 of 5 tasks)", "iqrl"]
    taus = np.linspace(0, 1000, 5)
    profiles = {m: (np.linspace(1, 0, 5), np.stack([np.linspace(1, 0, 5)] * 2)) for m in labels}
    fig = plots.plot_performance_profiles(profiles, taus, colors, 100, labels)
    assert _legend_texts(fig) == ["iqrl", "iqrl/h=3 (2 of 5 tasks)"]
    poi = pd.DataFrame(
        {
            "method": ["iqrl"],
            "other": ["iqrl/h=3"],
            "probability": [0.7],
            "ci_low": [0.5],
            "ci_high": [0.9],
            "n_tasks": [2],
        }
    )
    assert "iqrl/h=3 (2 of 5 tasks)" in _texts(
        plots.plot_probability_of_improvement(poi, colors, 100, labels)
    )


def test_make_figures_labels_a_variant_on_fewer_tasks_in_every_cross_method_figure(tmp_path, monkeypatch):
    for task in ("walker-walk", "cheetah-run", "dog-run"):
        for seed in range(2):
            for method, ret in (("iqrl", 500.0), ("td3", 300.0)):
                write_run(
                    tmp_path / "r" / "main" / method / task / "default" / f"seed{seed}",
                    [(0, 0.0), (50, ret / 2 + seed), (100, ret + seed)],
                )
            if task != "dog-run":
                write_run(
                    tmp_path / "r" / "h" / "iqrl" / task / "horizon=3" / f"seed{seed}",
                    [(0, 0.0), (50, 200.0 + seed), (100, 400.0 + seed)],
                )
    seen = {}
    save = plots.save_figure

    def record(fig, out_dir, name):
        seen[name] = _texts(fig)
        return save(fig, out_dir, name)

    monkeypatch.setattr(plots, "save_figure", record)
    with contextlib.redirect_stderr(io.StringIO()):
        rc = figures.main(
            [
                "--results",
                str(tmp_path / "r"),
                "--out",
                str(tmp_path / "o"),
                "--steps",
                "100",
                "--reps-curve",
                "50",
                "--reps-final",
                "50",
            ]
        )
    assert rc == 0
    for name in (
        "sample_efficiency",
        "final_intervals_100",
        "performance_profiles_100",
        "probability_of_improvement_100",
    ):
        assert "iqrl/horizon=3 (2 of 3 tasks)" in seen[name], name
        assert not any(t.startswith(("iqrl (", "td3 (")) for t in seen[name]), name
    # per-task panels compare nothing across tasks: names as they are
    assert "iqrl/horizon=3" in seen["per_task_curves"]


# ---------------------------------------------------------------------------------------------------
# 2-3. published curves: apart from our methods, and only those that draw a line
# ---------------------------------------------------------------------------------------------------
def _reference(rows):
    df = pd.DataFrame(rows, columns=["source", "algorithm", "task", "env_step", "mean"])
    df.insert(2, "label", [f"{a} [{s}]" for s, a in zip(df["source"], df["algorithm"])])
    df["n_seeds"] = 1
    return df


def _task_curves(methods=("iqrl", "tcrl", "td3"), last=100):
    return pd.DataFrame(
        [
            {
                "task": "walker-walk",
                "method": m,
                "env_step": s,
                "mean": 10.0 * k + s,
                "ci_low": 0.0,
                "ci_high": 1.0 + s,
            }
            for k, m in enumerate(methods)
            for s in (0, last)
        ]
    )


def test_published_curves_are_neutral_and_styled_by_source():
    curves = _task_curves()
    colors = plots.method_colors(curves["method"])
    ref = _reference(
        [
            (src, alg, "walker-walk", s, 5.0 + s)
            for src, alg in (
                ("p1", "TCRL"),
                ("p1", "TD-MPC"),
                ("p2", "TD-MPC"),
                ("p2", "TD3"),
                ("p3", "iQRL"),
            )
            for s in (0, 50, 100)
        ]
    )
    fig = plots.plot_task_panels(curves, colors, reference=ref)
    ax = fig.axes[0]
    ours = {mcolors.to_hex(colors[m]) for m in colors}
    published = [line for line in ax.get_lines() if line.get_linewidth() < 2]
    assert len(published) == 5
    for line in published:
        r, g, b = mcolors.to_rgb(line.get_color())
        assert r == g == b, "published curves are grey"
    assert {mcolors.to_hex(line.get_color()) for line in ax.get_lines() if line.get_linewidth() >= 2} == ours
    styles = plots.reference_styles(ref)
    by_source = {
        src: {str(styles[f"{a} [{src}]"]["ls"]) for a in ref.loc[ref["source"] == src, "algorithm"]}
        for src in ("p1", "p2", "p3")
    }
    assert all(len(s) == 1 for s in by_source.values()) and len(set.union(*by_source.values())) == 3
    assert styles["TD-MPC [p1]"]["marker"] == styles["TD-MPC [p2]"]["marker"] != styles["TD3 [p2]"]["marker"]
    texts = _legend_texts(fig)
    assert texts[:3] == ["iqrl", "tcrl", "td3"]
    assert sorted(texts[3:]) == sorted(ref["label"].unique())


def test_published_curves_with_fewer_than_two_points_in_range_are_left_out():
    curves = _task_curves(last=3000)  # a 3000-step smoke run
    colors = plots.method_colors(curves["method"])
    ref = _reference(
        [
            ("p1", "SAC", "walker-walk", 0, 0.0),
            ("p1", "SAC", "walker-walk", 100_000, 500.0),
            ("p2", "TD3", "walker-walk", 0, 0.0),
            ("p2", "TD3", "walker-walk", 2000, 50.0),
        ]
    )
    fig = plots.plot_task_panels(curves, colors, reference=ref)
    assert len(fig.axes[0].get_lines()) == 3 + 1
    assert _legend_texts(fig) == ["iqrl", "tcrl", "td3", "TD3 [p2]"]
    fig = plots.plot_task_panels(curves, colors, reference=ref[ref["source"] == "p1"])
    assert len(fig.axes[0].get_lines()) == 3 and _legend_texts(fig) == ["iqrl", "tcrl", "td3"]


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
    fig = plots.plot_final_intervals(
        _estimates({m: (5, 5) for m in methods}), plots.method_colors(methods), 100
    )
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title = fig._suptitle.get_window_extent(renderer)
    for ax in fig.axes:
        assert not title.overlaps(ax.title.get_window_extent(renderer)), ax.get_title()
        assert ax.title.get_window_extent(renderer).y0 >= ax.get_window_extent(renderer).y1
