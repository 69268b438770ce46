"""`make sweep` with submitit's LocalExecutor (no Slurm) and a stand-in trainer (tests/fake_trainer.py):
completion, idempotence, SIGKILL of a running job, time-limit checkpoint + requeue (USR2), Ctrl-C, concurrent
sweeps, failures (also without a status from the trainer) in `make status`, DRY output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from slurm.__main__ import main as cli
from slurm.claim import RunLock
from slurm.run import Run, RunFailed, _record_failure
from slurm.state import inspect_run, read_status

from conftest import sigint_as_terminal, wait_for
from sweep_helpers import (
    TESTS,
    assert_resumed_to_the_reference,
    concurrently,
    reference_eval,
    starts,
    sweep,
    use_fake_trainer,
    write_files,
)


@pytest.fixture(autouse=True)
def fake_trainer_env(monkeypatch):
    use_fake_trainer(monkeypatch)


def files(tmp_path, steps=1000, extra="", time_min=10.0, signal_delay_s=5, parallelism=2):
    profile = dict(time_min=time_min, signal_delay_s=signal_delay_s, parallelism=parallelism)
    return write_files(tmp_path, "loc", steps, extra, **profile)


def run_dir(tmp_path, seed):
    return tmp_path / "res" / "loc" / "iqrl" / "walker-walk" / "default" / f"seed{seed}"


def test_local_sweep_completes_and_a_second_one_runs_nothing(tmp_path):
    s, p = files(tmp_path)
    rc, out = sweep(tmp_path, s, p)
    assert rc == 0, out
    assert out.count("finished ") == 3 and "all runs handled (0 failed)" in out
    for seed in range(3):
        d = run_dir(tmp_path, seed)
        assert inspect_run(d, None).kind == "done"
        assert len(starts(d)) == 1
        assert (d / "eval.csv").read_text() == reference_eval(tmp_path, seed, 1000)
        assert not (d / ".claim").exists()
    rc, out = sweep(tmp_path, s, p)
    assert rc == 0 and "3 done (skipped)" in out and "nothing to run" in out
    assert all(len(starts(run_dir(tmp_path, k))) == 1 for k in range(3))


def test_a_finished_run_whose_status_is_unreadable_is_shown_as_such_in_status(tmp_path, capsys):
    """Not "interrupted at env_step 0": its state is unknown, and the line says why."""
    s, p = files(tmp_path)
    assert sweep(tmp_path, s, p)[0] == 0
    status = run_dir(tmp_path, 1) / "status.json"
    status.write_bytes(status.read_bytes()[:-7])  # cut short: a full disk, a copy interrupted
    assert inspect_run(run_dir(tmp_path, 1), None).kind == "interrupted"
    capsys.readouterr()
    assert cli(["status", str(s), "--results", str(tmp_path / "res")]) == 0
    lines = capsys.readouterr().out.split("interrupted:\n", 1)[1].splitlines()
    assert lines[0].startswith(
        f"  iqrl/walker-walk/default/seed1  {status} cannot be read (JSONDecodeError: "
    ) and lines[0].endswith(
        "), so whether the run is done is unknown  no live job (never submitted); the next make sweep "
        "resumes it"
    )


def _wait(cond, what: str, proc=None):
    """An event (a status reached, a lock held), never a number of seconds: conftest.wait_for's long hang
    guard only turns a hang into a failure."""
    wait_for(cond, proc, what)


def test_sigkilled_job_is_reported_and_resumed_by_the_next_sweep(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_TRAINER_EPISODE_S", "0.1")
    s, p = files(tmp_path, steps=3000, parallelism=1)
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(zip(("rc", "out"), sweep(tmp_path, s, p))))
    t.start()
    d = run_dir(tmp_path, 0)
    _wait(lambda: inspect_run(d, None).env_step >= 600 and RunLock(d).held_elsewhere(), "seed0 to run")
    os.kill(RunLock(d).holder()["pid"], signal.SIGKILL)  # no warning, no cleanup
    t.join(120)
    assert (
        result["rc"] == 1
        and "FAILED iqrl/walker-walk/default/seed0: job ended without a result" in result["out"]
    )
    st = inspect_run(d, None)
    assert st.kind == "interrupted" and st.env_step >= 600 and st.stale_claim
    assert cli(["status", str(s), "--results", str(tmp_path / "res")]) == 0
    table = capsys.readouterr().out
    assert "iqrl   default     2        0        0            1       0        0      3" in table
    assert "the next make sweep resumes it" in table
    rc, out = sweep(tmp_path, s, p)
    assert rc == 0 and "2 done (skipped)" in out and "1 to run (1 interrupted)" in out
    lines = starts(d)
    assert len(lines) == 2 and int(lines[1].split()[1]) >= 600  # resumed, not restarted
    assert (d / "eval.csv").read_text() == reference_eval(tmp_path, 0, 3000)
    assert [len(starts(run_dir(tmp_path, k))) for k in (1, 2)] == [1, 1]


def test_time_limit_checkpoints_requeues_and_resumes(tmp_path, monkeypatch):
    """USR2 before the time limit -> Run's flag -> trainer checkpoints after an agent step and returns
    EXIT_INTERRUPTED -> submitit's handler (chained) calls Run.checkpoint and requeues -> resume."""
    monkeypatch.setenv("FAKE_TRAINER_EPISODE_S", "0.1")
    s, p = files(tmp_path, steps=5000, time_min=0.12, signal_delay_s=3, parallelism=3)
    rc, out = sweep(tmp_path, s, p)
    assert rc == 0, out
    for seed in range(3):
        d = run_dir(tmp_path, seed)
        assert_resumed_to_the_reference(tmp_path, d, seed, 5000)
    logs = "".join(f.read_text() for f in (tmp_path / "res/.submitit/loc").glob("*_0_log.*"))
    assert logs.count("Caught signal SIGUSR2") >= 3 and logs.count("Requeued job") >= 3
    assert "[slurm.run] got SIGUSR2: stopping after the current agent step" in logs


