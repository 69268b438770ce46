"""Scores and their uncertainty: pure functions of tables/arrays (no I/O, no plotting).

Layering (as rliable): compute scores (`scores_at_step`, `task_scores`, `curve_segments`) -> estimate
(`final_estimates`, `sample_efficiency`, `performance_profiles`, `improvement_estimates`,
`per_task_curves`; analysis.stats.ablations for swept keys) -> plot (analysis.figures.plots) / tabulate
(analysis.figures.tables).

Conventions:
- `evals` is the evaluation part of the tidy table (analysis.runs.load.eval_rows): one row per
  (run, env_step) with columns run, method, task, group, seed, env_step, episode_return.
- A method's scores are kept per task: `cols`, a list (T,) of arrays (n_t,) for final scores or
  (n_t, S) for curves, normalised returns (DMC return / 1000), each task's runs ordered by seed. Tasks
  may hold different numbers of runs: every run that has a score counts.
- Estimates handed to plots and tables are back on the 0-1000 return scale (probabilities and
  profile fractions stay in [0, 1]).
- Score-at-step rule: a run's score at env step S is its evaluation at the largest env_step <= S;
  a run whose last evaluation is before S (or whose first is after it) has none and is left out.
- Aggregates use every run that reached the step: IQM = 25% trimmed mean over all run x task scores;
  median, mean and optimality gap of the per-task means (rliable's definitions; with unequal run counts
  every task still weighs alike).
- Bootstraps are stratified (each task's runs resampled with replacement, n_t draws from that task),
  95% percentile intervals. With equal runs per task the scores are stacked (R, T[, S]) and handed to
  rliable (`get_interval_estimates`); rliable 1.2.0 draws indices from numpy's *global* RNG, so each call
  is wrapped in `seeded_global_numpy(seed)`, which seeds it and restores the previous state afterwards.
  With unequal counts (rliable needs a rectangular array) the same bootstrap runs in numpy
  (`ragged_bootstrap`, `np.random.default_rng(seed)`). Either way the same input gives identical numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.runs.task_groups import group_rows, panel_groups
from analysis.stats.estimators import (
    FINAL_STAT,
    IMPROVEMENT_STAT,
    IQM_PER_STEP_STAT,
    bootstrap,
    profile_stat,
)

RETURN_SCALE = 1000.0  # DMC returns lie in [0, 1000]; rliable works on return / 1000
FINAL_METRICS = ("iqm", "median", "mean", "optimality_gap")
METRIC_TITLES = {"iqm": "IQM", "median": "Median", "mean": "Mean", "optimality_gap": "Optimality Gap"}


# ---------------------------------------------------------------------------------------------------
# Scores at a step
# ---------------------------------------------------------------------------------------------------
def scores_at_step(
    evals: pd.DataFrame, step: int, column: str = "episode_return"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each run's score (`column`) at env step `step` (largest env_step <= step).

    Returns (scores, not_reached): `scores` has one row per run evaluated at or before `step` that also
    reached it (columns run, method, task, group, seed, env_step = the evaluation used, `column`);
    `not_reached` one row per run without a score: its last evaluation is before `step`, or its first is
    after it (run, method, task, seed, first_eval, last_eval).
    """
    first = evals.groupby("run")["env_step"].min()
    last = evals.groupby("run")["env_step"].max()
    has = (first <= step) & (last >= step)
    before = evals[(evals["env_step"] <= step) & evals["run"].isin(has.index[has])]
    idx = before.groupby("run")["env_step"].idxmax()
    cols = ["run", "method", "task", "group", "seed", "env_step", column]
    scores = (
        before.loc[idx.values, cols].sort_values(["method", "task", "seed", "run"]).reset_index(drop=True)
    )
    short = evals[evals["run"].isin(has.index[~has])].drop_duplicates("run")
    not_reached = (
        short[["run", "method", "task", "seed"]]
        .assign(first_eval=short["run"].map(first).values, last_eval=short["run"].map(last).values)
        .reset_index(drop=True)
    )
    return scores, not_reached


def not_reached_text(not_reached: pd.DataFrame, step: int) -> str:
    """'2 run(s) never reached it and are left out (tcrl: 1, td3: 1)' for `scores_at_step`'s not_reached
    (non-empty), adding '; k first evaluated after it' for runs whose first evaluation is after `step`."""
    by = ", ".join(f"{m}: {n}" for m, n in not_reached["method"].value_counts().sort_index().items())
    late = int((not_reached["first_eval"] > step).sum())
    return (
        f"{len(not_reached)} run(s) never reached it and are left out ({by}"
        + (f"; {late} first evaluated after it" if late else "")
        + ")"
    )


