"""Discover run folders and load them into one tidy table.

A run folder is any folder under RESULTS that holds an `eval.csv` (docs/run-folder.md).
Its identity (agent, task, variant, seed, sweep, overrides) comes from `config.yaml` when present and
otherwise from the sweep layout `[<sweep>/]<agent>/<task>/[<variant>/]seed<k>` (analysis.runs.identity),
so results copied from a cluster without their configs still load.

The tidy table has one row per (run, env_step) that appears in the run's `eval.csv` or `train.csv`
(outer join on env_step): evaluation rows carry `episode_return`, diagnostic rows the train.csv columns.
Run-level columns are repeated on every row:

    run, sweep, agent, variant, method, task, group, seed, state, target_steps, last_eval_step,
    has_config, overrides (JSON {key: value}), config_values (JSON {key: value}, flattened config),
    source (a run started from another's parts, `meta.init` of its config.yaml: `<sweep>:<variant>` of
    the source when a sweep made it, else its folder; '' for a run from scratch), source_parts (the parts
    loaded, `+`-joined, with `; frozen: ...` for the frozen ones; ''),
    repeat_of (the run of another sweep that stands in for this one in cross-sweep results, '' for none)

`overrides` and `config_values` keys drop the `agent.` prefix (`agent.horizon=3` -> `horizon`); values
are canonical strings (`[8, 5]` and `8-5` -> "8-5", booleans "true"/"false").
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from analysis.errors import AnalysisError, shown, text_of, warn
from analysis.runs.identity import latent_label, read_identity
from analysis.runs.repeats import cross_sweep_runs, repeated_runs, warn_locks, warn_repeats
from analysis.runs.task_groups import task_group
from iqrl.runfolder.layout import CHECKPOINT, RESULT_FILES, method_label
from iqrl.runfolder.status import read_status

RUN_FILES = RESULT_FILES
RUN_COLUMNS = (
    "run",
    "sweep",
    "agent",
    "variant",
    "method",
    "task",
    "group",
    "seed",
    "state",
    "target_steps",
    "last_eval_step",
    "has_config",
    "lock",
    "overrides",
    "config_values",
    "source",
    "source_parts",
)
MULTI_TASK = "multi-task"  # what a multi-task run's method label ends with
CACHE_VERSION = 7  # bump when the table's layout changes, to invalidate old caches
CACHE_FILE = "runs.parquet"
CACHE_KEY = b"iqrl_analysis_fingerprint"  # parquet metadata entry holding the fingerprint


# ---------------------------------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------------------------------
def discover_runs(results: Path) -> list[Path]:
    """Every folder under `results` (itself included) holding an eval.csv, sorted; hidden folders skipped."""
    return _walk_runs(results)[0]


def _walk_runs(results: Path) -> tuple[list[Path], list[Path]]:
    """(the folders holding an eval.csv, the folders whose status.json says done but that hold none), each
    sorted; hidden folders and checkpoint folders skipped."""
    found, lost = [], []
    for dirpath, dirnames, filenames in os.walk(results):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "checkpoint")
        if "eval.csv" in filenames:
            found.append(Path(dirpath))
        elif "status.json" in filenames and (read_status(Path(dirpath)) or {}).get("state") == "done":
            lost.append(Path(dirpath))
    return sorted(found), sorted(lost)


def warn_lost(results: Path, lost: list[Path]) -> None:
    """One warning for the run folders that say done but hold no eval.csv (they are left out) that keep a
    checkpoint: its rows are the run's evaluations, and the run's own command writes eval.csv again from it
    (iqrl.runfolder.checkpoints.restore_logs); one for those without one, whose evaluations are lost."""
    saved = [p for p in lost if any((p / CHECKPOINT.parent).glob("ckpt*.pt"))]
    gone = [p for p in lost if p not in saved]

    def listed(runs: list[Path]) -> str:
        return shown([p.relative_to(results).as_posix() or "." for p in runs])

    if saved:
        warn(
            f"{len(saved)} run folder(s) say done but hold no eval.csv, so they are left out: "
            f"{listed(saved)} (re-run the command that trained each, python -m iqrl.train with its "
            "config.yaml's keys and out=<its folder>: it writes eval.csv again, byte for byte, from the "
            "run's last checkpoint)"
        )
    if gone:
        warn(
            f"{len(gone)} run folder(s) say done but hold neither eval.csv nor a checkpoint, so they are "
            f"left out: {listed(gone)} (their evaluations are lost: train them again in another folder)"
        )


def fingerprint(results: Path, run_dirs: list[Path]) -> str:
    """Hash of (relative path, mtime_ns, size) of every run file: changes whenever a run folder does."""
    h = hashlib.sha256(f"v{CACHE_VERSION}|{results.resolve()}".encode())
    for run_dir in run_dirs:
        for name in RUN_FILES:
            path = run_dir / name
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            h.update(f"{path.relative_to(results).as_posix()}|{st.st_mtime_ns}|{st.st_size}\n".encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------
# One run -> rows
# ---------------------------------------------------------------------------------------------------
def load_run(run_dir: Path, results: Path) -> pd.DataFrame:
    """The tidy rows of one run folder (raises ValueError with a reason when it cannot be read). A multi-task
    run (eval.csv with a `task` column, docs/run-folder.md) gives one run per task: `run` is
    `<folder>#<task>`, the method `<agent>[/<variant>] multi-task`, and train.csv's rows join every task's."""
    ident = read_identity(run_dir, results)
    ev = read_evals(run_dir, results)
    if ev.empty:
        raise ValueError("no evaluations yet")
    if ev["env_step"].max() == 0:
        raise ValueError("only its evaluation at env step 0, before any training")
    if "task" not in ev:
        return run_rows(run_dir, results, ident, ev)
    return pd.concat(
        [
            run_rows(run_dir, results, ident, rows.drop(columns="task"), task)
            for task, rows in ev.groupby("task")
        ],
        ignore_index=True,
    )


# eval.csv's columns that a figure scores, each a finite number in every row (`success` only where present),
# and the column whose numbers are rates: the fraction of the evaluation episodes that succeeded, in [0, 1].
SCORED_COLUMNS = ("env_step", "episode_return", "success")
RATE_COLUMNS = ("success",)


#: What read_evals' error tells the user of `make figures` to do.
FIX_FOR_FIGURES = (
    "no figure can score that run; correct or delete the row, or move the run folder out of RESULTS"
)


def read_evals(run_dir: Path, results: Path | None, fix: str = FIX_FOR_FIGURES) -> pd.DataFrame:
    """A run's eval.csv, its scored columns numbers. ValueError when it lacks env_step or episode_return;
    AnalysisError (one line naming the file, relative to `results` when given and under it, the file's line
    and the value, then `fix`) when a scored cell is text, empty, nan or infinite, or a success rate lies
    outside [0, 1]: a score cannot be drawn from it, and leaving the row or the run out would change the
    aggregates without anyone deciding to (docs/figures.md)."""
    path = run_dir / "eval.csv"
    with text_of(path):
        ev = pd.read_csv(path)
    if "env_step" not in ev or "episode_return" not in ev:
        raise ValueError("eval.csv lacks env_step/episode_return")
    scored = [c for c in SCORED_COLUMNS if c in ev]
    raw = pd.read_csv(path, usecols=scored, dtype=str, keep_default_na=False)  # the cells as written
    where = path.relative_to(results).as_posix() if results and path.is_relative_to(results) else str(path)
    for column in scored:
        ev[column] = pd.to_numeric(raw[column].str.strip(), errors="coerce")
        values = ev[column].to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        rate = column in RATE_COLUMNS
        if rate:
            bad |= (values < 0) | (values > 1)
        if bad.any():
            row = int(np.argmax(bad))
            what = "a success rate in [0, 1]" if rate and np.isfinite(values[row]) else "a finite number"
            raise AnalysisError(
                f"{where} line {row + 2}: {column} is {raw[column].iloc[row]!r}, not {what}: {fix}"
            )
    return ev


def numeric_train(tr: pd.DataFrame, path: Path, results: Path) -> pd.DataFrame:
    """train.csv's columns as numbers (nan and inf stand: a diagnostic may be undefined; curves leave nan
    out). AnalysisError (one line naming the file, line and column) for a cell that is text."""
    for column in tr.select_dtypes(include="object").columns:
        numbers = pd.to_numeric(tr[column], errors="coerce")
        text = numbers.isna() & tr[column].notna()
        if text.any():
            row = int(np.argmax(text.to_numpy()))
            where = path.relative_to(results).as_posix()
            raise AnalysisError(
                f"{where} line {row + 2}: {column} is {tr[column].iloc[row]!r}, not a number; correct or "
                "delete the row, or move the run folder out of RESULTS"
            )
        tr[column] = numbers
    return tr


def run_rows(
    run_dir: Path, results: Path, ident: dict, ev: pd.DataFrame, task: str | None = None
) -> pd.DataFrame:
    """The tidy rows of one run's evaluations `ev` joined with its train.csv; `task`: the task of those rows
    in a multi-task run (None: the run's one task)."""
    # a resumed run may repeat a step: keep its last row whole (groupby().last() would mix rows
    # column by column where the last one has a NaN)
    ev = ev.drop_duplicates("env_step", keep="last")
    table = ev
    train_path = run_dir / "train.csv"
    if train_path.exists() and train_path.stat().st_size > 0:
        with text_of(train_path):
            tr = numeric_train(pd.read_csv(train_path), train_path, results)
        if "env_step" in tr and not tr.empty:
            tr = tr.drop_duplicates("env_step", keep="last")
            clash = [c for c in tr.columns if c in ev.columns and c != "env_step"]
            tr = tr.rename(columns={c: f"train_{c}" for c in clash})
            table = ev.merge(tr, on="env_step", how="outer")
    table = table.sort_values("env_step", kind="stable").reset_index(drop=True)
    status = read_status(run_dir) or {}
    target = ident["target_steps"] if ident["target_steps"] is not None else status.get("steps")
    agent, variant = str(ident["agent"]), str(ident["variant"])
    run = run_dir.relative_to(results).as_posix() or "."
    method = method_label(agent, variant) + latent_label(ident["overrides"], ident["latent"])
    if task is not None:  # a multi-task run stands beside the single-task runs of its tasks
        run, method = f"{run}#{task}", f"{method} {MULTI_TASK}"
    task = str(ident["task"]) if task is None else task
    run_cols = {
        "run": run,
        "sweep": str(ident["sweep"]),
        "agent": agent,
        "variant": variant,
        "method": method,
        "task": task,
        "group": task_group(task),
        "seed": int(ident["seed"]),
        "state": str(status.get("state") or "unknown"),
        "target_steps": float(target) if target is not None else math.nan,
        "last_eval_step": int(ev["env_step"].max()),
        "has_config": ident["has_config"],
        "lock": ident["lock"],
        "overrides": json.dumps(ident["overrides"], sort_keys=True),
        "config_values": json.dumps(ident["config_values"], sort_keys=True),
        "source": ident["source"],
        "source_parts": ident["source_parts"],
    }
    for key, value in run_cols.items():
        table[key] = value
    table["env_step"] = table["env_step"].astype(np.int64)
    return table[list(RUN_COLUMNS) + [c for c in table.columns if c not in RUN_COLUMNS]]


def build_table(results: Path, run_dirs: list[Path]) -> pd.DataFrame:
    """Concatenate every readable run; unreadable ones are skipped with one warning naming them."""
    frames, skipped = [], []
    for run_dir in run_dirs:
        try:
            frames.append(load_run(run_dir, results))
        except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError, yaml.YAMLError) as exc:
            skipped.append(f"{run_dir.relative_to(results).as_posix()}: {exc}")
    if skipped:
        warn(f"{len(skipped)} run folder(s) skipped: {shown(skipped, 5, '; ')}")
    if not frames:
        raise AnalysisError(f"no readable run with evaluations under {results}")
    table = pd.concat(frames, ignore_index=True, sort=False)
    return table.sort_values(["method", "task", "seed", "run", "env_step"], kind="stable").reset_index(
        drop=True
    )