def test_concurrent_local_sweeps_start_each_run_once(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_EPISODE_S", "0.05")
    s, p = files(tmp_path, steps=1000)
    outs = concurrently(lambda: sweep(tmp_path, s, p))
    assert all(rc == 0 for rc, _ in outs), outs
    assert [len(starts(run_dir(tmp_path, k))) for k in range(3)] == [1, 1, 1]
    assert sum(o.count("finished ") for _, o in outs) == 3


def test_failed_run_shows_its_error_in_status_and_dry_changes_nothing(tmp_path, capsys):
    s, p = files(tmp_path, extra=", fail: true")
    rc, out = sweep(tmp_path, s, p, dry=True)
    assert rc == 0 and "DRY RUN: nothing claimed or started. Local executor: 2 run(s) at a time" in out
    assert "python -m fake_trainer agent=iqrl task=walker-walk seed=0 steps=1000" in out
    assert not (tmp_path / "res").exists()
    rc, out = sweep(tmp_path, s, p)
    assert rc == 1 and out.count("FAILED ") == 3 and "ValueError: asked to fail" in out
    assert cli(["status", str(s), "--results", str(tmp_path / "res")]) == 0
    text = capsys.readouterr().out
    assert "iqrl   default     0        0        0            0       3        0      3" in text
    assert (
        "failed:\n  iqrl/walker-walk/default/seed0  env_step 0/1000 (0%)  error: ValueError: asked to fail; "
        "log " in text
    )


def test_trainer_exit_without_a_status_is_recorded_as_failed(tmp_path):
    """Exit 2 (bad input, e.g. device=cuda on a CPU node) writes no status.json: Run records the failure, so
    `make status` shows it with an error instead of `missing`."""
    d = tmp_path / "run"
    with pytest.raises(RunFailed, match=r"trainer exit code 2 \(see the job log\)$"):
        Run(str(d), (f"out={d}", "seed=0", "steps=100", "exit=2"), entry="fake_trainer:main")()
    st = inspect_run(d, None)
    assert (st.kind, st.error) == ("failed", "trainer exit code 2 (see the job log)")
    assert not RunLock(d).held_elsewhere()


def test_trainer_that_cannot_start_is_recorded_as_failed(tmp_path):
    d = tmp_path / "run"
    with pytest.raises(AttributeError):
        Run(str(d), (f"out={d}",), entry="fake_trainer:renamed_main")()  # code changed since submission
    assert read_status(d)["state"] == "failed" and "AttributeError" in read_status(d)["error"]


def test_recorded_failure_keeps_the_trainers_error_and_never_touches_a_done_run(tmp_path):
    import fake_trainer

    fake_trainer._status(tmp_path, "failed", 300, 1000, "NonFiniteLoss: nan")
    assert _record_failure(tmp_path, "trainer exit code 1") == "NonFiniteLoss: nan"
    fake_trainer._status(tmp_path, "running", 300, 1000)
    assert _record_failure(tmp_path, "trainer exit code 2") == "trainer exit code 2"
    assert {k: read_status(tmp_path)[k] for k in ("state", "env_step", "steps")} == {
        "state": "failed",
        "env_step": 300,
        "steps": 1000,
    }
    fake_trainer._status(tmp_path, "done", 1000, 1000)
    done = read_status(tmp_path)
    _record_failure(tmp_path, "trainer exit code 2")
    assert read_status(tmp_path) == done


def test_bad_input_exit_shows_as_failed_in_status_with_the_job_log(tmp_path, capsys):
    s, p = files(tmp_path, extra=", exit: 2")
    rc, out = sweep(tmp_path, s, p)
    assert rc == 1 and out.count("FAILED ") == 3 and "trainer exit code 2 (see the job log " in out
    assert cli(["status", str(s), "--results", str(tmp_path / "res")]) == 0
    text = capsys.readouterr().out
    assert "iqrl   default     0        0        0            0       3        0      3" in text
    job = inspect_run(run_dir(tmp_path, 0), None).claim.job_id
    assert f"seed0  env_step 0  error: trainer exit code 2 (see the job log {job}); log " in text


def _ctrl_c(proc: subprocess.Popen, dirs: list[Path]) -> str:
    """Ctrl-C as a terminal sends it: SIGINT to every process of the group, once each run has progress."""
    _wait(lambda: all(inspect_run(d, None).env_step >= 200 for d in dirs), "runs to make progress", proc)
    os.killpg(proc.pid, signal.SIGINT)
    out = proc.communicate(timeout=60)[0]
    _wait(lambda: all(inspect_run(d, None).kind != "running" for d in dirs), "runs and their jobs to stop")
    return out


def _spawn(code: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=TESTS.parent,
        start_new_session=True,
        preexec_fn=sigint_as_terminal,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _checkpoint_step(d: Path) -> int:
    return json.loads((d / "checkpoint" / "ckpt.json").read_text())["env_step"]


def test_sigint_stops_a_run_at_an_episode_boundary_with_a_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_EPISODE_S", "0.2")
    d = tmp_path / "run"
    out = _ctrl_c(
        _spawn(
            f"from slurm.run import Run; print(Run({str(d)!r}, ('out={d}', 'seed=0', 'steps=100000'), "
            "entry='fake_trainer:main')())"
        ),
        [d],
    )
    assert out.rstrip().endswith("interrupted (SIGINT), resumable") and "KeyboardInterrupt" not in out, out
    status = read_status(d)
    assert status["state"] == "interrupted" and status["env_step"] >= 200
    assert _checkpoint_step(d) == status["env_step"]


def test_ctrl_c_during_a_local_sweep_checkpoints_every_running_run(tmp_path, monkeypatch):
    # Episodes longer than the 1 s after which submitit's local controller SIGKILLs a job it has passed a
    # SIGINT to: the jobs must stop themselves (after their current step), the controller must not act on it
    monkeypatch.setenv("FAKE_TRAINER_EPISODE_S", "1.5")
    s, p = files(tmp_path, steps=100000)
    dirs = [run_dir(tmp_path, k) for k in (0, 1)]  # parallelism 2: seeds 0 and 1 run, seed 2 waits
    out = _ctrl_c(
        _spawn(
            f"import sys; from slurm.submit import run_sweep; sys.exit(run_sweep({str(s)!r}, "
            f"{str(tmp_path / 'res')!r}, {str(p)!r}, entry='fake_trainer:main', validator=None))"
        ),
        dirs,
    )
    assert "interrupted: stopping local jobs" in out
    for d in dirs:
        st = inspect_run(d, None)
        assert (st.kind, read_status(d)["state"]) == ("interrupted", "interrupted"), out
        assert _checkpoint_step(d) == st.env_step >= 200
    assert inspect_run(run_dir(tmp_path, 2), None).kind == "missing"


def test_make_sweep_status_and_bench_keep_paths_with_a_space_whole(tmp_path):
    """SWEEP, RESULTS and BENCH_OUT are quoted in the Makefile's commands (as figures' and video's are): a dry
    sweep and `make status` of a sweep file and results folder whose paths hold a space run as make runs
    them; unquoted, each path was split into two arguments."""
    import shlex

    sweep_file, results = tmp_path / "my sweeps" / "tiny.yaml", tmp_path / "my results"
    sweep_file.parent.mkdir()
    sweep_file.write_text("agents: [td3]\ntasks: [cartpole-balance]\nseeds: 1\nsteps: 1000\n")

    def made(target: str, *variables: str) -> list[str]:
        dry = subprocess.run(
            ["make", "-n", "-s", target, *variables],
            cwd=TESTS.parent,
            capture_output=True,
            text=True,
            check=True,
        )
        line = dry.stdout.replace("\\\n", " ").splitlines()[-1]
        return [sys.executable, *shlex.split(line)[1:]]

    paths = [f"SWEEP={sweep_file}", f"RESULTS={results}"]
    sweep_run = f"{results}/tiny/td3/cartpole-balance/default/seed0"  # what the dry sweep lists
    for target, extra, shown in (("sweep", ["DRY=1", "CLUSTER=local"], sweep_run), ("status", [], "\ntd3 ")):
        run = subprocess.run(made(target, *paths, *extra), cwd=TESTS.parent, capture_output=True, text=True)
        assert run.returncode == 0 and shown in run.stdout, run.stderr
    assert not results.exists()
    bench = made("bench", f"BENCH_OUT={tmp_path / 'my bench.json'}")
    assert bench[bench.index("--out") + 1] == str(tmp_path / "my bench.json")


def test_a_sweep_names_task_folders_without_a_colon_and_finds_those_named_with_one(tmp_path, capsys):
    """A task's `:` is `-` in its run folders (iqrl.envs.tasks.task_folder); where an earlier version wrote
    the task's folder with the `:`, its runs are resumed there, and a seed added joins them."""
    from conftest import TINY_DISCRETE_TASK

    sweep_file, results = tmp_path / "d.yaml", tmp_path / "r"
    sweep_file.write_text(f"agents: [dqn]\ntasks: ['{TINY_DISCRETE_TASK}']\nseeds: 2\nsteps: 1000\n")

    def listed() -> list[str]:
        assert cli(["sweep", str(sweep_file), "--results", str(results), "--dry", "--cluster", "local"]) == 0
        out = capsys.readouterr().out.splitlines()
        return [line.strip() for line in out if line.startswith(f"  {results}")]

    task = results / "d" / "dqn" / TINY_DISCRETE_TASK.replace(":", "-")
    assert listed() == [str(task / "default" / f"seed{k}") for k in (0, 1)]
    old = results / "d" / "dqn" / TINY_DISCRETE_TASK / "default" / "seed1"
    old.mkdir(parents=True)
    assert listed() == [str(old.with_name("seed0")), str(old)]
