"""The learning runs of the GPU's first command (apps/gpu_report/first.py) as `collect` commits them, and what
the GPU section of docs/performance.md shows of them.

A run is kept whole but for its checkpoint: each seed's RESULT_FILES (config.yaml, eval.csv, train.csv,
status.json) in docs/gpu-results/runs/<gpu>-<date>/<agent>/<task>/seed<k>/, the sweep layout of
analysis.runs.identity with the result file's stem as the sweep. So analysis.runs.load reads them as ordinary
run folders (`make figures RESULTS=docs/gpu-results/runs REFERENCE=1`), and `committed_runs` summarises each
from them alone: env steps reached, its rates by phase and projection (apps/gpu_report/phases.py), each seed's
return at the last evaluation every seed has and the published mean of the same method and task there;
`draw` puts each against its published curves (docs/gpu-results/learning.png). Analysis and matplotlib are
imported where they are used: the GPU machine imports this module for `keep_run` and `group_split` only.

The first command hands its runs back as one archive, OUT/runs.tar.gz (`pack_runs`): the GPU machines it
ran on return at most 8 files of a command, none more than two folders below OUT, and a group's seeds are
four files each, four folders down (on 2026-11-27 a 16-seed run's folders did not come back for that
reason). `collect` reads the archive, or a `runs` folder beside the part files (`unpacked_runs`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import shutil
import tarfile
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from apps.gpu_report import plan
from apps.gpu_report.phases import RunPhases, run_phases
from iqrl.envs.tasks import task_folder
from iqrl.runfolder.layout import RESULT_FILES, TIME_SPLIT_PHASES
from iqrl.runfolder.status import read_status

if TYPE_CHECKING:
    import pandas as pd

#: The first command's run folders as one file in OUT (`pack_runs`).
RUNS_ARCHIVE = "runs.tar.gz"
#: The figure `doc` writes beside the result files (embedded in docs/performance.md), none without a run.
FIGURE = "learning.png"


def run_folder(root: Path, agent: str, task: str) -> Path:
    """Where a learning run's seed folders go under `root` (OUT/runs, a result file's runs folder):
    <agent>/<task folder> (`iqrl.envs.tasks.task_folder`: `atari-Breakout`; config.yaml names the task)."""
    return root / agent / task_folder(task)


def seed_folders(folder: Path) -> list[Path]:
    """A run folder's seed<k> folders in seed order (seed2 before seed10)."""
    return sorted(folder.glob("seed*"), key=lambda p: (len(p.name), p.name))


def keep_run(folder: Path, dest: Path) -> None:
    """Each seed folder's RESULT_FILES (small; its checkpoint is not) into dest/seed<k>/."""
    for seed in seed_folders(folder):
        for name in RESULT_FILES:
            if (seed / name).is_file():
                (dest / seed.name).mkdir(parents=True, exist_ok=True)
                shutil.copy2(seed / name, dest / seed.name / name)


def group_split(folder: Path) -> dict:
    """The seeds' mean seconds per phase (status.json's time_split) and env steps/s per seed over the loop's
    time (the slowest seed's)."""
    splits = [(read_status(s) or {}).get("time_split") for s in seed_folders(folder)]
    splits = [s for s in splits if s]
    if not splits:
        return {}
    loop = max(sum(s.values()) for s in splits)
    mean = {p: round(sum(s[p] for s in splits) / len(splits), 1) for p in TIME_SPLIT_PHASES}
    per_seed = round(reached(folder) / loop, 1) if loop > 0 else None
    return {"time_split": mean, "loop_env_steps_per_s": per_seed, "updates": updates_made(folder)}


def pack_runs(runs: Path, out: Path) -> Path:
    """The run folders under `runs` (OUT/runs/<agent>/<task>/seed<k>/) as out/RUNS_ARCHIVE, its members under
    `runs/`; `runs` is removed. Returns the archive."""
    path = out / RUNS_ARCHIVE
    with tarfile.open(path, "w:gz") as tar:
        tar.add(runs, arcname="runs")
    shutil.rmtree(runs)
    return path


