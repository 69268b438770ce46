"""Faults at the run folder's boundary (tests/faults.py): the N-th write, fsync or rename of a run raises
(ENOSPC, EIO) or kills the process; the re-run then ends with the eval.csv and train.csv of a run never
interrupted (time columns left out) or refuses in one line, and no finished row is lost. Also: a truncated
latest checkpoint resumes from the previous generation with one warning line, no readable generation is one
error line, and every failure to write is one line without a traceback.

Cost (the CI budget): tiny td3 runs of 600 env steps, 95 counted operations each; every operation of the
checkpoint that first keeps a previous one (write, fsync, the checksums, two renames: 7) and every 12th of the
others (7) is faulted in process, alternating ENOSPC and EIO (14 points); SIGKILL in a child process at 2
points; the K-seed mode at 3 points and a packed job of two runs at 1 point, each in a child process.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from faults import Faults, append, flip, only, truncate

from iqrl.config.build import layered
from iqrl.runfolder import checkpoints
from iqrl.runfolder.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from iqrl.runfolder.layout import TIME_COLUMNS
from iqrl.runfolder.status import write_status
from iqrl.train import main

from conftest import stop_after_steps, tiny_argv

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
    """The uninterrupted run's results, the operations it counts (the N to fault), and its folder."""
    root = tmp_path_factory.mktemp("ref")
    faults = Faults(root, 0, "enospc").install()
    try:
        assert main(argv(root / "run")) == EXIT_OK
    finally:
        faults.uninstall()
    return results(root / "run"), faults.ops, root / "run"


def test_the_run_folders_writes_depend_on_the_env_step_alone_not_on_when_an_evaluation_beside_ends(
    tmp_path, monkeypatch
):
    """The operations counted here are the same whether each evaluation beside training ends before the next
    agent step or only when the loop waits for it (at the next evaluation or checkpoint), and so are the
    results: the N-th operation of one run is the N-th of any other, which the tests below fault."""
    from iqrl.loop import trainer
    from iqrl.loop.beside import EvaluationBeside, wait_on

    class Early(EvaluationBeside):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            wait_on(self.finished)

    class Late(EvaluationBeside):  # its episodes start when the loop first asks for its result
        def __init__(self, *args, **kwargs):
            self.gate = threading.Event()
            super().__init__(*args, **kwargs)

        def _evaluate(self, *args) -> None:
            self.gate.wait()
            super()._evaluate(*args)

        def result(self, agent):
            self.gate.set()
            return super().result(agent)

        def stop(self) -> None:
            self.gate.set()
            super().stop()

    def same(op: str) -> str:  # a temporary file's random part left out
        return re.sub(r"\.[^.]+\.tmp$", ".tmp", op)

    seen = {}
    for name, beside in (("early", Early), ("late", Late)):
        monkeypatch.setattr(trainer, "EvaluationBeside", beside)
        faults = Faults(tmp_path / name, 0, "enospc").install()
        try:
            assert main(argv(tmp_path / name / "run")) == EXIT_OK
        finally:
            faults.uninstall()
        seen[name] = faults.ops, results(tmp_path / name / "run")
    assert len(seen["late"][1]["eval.csv"]) == 4  # env steps 0 (in the loop), then 200, 400, 600 beside it
    assert [same(op) for op in seen["early"][0]] == [same(op) for op in seen["late"][0]]
    assert seen["early"][1] == seen["late"][1]


def sampled(ops: list[str]) -> list[int]:
    """Every operation of the second checkpoint (the first that keeps a previous one), and every 12th of
    the others (1-based)."""
    first = [n for n, op in enumerate(ops, 1) if op.startswith("write .ckpt")][1]
    last = next(n for n, op in enumerate(ops, 1) if n > first and op == "rename ckpt.pt")
    return [n for n in range(1, len(ops) + 1) if first <= n <= last or n % 12 == 1]


def test_a_raised_fault_at_each_sampled_operation_fails_in_one_line_and_the_rerun_matches(
    reference, tmp_path, capsys
):
    ref, ops, _ = reference
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
    ref, ops, _ = reference
    n = [i for i, o in enumerate(ops, 1) if o.startswith(op)][0 if op.startswith("rename") else 1]
    run = tmp_path / "run"
    env = child_env(IQRL_FAULTS=f"{tmp_path}:{n}:kill:{tmp_path / 'count'}")
    p = subprocess.run([sys.executable, "-m", "iqrl.train", *argv(run)], env=env, capture_output=True)
    assert p.returncode == -signal.SIGKILL, p.stderr.decode()[-2000:]
    assert main(argv(run)) == EXIT_OK
    assert results(run) == ref


