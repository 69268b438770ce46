"""A committed GPU run's rates by phase, its projection to 1M env steps and whether it shows learning
(apps/gpu_report/phases.py), from its seed folders alone."""

from __future__ import annotations

import pytest

from apps.gpu_report import phases
from apps.gpu_report.results import RESULTS
from iqrl.runfolder.csvfile import write_csv
from iqrl.runfolder.status import write_status
from iqrl.runfolder.yamlfile import write_yaml

#: A seed's split at the end of its seed phase (train.csv's row with no update) and at its end.
AT_SEEDED = {"collect": 20.0, "act": 0.0, "update": 0.0, "evaluate": 30.0, "write": 5.0}
AT_END = {"collect": 40.0, "act": 10.0, "update": 60.0, "evaluate": 90.0, "write": 10.0}


def seed_folder(folder, evals=(0, 1000, 2000), seed_steps=1000, eval_every=1000, status_updates=None):
    """A seed with a seed phase of `seed_steps` env steps, then updates to 3000, evaluated at `evals`."""
    folder.mkdir(parents=True)
    config = {"seed_steps": seed_steps, "eval_every": eval_every, "meta": {"updates_per_step": 0.5}}
    write_yaml(folder / "config.yaml", config)
    cells = {f"time_{p}_s": v for p, v in AT_SEEDED.items()}
    train = [{"env_step": 1000, "updates": 0, **cells}, {"env_step": 2000, "updates": 500, **cells}]
    write_csv(folder / "train.csv", train)
    write_csv(folder / "eval.csv", [{"env_step": s, "episode_return": 1.0} for s in evals])
    write_status(folder, "interrupted", 3000, 10**6, time_split=AT_END, updates=status_updates)


def test_the_rates_of_each_phase_and_the_projection_come_from_the_split(tmp_path):
    seed_folder(tmp_path / "run" / "seed0")
    run = phases.run_phases(tmp_path / "run")
    assert run.seed_rate == 1000 / (20 + 5)  # evaluation left out
    assert run.updating_rate == 2000 / ((40 - 20) + 10 + 60 + (10 - 5))
    assert run.updates == 1000 and run.update_ms == 1000 * 60 / 1000  # 2000 env steps at 0.5 per step
    assert run.evaluation_s == 90 / 3 and run.learning
    wall = 1000 / run.seed_rate + (10**6 - 1000) / run.updating_rate + (10**6 // 1000 + 1) * 30
    assert run.hours_per_1m() == pytest.approx(wall / 3600)


def test_a_run_evaluated_only_before_its_first_update_is_not_a_learning_run(tmp_path):
    """Evaluated at 0 and 1000 (the seed phase's end, no update yet): a speed measurement only; the status's
    count of updates, where it has one, is the one used."""
    seed_folder(tmp_path / "run" / "seed0", evals=(0, 1000), status_updates=999)
    run = phases.run_phases(tmp_path / "run")
    assert not run.learning and run.updates == 999


def test_the_slowest_seed_sets_the_groups_rates(tmp_path):
    seed_folder(tmp_path / "run" / "seed0")
    seed_folder(tmp_path / "run" / "seed1")
    slow = tmp_path / "run" / "seed1"
    write_status(slow, "interrupted", 2500, 10**6, time_split=AT_END, updates=None)
    run = phases.run_phases(tmp_path / "run")
    assert run.updating_rate == 1500 / 95 and run.seeds == 2 and run.updates == 750


def test_the_committed_runs_rates_recomputed_by_hand():
    """The 16-seed walker-walk group of 2026-11-27 (seed0's numbers, read off its files): 10,000 env steps
    of seed phase, 3,000 updating at 0.5 updates per env step, two evaluations before any update."""
    run = phases.run_phases(RESULTS / "runs" / "nvidia-h200-2026-11-27" / "iqrl" / "walker-walk")
    assert not run.learning and run.seeds == 16 and run.updates == 1500
    assert round(run.updating_rate, 1) == 26.2  # 3000 / (9.85 collect + 13.9 act + 89.1 update + 1.7 write)
    assert round(run.update_ms, 1) == 59.4  # 89.1 s over 1,500 updates
    assert round(run.hours_per_1m(), 2) == 0.72
    dog = phases.run_phases(RESULTS / "runs" / "nvidia-h200-2026-11-28" / "iqrl" / "dog-run")
    assert not dog.learning and round(dog.updating_rate, 1) == 34.8 and round(dog.hours_per_1m(), 2) == 2.19
