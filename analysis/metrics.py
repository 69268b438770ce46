"""Scores and their uncertainty: pure functions of tables/arrays (no I/O, no plotting).

Layering (as rliable): compute scores (`scores_at_step`, `score_matrix`, `curve_segments`) -> estimate
(`final_estimates`, `sample_efficiency`, `performance_profiles`, `improvement_estimates`,
`per_task_curves`, `ablation_estimates`) -> plot (analysis.plots) / tabulate (analysis.tables).

Conventions:
- `evals` is the evaluation part of the tidy table (analysis.load.eval_rows): one row per
  (run, env_step) with columns run, method, task, group, seed, env_step, episode_return.
- Score arrays handed to rliable are normalised returns (DMC return / 1000) of shape
  (num_runs, num_tasks) for final scores and (num_runs, num_tasks, num_steps) for curves.
- Estimates handed to plots and tables are back on the 0-1000 return scale (probabilities and
  profile fractions stay in [0, 1]).
- Score-at-step rule: a run's score at env step S is its evaluation at the largest env_step <= S;
  a run whose last evaluation is before S (or whose first is after it) has none and is left out.
- Bootstraps are rliable's stratified bootstrap (runs resampled within each task). rliable 1.2.0 draws
  indices from numpy's *global* RNG, so each call is wrapped in `seeded_global_numpy(seed)`, which seeds
  it and restores the previous state afterwards: the same input gives identical numbers.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.task_groups import GROUP_ORDER

RETURN_SCALE = 1000.0  # DMC returns lie in [0, 1000]; rliable works on return / 1000
FINAL_METRICS = ("iqm", "median", "mean", "optimality_gap")
METRIC_TITLES = {"iqm": "IQM", "median": "Median", "mean": "Mean", "optimality_gap": "Optimality Gap"}


# ---------------------------------------------------------------------------------------------------
# Reproducible rliable calls
# ---------------------------------------------------------------------------------------------------
@contextmanager
def seeded_global_numpy(seed: int):
    """Seed numpy's global RNG (what rliable 1.2.0 draws from) and restore its state on exit."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def bootstrap(scores, func, reps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """rliable stratified-bootstrap estimate of func(scores) with a 95% percentile interval.

    scores: array (R, T[, S]) or a tuple of such arrays (bootstrapped independently).
    func: maps the array(s) to a 1-D array (k,). Returns (point (k,), interval (2, k)); row 0 = low.
    With one run per task (R = 1) the interval is NaN: the bootstrap resamples runs within each task, so
    every resample is the original and the interval would have zero width, a certainty one run cannot give.
    """
    from rliable import library as rly

    arrays = scores if isinstance(scores, tuple) else (scores,)
    if min(len(a) for a in arrays) < 2:
        point = np.asarray(func(*arrays), dtype=float)
        return point, np.full((2, len(point)), np.nan)
    with seeded_global_numpy(seed):
        point, interval = rly.get_interval_estimates({"x": scores}, func, reps=reps)
    return np.asarray(point["x"], dtype=float), np.asarray(interval["x"], dtype=float)


# ---------------------------------------------------------------------------------------------------
# Aggregate metrics on (R, T) normalised score matrices
# ---------------------------------------------------------------------------------------------------
def iqm(x: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """Interquartile mean: mean of the sorted values after dropping floor(n/4) from each end.

    The same number as rliable's `metrics.aggregate_iqm` (scipy.stats.trim_mean(x, 0.25, axis=None)),
    about 20x faster, which matters inside a bootstrap. x (R, T) with axis=None -> float; x (N, S) with
    axis=0 -> (S,).
    """
    x = np.asarray(x, dtype=float)
    if axis is None:
        x, axis = x.reshape(-1), 0
    n = x.shape[axis]
    cut = int(0.25 * n)
    return np.take(np.sort(x, axis=axis), np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def final_metric_values(s: np.ndarray) -> np.ndarray:
    """s (R, T) -> [IQM, median, mean, optimality gap] (4,), rliable's definitions (gamma = 1):
    median and mean are of the per-task means over runs; the optimality gap is 1 - mean(min(s, 1))."""
    task_means = s.mean(axis=0)
    return np.array([iqm(s), np.median(task_means), task_means.mean(), 1.0 - np.minimum(s, 1.0).mean()])


def iqm_only(s: np.ndarray) -> np.ndarray:
    """s (R, T) -> [IQM] (1,)."""
    return np.array([iqm(s)])


def iqm_per_step(s: np.ndarray) -> np.ndarray:
    """s (R, T, S) -> IQM over all runs x tasks at each step (S,); equals aggregate_iqm(s[..., j])."""
    return iqm(s.reshape(-1, s.shape[-1]), axis=0)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) averaged over tasks; x (Rx, T), y (Ry, T).

    Per task: the Mann-Whitney U of x over y divided by Rx*Ry, i.e. the share of (i, j) pairs with
    x_i > y_j, ties counting 1/2 — rliable's `metrics.probability_of_improvement`, vectorised.
    """
    gt = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))
    eq = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))
    return float(np.mean(gt + 0.5 * eq))


