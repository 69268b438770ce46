"""Faults a careless user or an unlucky machine meets, each one `error:` line (or a `warning:` line and the
correct behaviour) and nothing lost: seed_steps=0, a budget inside the seed phase, a slip of the exponent in
steps, switches given numbers, keys of the K-seed mode given twice, a killed env worker, another uv.lock on
resume, an installer misspelt, a sweep's budget and device, the GPU report's files, the learning check's
summaries, and two seeds printing at once."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from apps.gpu_report import results
from apps.gpu_report.__main__ import main as gpu_report_main
from iqrl.config.build import build_config
from iqrl.config.run import ConfigError
from iqrl.envs.workers import EnvWorkerDied
from iqrl.multiseed.runs import main as kseed_main
from iqrl.runfolder import provenance
from iqrl.runfolder.errors import print_traceback_for
from iqrl.runfolder.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from iqrl.train import main
from slurm.__main__ import main as slurm_main

from conftest import stop_after_steps, tiny_argv
from test_train import read_csv

REPO = Path(__file__).resolve().parents[1]
# two episodes of 10 agent steps, evaluated at their end
SHORT = ["steps=40", "episode_length=20", "seed_steps=20", "eval_every=40", "eval_episodes=1"]
SHORT += ["diag_every=40", "checkpoint_every=40"]


def error_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


# ---------------------------------------------------------------------------------- the seed phase
@pytest.mark.registry
@pytest.mark.computes
def test_every_agent_trains_from_its_first_step_with_seed_steps_0(agent, tmp_path):
    """seed_steps=0: the first episode is the agent's; its updates wait for the replay's first window of the
    agent's length (those asked for before are not run, as an agent's code waits for its buffer)."""
    out = tmp_path / "run"
    assert main(tiny_argv(agent, out, extra=[*SHORT, "seed_steps=0"])) == EXIT_OK
    assert int(read_csv(out / "train.csv")[-1]["updates"]) > 0


def test_a_budget_inside_the_seed_phase_is_a_warning_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--check", "agent=dr-q", "steps=10000", f"out={out}"]) == EXIT_OK
    assert error_lines(capsys) == [
        "warning: steps=10000 ends inside the seed phase (seed_steps=20000; where not given, dr-q's code's): "
        "every episode acts at random and the run takes no gradient update"
    ]
    assert main(["--check", "agent=dr-q", "steps=20000", f"out={out}"]) == EXIT_OK
    assert error_lines(capsys) == []


# ---------------------------------------------------------------------------------- the config's values
def test_a_budget_past_the_update_cap_at_the_agents_default_rate_is_one_line(tmp_path, capsys):
    """The cap of MAX_UPDATES gradient updates holds at the agent's default rate too, not only at a rate a key
    types; memory_limit_gb, which lets the memory estimate pass, does not lift it."""
    argv = ["--check", "agent=td3", "steps=1000000000000", "memory_limit_gb=1e9", f"out={tmp_path / 'run'}"]
    assert main(argv) == EXIT_BAD_INPUT
    assert error_lines(capsys) == [
        "error: steps=1000000000000 at td3's 0.5 gradient updates per env step asks for 5e+11 updates, more "
        "than the 1,000,000,000 a run may take: lower steps"
    ]
    assert main([*argv[:2], "steps=2000000000", *argv[3:]]) == EXIT_OK  # 1e9 updates: the cap itself


@pytest.mark.parametrize("value", ["-1", "2", "1000", "maybe"])
def test_a_switch_given_a_number_or_a_word_is_refused(value):
    with pytest.raises(
        ConfigError,
        match=f"env_workers is a switch: give env_workers=true or env_workers=false, got '{value}'",
    ):
        build_config(["agent=td3", f"env_workers={value}"])
    with pytest.raises(ConfigError, match="agent.use_fsq is a switch"):
        build_config(["agent=iqrl", f"agent.use_fsq={value}"])


def test_switches_take_true_false_and_their_yaml_spellings():
    for value, meant in (("true", True), ("False", False), ("1", True), ("0", False), ("yes", True)):
        assert build_config(["agent=td3", f"env_workers={value}"]).env_workers is meant


@pytest.mark.parametrize("key", ["seeds=2,3", "out=/tmp/elsewhere"])
def test_the_k_seed_modes_own_keys_given_twice_are_one_line(key, tmp_path, capsys):
    argv = ["agent=td3", "seeds=0,1", f"out={tmp_path / 'root'}", key]
    assert kseed_main(argv) == EXIT_BAD_INPUT
    name = key.partition("=")[0]
    first = next(a for a in argv if a.startswith(f"{name}="))
    assert error_lines(capsys) == [f"error: {name} is given twice ({first} and {key}); give each key once"]
    assert not (tmp_path / "root").exists()


# ---------------------------------------------------------------------------------- the machine
def test_a_killed_env_worker_ends_the_run_in_one_line(tmp_path, capsys):
    """docs/performance.md: a worker that dies is one EnvWorkerDied line (no traceback); the run resumes from
    its last checkpoint when started again."""
    out = tmp_path / "run"
    argv = tiny_argv("td3", out, extra=[*SHORT, "steps=80", "env_workers=true"])
    kill = stop_after_steps(15)  # after a checkpoint at env step 40, mid-episode

    def should_stop() -> bool:
        if kill():
            for p in multiprocessing.active_children():
                if p.name.startswith("cartpole-balance seed"):
                    p.kill()
        return False

    assert main(argv, should_stop=should_stop) == EXIT_FAILED
    lines = error_lines(capsys)
    assert len(lines) == 1 and re.match(
        r"error: run failed: EnvWorkerDied: the env worker cartpole-balance seed 1 \(pid \d+\) was killed by "
        r"SIGKILL: its env is lost; the run resumes from its last checkpoint when started again",
        lines[0],
    ), lines
    assert main(argv) == EXIT_OK  # resumed


def test_a_dead_worker_of_a_run_of_several_envs_is_named_by_the_runs_seed_and_the_envs_index(tmp_path):
    """Its env's seed is drawn from (seed, index): the worker is named by what the user gave."""
    from iqrl.loop.parts import run_env, train_env_seed

    cfg = build_config(
        tiny_argv("dreamerv3", tmp_path / "run", extra=[*SHORT, "env_workers=true", "train_envs=3"])
    )
    env = run_env(cfg, cfg.task, train_env_seed(cfg.seed, 2), None, lane=2)
    try:
        os.kill(env.pid, 9)
        with pytest.raises(EnvWorkerDied) as died:
            env.reset()
    finally:
        env.close()
    assert str(died.value).startswith(
        f"the env worker cartpole-balance seed 1, training env 2 of 3 (pid {env.pid}) was killed by SIGKILL"
    )