# ---------------------------------------------------------------------- checkpoint tampering
DAMAGE = {"flip": flip, "truncate": truncate, "append": append, "flip+append": lambda p: (flip(p), append(p))}
RECORD = {
    "intact": lambda p: None,
    "missing": lambda p: p.unlink(),
    "garbage": lambda p: p.write_text('{"ckpt.pt": {"size": "big"'),
}
WHY = {  # what the warning says of a damaged latest, by the state of checksums.json
    "intact": "its bytes are not those checksums.json records (size or SHA-256 differ)",
    "missing": "checksums.json is missing, and its zip member archive/data",
    "garbage": "checksums.json is not JSON, and its zip member archive/data",
}


def tamper(run: Path, latest: str | None, record: str, previous: str | None = None) -> None:
    folder = run / "checkpoint"
    for name, damage in (("ckpt.pt", latest), ("ckpt.prev.pt", previous)):
        if damage:
            DAMAGE[damage](folder / name)
    RECORD[record](folder / "checksums.json")


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> Path:
    """A run stopped at env_step 400 (the 4th episode end) with its second checkpoint: the previous one is at
    200. Each test tampers with a copy."""
    run = tmp_path_factory.mktemp("stopped") / "run"
    assert main(argv(run), should_stop=stop_after_steps(200)) == 3
    return run


def copy_of(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / run.name))


def snapshot(run: Path, skip=(".lock",)) -> dict[Path, bytes]:
    """Every file's bytes (the lock file left out: a refused trainer may make it)."""
    return {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name not in skip}


def warning_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def vouched(run: Path) -> bool:
    """checksums.json vouches for both generations by size and SHA-256."""
    folder = run / "checkpoint"
    record = checkpoints.read_record(folder)
    sums = [checkpoints._file_sums(folder / n) for n in ("ckpt.pt", "ckpt.prev.pt")]
    return not record.problem and all(record.vouches_for(s) for s in sums)


@pytest.mark.parametrize(
    "damage, record",
    [
        ("flip", "intact"),
        ("truncate", "intact"),
        ("append", "intact"),
        ("flip+append", "intact"),
        ("flip+append", "missing"),
        ("flip+append", "garbage"),
        (None, "missing"),
        (None, "garbage"),
    ],
)
def test_a_tampered_checkpoint_falls_back_with_a_warning_and_the_run_ends_as_never_interrupted(
    reference, stopped, tmp_path, capsys, damage, record
):
    """A latest generation whose bytes are not the recorded ones (or, with no usable record, whose zip
    CRC-32s fail) is set aside and the run resumes from the previous one; a record missing or garbage is a
    warning and a check by the CRC-32s, never a skipped check. Each ends with the uninterrupted results and a
    record that vouches for both generations again."""
    ref, *_ = reference
    run = copy_of(stopped, tmp_path)
    before = results(run)
    tamper(run, damage, record)
    capsys.readouterr()
    assert main(argv(run)) == EXIT_OK
    err = capsys.readouterr().err
    warnings = warning_lines(err)
    assert not error_lines(err) and len(warnings) == (record != "intact") + bool(damage), err
    if record != "intact":
        what = "is missing" if record == "missing" else "is not JSON"
        assert f"checkpoint/checksums.json {what}; the checkpoints were checked by their zip" in warnings[0]
    if damage:
        assert f"ckpt.pt cannot be used ({WHY[record]}" in warnings[-1]
        assert "set aside as ckpt.pt.damaged-1, resuming from ckpt.prev.pt at env_step 200" in warnings[-1]
        with open(run / "eval.csv.after-200") as f:  # the rows written after env_step 200 are kept beside
            aside = [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in csv.DictReader(f)]
        assert aside == [r for r in before["eval.csv"] if int(r["env_step"]) > 200] != []
    assert (run / "checkpoint" / "ckpt.pt.damaged-1").exists() == bool(damage)
    assert results(run) == ref
    assert vouched(run)


