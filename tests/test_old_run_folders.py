"""The run folder is a contract: a folder written by an earlier version of the harness still resumes.

tests/data/run-2a4dcd6-td3 is a tiny td3 run (tests/conftest.py's tiny_argv, seed 4) written by main at
2a4dcd6, before iqrl/core/ was split into rooms (envs, runfolder, config, loop), stopped at env step 700 mid-
episode: its checkpoint, config.yaml, status.json and logs as that version left them. Resumed by today's code
it trains to its budget, keeps the rows written before the stop byte for byte, and ends where the same run
never interrupted ended under that version (tests/data/run-2a4dcd6-td3.uninterrupted-eval.csv)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from iqrl.runfolder.exits import EXIT_OK
from iqrl.train import main

from conftest import tiny_argv

DATA = Path(__file__).parent / "data"


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in csv.DictReader(f)]


def test_a_run_folder_written_before_the_rooms_resumes_to_the_uninterrupted_result(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(DATA / "run-2a4dcd6-td3", run)
    before = rows(run / "eval.csv")
    assert [r["env_step"] for r in before] == ["0", "400"]  # stopped at 700, mid-episode
    # written before eval_reseed: it resumes with the evaluation streams it ran with (LEGACY_VALUES)
    assert main(tiny_argv("td3", run, seed=4, extra=["eval_reseed=false"])) == EXIT_OK
    after = rows(run / "eval.csv")
    assert after[: len(before)] == before
    assert after == rows(DATA / "run-2a4dcd6-td3.uninterrupted-eval.csv")
