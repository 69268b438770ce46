"""Faults at the run folder's boundary (tests/faults.py): the N-th write, fsync or rename of a run raises
(ENOSPC, EIO) or kills the process; the re-run then ends with the eval.csv and train.csv of a run never
interrupted (time columns left out) or refuses in one line, and no finished row is lost. Also: a truncated
latest checkpoint resumes from the previous generation with one warning line, no readable generation is one
error line, and every failure to write is one line without a traceback.

Cost (the CI budget): tiny td3 runs of 600 env steps, 83 counted operations each; every operation of the
checkpoint that first keeps a previous one (write, fsync, the checksums, two renames: 7) and every 12th of the
others (7) is faulted in process, alternating ENOSPC and EIO (14 points); SIGKILL in a child process at 2
points; the K-seed mode at 3 points and a packed job of two runs at 1 point, each in a child process.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from faults import Faults

from iqrl.core.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from iqrl.train import main

from conftest import stop_after_episodes, tiny_argv

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SHORT = [
    "episode_length=100",
    "seed_steps=200",
    "eval_every=200",
    "diag_every=200",
    "checkpoint_every=200",
    "eval_episodes=1",
]
TIME_COLUMNS = {"wall_time_s", "env_steps_per_s", "updates_per_s"}


def argv(out: Path, seed: int = 2) -> list[str]:
    return tiny_argv("td3", out, steps=600, seed=seed, extra=SHORT)


def results(run: Path) -> dict[str, list[dict]]:
    """eval.csv and train.csv without the time columns: what must be identical after any fault."""
    out = {}
    for name in ("eval.csv", "train.csv"):
        with open(run / name) as f:
            out[name] = [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in csv.DictReader(f)]
    return out


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("error:")]


def child_env(**extra) -> dict:
    # Same thread count as this process (conftest): CPU float sums depend on it.
    path = os.pathsep.join([str(TESTS / "faults_site"), str(ROOT), str(TESTS)])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "MUJOCO_GL": "disable", **extra}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, and the operations it counts (the N to fault)."""
    root = tmp_path_factory.mktemp("ref")
    faults = Faults(root, 0, "enospc").install()
    try:
        assert main(argv(root / "run")) == EXIT_OK
    finally:
        faults.uninstall()
    return results(root / "run"), faults.ops


def sampled(ops: list[str]) -> list[int]:
    """Every operation of the second checkpoint (the first that keeps a previous one), and every 12th of
    the others (1-based)."""
    first = [n for n, op in enumerate(ops, 1) if op.startswith("write .ckpt")][1]
    last = next(n for n, op in enumerate(ops, 1) if n > first and op == "rename ckpt.pt")
    return [n for n in range(1, len(ops) + 1) if first <= n <= last or n % 12 == 1]


def test_a_raised_fault_at_each_sampled_operation_fails_in_one_line_and_the_rerun_matches(
    reference, tmp_path, capsys
):
    ref, ops = reference
    points = sampled(ops)
    assert len(points) >= 12 and any("rename ckpt.prev.pt" in ops[n - 1] for n in points)
    outcomes = {}
    for i, n in enumerate(points):
        kind = ("enospc", "eio")[i % 2]
        run = tmp_path / f"n{n}"
        faults = Faults(tmp_path, n, kind).install()
        try:
            rc = main(argv(run))
        finally:
            faults.uninstall()
        err = capsys.readouterr().err
        assert rc == EXIT_FAILED, (n, ops[n - 1], err)
        lines = error_lines(err)
        cause = "no space left on device" if kind == "enospc" else "input/output error"
        assert len(lines) == 1 and f"{cause} while writing {run}" in lines[0], (n, ops[n - 1], err)
        status = json.loads((run / "status.json").read_text())
        assert status["state"] == "failed" and cause in status["error"]
        rc = main(argv(run))
        err = capsys.readouterr().err
        assert rc == EXIT_OK, (n, ops[n - 1], err)
        assert results(run) == ref, (n, ops[n - 1])
        assert not list(run.rglob("*.damaged-*")) and not list(run.rglob("*.tmp"))
        outcomes[ops[n - 1].split(" .")[0]] = outcomes.get(ops[n - 1].split(" .")[0], 0) + 1
    print(f"{len(points)} of {len(ops)} operations faulted, each rerun identical: {outcomes}")


@pytest.mark.parametrize("op", ["write .ckpt.pt", "rename ckpt.prev.pt"])
def test_sigkill_at_an_operation_of_the_second_checkpoint_then_rerun_matches(reference, tmp_path, op):
    """SIGKILL (a child process) while the second checkpoint is written, or between its two renames (no
    ckpt.pt at all for an instant): the rerun resumes from a complete generation."""
    ref, ops = reference
    n = [i for i, o in enumerate(ops, 1) if o.startswith(op)][0 if op.startswith("rename") else 1]
    run = tmp_path / "run"
    env = child_env(IQRL_FAULTS=f"{tmp_path}:{n}:kill:{tmp_path / 'count'}")
    p = subprocess.run([sys.executable, "-m", "iqrl.train", *argv(run)], env=env, capture_output=True)
    assert p.returncode == -signal.SIGKILL, p.stderr.decode()[-2000:]
    assert main(argv(run)) == EXIT_OK
    assert results(run) == ref