def test_rows_without_a_checkpoint_are_kept_aside_byte_for_byte_and_the_run_restarts_as_never_interrupted(
    reference, stopped, tmp_path, capsys
):
    """A run folder with eval and train rows and a `running` status but no checkpoint/ (deleted) starts from
    env_step 0 as a damaged checkpoint's run does: the rows past it moved aside byte for byte, one warning."""
    ref, *_ = reference
    run = copy_of(stopped, tmp_path)
    shutil.rmtree(run / "checkpoint")
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, "state": "running"}))  # killed, not stopped
    rows = {n: (run / n).read_text().splitlines(keepends=True) for n in ("eval.csv", "train.csv")}
    capsys.readouterr()
    assert main(argv(run)) == EXIT_OK
    assert warning_lines(capsys.readouterr().err) == [
        f"warning: {run} holds rows up to env_step 400 but no checkpoint; starting from env_step 0 (rows "
        "after it moved to eval.csv.after-0, train.csv.after-0)"
    ]
    for name, lines in rows.items():  # the header and every row past env_step 0, as they were
        kept = [line for line in lines[1:] if int(float(line.split(",", 1)[0])) > 0]
        assert kept and (run / f"{name}.after-0").read_text() == "".join([lines[0], *kept])
    assert results(run) == ref


@pytest.mark.parametrize(
    "latest, previous, record",
    [("truncate", "truncate", "intact"), ("flip", "flip", "garbage"), ("flip", None, "missing")],
    ids=["both-truncated", "both-damaged-record-garbage", "older-version-damaged"],
)
def test_no_usable_generation_is_one_error_line_and_changes_nothing(
    stopped, tmp_path, capsys, latest, previous, record
):
    """Also a folder of an older version (one generation, no checksums.json) whose checkpoint is damaged."""
    run = copy_of(stopped, tmp_path)
    if previous is None:
        (run / "checkpoint" / "ckpt.prev.pt").unlink()
    tamper(run, latest, record, previous)
    files = snapshot(run)
    capsys.readouterr()
    assert main(argv(run)) == EXIT_BAD_INPUT
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "no checkpoint generation can be used" in lines[0], lines
    assert f"ckpt.pt: {WHY[record]}" in lines[0] and "delete the folder" in lines[0]
    assert snapshot(run) == files


def test_an_older_run_folder_with_one_generation_resumes_silently(reference, stopped, tmp_path, capsys):
    """A version before records left one generation and no checksums.json: its checkpoint is checked by its
    zip CRC-32s without a warning, and the next checkpoint records both generations."""
    ref, *_ = reference
    run = copy_of(stopped, tmp_path)
    (run / "checkpoint" / "checksums.json").unlink()
    (run / "checkpoint" / "ckpt.prev.pt").unlink()
    capsys.readouterr()
    assert main(argv(run)) == EXIT_OK
    assert not warning_lines(capsys.readouterr().err)
    assert results(run) == ref
    assert vouched(run)


# ---------------------------------------------------------------------- one line instead of a traceback
def test_a_checkpoint_of_another_agent_is_one_error_line_and_changes_nothing(stopped, tmp_path, capsys):
    """A sac run's checkpoint and record copied into a td3 run's folder: verified bytes, but another run's
    (its config differs from config.yaml), so neither generation is used; status.json is not touched."""
    other = tmp_path / "sac"
    assert main(tiny_argv("sac", other, steps=200, extra=SHORT)) == EXIT_OK
    run = copy_of(stopped, tmp_path)
    for name in ("ckpt.pt", "checksums.json"):
        shutil.copy(other / "checkpoint" / name, run / "checkpoint" / name)
    files = snapshot(run)
    capsys.readouterr()
    assert main(argv(run)) == EXIT_BAD_INPUT
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "no checkpoint generation can be used" in lines[0], lines
    assert "ckpt.pt: a checkpoint of another run (its config differs from config.yaml in" in lines[0]
    assert "agent.name" in lines[0]
    assert snapshot(run) == files


