"""Statistics of scores: the estimators (IQM, median, mean, optimality gap, probability of improvement,
score distributions) and the stratified bootstrap, as pure numpy functions (no tables, no labels, no I/O).

Each aggregate is a `Statistic` with two forms of the same formula: `matrix` on rectangular arrays
(R runs, T tasks[, S steps]), which is what rliable bootstraps (used when every task has the same number of
runs, so the numbers are rliable's own), and `pooled` on B resamples of ragged per-task runs (tasks with
different run counts, where rliable needs a rectangle); both compute the same definitions.
analysis/stats/metrics.py selects the scores these are applied to.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np


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


def bootstrap(cols, stat: Statistic, reps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified-bootstrap estimate of an aggregate with a 95% percentile interval.

    cols: one method's scores per task, a list (T,) of arrays (n_t[, S]), or a tuple of such lists on the
    same tasks (bootstrapped independently, as rliable's StratifiedIndependentBootstrap). stat: the
    aggregate in both forms (see `Statistic`). Returns (point (k,), interval (2, k)); row 0 = low.
    When each input has the same number of runs on all its tasks, its arrays are stacked (R, T[, S]) and
    rliable's `get_interval_estimates` computes both (stat.matrix), as it always did; otherwise the same
    stratified bootstrap runs in numpy (`ragged_bootstrap`, stat.pooled), every run counting.
    With one run on every task of an input the interval is NaN: the bootstrap resamples runs within each
    task, so every resample is the original and the interval would have zero width, a certainty one run
    cannot give. (A single task with one run is fine: it adds its score to every resample.)
    """
    from rliable import library as rly

    inputs = cols if isinstance(cols, tuple) else (cols,)
    counts = [np.array([len(c) for c in x]) for x in inputs]
    if all(c.min() == c.max() for c in counts):
        arrays = tuple(np.stack(x, axis=1) for x in inputs)
        if min(len(a) for a in arrays) < 2:
            point = np.asarray(stat.matrix(*arrays), dtype=float)
            return point, np.full((2, len(point)), np.nan)
        with seeded_global_numpy(seed):
            point, interval = rly.get_interval_estimates(
                {"x": arrays if isinstance(cols, tuple) else arrays[0]}, stat.matrix, reps=reps
            )
        return np.asarray(point["x"], dtype=float), np.asarray(interval["x"], dtype=float)
    if any(c.max() < 2 for c in counts):
        point = pooled_point(inputs, stat.pooled)
        return point, np.full((2, len(point)), np.nan)
    return ragged_bootstrap(inputs, stat.pooled, reps, seed)


def task_starts(counts) -> np.ndarray:
    """Where each task's runs begin when the tasks' runs are laid end to end: counts (T,) -> (T,)."""
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def stratified_indices(counts, reps: int, rng: np.random.Generator) -> np.ndarray:
    """Stratified resampling indices (reps, N), N = sum(counts), into runs laid end to end by task.

    Position k of task t (start_t <= k < start_t + n_t) draws, with replacement, one of that task's own
    n_t runs, so every resample keeps each task's run count and never mixes tasks.
    """
    counts = np.asarray(counts, dtype=np.int64)
    return np.repeat(task_starts(counts), counts) + rng.integers(
        0, np.repeat(counts, counts), size=(reps, int(counts.sum()))
    )


def pooled_point(inputs, func) -> np.ndarray:
    """func on the original scores: inputs as in `ragged_bootstrap` -> (k,)."""
    samples = [(np.concatenate(x, axis=0)[None], np.array([len(c) for c in x])) for x in inputs]
    return np.asarray(func(*samples)[0], dtype=float)