def task_scores(
    scores: pd.DataFrame, column: str = "episode_return", scale: float = RETURN_SCALE
) -> tuple[list[np.ndarray], list[str]]:
    """One method's scores at a step -> (cols, tasks): per task (sorted) an array (n_t,) of normalised
    returns (or another per-run `column` over `scale`), runs in seed order. Every run counts; tasks may hold
    different numbers of runs."""
    ordered = scores.sort_values(["task", "seed", "run"], kind="stable")
    tasks = sorted(ordered["task"].unique())
    cols = [ordered.loc[ordered["task"] == t, column].to_numpy(dtype=float) / scale for t in tasks]
    return cols, tasks


def single_run_notes(where: str, cols: list[np.ndarray]) -> list[str]:
    """A note when every task has one run: no CI (see `bootstrap`). where: the note's prefix."""
    if max(len(c) for c in cols) < 2:
        return [
            f"{where}: one run per task: no 95% CI, as a bootstrap over one run per task would "
            "have zero width"
        ]
    return []


@dataclass
class FinalEstimates:
    """Aggregates at fixed env steps. table: method, env_step, metric, value, ci_low, ci_high, n_tasks,
    n_runs (values on the 0-1000 scale; n_runs = run x task scores used; ci_low/ci_high NaN with one run
    per task, see `bootstrap`); scores[(method, step)] = (cols, tasks), see `task_scores`;
    notes: human-readable lines about runs left out and missing CIs."""

    table: pd.DataFrame
    scores: dict[tuple[str, int], tuple[list[np.ndarray], list[str]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def final_estimates(
    evals: pd.DataFrame,
    steps: list[int],
    reps: int,
    seed: int = 0,
    column: str = "episode_return",
    scale: float = RETURN_SCALE,
) -> FinalEstimates:
    """IQM, median, mean and optimality gap with 95% CIs for every method at every step it reached, on
    `column` / `scale` (a suite's score, analysis.stats.scores; values reported back times `scale`)."""
    rows, by_method, notes = [], {}, []
    for step in steps:
        scores, not_reached = scores_at_step(evals, step, column)
        if len(not_reached):
            notes.append(f"at {format_steps(step)} steps, {not_reached_text(not_reached, step)}")
        task_sets = scores.groupby("method")["task"].agg(lambda t: tuple(sorted(set(t))))
        if task_sets.nunique() > 1:
            sizes = ", ".join(f"{m}: {len(t)}" for m, t in task_sets.items())
            notes.append(
                f"at {format_steps(step)} steps, methods average different task sets (tasks per "
                f"method: {sizes}); compare their aggregates with care"
            )
        for method, runs in scores.groupby("method", sort=True):
            cols, tasks = task_scores(runs, column, scale)
            notes += single_run_notes(f"at {format_steps(step)} steps, {method}", cols)
            by_method[(method, step)] = (cols, tasks)
            point, interval = bootstrap(cols, FINAL_STAT, reps, seed)
            for k, metric in enumerate(FINAL_METRICS):
                rows.append(
                    {
                        "method": method,
                        "env_step": step,
                        "metric": metric,
                        "value": point[k] * scale,
                        "ci_low": interval[0, k] * scale,
                        "ci_high": interval[1, k] * scale,
                        "n_tasks": len(tasks),
                        "n_runs": sum(len(c) for c in cols),
                    }
                )
    cols = ["method", "env_step", "metric", "value", "ci_low", "ci_high", "n_tasks", "n_runs"]
    return FinalEstimates(pd.DataFrame(rows, columns=cols), by_method, notes)


def largest_common_step(evals: pd.DataFrame, steps: list[int], methods=None) -> tuple[int, bool]:
    """The largest of `steps` that every method reached, else the latest step that all of them reached.

    A method reached a step when one of its runs has an evaluation at or after it. methods: the methods
    that must have reached it (default: every method in `evals`). Returns (step, whether it is one of
    `steps`); without a common one of `steps` the step is the smallest of the methods' last evaluations.
    """
    reach = evals.groupby("method")["env_step"].max()
    methods = list(reach.index) if methods is None else list(methods)
    common = [s for s in steps if all(reach.get(m, -1) >= s for m in methods)]
    return (max(common), True) if common else (int(reach.min()), False)


# ---------------------------------------------------------------------------------------------------
# Curves
# ---------------------------------------------------------------------------------------------------
def thin_steps(steps, max_points: int) -> np.ndarray:
    """Sorted unique steps, thinned to at most max_points (first and last kept)."""
    steps = np.unique(np.asarray(steps, dtype=np.int64))
    if len(steps) <= max_points:
        return steps
    idx = np.unique(np.round(np.linspace(0, len(steps) - 1, max_points)).astype(int))
    return steps[idx]


def values_on_grid(run_steps: np.ndarray, run_values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """One run's value at each grid step by the score-at-step rule (nan before its first / after its last
    row). run_steps (n,) sorted, run_values (n,), grid (S,) -> (S,)."""
    pos = np.searchsorted(run_steps, grid, side="right") - 1
    out = np.where(pos >= 0, run_values[np.clip(pos, 0, None)], np.nan)
    return np.where(grid > run_steps[-1], np.nan, out)


def values_between(run_x: np.ndarray, run_values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """One run's value at each grid point, interpolated linearly between its own rows (nan before its first
    and after its last row: no extrapolation). run_x (n,) increasing, run_values (n,), grid (S,) -> (S,)."""
    out = np.interp(grid, run_x, run_values)
    return np.where((grid < run_x[0]) | (grid > run_x[-1]), np.nan, out)


#: The x axes of the return curves: env steps (each run's score at a step by the score-at-step rule) or the
#: run's own wall-clock hours (eval.csv's wall_time_s / 3600, each run interpolated between its rows).
X_AXES = {"steps": "env_step", "wall": "wall_hours"}


def x_grid(values: pd.Series, x: str, max_points: int) -> np.ndarray:
    """The points a curve is estimated at: env steps, the runs' own (thinned to max_points), or, for another
    x (hours), max_points evenly spaced from the first to the last of `values` (the runs' rows differ)."""
    if x == "env_step":
        return thin_steps(values, max_points)
    return np.linspace(values.min(), values.max(), max_points)


def curve_segments(
    evals: pd.DataFrame,
    grid: np.ndarray,
    column: str = "episode_return",
    scale: float = RETURN_SCALE,
    x: str = "env_step",
) -> list[tuple[np.ndarray, list[np.ndarray], list[str]]]:
    """One method's runs on a grid of `x` -> [(points (S_k,), cols, tasks)], cols per task an array
    (n_t, S_k) of normalised scores, `column` / `scale` (runs in seed order). On env steps a run's value
    at a step follows the score-at-step rule (`values_on_grid`); on another x (wall-clock hours) it is
    interpolated between the run's rows (`values_between`).

    A grid point is kept only when every task has a run evaluated at or before it that also reached it
    (otherwise the aggregate would silently change its task set); every such run counts (tasks may hold
    different numbers), and consecutive points with the same run set form one segment (one bootstrap).
    """
    at = values_on_grid if x == "env_step" else values_between
    tasks = sorted(evals["task"].unique())
    runs = evals.drop_duplicates("run")[["run", "task", "seed"]]
    first = runs["run"].map(evals.groupby("run")[x].min())
    last = runs["run"].map(evals.groupby("run")[x].max())
    series = {run: (g[x].to_numpy(), g[column].to_numpy()) for run, g in evals.sort_values(x).groupby("run")}
    segments, current, cur_steps = [], None, []

    def close():
        if current is not None and cur_steps:
            sel = current  # dataframe of kept runs
            steps = np.array(cur_steps)
            cols = [
                np.stack([at(*series[run], steps) for run in sel.loc[sel["task"] == t, "run"]]) / scale
                for t in tasks
            ]
            segments.append((steps, cols, tasks))

    for step in grid:
        alive = runs[(first <= step) & (last >= step)]
        if alive["task"].nunique() < len(tasks):
            continue  # some task has no run evaluated at this step (not started or all ended)
        kept = alive.sort_values(["task", "seed", "run"], kind="stable")
        if current is None or set(kept["run"]) != set(current["run"]):
            close()
            current, cur_steps = kept, []
        cur_steps.append(step)
    close()
    return segments


def sample_efficiency(
    evals: pd.DataFrame,
    reps: int,
    seed: int = 0,
    max_points: int = 40,
    column: str = "episode_return",
    scale: float = RETURN_SCALE,
    x: str = "env_step",
) -> pd.DataFrame:
    """IQM of returns (or another score `column`, see `final_estimates`) across tasks and seeds vs env
    steps (or another `x` of the rows: `wall_hours`, X_AXES), with 95% stratified-bootstrap bands.

    Returns a table: group ('all'; each task group when the runs span several; 'dmc-hard', the dog and
    humanoid tasks, when they are some of the runs' tasks: analysis.runs.task_groups.panel_groups), method,
    `x`, iqm, ci_low, ci_high, n_tasks, n_runs (on the column's scale). Each method uses its own
    evaluation steps (thinned to max_points), or max_points hours evenly spaced over its runs' (`x_grid`).
    """
    rows = []
    for group in panel_groups(evals):
        sub = group_rows(evals, group)
        for method, m_evals in sub.groupby("method", sort=True):
            grid = x_grid(m_evals[x], x, max_points)
            for steps, cols, tasks in curve_segments(m_evals, grid, column, scale, x):
                point, interval = bootstrap(cols, IQM_PER_STEP_STAT, reps, seed)
                for j, step in enumerate(steps):
                    rows.append(
                        {
                            "group": group,
                            "method": method,
                            x: int(step) if x == "env_step" else float(step),
                            "iqm": point[j] * scale,
                            "ci_low": interval[0, j] * scale,
                            "ci_high": interval[1, j] * scale,
                            "n_tasks": len(tasks),
                            "n_runs": sum(len(c) for c in cols),
                        }
                    )
    cols = ["group", "method", x, "iqm", "ci_low", "ci_high", "n_tasks", "n_runs"]
    return pd.DataFrame(rows, columns=cols)


def mean_over_tasks(curves: pd.DataFrame, tasks, by: list[str], name: str) -> pd.DataFrame:
    """Per `by` (a method; a published source, algorithm and label), the mean over `tasks` of per-task curves
    (`per_task_curves` or `analysis.reference.table.select_reference` output: task, env_step, mean) at each
    step where every one of the tasks has a value; one task named `name`. Columns: `by`, task, env_step, mean,
    ci_low, ci_high (= mean: no interval for a mean of means), n_tasks. A `by` missing a task has no rows."""
    tasks = set(tasks)
    rows = []
    for key, g in curves[curves["task"].isin(tasks)].groupby(by, sort=True):
        wide = g.pivot_table(index="env_step", columns="task", values="mean").dropna()
        if set(wide.columns) != tasks or wide.empty:
            continue
        key = key if isinstance(key, tuple) else (key,)
        rows += [(*key, name, step, m, m, m, len(tasks)) for step, m in wide.mean(axis=1).items()]
    return pd.DataFrame(rows, columns=[*by, "task", "env_step", "mean", "ci_low", "ci_high", "n_tasks"])


def performance_profiles(
    scores: dict[str, list[np.ndarray]], taus: np.ndarray, reps: int, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Score distributions with 95% CIs: {method: (profile (len(taus),), ci (2, len(taus)))}.

    scores: {method: cols (per task an array (n_t,) of normalised scores)}; taus on the same normalised
    scale. Same statistic as rliable's create_performance_profile (use_score_distribution=True): the
    fraction of all run x task scores above tau, computed vectorised.
    """
    stat = profile_stat(taus)
    return {method: bootstrap(cols, stat, reps, seed) for method, cols in scores.items()}


def improvement_estimates(
    scores: dict[str, tuple[list[np.ndarray], list[str]]], reference: str, reps: int, seed: int = 0
) -> pd.DataFrame:
    """P(reference > other) with 95% CIs for every other method, on the tasks both have.

    scores: {method: (cols, tasks)} as `task_scores`. Per task the share of (reference run, other run)
    pairs won (ties 1/2), averaged over the common tasks (rliable's probability_of_improvement); the two
    methods' runs are resampled independently, each within its tasks. Every run counts: rliable's
    function and bootstrap take a rectangular array per method, so when a method's tasks hold different
    numbers of runs the same statistic and bootstrap run in numpy (see `bootstrap`). Returns a table:
    method (= reference), other, probability, ci_low, ci_high, n_tasks. Pairs without a common task are
    left out.
    """
    rows = []
    x_all, x_tasks = scores[reference]
    for other, (y_all, y_tasks) in sorted(scores.items()):
        if other == reference:
            continue
        common = [t for t in x_tasks if t in y_tasks]
        if not common:
            continue
        x = [x_all[x_tasks.index(t)] for t in common]
        y = [y_all[y_tasks.index(t)] for t in common]
        point, interval = bootstrap((x, y), IMPROVEMENT_STAT, reps, seed)
        rows.append(
            {
                "method": reference,
                "other": other,
                "probability": point[0],
                "ci_low": interval[0, 0],
                "ci_high": interval[1, 0],
                "n_tasks": len(common),
            }
        )
    return pd.DataFrame(rows, columns=["method", "other", "probability", "ci_low", "ci_high", "n_tasks"])


def mean_ci(values: np.ndarray, reps: int, rng: np.random.Generator) -> tuple[float, float, float]:
    """Mean of values (n,) and its 95% percentile-bootstrap interval (degenerate when n == 1)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, mean, mean
    boot = values[rng.integers(0, len(values), (reps, len(values)))].mean(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return mean, float(low), float(high)


def per_task_curves(
    table: pd.DataFrame, value: str, by: str = "method", reps: int = 1000, seed: int = 0, max_points: int = 60
) -> pd.DataFrame:
    """Mean and 95% bootstrap CI over seeds of `value` vs env_step, per (by, task).

    table: tidy rows (run, task, env_step, `by`, `value`); rows where `value` is nan are ignored. On each
    (by, task) the grid is the union of the runs' steps (thinned); a run contributes at step S by the
    score-at-step rule and only up to its last row. Returns columns by, task, env_step, mean, ci_low,
    ci_high, n (runs at that step).
    """
    rows = []
    rng = np.random.default_rng(seed)
    sub = table.loc[table[value].notna(), ["run", "task", by, "env_step", value]]
    for (key, task), g in sub.groupby([by, "task"], sort=True):
        grid = thin_steps(g["env_step"], max_points)
        per_run = np.stack(
            [
                values_on_grid(r["env_step"].to_numpy(), r[value].to_numpy(dtype=float), grid)
                for _, r in g.sort_values("env_step").groupby("run")
            ]
        )
        for j, step in enumerate(grid):
            col = per_run[:, j]
            col = col[~np.isnan(col)]
            if len(col) == 0:
                continue
            mean, low, high = mean_ci(col, reps, rng)
            rows.append(
                {
                    by: key,
                    "task": task,
                    "env_step": int(step),
                    "mean": mean,
                    "ci_low": low,
                    "ci_high": high,
                    "n": len(col),
                }
            )
    return pd.DataFrame(rows, columns=[by, "task", "env_step", "mean", "ci_low", "ci_high", "n"])


def per_task_iqm_curves(
    table: pd.DataFrame, value: str, by: str = "method", reps: int = 1000, seed: int = 0, max_points: int = 60
) -> pd.DataFrame:
    """IQM over seeds of `value` vs env_step, per (by, task), with the sample-efficiency curves' 95%
    stratified-bootstrap interval (`bootstrap` of IQM_PER_STEP_STAT on one task's runs): a run counts at a
    step by the score-at-step rule, up to its last row; steps with the same runs form one bootstrap. The IQM
    drops floor(n / 4) runs from each end, none below 4 runs: there it is their mean; one run has no
    interval (nan). table: tidy rows (run, task, seed, env_step, `by`, `value`); nan values are ignored.
    Returns columns by, task, env_step, iqm, ci_low, ci_high, n (runs at that step)."""
    rows = []
    sub = table.loc[table[value].notna(), ["run", "task", "seed", by, "env_step", value]]
    for (key, task), g in sub.groupby([by, "task"], sort=True):
        for steps, (col,), _ in curve_segments(g, thin_steps(g["env_step"], max_points), value, 1.0):
            point, interval = bootstrap([col], IQM_PER_STEP_STAT, reps, seed)
            rows += [
                {by: key, "task": task, "env_step": int(step), "iqm": point[j], "n": len(col)}
                | {"ci_low": interval[0, j], "ci_high": interval[1, j]}
                for j, step in enumerate(steps)
            ]
    return pd.DataFrame(rows, columns=[by, "task", "env_step", "iqm", "ci_low", "ci_high", "n"])


# ---------------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------------
def natural_key(text: str) -> list:
    """Sort key that orders numbers inside text by value: horizon=2 before horizon=10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def method_order(methods) -> list[str]:
    """iqrl first, then its variants, then the other methods alphabetically (numbers by value)."""
    return sorted(set(methods), key=lambda m: (m.split("/")[0] != "iqrl", m != "iqrl", natural_key(m)))


def format_steps(x: float) -> str:
    """Env steps as text: 0, 5k, 100k, 1M, 1.5M."""
    x = float(x)
    if abs(x) >= 1e6:
        v = x / 1e6
        return f"{v:.0f}M" if v.is_integer() else f"{v:g}M"
    if abs(x) >= 1e3:
        v = x / 1e3
        return f"{v:.0f}k" if v.is_integer() else f"{v:g}k"
    return f"{x:.0f}"