def test_a_verified_checkpoint_that_torch_refuses_to_load_is_one_error_line(stopped, tmp_path, capsys):
    """Bytes as recorded and this run's config, but a tensor of another size (a checkpoint of another code
    version): torch's many-line refusal becomes one line; status.json is not touched."""
    import torch

    run = copy_of(stopped, tmp_path)
    ckpt = run / "checkpoint" / "ckpt.pt"
    state = torch.load(ckpt, weights_only=False)
    modules = [v for v in state["agent"].values() if isinstance(v, dict)]
    key, weight = next((k, v) for m in modules for k, v in m.items() if torch.is_tensor(v) and v.ndim == 2)
    next(m for m in modules if key in m)[key] = torch.zeros(weight.shape[0] + 1, weight.shape[1])
    torch.save(state, ckpt)
    record = json.loads((run / "checkpoint" / "checksums.json").read_text())
    size, sha = checkpoints._file_sums(ckpt)
    record["ckpt.pt"].update(size=size, sha256=sha)
    (run / "checkpoint" / "checksums.json").write_text(json.dumps(record))
    status = (run / "status.json").read_bytes()
    capsys.readouterr()
    assert main(argv(run)) == EXIT_BAD_INPUT
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and f"{ckpt} does not fit this run (Error(s) in loading state_dict" in lines[0]
    assert f"size mismatch for {key}" in lines[0] and "cannot resume from it" in lines[0]
    assert (run / "status.json").read_bytes() == status


@pytest.mark.parametrize(
    "content, why",
    [
        (bytes(range(128, 256)), "bytes that are not UTF-8 text"),
        (None, "a folder where a file is expected"),
        (b"- agent\n- td3\n", "a YAML list, not a mapping of keys"),
    ],
    ids=["garbage", "folder", "list"],
)
def test_a_config_yaml_that_holds_no_config_is_one_error_line_for_the_run_and_check(
    tmp_path, capsys, content, why
):
    run = tmp_path / "run"
    run.mkdir()
    if content is None:
        (run / "config.yaml").mkdir()
    else:
        (run / "config.yaml").write_bytes(content)
    for check in ([], ["--check"]):
        assert main([*argv(run), *check]) == EXIT_BAD_INPUT
        lines = error_lines(capsys.readouterr().err)
        assert lines == [
            f"error: {run / 'config.yaml'} holds no run config ({why}); remove it or choose another out="
        ]
    assert [p.name for p in run.iterdir()] == ["config.yaml"]


def test_a_full_disk_at_start_is_one_line_naming_the_file_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    """The check before writing writes a byte (a full disk still makes an empty file); a disk that fills
    after it refuses the run lock's record: either way one line, exit 2, no folder or empty .lock left."""
    import errno
    import tempfile

    real_temporary_file = tempfile.TemporaryFile

    class FullDisk:
        def __init__(self, *a, **k):
            self.f = real_temporary_file(*a, **k)

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    run = tmp_path / "out" / "run"
    monkeypatch.setattr(tempfile, "TemporaryFile", FullDisk)
    assert main(argv(run)) == EXIT_BAD_INPUT
    assert error_lines(capsys.readouterr().err) == [
        f"error: out={run} cannot be written: no space left on device"
    ]
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(tempfile, "TemporaryFile", real_temporary_file)

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    assert main(argv(run)) == EXIT_BAD_INPUT
    assert error_lines(capsys.readouterr().err) == [
        f"error: no space left on device while writing {run / '.lock'}"
    ]
    assert not (tmp_path / "out").exists()


def test_check_runs_the_run_folder_checks_of_the_real_run_and_writes_nothing(stopped, tmp_path, capsys):
    """out=/dev/null, a folder of another config and a folder with no usable checkpoint are refused by
    --check as by the run; otherwise --check says what the run would do."""

    def check(run, *extra) -> tuple[int, str, str]:
        files = snapshot(run, skip=())
        rc = main([*layered(argv(run), extra), "--check"])
        out, err = capsys.readouterr()
        assert snapshot(run, skip=()) == files
        return rc, out.strip(), (error_lines(err) or [""])[0]

    resumed = copy_of(stopped, tmp_path)
    ok = f"ok: td3 on cartpole-balance, seed 2, 600 env steps -> {resumed}"
    assert check(resumed) == (EXIT_OK, f"{ok} (resumes from ckpt.pt at env_step 400)", "")
    rc, _, line = check(resumed, "agent.mlp_dims=[16]")
    assert rc == EXIT_BAD_INPUT and "holds a run with a different config (differs in agent.mlp_dims)" in line
    rc, _, line = check(Path("/dev/null"))
    assert rc == EXIT_BAD_INPUT and "/dev/null is a file where a folder is expected" in line
    flip(resumed / "checkpoint" / "ckpt.pt")
    rc, out, _ = check(resumed)
    assert rc == EXIT_OK and out.startswith(
        f"{ok} (resumes from ckpt.prev.pt at env_step 200; ckpt.pt cannot"
    )
    truncate(resumed / "checkpoint" / "ckpt.prev.pt")
    rc, _, line = check(resumed)
    assert rc == EXIT_BAD_INPUT and "no checkpoint generation can be used" in line
    fresh = tmp_path / "fresh" / "run"
    assert check(fresh)[:2] == (
        EXIT_OK,
        f"ok: td3 on cartpole-balance, seed 2, 600 env steps -> {fresh} (a fresh run)",
    )
    assert not (tmp_path / "fresh").exists()