def ragged_bootstrap(
    inputs, func, reps: int, seed: int = 0, chunk: int = 2**18
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified bootstrap for tasks with different run counts (rliable needs equal counts).

    inputs: tuple of per-task score lists (each a list (T,) of arrays (n_t[, S])); each is resampled
    independently (`stratified_indices`, drawn from np.random.default_rng(seed), input after input).
    func maps one (values (B, N[, S]), counts (T,)) pair per input, runs laid end to end by task, to
    (B, k). Returns (func on the original scores (k,), 95% percentile interval (2, k)), the interval as
    arch/rliable's 'percentile' method computes it. Resamples are evaluated in blocks of about `chunk`
    scores, which bounds memory and does not change the numbers.
    """
    rng = np.random.default_rng(seed)
    flats = [np.concatenate(x, axis=0) for x in inputs]
    counts = [np.array([len(c) for c in x]) for x in inputs]
    point = pooled_point(inputs, func)
    idx = [stratified_indices(c, reps, rng) for c in counts]
    block = max(1, chunk // sum(f.size for f in flats))
    stats = np.concatenate(
        [
            np.asarray(func(*[(f[i[a : a + block]], c) for f, i, c in zip(flats, idx, counts)]), dtype=float)
            for a in range(0, reps, block)
        ]
    )
    return point, np.percentile(stats, [2.5, 97.5], axis=0)


# ---------------------------------------------------------------------------------------------------
# Aggregate metrics on (R, T) normalised score matrices (rliable's form) and on pooled scores
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


# The same aggregates on pooled scores: v (B, N[, S]) holds B samples of every run's score with the tasks'
# runs laid end to end (task 0's n_0 runs, then task 1's, ...), counts (T,) the runs per task. Tasks may
# hold different numbers of runs; on equal counts these give the rectangular forms' numbers.
def pooled_final_metric_values(v: np.ndarray, counts) -> np.ndarray:
    """(B, N) -> (B, 4): IQM over all N run x task scores; median and mean of the per-task means, and the
    optimality gap 1 - mean over tasks of each task's mean min(score, 1) (rliable's definitions, which on
    unequal run counts weigh every task alike, except the IQM, which pools every score)."""
    starts, n = task_starts(counts), np.asarray(counts)
    task_means = np.add.reduceat(v, starts, axis=1) / n
    task_capped = np.add.reduceat(np.minimum(v, 1.0), starts, axis=1) / n
    return np.stack(
        [
            iqm(v, axis=1),
            np.median(task_means, axis=1),
            task_means.mean(axis=1),
            1.0 - task_capped.mean(axis=1),
        ],
        axis=1,
    )


def pooled_probability_of_improvement(x: tuple, y: tuple) -> np.ndarray:
    """x = (values (B, Nx), counts (T,)), y likewise on the same tasks -> (B,): per task the share of
    (x run, y run) pairs with x > y, ties 1/2 (Mann-Whitney U / (n_x n_y)), averaged over tasks."""
    (xv, xc), (yv, yc) = x, y
    total = np.zeros(len(xv))
    for xs, nx, ys, ny in zip(task_starts(xc), xc, task_starts(yc), yc):
        a, b = xv[:, xs : xs + nx, None], yv[:, None, ys : ys + ny]
        total += (a > b).mean(axis=(1, 2)) + 0.5 * (a == b).mean(axis=(1, 2))
    return total / len(xc)


@dataclass(frozen=True)
class Statistic:
    """An aggregate in the two forms `bootstrap` uses. matrix: on rectangular arrays (R, T[, S]), one per
    input -> (k,), what rliable bootstraps; pooled: on B resamples, one (values (B, N[, S]), counts (T,))
    pair per input (see above) -> (B, k), for tasks with different run counts."""

    matrix: Callable[..., np.ndarray]
    pooled: Callable[..., np.ndarray]


FINAL_STAT = Statistic(final_metric_values, lambda x: pooled_final_metric_values(*x))
IQM_STAT = Statistic(iqm_only, lambda x: iqm(x[0], axis=1)[:, None])
IQM_PER_STEP_STAT = Statistic(iqm_per_step, lambda x: iqm(x[0], axis=1))
IMPROVEMENT_STAT = Statistic(
    lambda a, b: np.array([probability_of_improvement(a, b)]),
    lambda x, y: pooled_probability_of_improvement(x, y)[:, None],
)


def profile_stat(taus: np.ndarray) -> Statistic:
    """Score distribution at taus: fraction of all run x task scores above each tau."""
    taus = np.asarray(taus)
    return Statistic(lambda s: score_distribution(s, taus), lambda x: (x[0][:, :, None] > taus).mean(axis=1))


# ---------------------------------------------------------------------------------------------------
# Seeds needed
# ---------------------------------------------------------------------------------------------------
def seeds_needed(a: np.ndarray, b: np.ndarray, reps: int = 2000, seed: int = 0, most: int = 50) -> int | None:
    """The fewest seeds n per arm (2 .. `most`) at which the 95% percentile bootstrap interval of
    IQM(a) - IQM(b) excludes 0, with each arm's n values drawn with replacement from the seeds run so far
    (`a`, `b`: one score per seed): the effect observed so far, at more seeds. None when no n up to `most`
    does (no effect to resolve, or one too small for `most` seeds)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    for n in range(2, most + 1):
        diff = iqm(rng.choice(a, (reps, n)), axis=1) - iqm(rng.choice(b, (reps, n)), axis=1)
        low, high = np.percentile(diff, [2.5, 97.5])
        if low > 0 or high < 0:
            return n
    return None
