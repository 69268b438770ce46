"""The ablation figure: a sweep's final IQM (or a diagnostic) against the swept value, one series per setting
of the other keys (analysis.stats.ablations computes the points). Called by analysis.figures.sweeps."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.lines import Line2D

from analysis.figures.plots import RETURN_LABEL
from analysis.runs.identity import latent_in
from analysis.stats.ablations import is_numeric, list_numbers, value_sort_key
from analysis.stats.metrics import format_steps

CONTEXT_MARKERS = "osD^vPX*"


def ablation_tick_label(key: str, value: str) -> str:
    """The x tick label of one swept value: an FSQ level list gets its codebook size K (their product)."""
    numbers = list_numbers(value)
    if key.rsplit(".", 1)[-1] == "fsq_levels" and numbers is not None and "-" in value:
        size = math.prod(numbers)
        return f"{value}\nK={int(size) if size.is_integer() else f'{size:g}'}"
    return value


def plot_ablation(
    points: pd.DataFrame,
    colors: dict,
    *,
    key: str,
    agent: str,
    sweep: str,
    step: int,
    measure: str = RETURN_LABEL.lower(),
) -> plt.Figure:
    """Final IQM with 95% CI vs the swept value; one series per context (the variants' other overrides).

    points: analysis.stats.ablations.ablation_estimates output (method, value, context, iqm, ci_low, ci_high,
    ...). Numeric values sit at their value and a context's points are joined by a line. Anything else (lists,
    ordered by their product, e.g. FSQ codebook size; text) is a category: equally spaced in
    `value_sort_key` order, with no line (the order is not a scale), contexts side by side with their
    own markers.
    """
    values = sorted(points["value"].unique(), key=value_sort_key)
    numeric = is_numeric(values)
    xpos = {v: (float(v) if numeric else i) for i, v in enumerate(values)}
    contexts = sorted(points["context"].unique())
    width = min(0.2, 0.6 / len(contexts))
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(values) + 2.5), 3.6))
    handles = []
    for k, (context, g) in enumerate(points.groupby("context", sort=True)):
        x = g["value"].map(xpos).to_numpy(dtype=float)
        if numeric:
            marker = "o"
            ax.plot(
                x,
                g["iqm"],
                color="0.55",
                lw=1.2,
                ls="-" if not context else "--",
                zorder=1,
                label=context or None,
            )
        else:
            marker = CONTEXT_MARKERS[k % len(CONTEXT_MARKERS)]
            x = x + (k - (len(contexts) - 1) / 2) * width
            handles.append(Line2D([], [], marker=marker, color="0.4", ls="none", label=context or "(none)"))
        for row, xi in zip(g.itertuples(), x):
            ax.errorbar(
                xi,
                row.iqm,
                yerr=[[row.iqm - row.ci_low], [row.ci_high - row.iqm]],
                fmt=marker,
                ms=7,
                color=colors[row.method],
                capsize=4,
                lw=2,
                zorder=2,
            )
    ax.set_xticks([xpos[v] for v in values])
    latents = {
        v: "/".join(sorted({latent_in(m) for m in g["method"]} - {""})) for v, g in points.groupby("value")
    }
    ax.set_xticklabels(
        [ablation_tick_label(key, v) + (f"\n{latents[v]}" if latents[v] else "") for v in values]
    )
    ax.set_xlabel(
        f"{key} (K = codebook size)" if any("\n" in ablation_tick_label(key, v) for v in values) else key
    )
    ax.set_ylabel(f"IQM {measure}")
    n_tasks = int(points["n_tasks"].max())
    where = f"sweep '{sweep}'" if sweep else "no sweep name"
    ax.set_title(
        f"{agent}: {key} ({where}), IQM at {format_steps(step)} steps, {n_tasks} task(s)", fontsize="medium"
    )
    if points["context"].ne("").any():
        ax.legend(handles=handles or None, title="other overrides", fontsize="small", frameon=False)
    fig.tight_layout()
    return fig