def test_a_run_folder_moved_while_its_run_trains_is_never_made_again_at_its_old_path(tmp_path, capsys):
    """The run stops at its next write in one line saying the folder moved, writes nothing more (no `failed`
    status.json at the old path), and resumes where it was put back."""
    out, moved = tmp_path / "run", tmp_path / "moved"
    argv = tiny_argv("td3", out, extra=[*SHORT, "steps=80"])
    move, kept = stop_after_steps(15), {}

    def should_stop() -> bool:
        if move() and not kept:  # mid-episode, after the checkpoint at env step 40
            out.rename(moved)
            kept.update({p: p.read_bytes() for p in moved.rglob("*") if p.is_file()})
        return False

    assert main(argv, should_stop=should_stop) == EXIT_BAD_INPUT
    assert error_lines(capsys) == [
        f"error: {out} was moved or deleted while this run trained (nothing is there now); it stops without "
        f"writing more: put the folder back at {out} and run the same command again to resume it"
    ]
    assert not out.exists() and kept
    assert {p: p.read_bytes() for p in moved.rglob("*") if p.is_file()} == kept
    moved.rename(out)
    assert main(argv) == EXIT_OK


def test_an_env_worker_that_died_prints_no_traceback(capsys):
    print_traceback_for(EnvWorkerDied("the env worker x (pid 1) was killed by SIGKILL"))
    print_traceback_for(ValueError("a bug"))
    err = capsys.readouterr().err
    assert "EnvWorkerDied" not in err and "ValueError: a bug" in err


