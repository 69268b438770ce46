"""Discover run folders and load them into one tidy table.

A run folder is any folder under RESULTS that holds an `eval.csv` (docs/run-folder.md).
Its identity (agent, task, variant, seed, sweep, overrides) comes from `config.yaml` when present and
otherwise from the sweep layout `[<sweep>/]<agent>/<task>/[<variant>/]seed<k>` (see `identity_from_layout`),
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

import functools
import hashlib
import json
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from analysis.task_groups import task_group
from iqrl.envs.tasks import TASK_GROUPS
from iqrl.runfolder.files import (
    CHECKPOINT,
    INERT_REMOVED_KEYS,
    LEGACY_VALUES,
    NOT_RESULT_KEYS,
    method_label,
    read_status,
)

RUN_FILES = ("config.yaml", "eval.csv", "train.csv", "status.json")
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
CACHE_VERSION = 6  # bump when the table's layout changes, to invalidate old caches
CACHE_FILE = "runs.parquet"
CACHE_KEY = b"iqrl_analysis_fingerprint"  # parquet metadata entry holding the fingerprint
_SEED_DIR = re.compile(r"^seed_?(\d+)$")


class AnalysisError(Exception):
    """Bad input to the analysis (missing/empty results, malformed arguments). One-line message."""


class AnalysisWarning(UserWarning):
    """Something the user should know about the data (partial runs, runs left out, skipped figures)."""


def warn(message: str) -> None:
    warnings.warn(message, AnalysisWarning, stacklevel=2)


# ---------------------------------------------------------------------------------------------------
# Names and values
# ---------------------------------------------------------------------------------------------------
def canonical_value(value) -> str:
    """A canonical string for an override/config value: lists joined by '-', bools lower-case.

    >>> canonical_value([8, 5, 5]), canonical_value("[8,5,5]"), canonical_value("8-5-5"),
    canonical_value(True)
    ('8-5-5', '8-5-5', '8-5-5', 'true')
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            try:
                parsed = yaml.safe_load(text)
            except yaml.YAMLError:
                parsed = None
            if isinstance(parsed, list):
                return canonical_value(parsed)
        if text.lower() in ("true", "false"):
            return text.lower()
        return text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "-".join(canonical_value(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if value is None:
        return "null"
    return str(value)


def override_key(key: str) -> str:
    """'agent.horizon' -> 'horizon'; other dotted keys are kept as they are."""
    key = key.strip()
    return key[len("agent.") :] if key.startswith("agent.") else key


def parse_overrides(overrides: list[str] | None = None, variant: str | None = None) -> dict[str, str]:
    """Overrides as {key: canonical value}; from config.yaml's list when given, else from the variant name.

    Variant names join `key=value` pairs with ',' and may themselves contain ',' inside a value that
    was not dash-joined (`fsq_levels=8,5,horizon=3`): a piece without '=' continues the previous value.

    >>> parse_overrides(["agent.horizon=3", "agent.fsq_levels=[8,5]"])
    {'horizon': '3', 'fsq_levels': '8-5'}
    >>> parse_overrides(variant="fsq_levels=8-5-5-5,use_fsq=false")
    {'fsq_levels': '8-5-5-5', 'use_fsq': 'false'}
    """
    pairs: list[list[str]] = []
    if overrides:
        for item in overrides:
            key, sep, value = str(item).partition("=")
            if sep:
                pairs.append([key.lstrip("+~"), value])
    elif variant and variant != "default":
        for piece in variant.split(","):
            if "=" in piece:
                pairs.append(list(piece.split("=", 1)))
            elif pairs:
                pairs[-1][1] += "," + piece
            else:
                pairs.append([piece, ""])
    out: dict[str, str] = {}
    for key, value in pairs:
        value = value.strip()
        if "," in value and not value.startswith("["):
            value = f"[{value}]"
        out[override_key(key)] = canonical_value(value)
    return out


def _flatten(mapping: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[override_key(name)] = canonical_value(value)
    return out


# ---------------------------------------------------------------------------------------------------
# Discovery and identity
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


def _is_variant_dir(name: str) -> bool:
    return name == "default" or "=" in name


@functools.cache
def known_tasks() -> frozenset[str]:
    """Every task name the core knows: its task groups and dm_control's suite (when importable)."""
    tasks = {t for group in TASK_GROUPS.values() for t in group}
    try:
        from iqrl.envs.dmc import all_tasks

        tasks.update(all_tasks())
    except Exception:  # dm_control missing or broken: the task groups still anchor the layout
        pass
    return frozenset(tasks)


@functools.cache
def known_agents() -> frozenset[str]:
    """The registered agent names (imports torch: only asked for when no known task anchors a layout)."""
    try:
        from iqrl.core.registry import agent_names

        return frozenset(agent_names())
    except Exception:
        return frozenset()


def identity_from_layout(rel_parts: tuple[str, ...]) -> dict:
    """Identity from `[<sweep>/]<agent>/<task>/[<variant>/]seed<k>` (path parts relative to RESULTS).

    The variant folder is optional and may have any name (`small` from `make validate --small`), so the
    parts above the seed folder are anchored, in this order, on: a known task name (the folder above
    seed<k>, else the one above that, whose child is then the variant); a variant folder named `default`
    or holding `=`; a registered agent name (two, else three, folders above seed<k>). Without any anchor
    the folder above seed<k> is the task (no variant).

    >>> identity_from_layout(("abl", "iqrl", "walker-walk", "horizon=3", "seed2"))["variant"]
    'horizon=3'
    >>> identity_from_layout(("validate", "td3", "walker-walk", "small", "seed0"))["agent"]
    'td3'
    """
    if not rel_parts or not _SEED_DIR.match(rel_parts[-1]):
        raise ValueError("the folder name is not seed<k>")
    seed = int(_SEED_DIR.match(rel_parts[-1]).group(1))
    rest = rel_parts[:-1]
    if len(rest) < 2:
        raise ValueError("expected <agent>/<task>/<variant>/seed<k>")
    tasks = known_tasks()
    if rest[-1] in tasks:
        has_variant = False
    elif len(rest) >= 3 and rest[-2] in tasks:
        has_variant = True
    elif _is_variant_dir(rest[-1]):
        has_variant = True
    elif rest[-2] in known_agents():
        has_variant = False
    elif len(rest) >= 3 and rest[-3] in known_agents():
        has_variant = True
    else:
        has_variant = False
    variant = "default"
    if has_variant:
        variant, rest = rest[-1], rest[:-1]
    if len(rest) < 2:
        raise ValueError("expected <agent>/<task>/<variant>/seed<k>")
    return {
        "agent": rest[-2],
        "task": rest[-1],
        "variant": variant,
        "seed": seed,
        "sweep": "/".join(rest[:-2]),
    }


def read_identity(run_dir: Path, results: Path) -> dict:
    """Agent, task, variant, seed, sweep, overrides, config values of one run (config.yaml, else layout)."""
    cfg = {}
    cfg_path = run_dir / "config.yaml"
    if cfg_path.exists():
        cfg = yaml.safe_load(cfg_path.read_text()) or {}
        if not isinstance(cfg, dict):
            cfg = {}
    agent_cfg = cfg.get("agent")
    agent = agent_cfg.get("name") if isinstance(agent_cfg, dict) else agent_cfg
    from_cfg = {
        "agent": agent,
        "task": cfg.get("task"),
        "variant": cfg.get("variant"),
        "seed": cfg.get("seed"),
        "sweep": cfg.get("sweep"),
    }
    layout, layout_error = {}, ""
    if any(v is None or v == "" for v in from_cfg.values()):  # the layout only fills what the config lacks
        try:
            layout = identity_from_layout(run_dir.relative_to(results).parts)
        except ValueError as exc:
            layout_error = str(exc)
    ident = {
        "agent": agent if agent else layout.get("agent"),
        "task": from_cfg["task"] or layout.get("task"),
        "variant": from_cfg["variant"] or layout.get("variant") or "default",
        "seed": from_cfg["seed"] if from_cfg["seed"] is not None else layout.get("seed"),
        "sweep": from_cfg["sweep"] or layout.get("sweep") or "",
        "has_config": bool(cfg),
    }
    missing = [k for k in ("agent", "task", "seed") if ident[k] is None]
    if missing:
        why = layout_error or "config.yaml lacks them"
        raise ValueError(f"cannot tell {', '.join(missing)} ({why})")
    cfg_overrides = cfg.get("overrides")
    ident["overrides"] = parse_overrides(
        cfg_overrides if cfg_overrides else None, None if cfg_overrides else ident["variant"]
    )
    flat = _flatten({k: v for k, v in cfg.items() if k not in ("meta", "overrides")})
    flat.pop("name", None)
    ident["config_values"] = flat
    ident["target_steps"] = cfg.get("steps")
    ident["source"], ident["source_parts"] = source_of(cfg)
    meta = cfg.get("meta")
    ident["lock"] = str(meta.get("lock") or "") if isinstance(meta, dict) else ""  # '' before locks
    return ident


def source_of(cfg: dict) -> tuple[str, str]:
    """(source, source_parts) of a run's config (docs/transfer.md#provenance); ('', '') from scratch."""
    meta = cfg.get("meta")
    init = meta.get("init") if isinstance(meta, dict) else None
    if not isinstance(init, dict):
        return "", ""
    source = f"{init['sweep']}:{init['variant']}" if init.get("sweep") else str(init.get("run") or "")
    parts = "+".join(init.get("parts") or [])
    frozen = "+".join(init.get("frozen") or [])
    return source, parts + (f"; frozen: {frozen}" if frozen else "")


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
    method = method_label(agent, variant)
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


# Config keys that say where, on what or under which label a run ran, not what it computed: those the
# trainer's resume check ignores (iqrl.runfolder.files.NOT_RESULT_KEYS), and seed, sweep and variant, which
# only name the run (overrides are not in config_values at all: the resolved values are compared instead).
NOT_EXPERIMENT_KEYS = NOT_RESULT_KEYS | {"seed", "sweep", "variant"}


def legacy_filled(values: dict) -> dict:
    """config_values with the keys added since older runs were written filled in with the value those older
    versions behaved as (iqrl.runfolder.files.LEGACY_VALUES), and the keys older configs carried but their
    agent never read dropped (INERT_REMOVED_KEYS), so an old run and a new repeat of it compare equal."""
    inert = {k.removeprefix("agent.") for k in INERT_REMOVED_KEYS}
    filled = {**{k.removeprefix("agent."): canonical_value(v) for k, v in LEGACY_VALUES.items()}, **values}
    return {k: v for k, v in filled.items() if k not in inert}


def experiment_differences(a, b) -> list[str]:
    """The keys in which two runs' experiments differ; [] when they are the same experiment.

    a, b: run rows of the tidy table. Two runs with a config.yaml compare every config value but
    NOT_EXPERIMENT_KEYS; a run without one (copied from a cluster without configs) can only be compared by
    what its folder and status.json tell, its variant's overrides. Step budgets are compared whenever both
    are known, as `steps`: a 3000-step smoke run is not a repeat of a 1M-step run.
    """
    if a.has_config and b.has_config:
        ca, cb = (legacy_filled(json.loads(r.config_values)) for r in (a, b))
        diffs = [k for k in sorted((set(ca) | set(cb)) - NOT_EXPERIMENT_KEYS) if ca.get(k) != cb.get(k)]
    else:
        diffs = ["overrides"] if a.overrides != b.overrides else []
    budgets = (a.target_steps, b.target_steps)
    if "steps" not in diffs and not any(math.isnan(x) for x in budgets) and budgets[0] != budgets[1]:
        diffs = sorted(diffs + ["steps"])
    return diffs


@dataclass(frozen=True)
class Repeat:
    """A run left out because `kept` has its method, task and seed; `differs` names the keys in which it
    is another experiment ([] for a duplicate of the same experiment)."""

    run: str
    kept: str
    differs: list[str]


def repeated_runs(table: pd.DataFrame, across_sweeps: bool) -> list[Repeat]:
    """Runs that repeat the method, task and seed of another run (of the same sweep unless across_sweeps).

    The same method, task and seed can sit in two folders: a sweep's default variant beside the main
    sweep's run, a resubmission into another sweep, a smoke run with the same agent and task. They are
    ranked: the largest step budget first (a short run never stands in for a longer one), then a `done`
    run before one that is not, then the furthest last evaluation, then the first path; the first is kept.
    Each other run is a duplicate when it is the same experiment (counting both would weigh that seed
    twice) and a conflict when it is not (averaging them under one label would mix two experiments).
    """
    runs = table.drop_duplicates("run")
    ranked = runs.assign(
        budget=runs["target_steps"].fillna(-1), not_done=runs["state"] != "done"
    ).sort_values(
        ["budget", "not_done", "last_eval_step", "run"], ascending=[False, True, False, True], kind="stable"
    )
    repeats = []
    for _, group in ranked.groupby(
        ["method", "task", "seed"] + ([] if across_sweeps else ["sweep"]), sort=True
    ):
        kept, *others = group.itertuples()
        repeats += [Repeat(other.run, kept.run, experiment_differences(kept, other)) for other in others]
    return repeats


def shown(items: list[str], limit: int = 3, sep: str = ", ") -> str:
    """The first `limit` items joined, then how many more there are (warnings stay one line)."""
    more = f"{sep}... ({len(items) - limit} more)" if len(items) > limit else ""
    return sep.join(items[:limit]) + more


def warn_repeats(repeats: list[Repeat], of_whom: str, outcome: str) -> None:
    """One warning line for duplicates and one for conflicts (naming both folders and the keys)."""
    duplicates = [r.run for r in repeats if not r.differs]
    conflicts = [f"{r.run} (kept {r.kept}; differs in {shown(r.differs, 4)})" for r in repeats if r.differs]
    if duplicates:
        warn(
            f"{len(duplicates)} run(s) repeat the method, task and seed of {of_whom} and {outcome} "
            f"(kept the finished or furthest one of each): {shown(duplicates)}"
        )
    if conflicts:
        warn(
            f"{len(conflicts)} run(s) have the method, task and seed of {of_whom} with another configuration "
            f"and {outcome} (kept the larger step budget, else the finished or furthest run; give such an "
            f"experiment its own variant or results folder): {shown(conflicts)}"
        )


def warn_locks(runs: pd.DataFrame) -> None:
    """One warning when the runs compared were installed from different dependency locks (config.yaml's
    meta.lock, the hash of uv.lock): their numpy, scipy, mujoco, ... may differ, and with them the numbers.
    Runs from before the lock was recorded ('') are counted, not compared."""
    locks = runs.loc[runs["lock"] != "", "lock"].value_counts().sort_index()
    if len(locks) < 2:
        return
    unknown = int((runs["lock"] == "").sum())
    warn(
        f"the runs come from {len(locks)} dependency locks (uv.lock's hash in config.yaml's meta.lock), so "
        f"their package versions may differ: "
        + ", ".join(f"{lock}: {n} run(s)" for lock, n in locks.items())
        + (f"; {unknown} run(s) from before locks were recorded" if unknown else "")
    )


def cross_sweep_runs(table: pd.DataFrame) -> pd.DataFrame:
    """The runs that count in results across sweeps: without those another sweep's run stands in for."""
    return table[table["repeat_of"] == ""].reset_index(drop=True)


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
