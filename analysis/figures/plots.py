"""Figures. Each function takes precomputed estimates (analysis.stats.metrics) and returns a Figure; nothing
here computes a statistic. Colours come from one `method_colors` mapping shared by every figure."""

from __future__ import annotations

import contextlib
import contextvars
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are only ever written to files

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from analysis.stats.metrics import FINAL_METRICS, METRIC_TITLES, format_steps, method_order  # noqa: E402

RETURN_LABEL = "Episode return"
STEPS_LABEL = "Environment steps"
WALL_LABEL = "Wall-clock hours"
GROUP_TITLES = {
    "all": "All tasks",
    "easy": "Easy tasks",
    "medium": "Medium tasks",
    "hard": "Hard tasks",
    "other": "Other tasks",
    "dmc-hard": "DMC-hard (dog, humanoid)",
}


def setup_style() -> None:
    """Seaborn styling for all figures (call once, in the entry point)."""
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.15)
    matplotlib.rcParams.update(
        {"pdf.fonttype": 42, "ps.fonttype": 42, "savefig.dpi": 150, "axes.titleweight": "bold"}
    )


def method_colors(methods) -> dict[str, tuple]:
    """One colour per method (colour-blind palette without its grey, which marks published curves; husl
    beyond 9 methods), stable across figures."""
    order = method_order(methods)
    colorblind = [c for k, c in enumerate(sns.color_palette("colorblind", 10)) if k != 7]  # 7: grey
    palette = (
        colorblind[: len(order)] if len(order) <= len(colorblind) else sns.color_palette("husl", len(order))
    )
    return dict(zip(order, palette))


def steps_formatter() -> FuncFormatter:
    return FuncFormatter(lambda x, _pos: format_steps(x))


#: Text written across every figure saved while set (`watermark`): figures of made-up data say so themselves.
WATERMARK: contextvars.ContextVar[str] = contextvars.ContextVar("WATERMARK", default="")


@contextlib.contextmanager
def watermark(text: str):
    """Every figure `save_figure` writes inside the block carries `text` across it ('' for none)."""
    token = WATERMARK.set(text)
    try:
        yield
    finally:
        WATERMARK.reset(token)