def test_a_run_resumed_under_another_lock_says_so(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    argv = tiny_argv("td3", out, extra=[*SHORT, "steps=80"])
    assert main(argv, should_stop=stop_after_steps(25)) == EXIT_INTERRUPTED
    started = yaml.safe_load((out / "config.yaml").read_text())
    capsys.readouterr()
    monkeypatch.setattr(provenance, "lock_hash", lambda: "0123456789ab")
    assert main(argv) == EXIT_OK
    old = started["meta"]["lock"]
    assert [line for line in error_lines(capsys) if "uv.lock" in line] == [
        f"warning: {out}: it started under uv.lock {old} and resumes under 0123456789ab: its numbers from "
        "here on may come from other package versions (config.yaml's meta.lock keeps the lock of its start)"
    ]


def test_an_installer_other_than_uv_or_pip_is_one_line_before_anything_is_installed(tmp_path):
    env = {**os.environ, "INSTALLER": "UV", "VENV": str(tmp_path / "venv")}
    done = subprocess.run(
        ["bash", "scripts/install.sh", "base"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stderr == "error: INSTALLER must be uv or pip, got 'UV'\n"
    assert not (tmp_path / "venv").exists()


# ---------------------------------------------------------------------------------- sweeps
def sweep_file(tmp_path: Path, fixed: str = "") -> str:
    path = tmp_path / "s.yaml"
    path.write_text(f"agents: [td3]\ntasks: [cartpole-balance]\nseeds: 1\nsteps: 400\nfixed: {{{fixed}}}\n")
    return str(path)


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--gpu-hours", "700"],
            "--gpu-hours is the budget a dry run's projection is read against: add --dry",
        ),
        (["--dry", "--gpu-hours", "-5"], "--gpu-hours must be a positive number of GPU-hours, got -5"),
        (["--dry", "--gpu-hours", "0"], "--gpu-hours must be a positive number of GPU-hours, got 0"),
        (["--dry", "--gpu-hours", "nan"], "--gpu-hours must be a positive number of GPU-hours, got nan"),
        (["--dry", "--gpu-hours", "inf"], "--gpu-hours must be a positive number of GPU-hours, got inf"),
    ],
)
def test_a_sweeps_gpu_hour_budget_is_a_positive_number_for_a_dry_run(extra, message, tmp_path, capsys):
    argv = ["sweep", sweep_file(tmp_path), "--results", str(tmp_path / "results"), "--cluster", "local"]
    assert slurm_main([*argv, *extra]) == 2
    assert error_lines(capsys) == [
        f"error: {message} (DRY=1)" if "add --dry" in message else f"error: {message}"
    ]
    assert not (tmp_path / "results").exists()


def test_a_dry_sweep_refuses_cuda_keys_on_a_cpu_profile(tmp_path, capsys):
    path = sweep_file(tmp_path, "compile: true, cudagraphs: true")
    argv = ["sweep", path, "--results", str(tmp_path / "results"), "--cluster", "local", "--dry"]
    assert slurm_main(argv) == 2
    [line] = error_lines(capsys)
    assert line.startswith(f"error: {path}: run ") and line.endswith(
        "on profile local (device cpu): cudagraphs=true needs a CUDA device (got device=cpu); use "
        "compile=true only"
    )


# ---------------------------------------------------------------------------------- the GPU report's files
MACHINE = {"part": 2, "kind": "machine", "gpu": "NVIDIA X", "date": "2030-01-01", "smoke": False}
MACHINE |= {"driver": "1", "torch": "2", "cuda": "13", "python": "3.12", "cpu": "c"}
TEST_ROW = {"part": 1, "kind": "test", "test": "tests/test_cuda.py::t", "outcome": "passed"}


