"""Ablation grids: the keys a sweep's variants sweep (`ablation_grids`, from the runs' overrides and
configs), the order of their values (numbers, then dash-joined lists by their product: FSQ codebook sizes),
and the final IQM with a 95% stratified-bootstrap CI per value of a grid (`ablation_estimates`), or a
train.csv diagnostic's (latent rank, srank, dormant units...) at that step (`ablation_diagnostic_estimates`).
Pure functions of the tidy table, on analysis.stats.metrics' scores; plotted by
analysis.figures.ablation_plot.plot_ablation."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pandas as pd

from analysis.runs.repeats import legacy_filled
from analysis.stats.estimators import IQM_STAT, bootstrap, iqm, seeds_needed
from analysis.stats.metrics import (
    RETURN_SCALE,
    format_steps,
    largest_common_step,
    not_reached_text,
    scores_at_step,
    single_run_notes,
    task_scores,
)


@dataclass
class AblationGrid:
    """One swept key of one (sweep, agent): points has columns method, value (canonical string), context
    (the variant's other overrides, '' for none)."""

    sweep: str
    agent: str
    key: str
    points: pd.DataFrame


def list_numbers(value: str) -> tuple[float, ...] | None:
    """The numbers of a dash-joined list value ('8-5-5' -> (8.0, 5.0, 5.0)), None for anything else."""
    try:
        return tuple(float(v) for v in value.split("-"))
    except ValueError:
        return None


def value_sort_key(value: str):
    """Numbers sort numerically, then dash-joined lists by the product of their numbers (an FSQ codebook
    size: 4-4 and 2-2-2-2 before 8-8 and 16-16), ties by length then element by element, then anything
    else as text.

    >>> sorted(["16-16", "2-2-2-2", "8-8", "4-4", "default"], key=value_sort_key)
    ['4-4', '2-2-2-2', '8-8', '16-16', 'default']
    """
    try:
        return (0, (float(value),), "")
    except ValueError:
        pass
    numbers = list_numbers(value)
    if numbers is not None:
        return (1, (math.prod(numbers), len(numbers), *numbers), "")
    return (2, (), value)


def is_numeric(values) -> bool:
    return all(value_sort_key(v)[0] == 0 for v in values)


def ablation_grids(runs: pd.DataFrame) -> list[AblationGrid]:
    """Find swept keys from the variants' overrides.

    runs: one row per run (columns sweep, agent, variant, method, overrides, config_values as JSON).
    For every (sweep, agent) and every override key that takes at least two values there (the default
    variant counts with the value from its config.yaml, when known), one AblationGrid.
    """
    grids = []
    # every run's config: the default variant's value of a key may differ by task (task overrides)
    configs = {
        key: [legacy_filled(json.loads(c)) for c in g["config_values"]]
        for key, g in runs.groupby(["sweep", "agent", "variant"], sort=False)
    }
    variants = runs.drop_duplicates(["sweep", "agent", "variant"])
    for (sweep, agent), g in variants.groupby(["sweep", "agent"], sort=True):
        parsed = [
            (row.method, json.loads(row.overrides), configs[(row.sweep, row.agent, row.variant)])
            for row in g.itertuples()
        ]
        # overrides every variant shares (a sweep's `fixed` and `per_agent` keys) are not swept: drop them,
        # so that the default variant is recognised by its otherwise empty overrides
        shared = set.intersection(*(set(ov.items()) for _, ov, _ in parsed)) if len(parsed) > 1 else set()
        parsed = [(m, {k: v for k, v in ov.items() if (k, v) not in shared}, cfgs) for m, ov, cfgs in parsed]
        keys = sorted({k for _, ov, _ in parsed for k in ov})
        for key in keys:
            pts = []
            for method, ov, cfgs in parsed:
                configured = sorted({c[key] for c in cfgs if key in c}, key=value_sort_key)
                if key in ov:
                    value = ov[key]
                elif not ov and len(configured) == 1:
                    value = configured[0]  # the default variant, at its configured value
                elif not ov and configured:  # set per task: no single value to place it at
                    value = f"default ({'/'.join(configured)})"
                else:
                    continue
                context = ",".join(f"{k}={v}" for k, v in sorted(ov.items()) if k != key)
                pts.append({"method": method, "value": value, "context": context})
            pts = pd.DataFrame(pts, columns=["method", "value", "context"])
            if pts["value"].nunique() >= 2:
                grids.append(AblationGrid(str(sweep), str(agent), key, pts))
    return grids


def ablation_estimates(
    evals: pd.DataFrame,
    grid: AblationGrid,
    steps: list[int],
    reps: int,
    seed: int = 0,
    column: str = "episode_return",
    scale: float = RETURN_SCALE,
) -> tuple[pd.DataFrame, int, list[str]]:
    """Final IQM with 95% CI per point of one grid, from the sweep's own runs, on `column` / `scale` (the
    grid's suite's score, analysis.stats.scores; reported back times `scale`).

    The step is the largest of `steps` that every point's runs reached (or, if none, the latest step
    that all of them reached); every run with a score there counts. Returns (points + iqm, ci_low, ci_high,
    n_tasks, n_runs; step; notes on runs without a score at the step, points with one run per task (no
    CI) and points on other task sets).
    """
    sub = evals[(evals["sweep"] == grid.sweep) & evals["method"].isin(grid.points["method"])]
    step, _ = largest_common_step(sub, steps, grid.points["method"])
    scores, not_reached = scores_at_step(sub, step, column)
    where = f"ablation {grid.sweep or 'nosweep'}/{grid.agent}/{grid.key} at {format_steps(step)} steps"
    notes = []
    if len(not_reached):
        notes.append(f"{where}: {not_reached_text(not_reached, step)}")
    points, point_notes = _ablation_points(grid, scores, column, scale, reps, seed, where)
    return points, step, notes + point_notes


def ablation_diagnostic_estimates(
    table: pd.DataFrame, grid: AblationGrid, step: int, reps: int, seed: int = 0, column: str = "latent_rank"
) -> tuple[pd.DataFrame, list[str]]:
    """IQM of a train.csv diagnostic (`column`, the latent rank by default) with 95% CI per point of one
    grid: each run's last value at or before `step` (the step of the grid's returns), from the sweep's own
    runs. Empty when no run logs it."""
    sub = table[
        (table["sweep"] == grid.sweep)
        & table["method"].isin(grid.points["method"])
        & (table["env_step"] <= step)
    ]
    if column not in sub:
        return _ablation_points(grid, sub.iloc[:0], column, 1.0, reps, seed, "")
    last = sub[sub[column].notna()].sort_values("env_step", kind="stable").groupby("run").tail(1)
    grid_name = f"{grid.sweep or 'nosweep'}/{grid.agent}/{grid.key}"
    where = f"{column} ablation {grid_name} at {format_steps(step)} steps"
    return _ablation_points(grid, last, column, 1.0, reps, seed, where)


SEEDS_NEEDED_COLUMNS = ["context", "task", "a", "b", "seeds_a", "seeds_b", "iqm_a", "iqm_b", "seeds_needed"]


def seeds_needed_rows(
    evals: pd.DataFrame, grid: AblationGrid, step: int, column: str, reps: int, seed: int = 0
) -> pd.DataFrame:
    """Per task and pair of the grid's values (within one context, in the grid's order): each arm's seeds
    and IQM of `column` at `step`, and the seeds per arm at which the 95% bootstrap interval of the IQM
    difference would exclude 0 at the effect seen so far (analysis.stats.estimators.seeds_needed; empty:
    none up to 50), so a user knows whether to add seeds."""
    sub = evals[(evals["sweep"] == grid.sweep) & evals["method"].isin(grid.points["method"])]
    scores, _ = scores_at_step(sub, step, column)
    rows = []
    for (context, task), g in scores.merge(grid.points, on="method").groupby(["context", "task"], sort=True):
        arms = {v: r[column].to_numpy(float) for v, r in g.groupby("value", sort=False)}
        # each value once: a value of several contexts (latent_dim 32 beside two layouts) is one arm
        order = list(dict.fromkeys(v for v in grid.points["value"] if v in arms))
        for i, a in enumerate(order):
            for b in order[i + 1 :]:
                x, y = arms[a], arms[b]
                n = seeds_needed(x, y, reps, seed)
                rows.append([context, task, a, b, len(x), len(y), iqm(x), iqm(y), n])
    return pd.DataFrame(rows, columns=SEEDS_NEEDED_COLUMNS).astype({"seeds_needed": "Int64"})


def _ablation_points(
    grid: AblationGrid, runs: pd.DataFrame, column: str, scale: float, reps: int, seed: int, where: str
) -> tuple[pd.DataFrame, list[str]]:
    """Per point of the grid: the IQM over its runs' `column` (one value per run) with a 95% stratified
    bootstrap CI, in the grid's value order."""
    rows, task_sets, notes = [], {}, []
    for pt in grid.points.itertuples():
        mine = runs[runs["method"] == pt.method]
        if mine.empty:
            continue
        cols, tasks = task_scores(mine, column, scale)
        task_sets[pt.method] = tuple(tasks)
        notes += single_run_notes(f"{where}, {pt.method}", cols)
        point, interval = bootstrap(cols, IQM_STAT, reps, seed)
        rows.append(
            {
                "method": pt.method,
                "value": pt.value,
                "context": pt.context,
                "iqm": point[0] * scale,
                "ci_low": interval[0, 0] * scale,
                "ci_high": interval[1, 0] * scale,
                "n_tasks": len(tasks),
                "n_runs": sum(len(c) for c in cols),
            }
        )
    if len(set(task_sets.values())) > 1:
        sizes = ", ".join(f"{m}: {len(t)}" for m, t in sorted(task_sets.items()))
        notes.append(f"{where}: the points average different task sets (tasks per point: {sizes})")
    out = pd.DataFrame(
        rows, columns=["method", "value", "context", "iqm", "ci_low", "ci_high", "n_tasks", "n_runs"]
    )
    order = sorted(out["value"].unique(), key=value_sort_key)
    out["order"] = out["value"].map({v: i for i, v in enumerate(order)})
    return out.sort_values(["context", "order"]).drop(columns="order").reset_index(drop=True), notes