def score_distribution(s: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Performance profile: fraction of all run x task scores above each tau; s (R, T) -> (len(taus),)."""
    return (s.reshape(-1)[:, None] > np.asarray(taus)[None, :]).mean(axis=0)


# ---------------------------------------------------------------------------------------------------
# Scores at a step
# ---------------------------------------------------------------------------------------------------
def scores_at_step(evals: pd.DataFrame, step: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each run's score at env step `step` (largest env_step <= step).

    Returns (scores, not_reached): `scores` has one row per run evaluated at or before `step` that also
    reached it (columns run, method, task, group, seed, env_step = the evaluation used, episode_return);
    `not_reached` one row per run without a score: its last evaluation is before `step`, or its first is
    after it (run, method, task, seed, first_eval, last_eval).
    """
    first = evals.groupby("run")["env_step"].min()
    last = evals.groupby("run")["env_step"].max()
    has = (first <= step) & (last >= step)
    before = evals[(evals["env_step"] <= step) & evals["run"].isin(has.index[has])]
    idx = before.groupby("run")["env_step"].idxmax()
    cols = ["run", "method", "task", "group", "seed", "env_step", "episode_return"]
    scores = before.loc[idx.values, cols].sort_values(["method", "task", "seed", "run"]).reset_index(drop=True)
    short = evals[evals["run"].isin(has.index[~has])].drop_duplicates("run")
    not_reached = short[["run", "method", "task", "seed"]].assign(
        first_eval=short["run"].map(first).values, last_eval=short["run"].map(last).values).reset_index(drop=True)
    return scores, not_reached


def not_reached_text(not_reached: pd.DataFrame, step: int) -> str:
    """'2 run(s) never reached it and are left out (tcrl: 1, td3: 1)' for `scores_at_step`'s not_reached
    (non-empty), adding '; k first evaluated after it' for runs whose first evaluation is after `step`."""
    by = ", ".join(f"{m}: {n}" for m, n in not_reached["method"].value_counts().sort_index().items())
    late = int((not_reached["first_eval"] > step).sum())
    return (f"{len(not_reached)} run(s) never reached it and are left out ({by}"
            + (f"; {late} first evaluated after it" if late else "") + ")")


def balanced_runs(runs: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Keep the same number of runs on every task (rliable needs a rectangular (R, T) array).

    runs: one row per run of one method (columns task, seed, ...). R = the smallest run count over
    tasks; on each task the R runs with the lowest seeds are kept. Returns (kept rows, number dropped).
    """
    ordered = runs.sort_values(["task", "seed", "run"], kind="stable")
    r = int(ordered.groupby("task").size().min())
    kept = ordered.groupby("task", group_keys=False).head(r)
    return kept, len(runs) - len(kept)


def balance_notes(where: str, runs: pd.DataFrame, n_kept: int, dropped: int) -> list[str]:
    """Notes on one method's score matrix: runs left out so that every task has `n_kept` runs (naming the
    task(s) with that few), and, with one run per task, that there is no CI (see `bootstrap`).

    where: the note's prefix (step and method); runs: the method's runs before balancing (column task).
    """
    counts = runs.groupby("task").size()
    fewest = ", ".join(sorted(counts.index[counts == counts.min()])[:3])
    notes = []
    if dropped:
        notes.append(f"{where}: {dropped} run(s) left out so that every task has {n_kept} run(s), as many as "
                     f"{fewest} (rliable needs equal runs per task)")
    if n_kept < 2:
        notes.append(f"{where}: one run per task ({fewest} has 1): no 95% CI, as a bootstrap over one run per "
                     f"task would have zero width")
    return notes


def score_matrix(scores: pd.DataFrame) -> tuple[np.ndarray, list[str], int]:
    """One method's scores -> (normalised array (R, T), task names (T,), runs dropped to balance)."""
    kept, dropped = balanced_runs(scores)
    tasks = sorted(kept["task"].unique())
    cols = [kept.loc[kept["task"] == t, "episode_return"].to_numpy() for t in tasks]
    return np.stack(cols, axis=1) / RETURN_SCALE, tasks, dropped


@dataclass
class FinalEstimates:
    """Aggregates at fixed env steps. table: method, env_step, metric, value, ci_low, ci_high, n_tasks,
    n_runs (values on the 0-1000 scale; ci_low/ci_high NaN with one run per task, see `bootstrap`);
    matrices[(method, step)] = (array (R, T), tasks);
    notes: human-readable lines about runs left out."""

    table: pd.DataFrame
    matrices: dict[tuple[str, int], tuple[np.ndarray, list[str]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def final_estimates(evals: pd.DataFrame, steps: list[int], reps: int, seed: int = 0) -> FinalEstimates:
    """IQM, median, mean and optimality gap with 95% CIs for every method at every step it reached."""
    rows, matrices, notes = [], {}, []
    for step in steps:
        scores, not_reached = scores_at_step(evals, step)
        if len(not_reached):
            notes.append(f"at {format_steps(step)} steps, {not_reached_text(not_reached, step)}")
        task_sets = scores.groupby("method")["task"].agg(lambda t: tuple(sorted(set(t))))
        if task_sets.nunique() > 1:
            sizes = ", ".join(f"{m}: {len(t)}" for m, t in task_sets.items())
            notes.append(f"at {format_steps(step)} steps, methods average different task sets (tasks per "
                         f"method: {sizes}); compare their aggregates with care")
        for method, runs in scores.groupby("method", sort=True):
            s, tasks, dropped = score_matrix(runs)
            notes += balance_notes(f"at {format_steps(step)} steps, {method}", runs, s.shape[0], dropped)
            matrices[(method, step)] = (s, tasks)
            point, interval = bootstrap(s, final_metric_values, reps, seed)
            for k, metric in enumerate(FINAL_METRICS):
                rows.append({"method": method, "env_step": step, "metric": metric,
                             "value": point[k] * RETURN_SCALE, "ci_low": interval[0, k] * RETURN_SCALE,
                             "ci_high": interval[1, k] * RETURN_SCALE, "n_tasks": len(tasks),
                             "n_runs": int(s.size)})
    cols = ["method", "env_step", "metric", "value", "ci_low", "ci_high", "n_tasks", "n_runs"]
    return FinalEstimates(pd.DataFrame(rows, columns=cols), matrices, notes)


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


def curve_segments(evals: pd.DataFrame, grid: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, list[str]]]:
    """One method's runs on a step grid -> [(steps (S_k,), normalised scores (R_k, T, S_k), tasks)].

    A grid step is kept only when every task has a run evaluated at or before it that also reached it
    (otherwise the aggregate would silently change its task set); runs are balanced per step (lowest
    seeds kept) and consecutive steps with the same run set form one segment (one rliable call).
    """
    tasks = sorted(evals["task"].unique())
    runs = evals.drop_duplicates("run")[["run", "task", "seed"]]
    first = runs["run"].map(evals.groupby("run")["env_step"].min())
    last = runs["run"].map(evals.groupby("run")["env_step"].max())
    series = {run: (g["env_step"].to_numpy(), g["episode_return"].to_numpy())
              for run, g in evals.sort_values("env_step").groupby("run")}
    segments, current, cur_steps = [], None, []

    def close():
        if current is not None and cur_steps:
            sel = current  # dataframe of kept runs
            steps = np.array(cur_steps)
            arr = np.stack([
                np.stack([values_on_grid(*series[run], steps) for run in sel.loc[sel["task"] == t, "run"]])
                for t in tasks], axis=1) / RETURN_SCALE
            segments.append((steps, arr, tasks))

    for step in grid:
        alive = runs[(first <= step) & (last >= step)]
        if alive["task"].nunique() < len(tasks):
            continue  # some task has no run evaluated at this step (not started or all ended)
        kept, _ = balanced_runs(alive)
        if current is None or set(kept["run"]) != set(current["run"]):
            close()
            current, cur_steps = kept, []
        cur_steps.append(int(step))
    close()
    return segments


def sample_efficiency(evals: pd.DataFrame, reps: int, seed: int = 0, max_points: int = 40) -> pd.DataFrame:
    """IQM of returns across tasks and seeds vs env steps, with 95% stratified-bootstrap bands.

    Returns a table: group ('all' and, when the runs span several groups, each task group), method,
    env_step, iqm, ci_low, ci_high, n_tasks, n_runs (0-1000 scale). Each method uses its own evaluation
    steps (thinned to max_points).
    """
    present = [g for g in GROUP_ORDER if g in set(evals["group"])]
    groups = ["all"] + (present if len(present) > 1 else [])
    rows = []
    for group in groups:
        sub = evals if group == "all" else evals[evals["group"] == group]
        for method, m_evals in sub.groupby("method", sort=True):
            grid = thin_steps(m_evals["env_step"], max_points)
            for steps, arr, tasks in curve_segments(m_evals, grid):
                point, interval = bootstrap(arr, iqm_per_step, reps, seed)
                for j, step in enumerate(steps):
                    rows.append({"group": group, "method": method, "env_step": int(step),
                                 "iqm": point[j] * RETURN_SCALE, "ci_low": interval[0, j] * RETURN_SCALE,
                                 "ci_high": interval[1, j] * RETURN_SCALE, "n_tasks": len(tasks),
                                 "n_runs": arr.shape[0] * arr.shape[1]})
    cols = ["group", "method", "env_step", "iqm", "ci_low", "ci_high", "n_tasks", "n_runs"]
    return pd.DataFrame(rows, columns=cols)


def performance_profiles(matrices: dict[str, np.ndarray], taus: np.ndarray, reps: int, seed: int = 0
                         ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Score distributions with 95% CIs: {method: (profile (len(taus),), ci (2, len(taus)))}.

    matrices: {method: normalised scores (R, T)}; taus on the same normalised scale. Same statistic as
    rliable's create_performance_profile (use_score_distribution=True), computed vectorised.
    """
    out = {}
    for method, s in matrices.items():
        point, interval = bootstrap(s, lambda x: score_distribution(x, taus), reps, seed)
        out[method] = (point, interval)
    return out


def improvement_estimates(matrices: dict[str, tuple[np.ndarray, list[str]]], reference: str, reps: int,
                          seed: int = 0) -> pd.DataFrame:
    """P(reference > other) with 95% CIs for every other method, on the tasks both have.

    matrices: {method: (normalised scores (R, T), tasks (T,))}. Returns a table: method (= reference),
    other, probability, ci_low, ci_high, n_tasks. Pairs without a common task are left out.
    """
    rows = []
    x_all, x_tasks = matrices[reference]
    for other, (y_all, y_tasks) in sorted(matrices.items()):
        if other == reference:
            continue
        common = [t for t in x_tasks if t in y_tasks]
        if not common:
            continue
        x = x_all[:, [x_tasks.index(t) for t in common]]
        y = y_all[:, [y_tasks.index(t) for t in common]]
        point, interval = bootstrap((x, y), lambda a, b: np.array([probability_of_improvement(a, b)]),
                                    reps, seed)
        rows.append({"method": reference, "other": other, "probability": point[0],
                     "ci_low": interval[0, 0], "ci_high": interval[1, 0], "n_tasks": len(common)})
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


def per_task_curves(table: pd.DataFrame, value: str, by: str = "method", reps: int = 1000, seed: int = 0,
                    max_points: int = 60) -> pd.DataFrame:
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
        per_run = np.stack([values_on_grid(r["env_step"].to_numpy(), r[value].to_numpy(dtype=float), grid)
                            for _, r in g.sort_values("env_step").groupby("run")])
        for j, step in enumerate(grid):
            col = per_run[:, j]
            col = col[~np.isnan(col)]
            if len(col) == 0:
                continue
            mean, low, high = mean_ci(col, reps, rng)
            rows.append({by: key, "task": task, "env_step": int(step), "mean": mean, "ci_low": low,
                         "ci_high": high, "n": len(col)})
    return pd.DataFrame(rows, columns=[by, "task", "env_step", "mean", "ci_low", "ci_high", "n"])


# ---------------------------------------------------------------------------------------------------
# Ablation grids
# ---------------------------------------------------------------------------------------------------
@dataclass
class AblationGrid:
    """One swept key of one (sweep, agent): points has columns method, value (canonical string), context
    (the variant's other overrides, '' for none)."""

    sweep: str
    agent: str
    key: str
    points: pd.DataFrame


def value_sort_key(value: str):
    """Numbers sort numerically, dash-joined lists by their numbers, anything else as text after them."""
    try:
        return (0, (float(value),), "")
    except ValueError:
        pass
    try:
        return (1, tuple(float(v) for v in value.split("-")), "")
    except ValueError:
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
    configs = {key: [json.loads(c) for c in g["config_values"]]
               for key, g in runs.groupby(["sweep", "agent", "variant"], sort=False)}
    variants = runs.drop_duplicates(["sweep", "agent", "variant"])
    for (sweep, agent), g in variants.groupby(["sweep", "agent"], sort=True):
        parsed = [(row.method, json.loads(row.overrides), configs[(row.sweep, row.agent, row.variant)])
                  for row in g.itertuples()]
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


def ablation_estimates(evals: pd.DataFrame, grid: AblationGrid, steps: list[int], reps: int, seed: int = 0
                       ) -> tuple[pd.DataFrame, int, list[str]]:
    """Final IQM with 95% CI per point of one grid, from the sweep's own runs.

    The step is the largest of `steps` that every point's runs reached (or, if none, the latest step
    that all of them reached). Returns (points + iqm, ci_low, ci_high, n_tasks, n_runs; step; notes on
    runs left out: not yet at the step, dropped to balance runs per task, or points on other task sets).
    """
    sub = evals[(evals["sweep"] == grid.sweep) & evals["method"].isin(grid.points["method"])]
    reach = sub.groupby("method")["env_step"].max()
    common = [s for s in steps if all(reach.get(m, -1) >= s for m in grid.points["method"])]
    step = max(common) if common else int(reach.min())
    scores, not_reached = scores_at_step(sub, step)
    where = f"ablation {grid.sweep or 'nosweep'}/{grid.agent}/{grid.key} at {format_steps(step)} steps"
    notes = []
    if len(not_reached):
        notes.append(f"{where}: {not_reached_text(not_reached, step)}")
    rows, task_sets = [], {}
    for pt in grid.points.itertuples():
        runs = scores[scores["method"] == pt.method]
        if runs.empty:
            continue
        s, tasks, dropped = score_matrix(runs)
        task_sets[pt.method] = tuple(tasks)
        notes += balance_notes(f"{where}, {pt.method}", runs, s.shape[0], dropped)
        point, interval = bootstrap(s, iqm_only, reps, seed)
        rows.append({"method": pt.method, "value": pt.value, "context": pt.context,
                     "iqm": point[0] * RETURN_SCALE, "ci_low": interval[0, 0] * RETURN_SCALE,
                     "ci_high": interval[1, 0] * RETURN_SCALE, "n_tasks": len(tasks), "n_runs": int(s.size)})
    if len(set(task_sets.values())) > 1:
        sizes = ", ".join(f"{m}: {len(t)}" for m, t in sorted(task_sets.items()))
        notes.append(f"{where}: the points average different task sets (tasks per point: {sizes})")
    out = pd.DataFrame(rows, columns=["method", "value", "context", "iqm", "ci_low", "ci_high", "n_tasks",
                                      "n_runs"])
    order = sorted(out["value"].unique(), key=value_sort_key)
    out["order"] = out["value"].map({v: i for i, v in enumerate(order)})
    return out.sort_values(["context", "order"]).drop(columns="order").reset_index(drop=True), step, notes


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