@contextlib.contextmanager
def unpacked_runs(src: Path) -> Iterator[Path]:
    """The runs folder of a first command's files `src`: src/runs where it is one (unpacked by hand, or a
    CPU smoke's), else src/RUNS_ARCHIVE unpacked into a temporary folder (regular files and folders only:
    tarfile's `data` filter), else a folder that does not exist."""
    if (src / "runs").is_dir() or not (src / RUNS_ARCHIVE).is_file():
        yield src / "runs"
        return
    with tempfile.TemporaryDirectory(prefix="iqrl-gpu-runs-") as tmp:
        with tarfile.open(src / RUNS_ARCHIVE) as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp) / "runs"


def updates_made(folder: Path) -> int | None:
    """The updates every seed of a run folder made (the fewest in its seeds' status.json): that a rate's
    updates ran. None where a status holds no count (written before status.json had one)."""
    counts = [(read_status(s) or {}).get("updates") for s in folder.glob("seed*")]
    return None if not counts or None in counts else min(counts)


def reached(folder: Path) -> int:
    """The env steps every seed of a run folder reached (the slowest seed's status.json)."""
    return min(((read_status(s) or {}).get("env_step", 0) for s in folder.glob("seed*")), default=0)


@dataclass(eq=False)
class LearnedRun:
    """One committed learning run: `sweep` is its result file's stem (<gpu>-<date>), `key` and `mode` as the
    first command's `learn` row names them (plan.LearnRun), `updates` the fewest any seed made (None before
    status.json counted them), `phases` its rates by phase and projection (apps/gpu_report/phases.py),
    `returns` each seed's (in seed order) at `eval_step`, the last evaluation every seed has, and
    `published` {label: mean} of the method's published curves there (`published_means`). `evals`: its
    evaluation rows (analysis.runs.load's table), `band`: its method's published curves on its task
    (analysis.reference.table.select_reference rows)."""

    sweep: str
    gpu: str
    date: str
    folder: Path
    agent: str
    key: str
    mode: str
    seeds: int
    env_steps: int
    updates: int | None
    phases: RunPhases | None
    eval_step: int | None
    returns: list[float]
    published: dict[str, float]
    evals: pd.DataFrame
    band: pd.DataFrame


def published_means(band: pd.DataFrame, step: int) -> dict[str, float]:
    """{label: mean} of each published curve of `band` (select_reference rows: its means over seeds, each
    seed interpolated onto the curve's steps) at `step`, linearly between the curve's steps as
    select_reference interpolates a seed; none for a curve whose steps do not span `step`."""
    out = {}
    for label, curve in band.groupby("label", sort=True):
        curve = curve.sort_values("env_step")
        x, y = curve["env_step"].to_numpy(float), curve["mean"].to_numpy(float)
        if x[0] <= step <= x[-1]:
            out[label] = float(np.interp(step, x, y))
    return out


