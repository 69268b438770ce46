"""The GPU's first command (`bash scripts/gpu_part.sh first`, apps/gpu_report/first.py): its CPU smoke form,
and how it chooses its mode and its learning run. Step budgets, not wall-clock ones: no verdict here depends
on the machine's speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.gpu_report import first
from apps.gpu_report.__main__ import main
from apps.gpu_report.first import group_mode
from apps.gpu_report.learning import RUNS_ARCHIVE, pack_runs, seed_folders, unpacked_runs
from apps.gpu_report.phases import run_phases
from apps.gpu_report.results import copy_runs
from iqrl.bench.gpu_rows import GROUP_GRAPHS_TEST, GROUP_MATCH_TEST
from iqrl.runfolder.csvfile import write_csv
from iqrl.runfolder.layout import TIME_SPLIT_PHASES

REPO = Path(__file__).resolve().parents[1]


def test_the_first_command_runs_in_its_cpu_smoke_form(tmp_path):
    """`SMOKE=1 bash scripts/gpu_part.sh first` without carried wheels: this Python. The paper-size captured
    group test is collected and skipped (no CUDA), the 2-seed tiny group trains to its 400 env steps, seeded
    for 200 and evaluated every 100, so at 300 and 400 after updates (a learning run by its files), and its
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
        phases = run_phases(runs / "iqrl" / "walker-walk")
        assert phases.learning and phases.updates == learn["updates"] and phases.seeds == 2
        for seed in ("seed0", "seed1"):  # run folders less their checkpoints: what `collect` commits
            run = runs / "iqrl" / "walker-walk" / seed
            evals = [int(line.split(",")[0]) for line in (run / "eval.csv").read_text().splitlines()[1:]]
            assert evals == [0, 100, 200, 300, 400]
            assert sorted(p.name for p in run.iterdir()) == [
                "config.yaml",
                "eval.csv",
                "status.json",
                "train.csv",
            ]
    log = (tmp_path / "partfirst.log").read_text()
    assert (
        "first command took" in log and "no evaluation of this run is at a step of the published curve" in log
    )


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


def test_the_gpu_run_evaluates_after_updates_where_the_published_curve_has_points():
    """iqrl walker-walk, K = 4, paper sizes (no size key), 20k env steps evaluated every 5k: its evaluations
    after the 10k seed phase are at 15k and 20k, where the shipped iQRL curve has 93.8 and 194.8."""
    keys = first.learning_keys("true", smoke=False)
    assert keys == ("agent=iqrl", "task=walker-walk", *first.RUN, "compile=true") and first.K == 4
    assert first.evaluation_steps(keys) == [0, 5000, 10000, 15000, 20000] and first.seed_phase(keys) == 10000
    assert first.compared_steps(keys) == [15000, 20000]
    means = {s: round(first.published_band(s)["iQRL [iqrl-icml24-draft]"][0], 1) for s in (15000, 20000)}
    assert means == {15000: 93.8, 20000: 194.8}
    assert first.learning_keys("cudagraphs", smoke=False)[-2:] == ("compile=true", "cudagraphs=true")


def test_the_printout_puts_each_seeds_return_beside_the_published_band(tmp_path):
    band = first.published_band(15000)["iQRL [iqrl-icml24-draft]"]
    for k, rows in enumerate([{15000: 100.0, 20000: 20.0}, {15000: 10.0}]):
        (tmp_path / f"seed{k}").mkdir()
        write_csv(
            tmp_path / f"seed{k}" / "eval.csv",
            [{"env_step": s, "episode_return": r} for s, r in rows.items()],
        )
    lines = first.comparison_lines(tmp_path, [15000, 20000])
    mean, std, n = band
    assert n == 5 and lines[:3] == [
        f"at 15000 env steps: published iQRL [iqrl-icml24-draft]: mean 93.8, band {mean - std:.1f} to "
        f"{mean + std:.1f} (mean ± std over 5 seeds)",
        "  seed 0: 100.0 (inside the band)",
        "  seed 1: 10.0 (outside the band)",
    ]
    assert lines[4:] == [
        "  seed 0: 20.0 (outside the band)",
        "  seed 1: not evaluated there (stopped before 20000 env steps)",
    ]
    assert lines[3].startswith("at 20000 env steps: published iQRL [iqrl-icml24-draft]: mean 194.8, band ")


def test_without_cuda_the_first_command_says_so_and_writes_nothing(tmp_path, monkeypatch, capsys):
    import tempfile

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert main(["part", "first", "--out", str(tmp_path / "out")]) == 2
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"error: the first command trains on a CUDA GPU and torch {torch.__version__} finds none here "
        "(torch.cuda.is_available() is False); on a CPU run it as `--smoke`"
    ]
    assert out == "" and not (tmp_path / "out").exists() and not any((tmp_path / "tmp").iterdir())


@pytest.mark.parametrize(
    "python, said",
    [
        ("2.7", "--python 2.7: the project needs Python >=3.11 (pyproject.toml's requires-python)"),
        ("3", "--python '3': give the GPU machine's Python as major.minor, e.g. 3.12"),
    ],
)
def test_wheels_for_a_python_the_project_does_not_run_on_are_refused(tmp_path, capsys, python, said):
    assert main(["wheels", "--python", python, "--out", str(tmp_path / "whl"), "--no-gl"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {said}"] and not (tmp_path / "whl").exists()


def test_wheels_offline_is_one_line_and_keeps_the_wheels_there(tmp_path, monkeypatch, capsys):
    """No index reachable: pip's last line, not its traceback; the wheel set there stays as it was."""
    for key, value in {"INDEX_URL": "http://127.0.0.1:9/simple", "RETRIES": "0", "TIMEOUT": "1"}.items():
        monkeypatch.setenv(f"PIP_{key}", value)
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    (tmp_path / "whl").mkdir()
    (tmp_path / "whl" / "old-1.0-py3-none-any.whl").write_bytes(b"kept")
    assert main(["wheels", "--python", "3.12", "--out", str(tmp_path / "whl"), "--no-gl"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: pip could not download the wheels for Python 3.12: ERROR: ")
    assert [p.name for p in (tmp_path / "whl").iterdir()] == ["old-1.0-py3-none-any.whl"]


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