def test_a_finished_run_whose_logs_were_deleted_writes_them_again_from_its_last_checkpoint(
    reference, tmp_path, capsys
):
    """Byte for byte (time columns included) from the checkpoint taken after the last evaluation; with that
    checkpoint damaged, one line naming eval.csv and nothing changed (the run stays done)."""
    run = copy_of(reference[2], tmp_path)
    logs = {n: (run / n).read_bytes() for n in ("eval.csv", "train.csv")}
    for n in logs:
        (run / n).unlink()
    assert main(argv(run)) == EXIT_OK
    assert capsys.readouterr().out.strip() == (
        f"{run}: already done, eval.csv and train.csv written again from its last checkpoint"
    )
    assert {n: (run / n).read_bytes() for n in logs} == logs
    (run / "eval.csv").unlink()
    flip(run / "checkpoint" / "ckpt.pt")
    files = snapshot(run)
    assert main(argv(run)) == EXIT_BAD_INPUT
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and f"{run / 'eval.csv'} is missing and cannot be written again" in lines[0]
    assert "ckpt.pt: its bytes are not those checksums.json records" in lines[0]
    assert "ckpt.prev.pt: env_step 400" in lines[0]
    assert snapshot(run) == files


def test_make_figures_says_how_to_get_a_done_runs_deleted_eval_csv_back_and_that_advice_works(
    reference, tmp_path
):
    """The warning names the run and the command that writes its eval.csv again; following it, the run is
    scored again with the same rows."""
    from analysis.errors import AnalysisError, AnalysisWarning
    from analysis.runs.load import load_results

    run = copy_of(reference[2], tmp_path)
    rows = (run / "eval.csv").read_bytes()
    (run / "eval.csv").unlink()
    (tmp_path / "other").mkdir()
    shutil.copy(run / "status.json", tmp_path / "other")
    with pytest.warns(AnalysisWarning) as record:
        with pytest.raises(AnalysisError, match="no run folders"):
            load_results(tmp_path)
    assert [str(w.message) for w in record] == [
        "1 run folder(s) say done but hold no eval.csv, so they are left out: run (re-run the command that "
        "trained each, python -m iqrl.train with its config.yaml's keys and out=<its folder>: it writes "
        "eval.csv again, byte for byte, from the run's last checkpoint)",
        "1 run folder(s) say done but hold neither eval.csv nor a checkpoint, so they are left out: other "
        "(their evaluations are lost: train them again in another folder)",
    ]
    assert main(argv(run)) == EXIT_OK  # the run's command
    assert (run / "eval.csv").read_bytes() == rows
    table, info = load_results(run)
    assert info.n_runs == 1 and table["env_step"].max() == 600


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
    faults = only(Faults(tmp_path, 1, "enospc"), "write .ckpt").install()  # the first checkpoint's write
    try:
        assert main(argv(run)) == EXIT_FAILED
    finally:
        faults.uninstall()
    err = capsys.readouterr().err
    assert "Traceback" in err and "unexpected pos" not in err.splitlines()[-1]
    assert err.splitlines()[-1] == (
        f"error: run failed: no space left on device while writing {run / 'checkpoint' / 'ckpt.pt'}"
    )