def committed_runs(folder: Path, rows: list[dict]) -> list[LearnedRun]:
    """The learning runs under folder/runs (results.copy_runs' layout), read by analysis.runs.load, each with
    the GPU and date of its result file's machine row in `rows` (results.load_rows), sorted by result file,
    agent and task. ValueError (one line) for a run analysis cannot read."""
    from analysis.errors import AnalysisError
    from analysis.reference.table import published_algorithm, select_reference
    from analysis.runs.load import discover_runs, eval_rows, load_results

    root = folder / "runs"
    if not root.is_dir() or not discover_runs(root):
        return []
    machines = {Path(r["file"]).stem: r for r in rows if r["kind"] == "machine"}
    try:
        with warnings.catch_warnings():  # a GPU's run stops at its budget: `interrupted` is its state
            warnings.filterwarnings("ignore", message=r".*run\(s\) not done")
            table, _ = load_results(root, per_sweep=True)
        curves = shipped_curves()
    except AnalysisError as e:
        raise ValueError(f"{root}: {e}") from None
    runs = []
    for (sweep, agent, task), evals in eval_rows(table).groupby(["sweep", "agent", "task"], sort=True):
        path = root / Path(evals["run"].iloc[0]).parent
        config = evals["config_values"].iloc[0]
        keys = tuple(
            f"{k}={v}" for k, v in json.loads(config).items() if k in ("compile", "cudagraphs", "obs")
        )
        run = plan.LearnRun(agent, task, keys, seeds=evals["seed"].nunique())
        steps = evals.pivot_table(index="env_step", columns="seed", values="episode_return").dropna()
        step = int(steps.index.max()) if len(steps) else None
        name = published_algorithm(agent, pixels="obs=pixels" in keys)
        band = select_reference(curves, [task])
        band = band[band["algorithm"] == name].reset_index(drop=True)
        machine = machines.get(sweep, {})
        runs.append(
            LearnedRun(
                sweep=sweep,
                gpu=machine.get("gpu") or sweep,
                date=machine.get("date", "?"),
                folder=path,
                agent=agent,
                key=run.key,
                mode=run.mode,
                seeds=run.seeds,
                env_steps=reached(path),
                updates=updates_made(path),
                phases=run_phases(path),
                eval_step=step,
                returns=[] if step is None else [float(r) for r in steps.loc[step]],
                published={} if step is None else published_means(band, step),
                evals=evals[["seed", "env_step", "episode_return"]].reset_index(drop=True),
                band=band,
            )
        )
    return runs


@functools.cache
def shipped_curves():
    """The published curves `make figures REFERENCE=1` draws: every table that ships in
    analysis/reference/data (read once a process)."""
    from analysis.reference.overlays import gather_overlays
    from analysis.reference.table import SHIPPED

    return gather_overlays(SHIPPED, {}).curves


def draw(runs: list[LearnedRun], path: Path) -> Path:
    """One panel per run: each seed's evaluation returns (thin), their mean at the steps every seed has
    (thick), and the published curves of its method on its task up to its last evaluation (mean ± std over
    their seeds, analysis.figures.plots.published_band); titled with its GPU, date, mode and K. Written as
    `path` (PNG)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from analysis.figures import plots
    from analysis.stats.metrics import format_steps

    plots.setup_style()
    ncols = min(len(runs), 2)
    nrows = math.ceil(len(runs) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7.0 * ncols, 5.0 * nrows), squeeze=False)
    for ax in axes.flat[len(runs) :]:
        ax.set_visible(False)
    colors = plots.method_colors(sorted({r.agent for r in runs}))
    for ax, run in zip(axes.flat, runs):
        color = colors[run.agent]
        for _, seed in run.evals.groupby("seed"):
            ax.plot(seed["env_step"], seed["episode_return"], color=color, lw=0.8, alpha=0.35, zorder=3)
        mean = run.evals.pivot_table(index="env_step", columns="seed", values="episode_return").dropna()
        ax.plot(mean.index, mean.mean(axis=1), "o-", color=color, lw=2.4, ms=4, zorder=4)
        handles = [Line2D([], [], color=color, lw=0.8, alpha=0.5), Line2D([], [], color=color, lw=2.4)]
        labels = ["each seed", f"mean of the {run.seeds} seeds"]
        last = run.evals["env_step"].max()
        for label, curve in run.band[run.band["env_step"] <= last].groupby("label", sort=True):
            handles.append(plots.published_band(ax, curve, "0.35"))
            labels.append(f"published {label}: mean ± std over {int(curve['n_seeds'].max())} seeds")
        if len(handles) == 2:
            handles.append(Line2D([], [], ls="none"))
            labels.append(f"no published curve of this method and task up to {format_steps(last)} env steps")
        ax.set_title(f"{run.gpu}, {run.date}\n{run.key}: {run.mode}, K = {run.seeds}", fontsize=10)
        ax.xaxis.set_major_formatter(plots.steps_formatter())
        ax.set_xlabel(plots.STEPS_LABEL)
        ax.set_ylabel(f"{plots.RETURN_LABEL} (evaluation)")
        ax.legend(handles, labels, loc="upper left", fontsize=8, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