def save_figure(fig: plt.Figure, out_dir: Path, name: str) -> list[Path]:
    """Write name.png and name.pdf under out_dir, close the figure, return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if text := WATERMARK.get():
        fig.text(
            0.5,
            0.5,
            text,
            ha="center",
            va="center",
            rotation=20,
            fontsize=max(28.0, 5 * fig.get_figwidth()),
            color="red",
            alpha=0.3,
        )
    paths = []
    for ext in ("png", "pdf"):
        path = out_dir / f"{name}.{ext}"
        fig.savefig(path, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_") or "x"


def _grid(n: int, ncols: int = 4, size=(3.6, 2.8)):
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _legend_below(fig, handles, labels, ncol=None):
    ncol = ncol or min(len(labels), 4)
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol, frameon=False)


def _method_handles(
    methods, colors, labels: dict[str, str] | None = None, styles: dict[str, str] | None = None
):
    handles = [Line2D([], [], color=colors[m], lw=2.5, ls=(styles or {}).get(m, "-")) for m in methods]
    return handles, [(labels or {}).get(m, m) for m in methods]


def coverage_labels(task_sets: dict) -> dict[str, str]:
    """Legend/axis text per method of one figure or panel: `method (k of N tasks)` for a method whose
    aggregate is over k of the N tasks that the figure's methods cover together, the method name itself
    otherwise (every label is the bare name when all methods cover the same tasks).

    task_sets: {method: iterable of task names}.
    """
    sets = {m: set(t) for m, t in task_sets.items()}
    n_all = len(set().union(*sets.values())) if sets else 0
    return {m: m if len(t) == n_all else f"{m} ({len(t)} of {n_all} tasks)" for m, t in sets.items()}


# ---------------------------------------------------------------------------------------------------
# Aggregate figures
# ---------------------------------------------------------------------------------------------------
def plot_sample_efficiency(
    curves: pd.DataFrame,
    colors: dict,
    task_sets: dict | None = None,
    measure: str = RETURN_LABEL.lower(),
    where: str = "",
    x: str = "env_step",
) -> plt.Figure:
    """IQM return (or a suite's score, `measure` in running text) vs env steps (or wall-clock hours, x =
    "wall_hours") with 95% CI bands; one panel per group ('all' first), one line per method. where: appended
    to the title (a suite's name).

    curves: analysis.stats.metrics.sample_efficiency output (group, method, `x`, iqm, ci_low, ci_high,
    ...). task_sets: {group: {method: tasks of its curve}} (default: only the counts in `curves`). A panel's
    title counts the tasks its methods cover together; a method on fewer of them is drawn dashed there,
    and its legend label says how many of the 'all' panel's tasks it covers (`coverage_labels`).
    """
    groups = list(dict.fromkeys(curves["group"]))
    if task_sets is None:  # counts only: the panel's tasks are the most any method covers
        task_sets = {
            g: {m: range(int(n)) for m, n in sub.groupby("method")["n_tasks"].max().items()}
            for g, sub in curves.groupby("group", sort=False)
        }
    fig, axes = _grid(len(groups), ncols=4, size=(4.2, 3.3))
    methods = method_order(curves["method"])
    partial = False
    for ax, group in zip(axes, groups):
        sub = curves[curves["group"] == group]
        sets = {m: set(t) for m, t in task_sets[group].items() if m in set(sub["method"])}
        n_tasks = len(set().union(*sets.values())) if sets else 0
        for method in methods:
            m = sub[sub["method"] == method]
            if m.empty:
                continue
            ls = "--" if len(sets[method]) < n_tasks else "-"
            partial |= ls == "--"
            ax.plot(m[x], m["iqm"], color=colors[method], lw=2, marker="o", ms=3, ls=ls)
            ax.fill_between(m[x], m["ci_low"], m["ci_high"], color=colors[method], alpha=0.2, lw=0)
        ax.set_title(f"{GROUP_TITLES.get(group, group)} ({n_tasks} task{'s' if n_tasks != 1 else ''})")
        if x == "env_step":
            ax.xaxis.set_major_formatter(steps_formatter())
        ax.set_xlabel(STEPS_LABEL if x == "env_step" else WALL_LABEL)
        ax.set_ylim(bottom=0)
    axes[0].set_ylabel(f"IQM {measure}")
    labels = coverage_labels({m: t for m, t in task_sets[groups[0]].items() if m in methods})
    styles = {m: "--" for m, text in labels.items() if text != m}
    handles, texts = _method_handles(methods, colors, labels, styles)
    if partial:
        handles.append(Line2D([], [], color="0.3", lw=1.5, ls="--"))
        texts.append("dashed: fewer tasks than the panel's")
    _legend_below(fig, handles, texts)
    against = (
        "" if x == "env_step" else " against the runs' wall-clock hours (setup and evaluations included)"
    )
    fig.suptitle(f"Sample efficiency{where}{against} (IQM, 95% stratified-bootstrap CI)", y=1.02)
    fig.tight_layout()
    return fig


def plot_final_intervals(
    estimates: pd.DataFrame,
    colors: dict,
    step: int,
    labels: dict[str, str] | None = None,
    score: str = f"{RETURN_LABEL} (0-1000)",
    where: str = "",
) -> plt.Figure:
    """IQM, median, mean and optimality gap with 95% CIs at one step (rliable's interval plot: a bar per
    interval in the method's colour, a dark tick at the point estimate). A method without a CI (one run per
    task) gets a diamond in its colour instead. Constrained layout keeps the title, the metric titles and
    the x label apart for any number of methods.

    estimates: rows of analysis.stats.metrics.final_estimates(...).table for this step. labels: y-axis text
    per method (default: the method; e.g. `coverage_labels`). score: the x label; where: appended to the
    title.
    """
    methods = method_order(estimates["method"])[::-1]  # drawn bottom-up: iqrl ends on top
    table = estimates.set_index(["method", "metric"])
    height, no_ci = 0.6, False
    fig, axes = plt.subplots(
        1,
        len(FINAL_METRICS),
        figsize=(3.4 * len(FINAL_METRICS), 0.45 * len(methods) + 1.9),
        sharey=True,
        layout="constrained",
    )
    for ax, metric in zip(np.atleast_1d(axes), FINAL_METRICS):
        for y, method in enumerate(methods):
            value, low, high = table.loc[(method, metric), ["value", "ci_low", "ci_high"]].to_numpy(float)
            if np.isfinite(low) and np.isfinite(high):
                ax.barh(y, high - low, height=height, left=low, color=colors[method], alpha=0.75)
                ax.vlines(value, y - 7.5 * height / 16, y + 6 * height / 16, color="k", alpha=0.5)
            else:
                no_ci = True
                ax.plot([value], [y], ls="none", marker="D", ms=9, color=colors[method], mec="0.2", mew=1)
        ax.set_title(METRIC_TITLES[metric], fontsize="x-large")
        ax.xaxis.set_major_locator(plt.MaxNLocator(4))
        ax.tick_params(length=0.1, width=0.1, labelsize="large")
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        ax.spines["bottom"].set_linewidth(2)
        ax.spines["bottom"].set_position(("outward", 5))
        ax.grid(True, axis="x", alpha=0.25)
        ax.grid(False, axis="y")
        ax.set_ylim(-0.6, len(methods) - 0.4)
    axes[0].set_yticks(range(len(methods)), [(labels or {}).get(m, m) for m in methods], fontsize="large")
    fig.supxlabel(
        score + ("   \N{BLACK DIAMOND} one run per task: no CI" if no_ci else ""),
        fontsize="x-large",
    )
    fig.suptitle(f"Final performance{where} at {format_steps(step)} env steps (95% CI)", fontsize="x-large")
    return fig


def plot_performance_profiles(
    profiles: dict,
    taus: np.ndarray,
    colors: dict,
    step: int,
    labels: dict[str, str] | None = None,
    measure: str = "return",
    where: str = "",
) -> plt.Figure:
    """Fraction of runs with return (or another `measure`) > tau, with 95% CIs (rliable's profile plot).

    profiles: {method: (profile (len(taus),), ci (2, len(taus)))}; taus on the measure's scale (returns:
    0-1000). labels: legend text per method (default: the method; e.g. `coverage_labels`).
    """
    from rliable import plot_utils

    methods = method_order(profiles)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    plot_utils.plot_performance_profiles(
        {m: profiles[m][0] for m in methods},
        taus,
        performance_profile_cis={m: profiles[m][1] for m in methods},
        colors=colors,
        ax=ax,
        xlabel=f"{measure[0].upper()}{measure[1:]} threshold $\\tau$",
        ylabel=f"Fraction of runs with {measure} $> \\tau$",
        labelsize="large",
        ticklabelsize="medium",
    )
    ax.legend(
        *_method_handles(methods, colors, labels),
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        fontsize="small",
        frameon=False,
    )
    ax.set_title(f"Performance profiles{where} at {format_steps(step)} env steps")
    return fig


PAIR_SEPARATOR = "\x1f"  # method labels may contain ',' (combined overrides)


def plot_probability_of_improvement(
    poi: pd.DataFrame, colors: dict, step: int, labels: dict[str, str] | None = None, where: str = ""
) -> plt.Figure:
    """P(reference > other) with 95% CIs, one bar per other method (rliable's plot).

    poi: analysis.stats.metrics.improvement_estimates output (method, other, probability, ci_low, ci_high).
    labels: axis text per method (default: the method; e.g. `coverage_labels`); where: appended to the title.
    """
    labels = labels or {}
    from rliable import plot_utils

    poi = poi.set_index("other").loc[method_order(poi["other"])].reset_index()
    keys = [
        f"{labels.get(m, m)}{PAIR_SEPARATOR}{labels.get(o, o)}" for m, o in zip(poi["method"], poi["other"])
    ]
    probs = dict(zip(keys, poi["probability"].to_numpy()))
    cis = {k: np.array([lo, hi]) for k, lo, hi in zip(keys, poi["ci_low"], poi["ci_high"])}
    fig, ax = plt.subplots(figsize=(5.5, 0.55 * len(keys) + 1.2))
    plot_utils.plot_probability_of_improvement(
        probs,
        cis,
        pair_separator=PAIR_SEPARATOR,
        ax=ax,
        colors=[colors[o] for o in poi["other"]],
        xticks=[0.0, 0.25, 0.5, 0.75, 1.0],
        xlabel=f"P({poi['method'].iloc[0]} > Y)",
        left_ylabel="X",
        right_ylabel="Y",
        labelsize="large",
        ticklabelsize="medium",
    )
    ax.axvline(0.5, color="k", ls=":", lw=1)
    ax.set_xlim(-0.02, 1.02)
    ax.set_title(f"Probability of improvement{where} at {format_steps(step)} env steps", pad=18)
    return fig


# ---------------------------------------------------------------------------------------------------
# Per-task figures
# ---------------------------------------------------------------------------------------------------
#: Published curves: one line style and grey shade per source, one marker per algorithm, so that a source
#: reads apart at a glance and no published curve takes a colour of our methods.
SOURCE_STYLES = ("--", ":", "-.", (0, (6, 1.5, 1, 1.5, 1, 1.5)), (0, (1, 3)), (0, (8, 3)))
SOURCE_SHADES = ("0.1", "0.4", "0.25", "0.55")
ALGORITHM_MARKERS = "osv^DPX*<>hp"


def reference_styles(reference: pd.DataFrame) -> dict[str, dict]:
    """{label: Line2D keyword arguments} for the published curves: per source a line style and grey shade,
    per algorithm a marker (cycled past as many as there are)."""
    pairs = reference[["label", "source", "algorithm"]].drop_duplicates()
    sources = sorted(pairs["source"].unique())
    algorithms = sorted(pairs["algorithm"].unique(), key=str.lower)
    styles = {}
    for row in pairs.itertuples():
        k, j = sources.index(row.source), algorithms.index(row.algorithm)
        styles[row.label] = {
            "color": SOURCE_SHADES[k % len(SOURCE_SHADES)],
            "ls": SOURCE_STYLES[k % len(SOURCE_STYLES)],
            "marker": ALGORITHM_MARKERS[j % len(ALGORITHM_MARKERS)],
            "ms": 4,
            "mfc": "white",
            "lw": 1.1,
            "alpha": 0.9,
        }
    return styles


def published_band(ax, curve: pd.DataFrame, color) -> object:
    """One published curve (analysis.reference.table.select_reference rows of one label: env_step, mean, std)
    on `ax` in `color`: its mean dashed with a ± std band over its seeds, or, with one point, a marker with an
    error bar. Returns its legend handle."""
    from matplotlib.patches import Patch

    x, mean, std = (curve.sort_values("env_step")[c] for c in ("env_step", "mean", "std"))
    if len(curve) > 1:
        ax.plot(x, mean, "--", color=color, lw=1.4, zorder=2)
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.18, lw=0, zorder=1)
        return Patch(color=color, alpha=0.18, lw=0), Line2D([], [], color=color, ls="--")
    ax.errorbar(x, mean, yerr=std, fmt="s", color=color, mfc="white", capsize=4, zorder=2)
    return Line2D([], [], color=color, marker="s", mfc="white", ls="none")


def _center(curve: pd.DataFrame) -> pd.Series:
    """A curve's centre line: its `iqm` (metrics.per_task_iqm_curves), else its `mean`."""
    return curve["iqm"] if "iqm" in curve else curve["mean"]


def plot_task_panels(
    curves: pd.DataFrame,
    colors: dict,
    *,
    by: str = "method",
    ylabel: str = RETURN_LABEL,
    title: str = "",
    reference: pd.DataFrame | None = None,
    points: pd.DataFrame | None = None,
    bounds: dict[str, pd.DataFrame] | None = None,
    ylim: tuple | None = None,
    labels: dict[str, str] | None = None,
) -> plt.Figure:
    """One panel per task: mean (or IQM) over seeds with 95% CI band, one line per `by` value.

    curves: analysis.stats.metrics.per_task_curves output (or per_task_iqm_curves': its `iqm` is drawn where
    the other's `mean` is). reference:
    analysis.reference.table.select_reference output, drawn thin in grey (`reference_styles`: line style and
    shade by source, marker by algorithm), under a legend of its own, labelled "algorithm [source]"; a curve
    with fewer than 2 points inside the plotted steps (up to our last evaluation) is left out of the panel
    and, when no panel draws it, of the legend. points: published scores at one step (select_reference output
    of, e.g., the Atari 100k scores released with BBF), each a filled marker in its reference style over our
    curves, inside the plotted steps only. bounds: {"min": curves, "max": curves} drawn as thin dotted lines
    (e.g. the min/max active codebook share over FSQ groups). labels: legend text per `by` value (default: the
    value itself).
    """
    tasks = sorted(curves["task"].unique())
    fig, axes = _grid(len(tasks))
    keys = method_order(curves[by])
    empty = pd.DataFrame(columns=["task", "label", "source", "algorithm", "env_step", "mean"])
    reference = reference if reference is not None else empty
    reference = reference[reference["env_step"] <= curves["env_step"].max()]
    reference = reference.groupby(["task", "label"]).filter(lambda r: r["env_step"].nunique() >= 2)
    points = points if points is not None else empty
    points = points[points["env_step"] <= curves["env_step"].max()]
    published = (
        pd.concat([t for t in (reference, points) if len(t)]) if len(reference) + len(points) else empty
    )
    ref_styles = reference_styles(published) if len(published) else {}
    ref_order = sorted(
        ref_styles, key=lambda lab: (published.loc[published["label"] == lab, "source"].iloc[0], lab.lower())
    )
    point_labels = set(points["label"])
    for label in point_labels:  # a marker alone, filled: a score at one step, not a curve
        ref_styles[label] = {**ref_styles[label], "ls": "none", "ms": 7, "mfc": ref_styles[label]["color"]}
    for ax, task in zip(axes, tasks):
        sub = curves[curves["task"] == task]
        for label in ref_order:
            r = published[(published["task"] == task) & (published["label"] == label)].sort_values("env_step")
            if len(r):
                point = label in point_labels
                ax.plot(
                    r["env_step"],
                    r["mean"],
                    markevery=None if point else 0.1,
                    zorder=4 if point else 1,
                    **ref_styles[label],
                )
        for key in keys:
            m = sub[sub[by] == key]
            if m.empty:
                continue
            ax.plot(m["env_step"], _center(m), color=colors[key], lw=2.2, zorder=3)
            ax.fill_between(
                m["env_step"], m["ci_low"], m["ci_high"], color=colors[key], alpha=0.2, lw=0, zorder=2
            )
            for bound in (bounds or {}).values():
                b = bound[(bound["task"] == task) & (bound[by] == key)]
                ax.plot(b["env_step"], _center(b), color=colors[key], lw=1, ls=":")
        ax.set_title(task)
        ax.xaxis.set_major_formatter(steps_formatter())
        ax.set_xlabel(STEPS_LABEL)
        ax.set_ylabel(ylabel)
        if ylim is not None:
            ax.set_ylim(*ylim)
    handles, texts = _method_handles(keys, colors, labels)
    if bounds:
        handles.append(Line2D([], [], color="grey", lw=1, ls=":"))
        texts.append("min / max over FSQ groups")
    if ref_order:
        fig.legend(
            handles,
            texts,
            loc="upper right",
            bbox_to_anchor=(0.49, 0.0),
            frameon=False,
            ncol=1 if len(texts) <= 8 else 2,
            title="Our runs",
        )
        fig.legend(
            [Line2D([], [], **ref_styles[lab]) for lab in ref_order],
            ref_order,
            loc="upper left",
            bbox_to_anchor=(0.51, 0.0),
            frameon=False,
            ncol=1 if len(ref_order) <= 8 else 2,
            title="Published (line style: source, marker: algorithm)",
        )
    else:
        _legend_below(fig, handles, texts)
    if title:
        fig.suptitle(title, y=1.02)
    fig.tight_layout()
    return fig