def part_file(folder: Path, text: bytes | str, name: str = "part1.jsonl") -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize(
    "content, fault",
    [
        (b"\x89PNG\r\n\x1a\n\x00\xff", "bytes that are not UTF-8 text, not rows of JSON"),
        (
            json.dumps(MACHINE) + "\n\nnot json at all\n" + json.dumps(TEST_ROW) + "\n",
            "line 3: not a JSON row",
        ),
        (json.dumps(MACHINE) + "\n[1, 2]\n", "line 2: a row is a JSON object with a `kind`"),
        (
            json.dumps(MACHINE) + "\n" + json.dumps({"part": 1, "kind": "test"}) + "\n",
            "line 2: a test row without test",
        ),
    ],
)
def test_collect_names_the_file_and_line_of_a_bad_part_file(content, fault, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(results, "RESULTS", tmp_path / "results")  # never the checkout's
    monkeypatch.setattr(results, "PERFORMANCE_MD", tmp_path / "performance.md")
    path = part_file(tmp_path / "parts", content)
    assert gpu_report_main(["collect", str(tmp_path / "parts")]) == 2
    [line] = error_lines(capsys)
    assert line.startswith(f"error: {path}") and fault in line
    assert not (tmp_path / "results").exists() and not (tmp_path / "performance.md").exists()


def test_collect_keeps_the_rows_before_a_last_line_cut_off_mid_write(tmp_path, capsys):
    src = tmp_path / "parts"
    part_file(src, json.dumps(MACHINE) + "\n" + json.dumps(TEST_ROW) + "\n" + '{"part": 1, "kind": "te')
    written = results.collect(src, folder=tmp_path / "results")
    assert [r["kind"] for r in results.read_jsonl(written)] == ["machine", "test"]
    assert error_lines(capsys) == [
        f"warning: {src / 'part1.jsonl'} line 3: cut off mid-row (Unterminated string starting at); left out"
    ]


def test_doc_refuses_a_cut_results_file_and_a_page_without_its_markers(tmp_path):
    folder = tmp_path / "results"
    part_file(folder, json.dumps(MACHINE) + "\n" + '{"part": 1, "kind": "te', "x.jsonl")
    with pytest.raises(ValueError, match=re.escape(f"{folder / 'x.jsonl'} line 2: not a JSON row")):
        results.load_rows(folder)
    part_file(
        folder, json.dumps(MACHINE) + "\n" + json.dumps({"part": 2, "kind": "bench", "key": "k"}), "x.jsonl"
    )
    with pytest.raises(ValueError, match="line 2: a bench row without seeds, packed, updates_per_s"):
        results.load_rows(folder)  # what the section reads of a bench row
    page = tmp_path / "performance.md"
    page.write_text(f"# Performance\n\nthe section\n{results.END}\n")
    with pytest.raises(ValueError, match="lacks the marker lines of its GPU section"):
        results.write_doc([], page)
    assert page.read_text() == f"# Performance\n\nthe section\n{results.END}\n"


@pytest.mark.parametrize("part", [1, 2, 3])
def test_the_smoke_of_each_part_has_no_wall_clock_budget(part, tmp_path, monkeypatch):
    """`make gpu-report SMOKE=1` (tests/test_gpu_report.py) runs every row and stops part 3's runs once each
    has evaluated, whatever the machine's speed: no part of it gets a deadline."""
    from apps.gpu_report import parts

    seen = []
    monkeypatch.setattr(parts, f"part{part}", lambda log, smoke, deadline, **_: seen.append(deadline))
    assert parts.run_part(part, tmp_path, smoke=True) == 0
    assert seen == [float("inf")]


def test_a_run_folder_has_evaluated_once_each_seed_has_a_row_past_step_0(tmp_path):
    from apps.gpu_report.parts import evaluated

    assert not evaluated(tmp_path)  # no seed yet
    for seed, steps in (("seed0", "0,100"), ("seed1", "0")):
        (tmp_path / seed).mkdir()
        rows = "".join(f"{s},1.0\n" for s in steps.split(","))
        (tmp_path / seed / "eval.csv").write_text("env_step,episode_return\n" + rows)
    assert not evaluated(tmp_path)
    (tmp_path / "seed1" / "eval.csv").write_text("env_step,episode_return\n0,1.0\n100,2.0\n")
    assert evaluated(tmp_path)


# ---------------------------------------------------------------------------------- the learning check
def test_the_learning_check_names_a_summarys_non_numeric_cell(tmp_path, monkeypatch, capsys):
    from analysis.figures import learning_check

    for name in learning_check.SECTIONS:
        text = (learning_check.DATA / f"{name}.csv").read_text()
        (tmp_path / f"{name}.csv").write_text(text)
    rows = (tmp_path / "gym_metaworld.csv").read_text().splitlines()
    rows[3] = rows[3].replace(rows[3].split(",")[3], "n/a", 1)
    (tmp_path / "gym_metaworld.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.setattr(learning_check, "DATA", tmp_path)
    assert learning_check.main() == 2
    assert error_lines(capsys) == [
        f"error: {tmp_path / 'gym_metaworld.csv'} line 4: episode_return 'n/a' is not a number"
    ]


# ---------------------------------------------------------------------------------- the terminal
TWO_SEEDS_PRINTING = """
import threading

from iqrl.runfolder.progress import Progress

class Cfg:
    class agent:
        name = "td3"
    task, steps = "walker-walk", 10
    def __init__(self, seed):
        self.seed = seed

seeds = [Progress(Cfg(s), 0, resumed=False) for s in (1, 2)]
threads = [threading.Thread(target=lambda p=p: [p.write(f"eval {i}") for i in range(3000)]) for p in seeds]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def test_two_seeds_printing_at_once_print_whole_lines():
    """The seeds of a K-seed group print from their threads into one stdout, unbuffered where a job's log is
    (PYTHONUNBUFFERED=1: each write a system call, which lets the other thread in): every line stays whole."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, "-c", TWO_SEEDS_PRINTING], cwd=REPO, env=env, capture_output=True, text=True
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 6000
    glued = [line for line in lines if not re.fullmatch(r"\[td3 walker-walk seed[12]\] eval \d+", line)]
    assert not glued, glued[:3]
