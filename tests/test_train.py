"""End to end through the trainer: update schedules, signals, NaN guard, done and older runs (the per-agent
run folder and resume checks are in tests/test_conformance.py)."""

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from iqrl.runfolder.exits import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK
from iqrl.train import main

from conftest import stop_after_steps, tiny_argv, wait_for

EVAL_COLS = ["env_step", "episode_return", "episode_return_std", "n_episodes", "wall_time_s"]


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def eval_numbers(run):
    """eval.csv without the wall-clock column: what must be identical across interruptions."""
    return [{k: r[k] for k in EVAL_COLS[:-1]} for r in read_csv(Path(run) / "eval.csv")]


def test_updates_per_step_is_respected(tmp_path):
    out = tmp_path / "run"
    assert main(tiny_argv("td3", out, steps=1000, extra=["updates_per_step=0.25", "diag_every=1000"])) == 0
    # learning starts after 400 seed steps: 600 agent-collected env steps x 0.25 = 150 updates
    assert int(read_csv(out / "train.csv")[-1]["updates"]) == 150


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_stops_after_the_agent_step_on_ctrl_c_or_sigterm(sig, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "iqrl.train", *tiny_argv("td3", run, steps=4000)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    wait_for(lambda: (run / "eval.csv").exists(), p, "the step-0 evaluation")  # eval.csv: written after it
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == EXIT_INTERRUPTED, err
    assert "stopping after this agent step with a checkpoint" in err
    status = json.loads((run / "status.json").read_text())
    # at the step it was asked at, mid-episode or not: a whole number of agent steps (2 env steps each)
    assert status["state"] == "interrupted" and 0 < status["env_step"] < 4000 and status["env_step"] % 2 == 0
    assert (run / "checkpoint").exists()


def test_a_run_trains_exactly_its_budget_and_evaluates_at_exact_env_steps(tmp_path):
    """Episodes of 200 env steps, a budget of 500 and evaluations every 300: evaluated at 0, 300 (mid-episode)
    and 500; train.csv rows at 300 and 500; the replay holds 250 transitions, the last one a truncation (the
    episode open at the budget ends there, bootstrapped), and no episode is left open."""
    import torch

    out = tmp_path / "run"
    assert main(tiny_argv("td3", out, steps=500, extra=["eval_every=300", "diag_every=300"])) == EXIT_OK
    assert [r["env_step"] for r in read_csv(out / "eval.csv")] == ["0", "300", "500"]
    assert [(r["env_step"], r["episode"]) for r in read_csv(out / "train.csv")] == [
        ("300", "1"),
        ("500", "3"),
    ]
    state = torch.load(out / "checkpoint" / "ckpt.pt", weights_only=False)
    replay = state["replay"]
    assert len(replay["act"]) == 250 and not replay["term"].any() and replay["ep_start"] == -1
    assert state["open_episode"] is None and state["counters"]["env_step"] == 500


def test_an_atari_run_stops_and_evaluates_at_exact_frames_mid_game(tmp_path):
    """dqn on Pong (games of thousands of frames): 1600 frames trained, evaluations at 0, 800 and 1600, all
    inside the first game."""
    pytest.importorskip("ale_py")
    out = tmp_path / "run"
    extra = ["task=atari:Pong", "image_size=36", "eval_every=800", "diag_every=800", "episode_length=4000"]
    assert main(tiny_argv("dqn", out, steps=1600, extra=extra)) == EXIT_OK
    assert [r["env_step"] for r in read_csv(out / "eval.csv")] == ["0", "800", "1600"]
    assert [r["episode"] for r in read_csv(out / "train.csv")] == [
        "0",
        "1",
    ]  # the budget ended the first game
    assert json.loads((out / "status.json").read_text())["env_step"] == 1600


def test_sigkill_at_any_point_then_resume_matches(tmp_path):
    """Kill the process (SIGKILL) mid-run twice, at different points, and resume each time."""
    ref, run = tmp_path / "ref", tmp_path / "run"
    argv = tiny_argv("iqrl", ref, seed=7, steps=2000, extra=["checkpoint_every=600"])
    assert main(argv) == EXIT_OK
    cmd = [
        sys.executable,
        "-m",
        "iqrl.train",
        *tiny_argv("iqrl", run, seed=7, steps=2000, extra=["checkpoint_every=600"]),
    ]
    # Same thread count as this process (conftest): CPU float sums depend on it.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    for kill_after in (700, 1300):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)

        def reached(step=kill_after):
            try:
                return json.loads((run / "status.json").read_text())["env_step"] >= step
            except (OSError, ValueError):
                return False

        wait_for(reached, p, f"env_step {kill_after}")
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert json.loads((run / "status.json").read_text())["state"] == "running"
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    assert eval_numbers(run) == eval_numbers(ref)
    steps = [int(r["env_step"]) for r in read_csv(run / "eval.csv")]
    assert steps == sorted(set(steps))  # no duplicated rows


def test_done_run_is_left_alone(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(tiny_argv("td3", out, steps=400)) == EXIT_OK
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert main(tiny_argv("td3", out, steps=400)) == EXIT_OK
    assert "already done" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def _older_run(tmp_path, capsys, edit, extra=()):
    """A finished td3 run whose config.yaml `edit` turns into an older version's; checks that it stays done,
    marks it unfinished and returns (out, its edited config, its status, the files' mtimes)."""
    out = tmp_path / "run"
    assert main(tiny_argv("td3", out, steps=400)) == EXIT_OK
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    edit(cfg["agent"])
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert (
        main(tiny_argv("td3", out, steps=400, extra=extra)) == EXIT_OK
        and "already done" in capsys.readouterr().out
    )
    status = json.loads((out / "status.json").read_text())
    (out / "status.json").write_text(json.dumps({**status, "state": "running"}))
    return out, cfg, status, {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


def test_run_of_an_older_version_with_a_removed_key(tmp_path, capsys):
    """A config key removed since: a done run stays done; an unfinished one is refused, not resumed."""
    out, _, _, before = _older_run(tmp_path, capsys, lambda agent: agent.update(retired_key=0.5))
    assert main(tiny_argv("td3", out, steps=400)) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "older version" in err and "agent.retired_key" in err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_run_of_an_older_version_with_keys_its_agent_never_read(tmp_path, capsys):
    """Before configs were composed per learner, a td3 config carried the SAC learner's keys (and a sac config
    TD3's noise keys), never read. An unfinished older run holding them resumes (runfolder.INERT_REMOVED_KEYS)
    and finishes; a removed key outside that list is still refused (test above)."""
    sac_keys = {
        "init_temperature": 0.1,
        "alpha_lr": 3e-4,
        "log_std_min": -10.0,
        "log_std_max": 2.0,
        "target_entropy": None,
    }
    out, _, _, _ = _older_run(tmp_path, capsys, lambda agent: agent.update(sac_keys))
    assert main(tiny_argv("td3", out, steps=400)) == EXIT_OK
    assert json.loads((out / "status.json").read_text())["state"] == "done"


def test_non_finite_loss_fails_the_run_with_reason(tmp_path, monkeypatch):
    from baselines.td3 import TD3

    monkeypatch.setattr(TD3, "update", lambda self, replay, step: {"q_loss": float("nan")})
    out = tmp_path / "run"
    assert main(tiny_argv("td3", out, steps=800)) == 1
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and "non-finite q_loss" in status["error"]
    assert status["env_step"] == 600  # the first episode collected by the agent


@pytest.mark.parametrize("mode", ["per_step", "agent_decides"])
def test_update_modes(mode, tmp_path, monkeypatch):
    """td3 with another schedule (iqrl/core/schedule.py): after every step, or one of its own."""
    import baselines.td3 as td3
    from iqrl.core.schedule import PerStep, UpdateSchedule

    seen = []

    class SevenPerEpisode(UpdateSchedule):
        def after_episode(self, credit, episode):
            seen.append((episode.env_steps, credit.rate))
            return 7

    init = td3.TD3.__init__

    def with_schedule(self, *args):
        init(self, *args)
        self.schedule = PerStep() if mode == "per_step" else SevenPerEpisode()

    monkeypatch.setattr(td3.TD3, "__init__", with_schedule)
    out = tmp_path / "run"
    assert main(tiny_argv("td3", out, steps=1000, extra=["updates_per_step=0.25", "diag_every=1000"])) == 0
    updates = int(read_csv(out / "train.csv")[-1]["updates"])
    if mode == "per_step":
        assert updates == 150  # same total as per_episode: 600 env steps x 0.25
    else:
        assert seen == [(200, 0.25)] * 3 and updates == 21  # 3 agent episodes x 7, told the run's rate


def test_bf16_precision_runs_and_keeps_float32_losses(tmp_path):
    out = tmp_path / "run"
    assert main(tiny_argv("iqrl", out, steps=800, extra=["precision=bf16"])) == EXIT_OK
    row = read_csv(out / "train.csv")[-1]
    assert float(row["q_loss"]) >= 0 and abs(float(row["consistency_loss"])) <= 1.0
    assert yaml.safe_load((out / "config.yaml").read_text())["precision"] == "bf16"
    # the other FSQ agent (float32 codes under autocast) trains with bf16 too
    assert main(tiny_argv("dcwm", tmp_path / "dcwm", steps=800, extra=["precision=bf16"])) == EXIT_OK


HOLD_LOCK = """
import sys, time
from pathlib import Path
from iqrl.runfolder.lock import RunLock
assert RunLock(Path(sys.argv[1])).acquire({"job_id": "4242", "pid": 0, "host": "elsewhere"})
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_trainer_on_a_locked_run_folder_exits_2_and_writes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(tiny_argv("td3", run, steps=400)) == EXIT_BAD_INPUT
        err = capsys.readouterr().err.strip().splitlines()
        assert (
            len(err) == 1
            and err[0].startswith("error:")
            and "another process" in err[0]
            and "job 4242" in err[0]
        )
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # no config, status or CSV written
    finally:
        holder.kill()
        holder.wait()
    assert main(tiny_argv("td3", run, steps=400)) == EXIT_OK  # the lock died with its process


HOLD_CHECK_LOCK = """
import sys
from pathlib import Path
from iqrl.runfolder.lock import RunLock, check_lock
run = Path(sys.argv[1])
assert RunLock(run).acquire({"job_id": "4242", "pid": 0, "host": "elsewhere"})
print("locked", flush=True)
sys.stdin.readline()
check_lock(run)  # as the trainer does before each write of the run's files
print("checked", flush=True)
sys.stdin.readline()
"""


def test_a_deleted_lock_file_lets_no_second_trainer_in_and_its_holder_makes_it_again(tmp_path, capsys):
    """The holder also locks the run folder, which deleting `.lock` leaves locked: a second trainer stops in
    one line and writes nothing; the holder's next check makes `.lock` again, with its record."""
    from iqrl.runfolder.lock import RunLock

    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_CHECK_LOCK, str(run)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        (run / ".lock").unlink()
        assert main(tiny_argv("td3", run, steps=400)) == EXIT_BAD_INPUT
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {run} is being trained by another process"), err
        assert [p.name for p in run.iterdir()] == [".lock"]  # no config, status or CSV written
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "checked"
        assert RunLock(run).held_elsewhere() and RunLock(run).holder()["job_id"] == "4242"
    finally:
        holder.kill()
        _, holder_err = holder.communicate()
    assert f"warning: {run / '.lock'} was deleted while this run trained; made it again" in holder_err


TAKE_LOCK_WITHOUT_FOLDER_LOCKS = """
import sys, time
from pathlib import Path
from iqrl.runfolder.lock import RunLock
RunLock._lock_folder = lambda self: True  # a file system that locks no folders (NFS)
assert RunLock(Path(sys.argv[1])).acquire({"job_id": "5151", "pid": 0, "host": "elsewhere"})
print("locked", flush=True)
time.sleep(120)
"""


def test_without_folder_locks_a_trainer_whose_lock_file_another_took_stops_in_one_line(
    tmp_path, capsys, monkeypatch
):
    """On a file system that locks no folders (NFS), a second process can lock the `.lock` made after a
    deletion: the trainer notices at its next write, stops in one line (exit 2) and writes nothing more, so
    one process trains the folder."""
    from iqrl.runfolder.lock import RunLock

    monkeypatch.setattr(RunLock, "_lock_folder", lambda self: True)
    monkeypatch.setattr(RunLock, "TAKEOVER_WAIT_S", 0.3)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    steps, other = {"n": 0}, []

    def take_over_after_the_first_episode() -> bool:  # asked after every agent step: 100 in an episode
        steps["n"] += 1
        if steps["n"] == 100:
            (run / ".lock").unlink()
            other.append(
                subprocess.Popen(
                    [sys.executable, "-c", TAKE_LOCK_WITHOUT_FOLDER_LOCKS, str(run)],
                    stdout=subprocess.PIPE,
                    text=True,
                    env=env,
                )
            )
            assert other[0].stdout.readline().strip() == "locked"
        return False

    try:
        rc = main(tiny_argv("td3", run, steps=1200), should_stop=take_over_after_the_first_episode)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == EXIT_BAD_INPUT and len(err) == 1, err
        assert err[0].startswith(f"error: {run / '.lock'} was deleted while this run trained and another")
        assert "trains the run now, this one stops without writing more" in err[0]
        status = json.loads((run / "status.json").read_text())
        # not marked failed, nor moved on: its status as it was when the other process took the lock
        assert status["state"] == "running" and status["env_step"] == 0
        assert not (run / "checkpoint").exists()  # its checkpoint due at 400 was not written
    finally:
        for p in other:
            p.kill()
            p.wait()


def test_a_process_holding_the_run_lock_can_train_the_run(tmp_path):
    """A sweep job takes the run lock, then calls the trainer in the same process: the lock is re-entrant
    there, and still held by the job after the trainer returns."""
    from iqrl.runfolder.lock import RunLock

    run = tmp_path / "run"
    lock = RunLock(run)
    assert lock.acquire({"job_id": "1"})
    try:
        assert main(tiny_argv("td3", run, steps=400)) == EXIT_OK
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path; "
                "from iqrl.runfolder.lock import RunLock; "
                "print(RunLock(Path(sys.argv[1])).held_elsewhere())",
                str(run),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )
        assert probe.stdout.strip() == "True"
    finally:
        lock.release()
    assert not RunLock(run).held_elsewhere()


def test_checkpoints_fall_on_the_cadence_after_a_resume(tmp_path, monkeypatch):
    """Episodes of 200 env steps, checkpoint_every=400: stopped at 400 (a due checkpoint), the resumed run
    checkpoints at 800, 1200 and at the end, not again at 600 (the saved counter was one period late)."""
    from iqrl.loop.trainer import Trainer

    saved = []
    original = Trainer.save_checkpoint
    monkeypatch.setattr(
        Trainer, "save_checkpoint", lambda self: (saved.append(self.env_step), original(self))[1]
    )
    run = tmp_path / "run"
    assert main(tiny_argv("td3", run, steps=1600), should_stop=stop_after_steps(200)) == EXIT_INTERRUPTED
    assert saved == [400]
    assert main(tiny_argv("td3", run, steps=1600)) == EXIT_OK
    assert saved == [400, 800, 1200, 1600]


def test_a_filesystem_without_flock_trains_unlocked_with_a_warning(tmp_path, monkeypatch, capsys):
    import errno
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    assert main(tiny_argv("td3", tmp_path / "run", steps=400)) == EXIT_OK
    assert "training without the run lock" in capsys.readouterr().err


def test_temp_files_of_a_writer_killed_mid_write_are_removed_on_resume(tmp_path):
    """SIGKILL during a checkpoint write leaves the writer's full-size temporary file; the next start of the
    run removes such files (and only those) before resuming."""
    run = tmp_path / "run"
    argv = tiny_argv("td3", run, steps=800)
    assert main(argv, should_stop=lambda: True) == EXIT_INTERRUPTED
    # The real writer, killed between writing its temporary file and renaming it.
    code = (
        "import os, signal, sys; from iqrl.runfolder.atomic import atomic_write\n"
        "def write(f):\n    f.write(b'x' * 100000); f.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
        "atomic_write(sys.argv[1], write)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for target in (run / "checkpoint" / "ckpt.pt", run / "eval.csv"):
        p = subprocess.run([sys.executable, "-c", code, str(target)], env=env)
        assert p.returncode == -signal.SIGKILL
    leftovers = sorted([*run.glob(".*.tmp"), *run.glob("checkpoint/.*.tmp")], key=lambda p: p.name)
    assert [p.name[:9] for p in leftovers] == [".ckpt.pt.", ".eval.csv"] and leftovers[
        0
    ].stat().st_size == 100000
    others = [
        run / "notes.tmp",
        run / "checkpoint" / ".ckpt.pt.tmp",
        run / ".eval.csv.short.tmp",
    ]  # not its pattern
    for p in others:
        p.write_text("keep")
    assert main(argv) == EXIT_OK
    assert not any(p.exists() for p in leftovers)
    assert all(p.read_text() == "keep" for p in others)
    assert json.loads((run / "status.json").read_text())["state"] == "done"


def test_run_of_an_older_version_without_a_key_added_since(tmp_path, capsys):
    """A config key added since (agent.official_shared_eval_seed): a done run stays done; an unfinished one
    resumes when the key's value reproduces the older behaviour (LEGACY_VALUES) and is refused otherwise."""
    out, cfg, status, _ = _older_run(tmp_path, capsys, lambda agent: agent.pop("official_shared_eval_seed"))
    assert main(tiny_argv("td3", out, steps=400)) == EXIT_OK
    (out / "config.yaml").write_text(
        yaml.safe_dump(cfg)
    )  # unfinished again, and a value older versions lacked
    (out / "status.json").write_text(json.dumps({**status, "state": "running"}))
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert (
        main(tiny_argv("td3", out, steps=400, extra=["agent.official_shared_eval_seed=true"]))
        == EXIT_BAD_INPUT
    )
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "older version" in err and "agent.official_shared_eval_seed" in err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