# ---------------------------------------------------------------------------------------------------
# Entry point: discover, cache, filter partial runs
# ---------------------------------------------------------------------------------------------------
def write_cache(path: Path, table: pd.DataFrame, key: str) -> None:
    """Write the table as parquet with its fingerprint in the file's metadata (one atomic rename)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), CACHE_KEY: key.encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(arrow, tmp)
    os.replace(tmp, path)


def read_cache(path: Path, key: str) -> pd.DataFrame | None:
    """The cached table when `path` exists and was written for fingerprint `key`, else None."""
    import pyarrow.parquet as pq

    try:
        if (pq.read_schema(path).metadata or {}).get(CACHE_KEY) != key.encode():
            return None
        return pq.read_table(path).to_pandas()
    except (OSError, ValueError):  # missing or unreadable (pyarrow's errors derive from these)
        return None


@dataclass
class LoadInfo:
    n_runs: int
    from_cache: bool
    n_partial: int
    n_excluded: int
    n_duplicates: int = 0
    n_conflicts: int = 0


def load_results(
    results: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    exclude_partial: bool = False,
    per_sweep: bool = False,
) -> tuple[pd.DataFrame, LoadInfo]:
    """Load every run under `results` into the tidy table (see module docstring).

    Runs that repeat the method, task and seed of another run (`repeated_runs`) are left out in two
    steps. Within a sweep they are dropped. Across sweeps they only leave the cross-sweep results: an
    ablation compares its sweep's own runs, and its default variant must stay even where the main sweep
    holds the same runs. Column `repeat_of` names the run that stands in for such a run ('' for none).

    cache_dir: where `runs.parquet` lives (nothing is written under `results`); it is reused only when
        no run file (config/eval/train/status) changed path, mtime or size since it was written.
    exclude_partial: drop runs whose status is not `done`; otherwise they are kept up to their last
        evaluation and a warning says how many there are.
    per_sweep: keep the runs that another sweep's run stands in for (each sweep's own runs, for its
        ablations; `cross_sweep_runs` then gives the rest); by default they are left out.
    Raises AnalysisError when `results` is missing, not a folder, or holds no run.
    """
    root = Path(results)
    if not root.exists():
        raise AnalysisError(f"results folder {root} does not exist")
    if not root.is_dir():
        raise AnalysisError(f"results path {root} is not a folder")
    run_dirs, lost = _walk_runs(root)
    warn_lost(root, lost)
    if not run_dirs:
        raise AnalysisError(f"no run folders (folders with an eval.csv) under {root}")
    key = fingerprint(root, run_dirs)
    table = read_cache(Path(cache_dir) / CACHE_FILE, key) if cache_dir is not None else None
    from_cache = table is not None
    if table is None:
        table = build_table(root, run_dirs)
        if cache_dir is not None:
            write_cache(Path(cache_dir) / CACHE_FILE, table, key)

    within = repeated_runs(table, across_sweeps=False)
    warn_repeats(within, "another run of their sweep", "are left out")
    table = table[~table["run"].isin([r.run for r in within])].reset_index(drop=True)
    across = repeated_runs(table, across_sweeps=True)
    warn_repeats(
        across,
        "a run in another sweep",
        "are left out of the cross-sweep results"
        + (", not of their sweep's ablations," if per_sweep else ""),
    )
    table["repeat_of"] = table["run"].map({r.run: r.kept for r in across}).fillna("")
    if not per_sweep:
        table = cross_sweep_runs(table)
    runs = table.drop_duplicates("run")
    warn_locks(runs)
    partial = runs[runs["state"] != "done"]
    n_excluded = 0
    if len(partial):
        states = ", ".join(f"{n} {s}" for s, n in partial["state"].value_counts().sort_index().items())
        if exclude_partial:
            table = table[table["state"] == "done"].reset_index(drop=True)
            n_excluded = len(partial)
            warn(f"{len(partial)} run(s) not done ({states}) excluded (--exclude-partial)")
            if cross_sweep_runs(table).empty:
                raise AnalysisError(
                    f"no finished run under {root} ({len(partial)} of {len(runs)} are not done)"
                )
        else:
            warn(
                f"{len(partial)} run(s) not done ({states}) included up to their last evaluation "
                f"(use --exclude-partial to drop them)"
            )
    info = LoadInfo(
        n_runs=int(table["run"].nunique()),
        from_cache=from_cache,
        n_partial=len(partial),
        n_excluded=n_excluded,
        n_duplicates=sum(not r.differs for r in within + across),
        n_conflicts=sum(bool(r.differs) for r in within + across),
    )
    return table, info


def eval_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Only the evaluation rows (those with an episode_return)."""
    return table[table["episode_return"].notna()]
