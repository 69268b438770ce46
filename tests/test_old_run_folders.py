"""The run folder is a contract: a folder written by an earlier version of the harness still resumes.

tests/data/run-2a4dcd6-td3 is a tiny td3 run (tests/conftest.py's tiny_argv, seed 4) written by main at
2a4dcd6, before iqrl/core/ was split into rooms (envs, runfolder, config, loop), stopped at env step 700 mid-
episode: its checkpoint, config.yaml, status.json and logs as that version left them. Resumed by today's code
it trains to its budget, keeps the rows written before the stop byte for byte, and ends where the same run
never interrupted ended under that version (tests/data/run-2a4dcd6-td3.uninterrupted-eval.csv).

"Ends where" is bit for bit on a machine of the kind that wrote the folder (its CPU and torch's kernels:
tests/data/<folder>.machine.json), and within float rounding on another: a CPU of another instruction set
(AVX2 against AVX-512) runs other float kernels, whose last bits differ and grow over a few hundred updates
(1e-7 of the returns seen); a resume on one machine is bitwise in every other resume test."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import shutil
from pathlib import Path

import pytest

from iqrl.runfolder.exits import EXIT_BAD_INPUT, EXIT_OK
from iqrl.runfolder.layout import Q_BIAS_COLUMNS, TIME_COLUMNS
from iqrl.train import main

from conftest import tiny_argv

DATA = Path(__file__).parent / "data"


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in csv.DictReader(f)]


def machine() -> dict[str, str]:
    """What decides a CPU run's float kernels: the processor and the instruction set torch dispatches to."""
    import torch

    cpu = next((ln for ln in open("/proc/cpuinfo") if ln.startswith("model name")), ":").split(":", 1)[1]
    return {"cpu": cpu.strip(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}


def assert_ends_as_recorded(mine: list[dict[str, str]], folder: str, name: str) -> None:
    """A resumed run's rows against the rows `folder`'s version wrote never interrupted: equal on a machine of
    the kind that wrote them (the module docstring), else equal in every count and within 1e-5 relative in
    every float."""
    recorded = untimed(DATA / f"{folder}.uninterrupted-{name}.csv")
    made_on = DATA / f"{folder}.machine.json"
    if made_on.exists() and json.loads(made_on.read_text()) == machine():
        assert mine == recorded, name
        return
    assert len(mine) == len(recorded) and all(a.keys() == b.keys() for a, b in zip(mine, recorded)), name
    for a, b in zip(mine, recorded):
        for k in a:
            if a[k] != b[k]:
                x, y = float(a[k]), float(b[k])
                assert "." in a[k] + b[k] and math.isclose(x, y, rel_tol=1e-5), (name, a["env_step"], k, x, y)


def test_a_run_folder_written_before_the_rooms_resumes_to_the_uninterrupted_result(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(DATA / "run-2a4dcd6-td3", run)
    before = rows(run / "eval.csv")
    assert [r["env_step"] for r in before] == ["0", "400"]  # stopped at 700, mid-episode
    # written before eval_reseed: it resumes with the evaluation streams it ran with (LEGACY_VALUES)
    assert main(tiny_argv("td3", run, seed=4, extra=["eval_reseed=false"])) == EXIT_OK
    after = rows(run / "eval.csv")
    # the evaluations after the resume add the Q-bias, which that version did not write
    assert [r["q_bias_steps"] != "" for r in after] == [False, False, True, True]
    after = [without_q_bias(r) for r in after]
    assert after[: len(before)] == before
    mine = [without_q_bias(r) for r in untimed(run / "eval.csv")]
    assert_ends_as_recorded(mine, "run-2a4dcd6-td3", "eval")


def without_q_bias(row: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in row.items() if k not in Q_BIAS_COLUMNS}


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
    700 mid-episode. Its command now (DreamerV3's unclipped rewards: protocol_changes; evaluations from (seed,
    env step): eval_reseed) is refused in one line that says how that version ran, nothing written; with
    eval_reseed=false protocol_changes={} it ends where the same run never interrupted ended under that
    version (tests/data/run-f9987ff-dreamerv3-atari100k.uninterrupted-*.csv): every row of eval.csv and
    train.csv, losses included, but their times and the representation diagnostics added since."""
    run = tmp_path / "run"
    shutil.copytree(DATA / OLD_DV3, run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main([*DV3_ATARI100K, f"out={run}"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    # (written before eval_reseed too: its evaluations ran on from one to the next)
    how = "resume it with eval_reseed=false protocol_changes={} (how that version ran)"
    assert err.startswith("error: ") and how in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert main([*DV3_ATARI100K, f"out={run}", "eval_reseed=false", "protocol_changes={}"]) == EXIT_OK
    for name in ("eval", "train"):
        mine = untimed(run / f"{name}.csv")
        # the representation diagnostics of DreamerV3's encoder embedding, which that version did not write
        added = set(mine[-1]) - set(untimed(DATA / f"{OLD_DV3}.uninterrupted-{name}.csv")[-1])
        assert all(k.startswith(DIAGNOSTIC_PREFIXES) for k in added), added
        assert_ends_as_recorded([{k: v for k, v in r.items() if k not in added} for r in mine], OLD_DV3, name)


#: The train.csv columns of the representation diagnostics (docs/diagnostics.md).
DIAGNOSTIC_PREFIXES = (
    "latent_",
    "encoder_dormant",
    "critic_dormant",
    "actor_dormant",
    "codebook_",
    "obs_state",
)


def untimed(path: Path) -> list[dict[str, str]]:
    """A CSV's rows without the columns that measure time (iqrl.runfolder.layout.TIME_COLUMNS)."""
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in csv.DictReader(f)]


def test_a_run_folder_named_with_a_colon_is_found_and_resumed_by_its_command(tmp_path, monkeypatch):
    """Run folders were named by the task with its `:` (`runs/dqn/minigrid:MiniGrid-Empty-5x5-v0/seed1`); they
    are named `minigrid-MiniGrid-Empty-5x5-v0` now. The command that wrote such a folder, stopped mid-run,
    finds it (no new folder beside it) and resumes it to the uninterrupted twin's evaluations, and another
    seed of it goes beside it; a run with no such folder gets the new name."""
    from iqrl.config.build import build_config
    from iqrl.runfolder.exits import EXIT_INTERRUPTED

    from conftest import TINY_DISCRETE_TASK, stop_after_steps, tiny_run

    monkeypatch.chdir(tmp_path)
    old, new = (Path("runs", "dqn", TINY_DISCRETE_TASK.replace(":", c), "seed1") for c in (":", "-"))
    assert build_config(tiny_run("dqn")).out == str(new)
    assert main([*tiny_run("dqn"), f"out={old}"], should_stop=stop_after_steps(300)) == EXIT_INTERRUPTED
    assert build_config(tiny_run("dqn")).out == str(old)
    assert main(tiny_run("dqn")) == EXIT_OK
    assert not new.exists() and json.loads((old / "status.json").read_text())["state"] == "done"
    assert main(tiny_argv("dqn", tmp_path / "twin")) == EXIT_OK
    assert untimed(old / "eval.csv") == untimed(tmp_path / "twin" / "eval.csv")
    assert build_config(tiny_run("dqn", seed=2)).out == str(old.with_name("seed2"))  # beside its seeds