def test_a_failed_checkpoint_write_keeps_nothing_of_its_callers_alive(tmp_path):
    """torch's C++ writer holds the file object it writes to where the garbage collector cannot see: an
    OSError left in that object would keep its traceback's frames, and what they hold (a trainer and its ALE
    envs), alive until the interpreter's exit, where ale-py reports them as `nanobind: leaked ...`."""
    import errno
    import gc
    import weakref

    import torch

    class Trainer:
        pass

    def save_checkpoint(trainer):  # a frame of the failure's traceback holding the trainer, as the real one
        checkpoints.save(tmp_path, {"counters": {"env_step": 1}, "x": torch.zeros(8)})

    trainer = Trainer()
    alive = weakref.ref(trainer)
    faults = only(Faults(tmp_path, 1, "enospc"), "write .ckpt").install()
    try:
        save_checkpoint(trainer)
    except OSError as e:
        assert e.errno == errno.ENOSPC
    else:
        raise AssertionError("the checkpoint was written")
    finally:
        faults.uninstall()
    del trainer
    gc.collect()
    assert alive() is None


@pytest.mark.skipif(
    importlib.util.find_spec("ale_py") is None and not os.environ.get("CI"), reason="ale-py is not installed"
)
def test_a_full_disk_during_an_atari_checkpoint_is_one_line_and_nothing_else(tmp_path):
    """The process, Atari envs alive until the failure: its stderr is the error line alone (ale-py printed
    some 20 `nanobind: leaked ...` lines at the exit when the failed write's frames outlived the run)."""
    run = tmp_path / "run"
    args = [
        "agent=dqn",
        "task=atari:Pong",
        "steps=400",
        f"out={run}",
        "episode_length=200",
        "seed_steps=400",
        "eval_every=400",
        "eval_episodes=1",
        "checkpoint_every=400",
        "image_size=36",
    ]
    script = (
        "import sys; from faults import Faults, only; "
        "from iqrl.train import main; "
        f"only(Faults({str(tmp_path)!r}, 1, 'enospc'), 'write .ckpt').install(); sys.exit(main({args!r}))"
    )
    child = subprocess.run(
        [sys.executable, "-c", script], env=child_env(), capture_output=True, text=True, timeout=600
    )
    assert child.returncode == EXIT_FAILED
    assert child.stderr.splitlines() == [
        f"error: run failed: no space left on device while writing {run / 'checkpoint' / 'ckpt.pt'}"
    ]


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
    return {s: results(root / f"seed{s}") for s in (2, 3)}, faults.ops, root


@pytest.mark.parametrize("op, kind", [("write .ckpt.pt", "enospc"), ("rename ckpt.prev.pt", "kill")])
def test_kseed_mode_after_a_fault_resumes_to_the_uninterrupted_results(kseed_reference, tmp_path, op, kind):
    from iqrl.multiseed.runs import main as kmain

    ref, ops, _ = kseed_reference
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


@pytest.fixture(scope="module")
def kseed_stopped(tmp_path_factory) -> Path:
    """A K-seed group stopped at its second checkpoint round (every seed: latest and previous)."""
    from iqrl.multiseed.runs import main as kmain

    root = tmp_path_factory.mktemp("kstopped") / "group"
    stop = lambda: (root / "seed3/checkpoint/ckpt.prev.pt").exists()  # noqa: E731
    assert kmain([*KSEED, f"out={root}"], should_stop=stop) == 3
    return root


@pytest.mark.parametrize("damage, record", [("truncate", "intact"), ("flip", "garbage"), (None, "missing")])
def test_kseed_mode_with_a_tampered_checkpoint_falls_back_with_a_warning_to_the_uninterrupted_results(
    kseed_reference, kseed_stopped, tmp_path, capsys, damage, record
):
    from iqrl.multiseed.runs import main as kmain

    ref, *_ = kseed_reference
    root = copy_of(kseed_stopped, tmp_path)
    tamper(root / "seed3", damage, record)
    capsys.readouterr()
    assert kmain([*KSEED, f"out={root}"]) == EXIT_OK
    err = capsys.readouterr().err
    warnings = warning_lines(err)
    assert not error_lines(err) and len(warnings) == (record != "intact") + bool(damage), err
    if damage:
        assert f"ckpt.pt cannot be used ({WHY[record]}" in warnings[-1]
        assert "set aside as ckpt.pt.damaged-1" in warnings[-1]
    assert {s: results(root / f"seed{s}") for s in (2, 3)} == ref
    assert vouched(root / "seed3")


def test_kseed_mode_writes_a_done_seeds_deleted_eval_csv_again(kseed_reference, tmp_path, capsys):
    from iqrl.multiseed.runs import main as kmain

    root = copy_of(kseed_reference[2], tmp_path)
    log = (root / "seed3" / "eval.csv").read_bytes()
    (root / "seed3" / "eval.csv").unlink()
    assert kmain([*KSEED, f"out={root}"]) == EXIT_OK
    assert "seed3: already done, eval.csv written again from its last checkpoint" in capsys.readouterr().out
    assert (root / "seed3" / "eval.csv").read_bytes() == log


