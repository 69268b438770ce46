"""What a committed GPU run measured, phase by phase, from its seed folders alone.

A run's loop has two phases: the seed phase (uniform random actions, no update) and, after it, the updating
phase, whose env steps each cost an update's share, an act and a collection. Their rates differ by several
times, so a rate over the whole loop describes neither. Each seed's train.csv rows carry the loop's running
time split (`time_<phase>_s`) and the updates made so far; its status.json the split at the end. The seed
phase is read up to the last train.csv row with no update, the updating phase from there to the end;
evaluation is left out of both rates and counted per evaluation (eval.csv's rows over the split's
`evaluate`), so that a run of 1M env steps can be projected with the run's own evaluation cadence
(config.yaml's `eval_every`).

A run is a learning run only when some evaluation came after an update (a train.csv row at or before the
evaluation's env step with `updates` >= 1): one evaluated only in its seed phase says how fast its loop
went, not how well its agent learns.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from iqrl.runfolder.layout import TIME_SPLIT_PHASES
from iqrl.runfolder.status import read_status
from iqrl.runfolder.yamlfile import read_config

#: The loop's phases a rate counts: all but evaluation, which is counted per evaluation.
LOOP_PHASES = tuple(p for p in TIME_SPLIT_PHASES if p != "evaluate")
#: The run length the projection prices.
PROJECTED_STEPS = 1_000_000


@dataclass(frozen=True)
class SeedPhases:
    """One seed folder's phases: env steps and loop seconds (evaluation left out) of the seed phase and of
    the updating phase, its evaluations' count and seconds, the config's seed phase and evaluation cadence,
    and whether an evaluation came after an update."""

    seed_env_steps: int
    seed_s: float
    updating_env_steps: int
    updating_s: float
    update_s: float
    updates: int
    evaluations: int
    evaluate_s: float
    seed_steps: int
    eval_every: int
    evaluated_after_update: bool


def read_rows(path: Path) -> list[dict]:
    """A CSV file's rows (none where the file is not there)."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def number(row: dict, key: str) -> float:
    """A CSV cell as a float; an empty or missing cell is 0 (the train.csv of the seed phase leaves
    `updates_per_s` empty)."""
    value = row.get(key) or ""
    return float(value) if value.strip() else 0.0


def loop_s(split: dict) -> float:
    """The loop's seconds of a time split, evaluation left out."""
    return sum(float(split.get(p, 0.0)) for p in LOOP_PHASES)


def seed_phases(folder: Path) -> SeedPhases | None:
    """The phases of one seed folder; None where its train.csv rows or status.json carry no time split."""
    status, config = read_status(folder) or {}, read_config(folder) or {}
    split = status.get("time_split")
    train = [r for r in read_rows(folder / "train.csv") if r.get("time_collect_s")]
    if not split or not train or not config:
        return None
    seeding = [r for r in train if number(r, "updates") == 0]
    boundary = seeding[-1] if seeding else {"env_step": "0"}
    seed_split = {p: number(boundary, f"time_{p}_s") for p in LOOP_PHASES}
    evals = [int(float(r["env_step"])) for r in read_rows(folder / "eval.csv")]
    updated = [int(float(r["env_step"])) for r in train if number(r, "updates") >= 1]
    return SeedPhases(
        seed_env_steps=int(number(boundary, "env_step")),
        seed_s=loop_s(seed_split),
        updating_env_steps=int(status.get("env_step", 0)) - int(number(boundary, "env_step")),
        updating_s=loop_s(split) - loop_s(seed_split),
        update_s=float(split.get("update", 0.0)) - seed_split["update"],
        updates=updates_made(
            status, config, int(status.get("env_step", 0)) - int(number(boundary, "env_step"))
        ),
        evaluations=len(evals),
        evaluate_s=float(split.get("evaluate", 0.0)),
        seed_steps=int(config.get("seed_steps") or 0),
        eval_every=int(config.get("eval_every") or 0),
        evaluated_after_update=bool(updated) and any(s >= min(updated) for s in evals),
    )


def updates_made(status: dict, config: dict, updating_env_steps: int) -> int:
    """The updates a seed made: status.json's count, or, where a status predates it, the updating phase's
    env steps times the agent's resolved updates per env step (config.yaml's `meta.updates_per_step`)."""
    if status.get("updates") is not None:
        return int(status["updates"])
    return int(updating_env_steps * float((config.get("meta") or {}).get("updates_per_step") or 0))


@dataclass(frozen=True)
class RunPhases:
    """A K-seed run's phases, its slowest seed's (the group steps together): env steps/s per seed in the
    seed phase and once updating (None where the run did not reach that phase), milliseconds per update of
    the group (its updating phase's update seconds over its updates), the fewest updates a seed made,
    seconds per evaluation,
    the config's seed phase and evaluation cadence, and whether it is a learning run."""

    seed_rate: float | None
    updating_rate: float | None
    update_ms: float | None
    updates: int
    evaluation_s: float | None
    seed_steps: int
    eval_every: int
    seeds: int
    learning: bool

    def hours_per_1m(self) -> float | None:
        """GPU-hours per seed for PROJECTED_STEPS env steps: the seed phase at its rate, the rest at the
        updating rate, and one evaluation every `eval_every` env steps (and one at step 0), the group's
        wall shared by its seeds. None where a phase was not measured."""
        if self.seed_rate is None or self.updating_rate is None or self.evaluation_s is None:
            return None
        wall = self.seed_steps / self.seed_rate + (PROJECTED_STEPS - self.seed_steps) / self.updating_rate
        evaluations = PROJECTED_STEPS // self.eval_every + 1 if self.eval_every else 0
        return (wall + evaluations * self.evaluation_s) / 3600 / self.seeds


def run_phases(folder: Path) -> RunPhases | None:
    """The phases of a run folder's seeds (seed<k>/), or None where none of them has a time split."""
    seeds = [p for p in (seed_phases(s) for s in sorted(folder.glob("seed*"))) if p is not None]
    if not seeds:
        return None

    def slowest(steps: str, seconds: str) -> float | None:
        rates = [getattr(s, steps) / getattr(s, seconds) for s in seeds if getattr(s, seconds) > 0]
        return min(rates) if rates and all(getattr(s, steps) > 0 for s in seeds) else None

    per_eval = [s.evaluate_s / s.evaluations for s in seeds if s.evaluations]
    update_ms = [1000 * s.update_s / s.updates for s in seeds if s.updates]
    return RunPhases(
        seed_rate=slowest("seed_env_steps", "seed_s"),
        updating_rate=slowest("updating_env_steps", "updating_s"),
        update_ms=max(update_ms) if update_ms else None,
        updates=min(s.updates for s in seeds),
        evaluation_s=max(per_eval) if per_eval else None,
        seed_steps=seeds[0].seed_steps,
        eval_every=seeds[0].eval_every,
        seeds=len(seeds),
        learning=all(s.evaluated_after_update for s in seeds),
    )


def rounded(value: float | None, digits: int) -> float | None:
    """`value` rounded for a table (None, and a NaN, stay None)."""
    return None if value is None or math.isnan(value) else round(value, digits)
