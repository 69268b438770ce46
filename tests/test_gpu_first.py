"""The GPU's first command (`bash scripts/gpu_part.sh first`, iqrl/gpu_report/first.py): its CPU smoke form,
and how it chooses its mode and its learning run. Step budgets, not wall-clock ones: no verdict here depends
on the machine's speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from iqrl.gpu_report.first import LEARNING_ROTATION, group_mode, learning_run
from iqrl.gpu_report.learning import RUNS_ARCHIVE, pack_runs, seed_folders, unpacked_runs
from iqrl.gpu_report.results import GROUP_GRAPHS_TEST, GROUP_MATCH_TEST, copy_runs
from iqrl.runfolder.files import TIME_SPLIT_PHASES

REPO = Path(__file__).resolve().parents[1]


def test_the_first_command_runs_in_its_cpu_smoke_form(tmp_path):
    """`SMOKE=1 bash scripts/gpu_part.sh first` without carried wheels: this Python. The paper-size captured
    group test is collected and skipped (no CUDA), the 2-seed tiny group trains to its 400 env steps, and its
    row holds both seeds' returns at 400, the loop's rate and the time split; each seed's CSVs come back in
    one archive (a GPU machine returns a few files of a command, none deep in folders)."""
    env = {**os.environ, "SMOKE": "1", "PYTHON": sys.executable, "OUT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        ["bash", "scripts/gpu_part.sh", "first"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "part0.jsonl").read_text().splitlines()]
    assert rows[0]["kind"] == "machine" and rows[0]["smoke"] is True
    tests = {(t["test"], t["outcome"]) for t in rows if t["kind"] == "test"}
    assert (GROUP_GRAPHS_TEST, "skipped") in tests
    (learn,) = [t for t in rows if t["kind"] == "learn"]
    assert learn["first"] and learn["seeds"] == 2 and learn["exit"] == 0 and learn["mode"] == "K-seed"
    assert learn["eval_step"] == 400 and len(learn["returns"]) == 2
    assert set(learn["time_split"]) == set(TIME_SPLIT_PHASES) and learn["loop_env_steps_per_s"] > 0
    assert learn["updates"] > 0  # the rate's updates ran (the fewest any seed made, from its status.json)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part0.jsonl", "partfirst.log", RUNS_ARCHIVE]
    with unpacked_runs(tmp_path) as runs:
        for seed in ("seed0", "seed1"):  # run folders less their checkpoints: what `collect` commits
            run = runs / "iqrl" / "walker-walk" / seed
            assert (run / "eval.csv").read_text().splitlines()[-1].startswith("400,")
            assert sorted(p.name for p in run.iterdir()) == [
                "config.yaml",
                "eval.csv",
                "status.json",
                "train.csv",
            ]
    assert "first command took" in (tmp_path / "partfirst.log").read_text()


def test_the_group_trains_in_the_fastest_mode_its_gpu_verified():
    """Captured only after the paper-size captured-group test passed on this GPU model; compiled after the
    compiled group's test did; else eager."""

    def test(name: str, outcome: str) -> dict:
        return {"part": 1, "kind": "test", "test": name, "outcome": outcome}

    assert group_mode([]) == "false"
    compiled = test(GROUP_MATCH_TEST.format("False"), "passed")
    assert group_mode([compiled]) == "true"
    tiny_graphs = test(GROUP_MATCH_TEST.format("True"), "passed")  # 2 tiny seeds: not enough
    assert group_mode([compiled, tiny_graphs]) == "true"
    assert group_mode([compiled, test(GROUP_GRAPHS_TEST, "passed")]) == "cudagraphs"
    assert group_mode([test(GROUP_GRAPHS_TEST, "failed")]) == "false"


def test_later_first_commands_rotate_the_learning_run_through_the_campaigns_agents():
    learned = {"part": 0, "kind": "learn", "first": True}
    assert learning_run([], smoke=False) == LEARNING_ROTATION[0] == ("iqrl", "walker-walk", ())
    assert learning_run([learned], smoke=False)[:2] == ("iqrl", "dog-run")
    assert learning_run([learned] * len(LEARNING_ROTATION), smoke=False) == LEARNING_ROTATION[0]
    assert learning_run([learned] * 3, smoke=True) == LEARNING_ROTATION[0]
    assert {a for a, _, _ in LEARNING_ROTATION} >= {"iqrl", "dr-q", "simbav2-utd8", "tdmpc2", "td3", "mrq"}


def test_collect_keeps_the_runs_files_beside_the_result_file(tmp_path):
    src = tmp_path / "out" / "runs" / "iqrl" / "walker-walk" / "seed3"
    (src / "checkpoint").mkdir(parents=True)
    (src / "eval.csv").write_text("env_step,episode_return\n0,1.5\n")
    (src / "config.yaml").write_text("task: walker-walk\n")
    (src / "checkpoint" / "ckpt.pt").write_text("large: left out")
    copy_runs(tmp_path / "out" / "runs", tmp_path / "docs" / "runs" / "gpu-x-2026-12-01")
    kept = tmp_path / "docs" / "runs" / "gpu-x-2026-12-01" / "iqrl" / "walker-walk" / "seed3"
    assert (kept / "eval.csv").read_text() == "env_step,episode_return\n0,1.5\n"
    assert sorted(p.name for p in kept.iterdir()) == ["config.yaml", "eval.csv"]


def test_collect_unpacks_the_archive_of_the_runs_in_seed_order(tmp_path):
    """The first command's OUT/runs.tar.gz (pack_runs) is what collect commits, the seeds in seed order
    (seed2 before seed10, as the learn row lists their returns); the archive is left as it came."""
    out = tmp_path / "out"
    for k in (10, 2, 0):
        seed = out / "runs" / "iqrl" / "walker-walk" / f"seed{k}"
        seed.mkdir(parents=True)
        (seed / "eval.csv").write_text(f"env_step,episode_return\n0,{k}.5\n")
    order = ["seed0", "seed2", "seed10"]
    assert [p.name for p in seed_folders(out / "runs" / "iqrl" / "walker-walk")] == order
    archive = pack_runs(out / "runs", out)
    assert archive == out / RUNS_ARCHIVE and not (out / "runs").exists()
    with unpacked_runs(out) as runs:
        copy_runs(runs, tmp_path / "docs" / "runs" / "gpu-x-2026-12-01")
    kept = tmp_path / "docs" / "runs" / "gpu-x-2026-12-01" / "iqrl" / "walker-walk"
    assert [p.name for p in seed_folders(kept)] == order
    assert (kept / "seed10" / "eval.csv").read_text() == "env_step,episode_return\n0,10.5\n"
    assert archive.is_file()