def packed_job(root: Path) -> tuple[list[Path], str]:
    """Two runs side by side in one job (slurm/pack.py, process mode): their folders and the job's code."""
    dirs = [root / f"seed{s}" for s in (2, 4)]
    pairs = [(str(d), argv(d, s)) for d, s in zip(dirs, (2, 4))]
    return dirs, (
        "import sys; from slurm.pack import Pack; from slurm.run import Run\n"
        f"runs = tuple(Run(d, tuple(a)) for d, a in {pairs})\n"
        "try:\n    print(Pack(runs, threads=2)())\n"
        "except Exception as e:\n    print('job failed:', e)\n"
    )


def run_job(code: str, env: dict) -> str:
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    return p.stdout + p.stderr


@pytest.fixture(scope="module")
def packed_reference(tmp_path_factory) -> Path:
    """The packed job never interrupted (a packed run's train.csv may differ in the last bits from a run in a
    job of its own: its children share the job's threads)."""
    root = tmp_path_factory.mktemp("packed") / "ref"
    out = run_job(packed_job(root)[1], child_env())
    assert "job failed" not in out, out
    return root


def test_a_packed_job_of_two_runs_after_a_fault_resumes_to_the_uninterrupted_results(
    packed_reference, tmp_path
):
    """The children share one fault counter: ENOSPC at the second checkpoint's write of whichever run gets
    there first fails that run only; the job run again finishes both, each as if never interrupted."""
    runs, code = packed_job(tmp_path / "job")
    n = 60  # the two runs' operations interleave: about the second checkpoint of the first to get there
    env = child_env(IQRL_FAULTS=f"{tmp_path / 'job'}:{n}:enospc:{tmp_path / 'count'}")
    out = run_job(code, env)
    assert "job failed" in out, out
    states = sorted(json.loads((d / "status.json").read_text())["state"] for d in runs)
    assert "failed" in states, states
    failed = next(d for d in runs if json.loads((d / "status.json").read_text())["state"] == "failed")
    assert "no space left on device while writing" in (failed / "job.log").read_text()
    assert "Traceback" not in (failed / "job.log").read_text()
    env.pop("IQRL_FAULTS")
    # The job run again trains only the run not done, with the threads it had as one of two (slurm/pack.py
    # fixes each run's share when the job is made: more threads would change the last bits of its sums).
    out = run_job(code, env)
    assert "job failed" not in out, out
    for d in runs:
        assert results(d) == results(packed_reference / d.name)


def test_a_packed_job_with_tampered_checkpoints_falls_back_or_stops_in_one_line(packed_reference, tmp_path):
    """The reference job's runs as a SIGKILL between their last checkpoint and their `done` status leaves
    them (status `running`), then tampered with: seed2's latest flipped falls back to its previous checkpoint
    and ends as the reference; seed4, both generations damaged and its record garbage, stops in one line of
    its job.log with its checkpoints and logs unchanged (the job records it failed in status.json)."""
    runs, code = packed_job(Path(shutil.copytree(packed_reference, tmp_path / "job")))
    for d in runs:
        write_status(d, "running", 600, 600)
    tamper(runs[0], "flip", "intact")
    tamper(runs[1], "flip", "garbage", previous="truncate")
    kept = snapshot(runs[1], skip=(".lock", "job.log", "status.json"))
    out = run_job(code, child_env())
    assert "job failed" in out, out
    logs = [(d / "job.log").read_text().rsplit("\n=== job ", 1)[1] for d in runs]  # this attempt's
    assert "Traceback" not in logs[0] + logs[1]
    assert f"ckpt.pt cannot be used ({WHY['intact']}); set aside as ckpt.pt.damaged-1" in logs[0]
    assert results(runs[0]) == results(packed_reference / runs[0].name)
    lines = error_lines(logs[1])
    assert len(lines) == 1 and "no checkpoint generation can be used" in lines[0], logs[1]
    assert snapshot(runs[1], skip=(".lock", "job.log", "status.json")) == kept
    assert "trainer exit code 2" in json.loads((runs[1] / "status.json").read_text())["error"]
