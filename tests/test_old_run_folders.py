"""The run folder is a contract: a folder written by an earlier version of the harness still resumes.

tests/data/run-2a4dcd6-td3 is a tiny td3 run (tests/conftest.py's tiny_argv, seed 4) written by main at
2a4dcd6, before iqrl/core/ was split into rooms (envs, runfolder, config, loop), stopped at env step 700 mid-
episode: its checkpoint, config.yaml, status.json and logs as that version left them. Resumed by today's code
it trains to its budget, keeps the rows written before the stop byte for byte, and ends where the same run
never interrupted ended under that version (tests/data/run-2a4dcd6-td3.uninterrupted-eval.csv)."""

from __future__ import annotations

import csv
import importlib.util
import shutil
from pathlib import Path

import pytest

from iqrl.runfolder.exits import EXIT_BAD_INPUT, EXIT_OK
from iqrl.runfolder.files import TIME_COLUMNS
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
    assert main(tiny_argv("td3", run, seed=4)) == EXIT_OK
    after = rows(run / "eval.csv")
    assert after[: len(before)] == before
    assert after == rows(DATA / "run-2a4dcd6-td3.uninterrupted-eval.csv")


OLD_DV3 = "run-f9987ff-dreamerv3-atari100k"
# The command that wrote it (tests/conftest.py's tiny dreamerv3 then): MsPacman's rewards of 10 and more
DV3_ATARI100K = [
    "agent=dreamerv3",
    "seed=3",
    "task=atari:MsPacman",
    "protocol=atari100k",
    "image_size=16",
    "frame_stack=1",
    "episode_length=400",
    "seed_steps=200",
    "steps=1200",
    "eval_every=600",
    "eval_episodes=1",
    "diag_every=600",
    "checkpoint_every=1200",
    *[f"agent.{k}={v}" for k, v in dict(size="1m", deter=16, hidden=8, classes=4, stoch=4, blocks=4).items()],
    *[f"agent.{k}={v}" for k, v in dict(units=16, depth=2, mults="[2,3]", bspace=2, bins=15).items()],
    *[
        f"agent.{k}={v}"
        for k, v in dict(batch_size=4, batch_length=4, imag_length=2, train_ratio=8.0).items()
    ],
]


@pytest.mark.skipif(importlib.util.find_spec("ale_py") is None, reason="ale-py is not installed")
def test_a_dreamerv3_atari100k_folder_of_before_its_unclipped_rewards_resumes_as_that_version_ran(
    tmp_path, capsys
):
    """tests/data/run-f9987ff-dreamerv3-atari100k: a tiny dreamerv3 run of MsPacman under atari100k written by
    main at f9987ff, when it learned from rewards clipped to [-1, 1] as every agent there, stopped at env step
    700 mid-episode. Its command now (DreamerV3's unclipped rewards: protocol_changes) is refused in one line
    that says how that version ran, nothing written; with protocol_changes={} it ends where the same run never
    interrupted ended under that version (tests/data/run-f9987ff-dreamerv3-atari100k.uninterrupted-*.csv):
    every row of eval.csv and train.csv, losses included, but their times."""
    run = tmp_path / "run"
    shutil.copytree(DATA / OLD_DV3, run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main([*DV3_ATARI100K, f"out={run}"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "resume it with protocol_changes={} (how that version ran)" in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert main([*DV3_ATARI100K, f"out={run}", "protocol_changes={}"]) == EXIT_OK
    for name in ("eval", "train"):
        assert untimed(run / f"{name}.csv") == untimed(DATA / f"{OLD_DV3}.uninterrupted-{name}.csv"), name


def untimed(path: Path) -> list[dict[str, str]]:
    """A CSV's rows without the columns that measure time (iqrl.runfolder.files.TIME_COLUMNS)."""
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in csv.DictReader(f)]