def _truncated_latest(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    # stopped at env_step 400 (the 4th episode end) with its second checkpoint: the previous one is at 200
    assert main(argv(run), should_stop=stop_after_episodes(4)) == 3
    ckpt = run / "checkpoint" / "ckpt.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])  # a node crash on a network file system
    return run


def test_a_truncated_latest_checkpoint_resumes_from_the_previous_one_with_one_warning(
    reference, tmp_path, capsys
):
    ref, _ = reference
    run = _truncated_latest(tmp_path)
    before = results(run)
    capsys.readouterr()
    assert main(argv(run)) == EXIT_OK
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and not error_lines(err), err
    assert "ckpt.pt cannot be used (its bytes are not those checksums.json records" in warnings[0]
    assert "set aside as ckpt.pt.damaged-1, resuming from ckpt.prev.pt at env_step 200" in warnings[0]
    assert "200 env steps back" in warnings[0] and "eval.csv.after-200" in warnings[0]
    assert (run / "checkpoint" / "ckpt.pt.damaged-1").exists()
    assert results(run) == ref
    # the rows written after env_step 200 are kept beside, not lost
    with open(run / "eval.csv.after-200") as f:
        aside = [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in csv.DictReader(f)]
    assert aside == [r for r in before["eval.csv"] if int(r["env_step"]) > 200] != []


def test_no_readable_checkpoint_is_one_error_line_and_changes_nothing(tmp_path, capsys):
    run = _truncated_latest(tmp_path)
    prev = run / "checkpoint" / "ckpt.prev.pt"
    prev.write_bytes(prev.read_bytes()[:100])
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    capsys.readouterr()
    assert main(argv(run)) == EXIT_BAD_INPUT
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "no checkpoint generation can be used" in lines[0]
    assert (
        "ckpt.pt: its bytes are not those checksums.json records" in lines[0]
        and "delete the folder" in lines[0]
    )
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"} == files


def test_an_older_run_folder_with_one_generation_resumes(reference, tmp_path):
    ref, _ = reference
    run = tmp_path / "run"
    assert main(argv(run), should_stop=lambda: (run / "checkpoint/ckpt.pt").exists()) == 3
    (run / "checkpoint" / "checksums.json").unlink()  # as an older version left it
    (run / "checkpoint" / "ckpt.prev.pt").unlink(missing_ok=True)
    assert main(argv(run)) == EXIT_OK
    assert results(run) == ref


@pytest.mark.parametrize(
    "out, message",
    [
        ("/dev/null", "/dev/null is a file where a folder is expected"),
        ("/dev/null/run", "/dev/null is a file where a folder is expected"),
        ("/proc/iqrl-run", "out=/proc/iqrl-run cannot be written"),
    ],
)
def test_an_out_that_cannot_hold_a_run_is_refused_in_one_line(out, message, capsys):
    assert main(["agent=td3", "task=cartpole-balance", f"out={out}"]) == EXIT_BAD_INPUT
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and message in lines[0]


def test_a_file_where_the_checkpoint_folder_belongs_and_a_read_only_folder_are_refused(
    tmp_path, capsys, monkeypatch
):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint").write_text("")
    assert main(argv(run)) == EXIT_BAD_INPUT
    assert "checkpoint is a file where a folder is expected" in error_lines(capsys.readouterr().err)[0]
    import tempfile

    def read_only(*a, **k):
        raise OSError(30, "Read-only file system", str(tmp_path / "other"))

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    assert main(argv(tmp_path / "other")) == EXIT_BAD_INPUT
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "read-only file system while writing" in lines[0]
    assert not (tmp_path / "other").exists()  # the probe's folder is removed again


def test_a_full_disk_during_a_checkpoint_says_so_and_iqrl_debug_adds_the_traceback(
    tmp_path, capsys, monkeypatch
):
    """torch reports a failed write as `[enforce fail at inline_container.cc] unexpected pos`: the line says
    what the disk said."""
    run = tmp_path / "run"
    monkeypatch.setenv("IQRL_DEBUG", "1")
    faults = Faults(tmp_path, 1, "enospc")
    real = faults.op
    faults.op = lambda what: what.startswith("write .ckpt") and real(what)  # the first checkpoint's write
    faults.install()
    try:
        assert main(argv(run)) == EXIT_FAILED
    finally:
        faults.uninstall()
    err = capsys.readouterr().err
    assert "Traceback" in err and "unexpected pos" not in err.splitlines()[-1]
    assert err.splitlines()[-1] == (
        f"error: run failed: no space left on device while writing {run / 'checkpoint' / 'ckpt.pt'}"
    )


# ---------------------------------------------------------------------- the K-seed mode and a packed job
KSEED = [a for a in argv(Path("x")) if not a.startswith(("seed=", "out="))] + ["seeds=2,3"]


@pytest.fixture(scope="module")
def kseed_reference(tmp_path_factory):
    from iqrl.multiseed.runs import main as kmain

    root = tmp_path_factory.mktemp("kref")
    faults = Faults(root, 0, "enospc").install()
    try:
        assert kmain([*KSEED, f"out={root}"]) == EXIT_OK
    finally:
        faults.uninstall()
    return {s: results(root / f"seed{s}") for s in (2, 3)}, faults.ops


@pytest.mark.parametrize("op, kind", [("write .ckpt.pt", "enospc"), ("rename ckpt.prev.pt", "kill")])
def test_kseed_mode_after_a_fault_resumes_to_the_uninterrupted_results(kseed_reference, tmp_path, op, kind):
    from iqrl.multiseed.runs import main as kmain

    ref, ops = kseed_reference
    n = [i for i, o in enumerate(ops, 1) if o.startswith(op)][2]  # in the second checkpoint round
    root = tmp_path / "group"
    env = child_env(IQRL_FAULTS=f"{tmp_path}:{n}:{kind}:{tmp_path / 'count'}")
    p = subprocess.run(
        [sys.executable, "-m", "iqrl.multiseed", *KSEED, f"out={root}"],
        env=env,
        capture_output=True,
        text=True,
    )
    if kind == "kill":
        assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    else:
        assert p.returncode == EXIT_FAILED and len(error_lines(p.stderr)) == 1, p.stderr[-2000:]
        assert "no space left on device while writing" in error_lines(p.stderr)[0]
    assert kmain([*KSEED, f"out={root}"]) == EXIT_OK
    assert {s: results(root / f"seed{s}") for s in (2, 3)} == ref


def test_kseed_mode_with_a_truncated_latest_checkpoint_resumes_with_one_warning(
    kseed_reference, tmp_path, capsys
):
    from iqrl.multiseed.runs import main as kmain

    ref, _ = kseed_reference
    root = tmp_path / "group"
    stop = lambda: (root / "seed3/checkpoint/ckpt.prev.pt").exists()  # noqa: E731
    assert kmain([*KSEED, f"out={root}"], should_stop=stop) == 3
    ckpt = root / "seed3" / "checkpoint" / "ckpt.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    capsys.readouterr()
    assert kmain([*KSEED, f"out={root}"]) == EXIT_OK
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "set aside as ckpt.pt.damaged-1" in warnings[0]
    assert {s: results(root / f"seed{s}") for s in (2, 3)} == ref


def test_a_packed_job_of_two_runs_after_a_fault_resumes_to_the_uninterrupted_results(tmp_path):
    """Two runs side by side in one job (slurm/pack.py, process mode; the children share one counter):
    ENOSPC at the second checkpoint's write of whichever run gets there first fails that run only; the job
    run again finishes both, each as if never interrupted."""

    def job(folder: str) -> str:
        dirs = [tmp_path / folder / f"seed{s}" for s in (2, 4)]
        pairs = [(str(d), argv(d, s)) for d, s in zip(dirs, (2, 4))]
        return (
            "import sys; from slurm.pack import Pack; from slurm.run import Run\n"
            f"runs = tuple(Run(d, tuple(a)) for d, a in {pairs})\n"
            "try:\n    print(Pack(runs, threads=2)())\n"
            "except Exception as e:\n    print('job failed:', e)\n"
        )

    # the reference: the same job never interrupted (a packed run's train.csv may differ in the last bits
    # from a run in a job of its own: its children share the job's threads)
    env = child_env()
    p = subprocess.run([sys.executable, "-c", job("ref")], env=env, capture_output=True, text=True, cwd=ROOT)
    assert "job failed" not in p.stdout, p.stdout + p.stderr
    runs, code = [tmp_path / "job" / f"seed{s}" for s in (2, 4)], job("job")
    n = 60  # the two runs' operations interleave: about the second checkpoint of the first to get there
    env = child_env(IQRL_FAULTS=f"{tmp_path / 'job'}:{n}:enospc:{tmp_path / 'count'}")
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    assert "job failed" in p.stdout, p.stdout + p.stderr
    states = sorted(json.loads((d / "status.json").read_text())["state"] for d in runs)
    assert "failed" in states, states
    failed = next(d for d in runs if json.loads((d / "status.json").read_text())["state"] == "failed")
    assert "no space left on device while writing" in (failed / "job.log").read_text()
    assert "Traceback" not in (failed / "job.log").read_text()
    env.pop("IQRL_FAULTS")
    # The job run again trains only the run not done, with the threads it had as one of two (slurm/pack.py
    # fixes each run's share when the job is made: more threads would change the last bits of its sums).
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    assert "job failed" not in p.stdout, p.stdout + p.stderr
    for d in runs:
        assert results(d) == results(tmp_path / "ref" / d.name)
