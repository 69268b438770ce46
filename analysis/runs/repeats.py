"""Runs that repeat the method, task and seed of another run: which one counts, whether the others are the
same experiment (duplicates) or another one under the same label (conflicts), and the warnings that say so;
and the warning for runs installed from different dependency locks. analysis.runs.load applies them."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pandas as pd

from analysis.errors import shown, warn
from analysis.runs.identity import canonical_value
from iqrl.runfolder.config_keys import INERT_REMOVED_KEYS, LEGACY_VALUES, NOT_RESULT_KEYS

# Config keys that say where, on what or under which label a run ran, not what it computed: those the
# trainer's resume check ignores (iqrl.runfolder.config_keys.NOT_RESULT_KEYS), and seed, sweep and variant,
# which only name the run (overrides are not in config_values at all: the resolved values are compared
# instead).
NOT_EXPERIMENT_KEYS = NOT_RESULT_KEYS | {"seed", "sweep", "variant"}


def legacy_filled(values: dict) -> dict:
    """config_values with the keys added since older runs were written filled in with the value those older
    versions behaved as (iqrl.runfolder.config_keys.LEGACY_VALUES), and the keys older configs carried but
    their agent never read dropped (INERT_REMOVED_KEYS), so an old run and a new repeat of it compare
    equal."""
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
